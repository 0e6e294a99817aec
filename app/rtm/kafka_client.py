"""The one place every rtm client gets its Kafka connection from.

The producer, the Spark source and sink, ``fab status``, the demo, ``rtm-drill`` and the
benchmarks all build their clients here, from a ``Connection``: the brokers and the client
settings every client of the cluster needs alike. A security protocol, credentials or a CA are
then one change to ``Connection`` and to the settings that fill it (``kafka`` in rtm.yml, the
layout), and reach every client at once. A unit test keeps Kafka clients from being built
anywhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer


@dataclass(frozen=True)
class Connection:
    bootstrap_servers: tuple[str, ...]
    # The same protocol as the roles' client.properties (roles/rtm/vars/main.yml).
    security_protocol: str = "PLAINTEXT"

    @classmethod
    def of(cls, servers: str | Sequence[str]) -> Connection:
        """From ``host:port`` strings, a list or one comma-separated string."""
        items = servers.split(",") if isinstance(servers, str) else servers
        listed = tuple(s.strip() for s in items if s.strip())
        if not listed:
            raise ValueError("a Kafka connection needs at least one bootstrap server")
        return cls(listed)

    def __str__(self) -> str:
        return ",".join(self.bootstrap_servers)

    def python(self) -> dict[str, Any]:
        """Keyword arguments of kafka-python's clients."""
        return {
            "bootstrap_servers": list(self.bootstrap_servers),
            "security_protocol": self.security_protocol,
        }

    def spark(self) -> dict[str, str]:
        """Options of Spark's Kafka source and sink."""
        return {f"kafka.{key}": value for key, value in self.java().items()}

    def java(self) -> dict[str, str]:
        """Properties of Kafka's Java clients and tools."""
        return {"bootstrap.servers": str(self), "security.protocol": self.security_protocol}


def producer(connection: Connection, **settings: Any) -> KafkaProducer:
    return KafkaProducer(**connection.python(), **settings)


def consumer(connection: Connection, *topics: str, **settings: Any) -> KafkaConsumer:
    return KafkaConsumer(*topics, **connection.python(), **settings)


def admin(connection: Connection, **settings: Any) -> KafkaAdminClient:
    return KafkaAdminClient(**connection.python(), **settings)
