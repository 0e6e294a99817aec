"""rtm_security tls on inventory/lab, from the controller, after the shared site.yml run: the
certificates name the hosts, and nobody without credentials gets anything from any port.
The users and ACLs themselves are checked against a test broker (test_kafka_security); here
that the roles put them in place on a real cluster."""

from __future__ import annotations

import socket
import ssl
from concurrent.futures import ThreadPoolExecutor

import pytest
from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError

from pki import Pki
from rtm import kafka_client
from rtm.health.cluster import four_letter_word
from rtm.kafka_client import Connection, Login, Tls

pytestmark = pytest.mark.lab

# Refused clients never get past the bootstrap: a few seconds tell.
REFUSED_WITHIN_MS = 8000


@pytest.fixture(scope="module")
def secured(lab, deploy):
    run = deploy(lab, "ansible/site.yml")
    assert run.returncode == 0, run.output[-6000:]
    assert lab.layout.tls, "inventory/lab ships with rtm_security: tls"
    return lab


def test_certificates_verify_under_each_inventory_name_and_address(secured) -> None:
    layout = secured.layout
    context = ssl.create_default_context(cafile=str(layout.ca_cert()))
    for host in layout.kafka_brokers:
        address = layout.host_addresses[host]
        for name in (host, address):
            with (
                socket.create_connection((address, layout.port("kafka")), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname=name) as tls,
            ):
                assert tls.version()
        with (
            pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"),
            socket.create_connection((address, layout.port("kafka")), timeout=10) as raw,
        ):
            context.wrap_socket(raw, server_hostname="stranger.example")


def _strangers(lab, tmp_path) -> dict[str, Connection]:
    layout = lab.layout
    ca = Tls(str(layout.ca_cert()))
    other = Pki(tmp_path / "other-ca")
    cert, key = other.issue("intruder", "rtm-controller")
    intruder = Tls(str(layout.ca_cert()), str(cert), str(key))
    strangers = {}
    for host in layout.kafka_brokers:
        address = layout.host_addresses[host]
        client, internal = (f"{address}:{layout.port(p)}" for p in ("kafka", "kafka_internal"))
        strangers |= {
            f"{host} client plaintext": Connection.of(client),
            f"{host} internal plaintext": Connection.of(internal),
            f"{host} client tls without login": Connection.of(client, tls=ca),
            f"{host} client wrong password": Connection.of(
                client, tls=ca, login=Login("rtm-status", "not-the-password")
            ),
            f"{host} internal without certificate": Connection.of(internal, tls=ca),
            f"{host} internal another CA's certificate": Connection.of(internal, tls=intruder),
        }
    return strangers


def _refused(connection: Connection) -> bool:
    try:
        kafka_client.admin(connection, bootstrap_timeout_ms=REFUSED_WITHIN_MS).close()
    except KafkaTimeoutError:
        return True
    return False


def test_strangers_get_no_metadata_from_any_port(secured, tmp_path) -> None:
    strangers = _strangers(secured, tmp_path)
    with ThreadPoolExecutor(max_workers=len(strangers)) as pool:
        refused = dict(zip(strangers, pool.map(_refused, strangers.values()), strict=True))
    assert all(refused.values()), {k: v for k, v in refused.items() if not v}
    # The same ways in with the credentials the roles made work: the refusals were theirs.
    kafka_client.admin(secured.layout.connection()).close()
    kafka_client.admin(secured.layout.admin_connection()).close()


def _plaintext_answer(address: str, port: int) -> str:
    try:
        return four_letter_word("ruok", address, port, 10)
    except OSError:  # the TLS port hangs up on plaintext
        return ""


def test_zookeeper_answers_no_client_without_a_certificate(secured) -> None:
    layout = secured.layout
    port = layout.port("zookeeper_client")
    for host in layout.zookeeper_hosts:
        address = layout.host_addresses[host]
        assert _plaintext_answer(address, port) != "imok"
        assert four_letter_word("ruok", address, port, 10, layout.controller_tls()) == "imok"


def test_the_roles_gave_each_user_only_its_acls(secured) -> None:
    layout = secured.layout
    alerts = layout.topic("alerts")
    admin = kafka_client.admin(layout.connection("producer"))
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            admin.delete_topics([alerts])
    finally:
        admin.close()
    status = kafka_client.producer(
        layout.connection(), enable_idempotence=False, max_block_ms=10000
    )
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            status.send(alerts, b"forged").get(timeout=30)
    finally:
        status.close()


def test_every_service_unit_stays_hardened(secured) -> None:
    levels = {}
    for host in secured.addresses:
        listed = secured.ssh(
            host,
            "systemctl list-units --state=active --plain --no-legend"
            " 'rtm-*.service' zookeeper.service kafka.service",
        )
        for unit in (line.split()[0] for line in listed.stdout.splitlines() if line.strip()):
            shown = secured.ssh(host, f"systemd-analyze security --no-pager {unit} | tail -1")
            levels[f"{host} {unit}"] = float(shown.stdout.split(":")[1].split()[0])
    assert len(levels) >= 4, levels  # ZooKeeper, Kafka, the producer and a job at least
    assert all(level <= 1.5 for level in levels.values()), levels
