"""Cluster-wide checks from the controller: ZooKeeper's four-letter words, Kafka's admin API."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from rtm import kafka_client
from rtm.health.report import CLUSTER, Check
from rtm.kafka_client import Connection
from rtm.layout import Layout, LayoutError


def four_letter_word(
    word: str, address: str, port: int, timeout: float, tls: ssl.SSLContext | None = None
) -> str:
    """ZooKeeper's answer to a four-letter word, over TLS when a context is given."""
    with socket.create_connection((address, port), timeout=timeout) as raw:
        sock = tls.wrap_socket(raw, server_hostname=address) if tls else raw
        sock.settimeout(timeout)
        sock.sendall(word.encode())
        chunks = []
        # ZooKeeper closes a TLS connection after its answer without a close_notify.
        with contextlib.suppress(ssl.SSLEOFError):
            while chunk := sock.recv(4096):
                chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def zookeeper_mode(
    address: str, port: int, timeout: float, tls: ssl.SSLContext | None = None
) -> str:
    """'leader', 'follower' or 'standalone', from the srvr four-letter word."""
    for line in four_letter_word("srvr", address, port, timeout, tls).splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    raise OSError("no Mode line in the srvr answer (is srvr in 4lw.commands.whitelist?)")


def zookeeper_checks(layout: Layout, timeout: float) -> list[Check]:
    hosts = layout.zookeeper_hosts
    if layout.kraft or not hosts:
        return []
    port = layout.port("zookeeper_client")
    tls = layout.controller_tls()
    checks, modes = [], {}
    for host in hosts:
        try:
            mode = zookeeper_mode(layout.host_addresses[host], port, timeout, tls)
        except OSError as exc:
            checks.append(Check(host, "zookeeper serving", False, f"port {port}: {exc}"))
            continue
        modes[host] = mode
        checks.append(Check(host, "zookeeper serving", True, f"mode {mode}"))
    leaders = [h for h, m in modes.items() if m in ("leader", "standalone")]
    expected = "standalone" if len(hosts) == 1 else "leader"
    ok = len(leaders) == 1 and len(modes) == len(hosts)
    checks.append(
        Check(
            CLUSTER,
            "zookeeper ensemble",
            ok,
            f"{len(modes)}/{len(hosts)} serving, {expected}: {', '.join(leaders) or 'none'}",
        )
    )
    return checks


@dataclass
class KafkaView:
    """What the cluster-wide Kafka checks learned, for the pipeline checks to reuse."""

    end_offsets: dict[str, dict[int, int]]
    newest_age: dict[str, float | None]


def kafka_checks(layout: Layout, timeout: float) -> tuple[list[Check], KafkaView | None]:
    ms = int(timeout * 1000)
    try:
        connection = layout.connection()
    except LayoutError as exc:
        return [Check(CLUSTER, "kafka login", False, str(exc))], None
    try:
        admin = kafka_client.admin(connection, request_timeout_ms=ms)
    except Exception as exc:  # kafka-python raises several unrelated types
        return [Check(CLUSTER, "kafka reachable", False, f"{connection}: {exc}")], None
    try:
        checks = _broker_checks(admin, layout) + _topic_checks(admin, layout)
    finally:
        admin.close()
    return checks, _offsets(connection, layout, ms)


def _broker_checks(admin: KafkaAdminClient, layout: Layout) -> list[Check]:
    registered = {b["broker_id"] for b in admin.describe_cluster()["brokers"]}
    ids = layout.data["kafka_node_ids"]
    checks = []
    for host in layout.kafka_brokers:
        node = int(ids[host])
        ok = node in registered
        checks.append(Check(host, "kafka broker registered", ok, f"broker id {node}"))
    return checks


def _topic_checks(admin: KafkaAdminClient, layout: Layout) -> list[Check]:
    checks = []
    specs = {spec["name"]: spec for spec in layout.topics.values()}
    described = {t["name"]: t for t in admin.describe_topics(list(specs))}
    for name, spec in specs.items():
        topic = described.get(name)
        if topic is None or topic["error_code"] != 0:
            checks.append(Check(CLUSTER, f"topic {name}", False, "missing"))
            continue
        parts = topic["partitions"]
        replication = min(len(p["replica_nodes"]) for p in parts) if parts else 0
        under = [
            p["partition_index"] for p in parts if len(p["isr_nodes"]) < len(p["replica_nodes"])
        ]
        offline = [p["partition_index"] for p in parts if p["leader_id"] < 0]
        problems = []
        if len(parts) != int(spec["partitions"]):
            problems.append(f"{len(parts)} partitions, inventory says {spec['partitions']}")
        if replication != int(spec["replication_factor"]):
            problems.append(
                f"replication {replication}, inventory says {spec['replication_factor']}"
            )
        if under:
            problems.append(f"under-replicated partitions {sorted(under)}")
        if offline:
            problems.append(f"offline partitions {sorted(offline)}")
        detail = (
            "; ".join(problems) or f"{len(parts)} partitions x {replication} replicas, all in sync"
        )
        checks.append(Check(CLUSTER, f"topic {name}", not problems, detail))
    return checks


def _offsets(connection: Connection, layout: Layout, ms: int) -> KafkaView:
    consumer = kafka_client.consumer(
        connection,
        enable_auto_commit=False,
        request_timeout_ms=max(ms, 11000),
        consumer_timeout_ms=ms,
    )
    try:
        ends: dict[str, dict[int, int]] = {}
        ages: dict[str, float | None] = {}
        for spec in layout.topics.values():
            name = spec["name"]
            parts = consumer.partitions_for_topic(name) or set()
            tps = [TopicPartition(name, p) for p in sorted(parts)]
            offsets = consumer.end_offsets(tps) if tps else {}
            ends[name] = {tp.partition: off for tp, off in offsets.items()}
            ages[name] = _newest_age(consumer, offsets, ms)
        return KafkaView(end_offsets=ends, newest_age=ages)
    finally:
        with contextlib.suppress(Exception):
            consumer.close()


def _newest_age(consumer: KafkaConsumer, ends: dict[TopicPartition, int], ms: int) -> float | None:
    """Seconds since the newest record of a topic was appended (its timestamp), or None."""
    tps = [tp for tp, end in ends.items() if end > 0]
    if not tps:
        return None
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, ends[tp] - 1)
    newest = 0
    deadline = time.monotonic() + ms / 1000
    pending = set(tps)
    while pending and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=500).items():
            newest = max([newest, *(r.timestamp for r in records)])
            pending.discard(tp)
    return None if newest == 0 else max(0.0, time.time() - newest / 1000)
