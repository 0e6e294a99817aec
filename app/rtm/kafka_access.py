"""Who may do what on the cluster (rtm_security tls): SCRAM logins and ACLs, brought to a spec.

The kafka_topics role runs this from the controller as a super user (the controller's
certificate, on the brokers' own listener), through its ``rtm_kafka_access`` action: one
connection for every user and ACL, where Kafka's own tools start a JVM for each. The spec is the
layout's ``kafka_users`` and ``kafka_acls`` with the passwords kept on the controller.

Idempotent: a user is given its password only when it has no SCRAM credential yet or is being
rotated (Kafka cannot say whether a stored credential matches a password; setting it again
would change nothing a client sees, but it would be reported as a change). ACLs the spec asks
for are created, and ACLs of the spec's users that it no longer asks for are deleted; other
principals' ACLs are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import errors
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka.protocol.admin import AlterUserScramCredentialsRequest

from rtm import kafka_client
from rtm.kafka_client import Connection

# SCRAM's PBKDF2 rounds: Kafka's own tools' default.
ITERATIONS = 8192


class AccessError(Exception):
    """The spec cannot be read, or Kafka refused part of it."""


@dataclass
class Outcome:
    users_set: list[str] = field(default_factory=list)
    acls_added: list[str] = field(default_factory=list)
    acls_removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.users_set or self.acls_added or self.acls_removed)


def bindings(spec: Iterable[Mapping[str, Any]]) -> set[ACL]:
    """The concrete ACLs of the layout's ``kafka_acls`` entries: each entry allows one
    principal some operations on topics, on the cluster, or on groups by name prefix."""
    acls = set()
    for entry in spec:
        try:
            resources = _resources(entry)
            operations = [ACLOperation[_name(op)] for op in entry["operations"]]
            principal = str(entry["principal"])
        except (KeyError, TypeError) as exc:
            raise AccessError(f"kafka_acls entry {dict(entry)!r}: {exc!r}") from exc
        for resource in resources:
            for operation in operations:
                acls.add(ACL(principal, "*", operation, ACLPermissionType.ALLOW, resource))
    return acls


def _name(operation: str) -> str:
    """``IdempotentWrite`` -> ``IDEMPOTENT_WRITE`` (Kafka's tools' spelling to the enum's)."""
    return "".join("_" + c if c.isupper() and i else c for i, c in enumerate(operation)).upper()


def _resources(entry: Mapping[str, Any]) -> list[ResourcePattern]:
    if entry.get("cluster"):
        return [ResourcePattern(ResourceType.CLUSTER, "kafka-cluster")]
    if "group_prefix" in entry:
        prefixed = ACLResourcePatternType.PREFIXED
        return [ResourcePattern(ResourceType.GROUP, str(entry["group_prefix"]), prefixed)]
    return [ResourcePattern(ResourceType.TOPIC, str(name)) for name in entry["topics"]]


def describe(acl: ACL) -> str:
    pattern = acl.resource_pattern
    prefix = "*" if pattern.pattern_type == ACLResourcePatternType.PREFIXED else ""
    return (
        f"{acl.principal} {acl.operation.name} {pattern.resource_type.name}"
        f" {pattern.resource_name}{prefix}"
    )


def apply(
    connection: Connection,
    passwords: Mapping[str, str],
    acls: Iterable[Mapping[str, Any]],
    rotate: Sequence[str] = (),
    timeout_ms: int = 30000,
) -> Outcome:
    """Bring the cluster's SCRAM users and ACLs to the spec; ``passwords`` maps each Kafka user
    to its password, ``rotate`` names users whose stored credential is replaced anyway."""
    wanted = bindings(acls)
    outcome = Outcome()
    admin = kafka_client.admin(connection, request_timeout_ms=timeout_ms)
    try:
        outcome.users_set = _users(admin, passwords, rotate)
        _acls(admin, wanted, {f"User:{user}" for user in passwords}, outcome)
    finally:
        admin.close()
    return outcome


def _users(
    admin: KafkaAdminClient, passwords: Mapping[str, str], rotate: Sequence[str]
) -> list[str]:
    described = admin.describe_user_scram_credentials(list(passwords))
    scram = ScramMechanism.SCRAM_SHA_512

    def has_credential(user: str) -> bool:
        infos = described.get(user, {}).get("credential_infos", [])
        return any(info["mechanism"] == scram for info in infos)

    due = sorted(u for u in passwords if u in rotate or not has_credential(u))
    if due:
        upserts = [UserScramCredentialUpsertion(u, scram, passwords[u], ITERATIONS) for u in due]
        failed = {
            user: error for user, error in _alter_on_the_controller(admin, upserts).items() if error
        }
        if failed:
            raise AccessError(f"Kafka refused the SCRAM credentials of {failed}")
    return due


def _alter_on_the_controller(
    admin: KafkaAdminClient, upserts: list[UserScramCredentialUpsertion]
) -> dict[str, str]:
    """Each user's error (empty: none). In ZooKeeper mode only the controller takes the request;
    kafka-python's alter_user_scram_credentials sends it to any broker and reads an error
    without a message (another broker's NOT_CONTROLLER) as success, so it goes by hand here."""
    request = AlterUserScramCredentialsRequest(
        deletions=[],
        upsertions=[
            (u.user, int(u.mechanism), u.iterations, u.salt, u.salted_password) for u in upserts
        ],
    )
    # The private method is the one path kafka-python has to the controller.
    response = admin._manager.run(admin._send_request_to_controller, request)
    return {
        r.user: (r.error_message or errors.for_code(r.error_code).__name__) if r.error_code else ""
        for r in response.results
    }


def _acls(admin: KafkaAdminClient, wanted: set[ACL], managed: set[str], outcome: Outcome) -> None:
    every = ACLFilter(
        principal=None,
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    present, error = admin.describe_acls(every)
    if error.errno:
        raise AccessError(f"Kafka refused to list its ACLs: {error}")
    missing = sorted(wanted - set(present), key=describe)
    stale = sorted((a for a in present if a.principal in managed and a not in wanted), key=describe)
    if missing:
        result = admin.create_acls(missing)
        if result["failed"]:
            raise AccessError(f"Kafka refused ACLs: {result['failed']}")
        outcome.acls_added = [describe(a) for a in missing]
    if stale:
        for _filter, _matched, failure in admin.delete_acls(stale):
            if failure.errno:
                raise AccessError(f"Kafka refused to delete ACLs: {failure}")
        outcome.acls_removed = [describe(a) for a in stale]
