"""rtm_security tls against a real broker: the users and ACLs rtm.kafka_access makes, and every
kind of client of the app logging in through rtm.kafka_client (its secured listeners: SCRAM
over TLS for clients, certificates for super users)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError
from rtm_broker import Broker

from pki import Pki
from rtm import kafka_access, kafka_client
from rtm.config import PRODUCER, Config, parse
from rtm.kafka_client import Connection, Login, Tls
from rtm.layout import REPO, Layout, load_layout
from rtm.producer.publisher import kafka_producer

# Refused clients never get past the bootstrap: a few seconds tell.
REFUSED_WITHIN_MS = 5000


@pytest.fixture(scope="module")
def secured(broker: Broker) -> tuple[Layout, dict[str, str]]:
    """The shipped lab's users and ACLs on the broker, with passwords of the test's own."""
    layout = load_layout(REPO / "inventory" / "lab")
    broker.create_topics([spec["name"] for spec in layout.topics.values()])
    passwords = {user: f"{user}-pw" for user in layout.data["kafka_users"].values()}
    kafka_access.apply(_admin(broker), passwords, layout.data["kafka_acls"])
    return layout, passwords


def _admin(broker: Broker) -> Connection:
    return Connection.of(broker.internal, tls=broker.controller_tls)


@pytest.fixture
def config(broker: Broker, secured: tuple[Layout, dict[str, str]], tmp_path: Path) -> Config:
    """An rtm.yml as the rtm_app role renders it for a host with the producer and every job."""
    passwords = secured[1]
    logins = {
        client: {"username": f"rtm-{client}", "password": passwords[f"rtm-{client}"]}
        for client in (PRODUCER, "cpu_mem", "net_disk")
    }
    security = {"ca_file": broker.controller_tls.ca_file, "logins": logins}
    kafka = {"bootstrap_servers": [broker.client], "security": security}
    return parse({"kafka": kafka}, base=tmp_path)


def test_users_and_acls_are_brought_to_the_spec_and_then_left_alone(
    broker: Broker, secured: tuple[Layout, dict[str, str]]
) -> None:
    layout, passwords = secured
    acls = layout.data["kafka_acls"]
    assert not kafka_access.apply(_admin(broker), passwords, acls).changed
    # A grant the layout no longer asks for goes, and comes back when it asks again.
    fewer = [a for a in acls if a["principal"] != "User:rtm-status"]
    removed = kafka_access.apply(_admin(broker), passwords, fewer)
    assert removed.acls_removed
    assert all(a.startswith("User:rtm-status ") for a in removed.acls_removed)
    restored = kafka_access.apply(_admin(broker), passwords, acls)
    assert sorted(restored.acls_added) == sorted(removed.acls_removed)
    rotated = kafka_access.apply(_admin(broker), passwords, acls, rotate=["rtm-status"])
    assert rotated.users_set == ["rtm-status"]


def test_the_producer_writes_and_its_job_reads_each_as_itself(
    secured: tuple[Layout, dict[str, str]], config: Config
) -> None:
    topic = secured[0].topic("cpu")
    producer = kafka_producer(config, client_id="it-security")
    try:
        written = producer.send(topic, b"secured").get(timeout=30)
    finally:
        producer.close()
    consumer = kafka_client.consumer(config.kafka.connection("cpu_mem"), group_id=None)
    try:
        partition = TopicPartition(topic, written.partition)
        consumer.assign([partition])
        consumer.seek(partition, written.offset)
        records = consumer.poll(timeout_ms=15000, max_records=1)
    finally:
        consumer.close()
    assert [r.value for r in records.get(partition, [])] == [b"secured"]


def test_each_user_is_refused_what_its_acls_do_not_allow(
    secured: tuple[Layout, dict[str, str]], config: Config
) -> None:
    layout = secured[0]
    alerts = layout.topic("alerts")
    as_producer = kafka_client.consumer(config.kafka.connection(PRODUCER), group_id=None)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            as_producer.end_offsets([TopicPartition(alerts, 0)])
    finally:
        as_producer.close()
    admin = kafka_client.admin(config.kafka.connection(PRODUCER))
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            admin.delete_topics([alerts])
    finally:
        admin.close()
    as_job = kafka_client.producer(config.kafka.connection("cpu_mem"), max_block_ms=10000)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            as_job.send(layout.topic("cpu"), b"forged").get(timeout=30)
    finally:
        as_job.close()


@pytest.mark.parametrize(
    "stranger",
    [
        lambda b, ca, _pki: Connection.of(b.client),
        lambda b, ca, _pki: Connection.of(b.client, tls=ca),
        lambda b, ca, _pki: Connection.of(b.client, tls=ca, login=Login("rtm-status", "wrong")),
        lambda b, ca, _pki: Connection.of(b.internal, tls=ca),
        lambda b, ca, pki: Connection.of(b.internal, tls=pki),
    ],
    ids=[
        "plaintext",
        "tls_without_login",
        "wrong_password",
        "internal_without_certificate",
        "internal_with_another_cas_certificate",
    ],
)
def test_a_stranger_gets_nothing_from_the_secured_listeners(
    broker: Broker,
    secured: tuple[Layout, dict[str, str]],
    tmp_path: Path,
    stranger: Callable[[Broker, Tls, Tls], Connection],
) -> None:
    _layout, passwords = secured
    ca = Tls(broker.controller_tls.ca_file)
    other = Pki(tmp_path / "other")
    cert, key = other.issue("intruder", "rtm-controller", "127.0.0.1")
    intruder = Tls(broker.controller_tls.ca_file, str(cert), str(key))
    with pytest.raises(KafkaTimeoutError):
        kafka_client.admin(
            stranger(broker, ca, intruder), bootstrap_timeout_ms=REFUSED_WITHIN_MS
        ).close()
    # The same way in with the right credentials works: the refusal was theirs.
    login = Login("rtm-status", passwords["rtm-status"])
    kafka_client.admin(Connection.of(broker.client, tls=ca, login=login)).close()
