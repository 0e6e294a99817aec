"""Who may do what under rtm_security tls: the layout's users and ACLs, as Kafka gets them."""

from __future__ import annotations

import pytest
from kafka.admin import ACLOperation, ACLResourcePatternType, ResourceType

from rtm import kafka_access, layout
from rtm.catalogue import catalogue

LAB = layout.REPO / "inventory" / "lab"


def _allowed(principal: str) -> set[tuple[str, str, str]]:
    acls = kafka_access.bindings(layout.load_layout(LAB).data["kafka_acls"])
    return {
        (a.operation.name, a.resource_pattern.resource_type.name, a.resource_pattern.resource_name)
        for a in acls
        if a.principal == principal
    }


def test_every_client_has_its_own_user() -> None:
    users = layout.load_layout(LAB).data["kafka_users"]
    assert set(users) == {"producer", "status"} | {job.name for job in catalogue().jobs}
    assert len(set(users.values())) == len(users)


def test_the_producer_writes_metrics_and_dead_letters_only() -> None:
    allowed = _allowed("User:rtm-producer")
    written = {name for op, kind, name in allowed if op == "WRITE" and kind == "TOPIC"}
    assert written == {k.topic for k in catalogue().kinds} | {"topic-dead-letter"}
    assert ("IDEMPOTENT_WRITE", "CLUSTER", "kafka-cluster") in allowed
    assert not {a for a in allowed if a[0] in ("READ", "DELETE", "ALTER", "CREATE")}


def test_a_job_reads_its_own_topics_and_writes_alerts_only() -> None:
    job = catalogue().job("net_disk")
    allowed = _allowed("User:rtm-net_disk")
    read = {name for op, kind, name in allowed if op == "READ" and kind == "TOPIC"}
    written = {name for op, kind, name in allowed if op == "WRITE"}
    assert read == {k.topic for k in job.kinds}
    assert written == {"alerts"}
    assert not {a for a in allowed if a[0] in ("DELETE", "ALTER", "CREATE")}


def test_status_describes_and_reads_but_never_writes() -> None:
    assert {op for op, _, _ in _allowed("User:rtm-status")} == {"READ", "DESCRIBE"}


def test_group_prefixes_are_prefixed_patterns() -> None:
    (acl,) = kafka_access.bindings(
        [{"principal": "User:a", "operations": ["Read"], "group_prefix": "spark-kafka-source"}]
    )
    assert acl.resource_pattern.resource_type == ResourceType.GROUP
    assert acl.resource_pattern.pattern_type == ACLResourcePatternType.PREFIXED
    assert acl.operation == ACLOperation.READ
    assert kafka_access.describe(acl) == "User:a READ GROUP spark-kafka-source*"


def test_a_broken_entry_is_refused_by_name() -> None:
    with pytest.raises(kafka_access.AccessError, match="'operations'"):
        kafka_access.bindings([{"principal": "User:a", "topics": ["t"]}])
    with pytest.raises(kafka_access.AccessError, match="FLY"):
        kafka_access.bindings([{"principal": "User:a", "operations": ["Fly"], "topics": ["t"]}])
