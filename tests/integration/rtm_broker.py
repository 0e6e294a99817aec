"""A real ZooKeeper + Kafka broker on 127.0.0.1, run from the artifact cache for the tests.

Besides its plaintext listener (the anonymous user is a super user there) it has the two of
rtm_security tls: SCRAM logins over TLS for clients (``client``), and certificates from its own
CA for super users (``internal``), under the ACL authorizer."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pki import Pki
from rtm.kafka_client import Tls

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


class BrokerError(RuntimeError):
    pass


def artifacts_root() -> Path:
    return Path(os.environ.get("RTM_ARTIFACTS", REPO / "artifacts")).resolve()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT)


def _write_properties(path: Path, values: dict[str, object]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")


@dataclass
class Broker:
    home: Path
    workdir: Path
    zk_port: int = 0
    kafka_port: int = 0
    client_port: int = 0
    internal_port: int = 0
    _kafka: list[subprocess.Popen[bytes]] = field(default_factory=list)  # the current JVM

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def client(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def internal(self) -> str:
        return f"127.0.0.1:{self.internal_port}"

    @property
    def controller_tls(self) -> Tls:
        """The CA, and the certificate of a super user (what the controller has)."""
        pki = self.workdir / "pki"
        return Tls(str(pki / "ca.pem"), str(pki / "controller.pem"), str(pki / "controller.key"))

    def _tls_settings(self) -> dict[str, object]:
        pki = Pki(self.workdir / "pki")
        node = pki.node("broker", "kafka", "127.0.0.1")
        pki.issue("controller", "rtm-controller")
        listeners = ",".join(
            f"{name}://127.0.0.1:{port}"
            for name, port in (
                ("PLAINTEXT", self.kafka_port),
                ("CLIENT", self.client_port),
                ("INTERNAL", self.internal_port),
            )
        )
        return {
            "listeners": listeners,
            "advertised.listeners": listeners,
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CLIENT:SASL_SSL,INTERNAL:SSL",
            "inter.broker.listener.name": "PLAINTEXT",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.client.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "listener.name.internal.ssl.client.auth": "required",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": node,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": pki.ca,
            "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
            "super.users": "User:ANONYMOUS;User:CN=kafka;User:CN=rtm-controller",
        }

    def _java(self, main_class: str, props: Path, name: str) -> subprocess.Popen[bytes]:
        cmd = [
            "java",
            "-Xmx512m",
            "-cp",
            str(self.home / "libs" / "*"),
            f"-Dlog4j.configuration=file:{self.home / 'config' / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.workdir / 'logs'}",
            main_class,
            str(props),
        ]
        log = (self.workdir / f"{name}.log").open("ab")
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def _log_tail(self, name: str) -> str:
        text = (self.workdir / f"{name}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-30:])

    @contextlib.contextmanager
    def running(self) -> Iterator[Broker]:
        self.zk_port, self.kafka_port = free_port(), free_port()
        self.client_port, self.internal_port = free_port(), free_port()
        zk_props, kafka_props = self.workdir / "zk.properties", self.workdir / "server.properties"
        _write_properties(
            zk_props,
            {
                "dataDir": self.workdir / "zk",
                "clientPort": self.zk_port,
                "clientPortAddress": "127.0.0.1",
                "admin.enableServer": "false",
                "maxClientCnxns": 0,
            },
        )
        _write_properties(
            kafka_props,
            {
                "broker.id": 0,
                **self._tls_settings(),
                "log.dirs": self.workdir / "kafka-logs",
                "zookeeper.connect": f"127.0.0.1:{self.zk_port}",
                "offsets.topic.replication.factor": 1,
                "offsets.topic.num.partitions": 4,
                "transaction.state.log.replication.factor": 1,
                "transaction.state.log.min.isr": 1,
                "group.initial.rebalance.delay.ms": 0,
                "auto.create.topics.enable": "false",
                "num.partitions": 2,
            },
        )
        processes: list[subprocess.Popen[bytes]] = []
        try:
            processes.append(
                self._java(
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain", zk_props, "zookeeper"
                )
            )
            self._wait_port(self.zk_port, processes[0], "zookeeper")
            self._kafka[:] = [self._java("kafka.Kafka", kafka_props, "kafka")]
            self._wait_kafka(self._kafka[0])
            yield self
        finally:
            for proc in [*self._kafka, *reversed(processes)]:
                _stop(proc)

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """An outage: the Kafka JVM stopped, and started again (same data, same port) after."""
        _stop(self._kafka.pop())
        try:
            yield
        finally:
            self._kafka.append(
                self._java("kafka.Kafka", self.workdir / "server.properties", "kafka")
            )
            self._wait_kafka(self._kafka[0])

    def _wait_port(self, port: int, proc: subprocess.Popen[bytes], name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(f"{name} exited with {proc.returncode}:\n{self._log_tail(name)}")
            with socket.socket() as sock:
                sock.settimeout(1)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.3)
        raise BrokerError(f"{name} not listening after {START_TIMEOUT}s:\n{self._log_tail(name)}")

    def _wait_kafka(self, proc: subprocess.Popen[bytes]) -> None:
        self._wait_port(self.kafka_port, proc, "kafka")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                self.create_topics(["rtm-readiness-probe"])
                return
            except TopicAlreadyExistsError:
                return  # started again after an outage: it answers
            except KafkaError:
                time.sleep(0.5)
        raise BrokerError(f"kafka not ready after {START_TIMEOUT}s:\n{self._log_tail('kafka')}")

    def create_topics(self, names: list[str], partitions: int = 2) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10000)
        try:
            admin.create_topics([NewTopic(name, partitions, 1) for name in names], timeout_ms=10000)
        finally:
            admin.close()
