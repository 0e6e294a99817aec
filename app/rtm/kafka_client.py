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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

# The one SASL mechanism the brokers enable under rtm_security tls.
SCRAM = "SCRAM-SHA-512"
_SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"


@dataclass(frozen=True)
class Tls:
    """TLS to the brokers: the cluster CA, and the client's own certificate when it has one
    (the brokers' listener takes certificates only; the client listener takes logins)."""

    ca_file: str
    cert_file: str = ""
    key_file: str = ""


@dataclass(frozen=True)
class Login:
    """A SCRAM-SHA-512 login (rtm_security tls): the Kafka user and its password."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Connection:
    bootstrap_servers: tuple[str, ...]
    tls: Tls | None = None
    login: Login | None = None

    @classmethod
    def of(
        cls, servers: str | Sequence[str], tls: Tls | None = None, login: Login | None = None
    ) -> Connection:
        """From ``host:port`` strings, a list or one comma-separated string."""
        items = servers.split(",") if isinstance(servers, str) else servers
        listed = tuple(s.strip() for s in items if s.strip())
        if not listed:
            raise ValueError("a Kafka connection needs at least one bootstrap server")
        if login is not None and tls is None:
            raise ValueError("a Kafka login needs TLS: passwords never cross the network in clear")
        return cls(listed, tls, login)

    def __str__(self) -> str:
        return ",".join(self.bootstrap_servers)

    @property
    def security_protocol(self) -> str:
        """The same protocols as the roles' client.properties (roles/rtm/vars/main.yml)."""
        if self.tls is None:
            return "PLAINTEXT"
        return "SASL_SSL" if self.login else "SSL"

    def python(self) -> dict[str, Any]:
        """Keyword arguments of kafka-python's clients."""
        settings: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "security_protocol": self.security_protocol,
        }
        if self.tls:
            settings["ssl_cafile"] = self.tls.ca_file
            if self.tls.cert_file:
                settings |= {"ssl_certfile": self.tls.cert_file, "ssl_keyfile": self.tls.key_file}
        if self.login:
            settings |= {
                "sasl_mechanism": SCRAM,
                "sasl_plain_username": self.login.username,
                "sasl_plain_password": self.login.password,
            }
        return settings

    def spark(self) -> dict[str, str]:
        """Options of Spark's Kafka source and sink."""
        return {f"kafka.{key}": value for key, value in self.java().items()}

    def java(self) -> dict[str, str]:
        """Properties of Kafka's Java clients and tools."""
        props = {"bootstrap.servers": str(self), "security.protocol": self.security_protocol}
        if self.tls:
            props |= {"ssl.truststore.type": "PEM", "ssl.truststore.location": self.tls.ca_file}
            if self.tls.cert_file:
                # Java reads a PEM key and certificate from one file only: given inline instead.
                props |= {
                    "ssl.keystore.type": "PEM",
                    "ssl.keystore.key": _pem(self.tls.key_file),
                    "ssl.keystore.certificate.chain": _pem(self.tls.cert_file),
                }
        if self.login:
            user, password = (_jaas_quoted(v) for v in (self.login.username, self.login.password))
            login = f"username={user} password={password}"
            props |= {
                "sasl.mechanism": SCRAM,
                "sasl.jaas.config": f"{_SCRAM_MODULE} required {login};",
            }
        return props


def properties(settings: dict[str, str]) -> str:
    """Java properties text of client settings (a tool's --command-config file): a PEM's line
    breaks and a password's backslashes survive the reading."""
    escaped = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}
    lines = ["".join(escaped.get(c, c) for c in f"{k}={v}") for k, v in sorted(settings.items())]
    return "\n".join(lines) + "\n"


def _pem(path: str) -> str:
    return Path(path).read_text(encoding="ascii").strip()


def _jaas_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def producer(connection: Connection, **settings: Any) -> KafkaProducer:
    return KafkaProducer(**connection.python(), **settings)


def consumer(connection: Connection, *topics: str, **settings: Any) -> KafkaConsumer:
    return KafkaConsumer(*topics, **connection.python(), **settings)


def admin(connection: Connection, **settings: Any) -> KafkaAdminClient:
    return KafkaAdminClient(**connection.python(), **settings)
