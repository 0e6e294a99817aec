"""Producer throughput: rtm-producer (as fast as possible) beside Kafka's ProducerPerformance.

Both run on the controller against the same brokers, into dedicated topics with the lab's
replication and ``min.insync.replicas`` (rtm-producer: one per metric kind, as deployed;
ProducerPerformance: one topic with as many partitions as those together), with
``acks=all`` and idempotence, at the same average record size. Each rtm variant (linger,
compression, processes) is paired with a Java run using the same linger and compression, so
their ratio compares the clients and not the settings. kafka-python alone, sending the same
records built in advance, is the library's own speed. The deployed producer is stopped
meanwhile (bench.lab.producer_stopped).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kafka import codec as kafka_codec
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from bench import REPO
from bench.lab import BenchError, Target, producer_stopped, run, tail
from bench.report import Section
from rtm import kafka_access, kafka_client
from rtm.artifacts.build import kafka_home
from rtm.catalogue import catalogue
from rtm.config import BATCH_SIZE, ReplayConfig, load, parse
from rtm.producer.publisher import encode, kafka_producer
from rtm.producer.replay import schedule
from rtm.records import from_row

log = logging.getLogger(__name__)

TOPIC = "bench-throughput"  # ProducerPerformance's; rtm-producer writes one per metric kind
RTM_TOPICS = {k: f"{TOPIC}-{k}" for k in (*(k.name for k in catalogue().kinds), "dead_letter")}
TARGET_RECORD_BYTES = 150
GOAL_RATE = 40_000  # records/s of rtm-producer on lab-ha
LIBRARY = "kafka-python alone, deployed settings"
_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, "
    r"(?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99\.9th"
)
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")
# The whole run's line: a shared replay's processes each log theirs as "servers i/n final: ...".
_FINAL = re.compile(r"\w: final: sent=(\d+) failed=(\d+)")


@dataclass(frozen=True)
class Variant:
    name: str
    linger_ms: int
    compression: str
    why: str
    batch_size: int = BATCH_SIZE
    processes: int = 1


# The first is what site.yml deploys (the config defaults); each other changes one setting.
VARIANTS = (
    Variant("deployed (lz4, linger 20 ms, 256 KiB batches)", 20, "lz4", "the deployed settings"),
    Variant(
        "2 processes",
        20,
        "lz4",
        "each with half of every file's servers: --processes 2",
        processes=2,
    ),
    Variant("linger 100 ms", 100, "lz4", "fuller batches"),
    Variant("gzip", 20, "gzip", "the codec that needs no library"),
    Variant("no compression", 20, "none", "no codec CPU, three times the bytes"),
    Variant("16 KiB batches", 20, "lz4", "kafka-python's default batch size", 16 * 1024),
    Variant(
        "before (gzip, 16 KiB batches)", 20, "gzip", "the settings deployed until now", 16 * 1024
    ),
)


@dataclass(frozen=True)
class Scale:
    servers: int
    minutes: int
    java_records: int

    @property
    def records(self) -> int:
        return self.servers * self.minutes * 60 * len(catalogue().kinds)


# Runs of several seconds each: shorter ones varied by a tenth from one run to the next.
FULL = Scale(servers=10, minutes=60, java_records=500_000)
QUICK = Scale(servers=10, minutes=4, java_records=60_000)


@dataclass(frozen=True)
class JavaResult:
    records: int
    rate: float
    mb_per_s: float
    avg_ms: float
    p99_ms: float


def parse_summary(output: str) -> JavaResult:
    """The final summary line of ProducerPerformance (the one with percentiles)."""
    matches = list(_SUMMARY.finditer(output))
    if not matches:
        raise ValueError(f"no ProducerPerformance summary in:\n{tail(output)}")
    m = matches[-1]
    return JavaResult(
        records=int(m["records"]),
        rate=float(m["rate"]),
        mb_per_s=float(m["mb"]),
        avg_ms=float(m["avg"]),
        p99_ms=float(m["p99"]),
    )


def producer_window(log_text: str) -> tuple[int, int, float]:
    """Sent, failed, and seconds from the replay's start to its final count, from the log."""
    start = end = None
    sent = failed = 0
    for line in log_text.splitlines():
        stamp = _LOG_TIME.match(line)
        if not stamp:
            continue
        moment = datetime.fromisoformat(stamp[1])
        if "replaying " in line and start is None:
            start = moment
        if final := _FINAL.search(line):
            end, sent, failed = moment, int(final[1]), int(final[2])
    if start is None or end is None:
        raise ValueError(f"no replay start or final count in the producer log:\n{tail(log_text)}")
    return sent, failed, max((end - start).total_seconds(), 1e-3)


def available(variant: Variant) -> bool:
    checks = {"lz4": kafka_codec.has_lz4, "snappy": kafka_codec.has_snappy}
    return variant.compression not in checks or checks[variant.compression]()


def ensure_topics(target: Target, partitions: dict[str, int]) -> None:
    """Create the topics (name: partitions) with the cluster's replication and min ISR."""
    admin = kafka_client.admin(target.layout.admin_connection(), request_timeout_ms=30000)
    try:
        for topic, count in partitions.items():
            spec = NewTopic(
                topic,
                num_partitions=count,
                replication_factor=target.replication,
                topic_configs={"min.insync.replicas": str(target.min_insync)},
            )
            try:
                admin.create_topics([spec], timeout_ms=30000)
            except TopicAlreadyExistsError:
                log.info("topic %s exists; reusing it", topic)
    finally:
        admin.close()
    log.info(
        "topics %s: replication %d, min.insync.replicas %d",
        ", ".join(f"{t} ({n} partitions)" for t, n in partitions.items()),
        target.replication,
        target.min_insync,
    )


def delete_topics(target: Target, topics: list[str]) -> None:
    admin = kafka_client.admin(target.layout.admin_connection(), request_timeout_ms=30000)
    try:
        admin.delete_topics(topics, timeout_ms=30000)
    except Exception as exc:  # cleanup must not hide the results
        log.warning("could not delete %s: %r", topics, exc)
    finally:
        admin.close()


def generate(out: Path, scale: Scale) -> None:
    cmd = [
        str(Path(sys.executable).with_name("rtm-generate")),
        "--servers", str(scale.servers), "--minutes", str(scale.minutes),
        "--seed", "7", "--out", str(out), "--log-level", "WARNING",
    ]  # fmt: skip
    result = run(cmd, timeout=600)
    if result.returncode != 0:
        raise BenchError(f"rtm-generate failed:\n{tail(result.output)}")


def _replay_config(data_dir: Path) -> ReplayConfig:
    raw = {
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "producer": {"replay": {"data_dir": str(data_dir), "as_fast_as_possible": True}},
    }
    return parse(raw, base=data_dir).producer.replay


def _records(data_dir: Path, host: str) -> Iterator[bytes]:
    for item in schedule(data_dir, _replay_config(data_dir)):
        if item.row.fields is not None:
            record = from_row(item.row.kind, item.row.fields, host)
            yield encode(record)


def padded_host(data_dir: Path) -> str:
    """A producer_host that brings the mean record to about TARGET_RECORD_BYTES."""
    base = "bench-producer"
    sizes = [len(r) for _, r in zip(range(20_000), _records(data_dir, base), strict=False)]
    pad = max(0, round(TARGET_RECORD_BYTES - sum(sizes) / len(sizes)))
    return f"{base}-{'x' * pad}" if pad else base


def mean_record_bytes(data_dir: Path, host: str) -> float:
    sizes = [len(r) for r in _records(data_dir, host)]
    return sum(sizes) / len(sizes)


def serialisation_rates(data_dir: Path, host: str) -> tuple[float, float]:
    """Records/s of reading + scheduling the CSVs alone, and of that plus building the JSON."""
    cfg = _replay_config(data_dir)
    start = time.perf_counter()
    rows = sum(1 for _ in schedule(data_dir, cfg))
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    built = sum(1 for _ in _records(data_dir, host))
    build_s = time.perf_counter() - start
    return rows / read_s, built / build_s


def write_config(path: Path, target: Target, data_dir: Path, host: str, v: Variant) -> None:
    kafka: dict[str, object] = {"bootstrap_servers": target.bootstrap, "topics": RTM_TOPICS}
    login = target.layout.connection("producer").login
    if login is not None:
        kafka["security"] = {
            "ca_file": str(target.layout.ca_cert().resolve()),
            "logins": {"producer": {"username": login.username, "password": login.password}},
        }
    config = {
        "kafka": kafka,
        "producer": {
            "mode": "replay",
            "host": host,
            "stats_interval": "1 minute",
            "replay": {
                "data_dir": str(data_dir),
                "as_fast_as_possible": True,
                "loop": False,
                "processes": v.processes,
            },
            "delivery": {
                "compression": v.compression,
                "linger_ms": v.linger_ms,
                "batch_size": v.batch_size,
            },
        },
    }
    # JSON is YAML: no YAML writer needed. Owner-only: it may hold the producer's password.
    path.touch(mode=0o600)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


@contextmanager
def producer_may_write(target: Target, topics: list[str]) -> Iterator[None]:
    """Under tls, rtm-producer's Kafka user may write the bench's own topics while it runs (its
    ACLs name the pipeline's topics only); the grant is deleted afterwards, and a grant a
    crashed run left behind is deleted by the next site.yml (it is not in the layout)."""
    if not target.layout.tls:
        yield
        return
    user = target.layout.data["kafka_users"]["producer"]
    grant = sorted(
        kafka_access.bindings(
            [{"principal": f"User:{user}", "operations": ["Write", "Describe"], "topics": topics}]
        ),
        key=kafka_access.describe,
    )
    admin = kafka_client.admin(target.layout.admin_connection(), request_timeout_ms=30000)
    try:
        result = admin.create_acls(grant)
        if result["failed"]:
            raise BenchError(f"Kafka refused the bench's ACLs for {user}: {result['failed']}")
        log.info("granted %s Write and Describe on %s", user, ", ".join(topics))
        yield
    finally:
        try:
            for _filter, _matched, failure in admin.delete_acls(grant):
                if failure.errno:
                    log.warning("could not delete the bench's ACL: %s", failure)
        finally:
            admin.close()


def run_rtm(config: Path, expected: int) -> float:
    cmd = [str(Path(sys.executable).with_name("rtm-producer")), "--config", str(config)]
    result = run(cmd, timeout=1800)
    if result.returncode != 0:
        raise BenchError(f"rtm-producer exited {result.returncode}:\n{tail(result.output)}")
    sent, failed, seconds = producer_window(result.output)
    if failed or sent != expected:
        raise BenchError(f"rtm-producer: {sent} of {expected} acknowledged, {failed} failed")
    return sent / seconds


def built_records(data_dir: Path, host: str) -> list[tuple[str, bytes, bytes]]:
    """Every record of the replay as (topic, key, value), built before the clock starts."""
    found = []
    for item in schedule(data_dir, _replay_config(data_dir)):
        if item.row.fields is not None:
            record = from_row(item.row.kind, item.row.fields, host)
            topic = RTM_TOPICS[item.row.kind.name]
            found.append((topic, str(record["server_id"]).encode(), encode(record)))
    return found


def run_library(config: Path, records: list[tuple[str, bytes, bytes]]) -> float:
    """Records/s of kafka-python alone: the deployed client settings, nothing of rtm per record
    but a future's errback, from the first send to the last acknowledgement."""
    producer = kafka_producer(load(config), client_id="rtm-bench-library")
    failed: list[BaseException] = []
    try:
        start = time.perf_counter()
        for topic, key, value in records:
            producer.send(topic, value=value, key=key).add_errback(failed.append)
        producer.flush(timeout=600)
        seconds = time.perf_counter() - start
    finally:
        producer.close(timeout=30)
    if failed:
        raise BenchError(f"kafka-python alone: {len(failed)} sends failed, first {failed[0]!r}")
    return len(records) / seconds


def run_java(target: Target, home: Path, records: int, size: int, v: Variant) -> JavaResult:
    props = [
        "acks=all",
        "enable.idempotence=true",
        f"linger.ms={v.linger_ms}",
        f"batch.size={v.batch_size}",
        f"compression.type={v.compression}",
    ]
    log4j = home / "config" / "tools-log4j.properties"
    with tempfile.TemporaryDirectory(prefix="rtm-bench-") as tmp:
        # The controller as a super user: the bench's own topic has no ACL for the pipeline's
        # users. A file, since a PEM does not fit --producer-props' key=value.
        client = Path(tmp) / "client.properties"
        client.write_text(kafka_client.properties(target.layout.admin_connection().java()))
        cmd = [
            "java", "-Xmx512m", f"-Dlog4j.configuration=file:{log4j}",
            "-cp", f"{home / 'libs'}/*", "org.apache.kafka.tools.ProducerPerformance",
            "--topic", TOPIC, "--num-records", str(records), "--record-size", str(size),
            "--throughput", "-1", "--producer.config", str(client), "--producer-props", *props,
        ]  # fmt: skip
        result = run(cmd, timeout=1800)
    if result.returncode != 0:
        raise BenchError(f"ProducerPerformance exited {result.returncode}:\n{tail(result.output)}")
    return parse_summary(result.output)


def measure(target: Target, section: Section, runs: int, quick: bool) -> None:
    scale = QUICK if quick else FULL
    home = kafka_home(REPO / "artifacts")
    partitions = int(target.layout.topics["cpu"]["partitions"])
    # The same total partition count for both: rtm-producer spreads over one topic per kind.
    java_partitions = len(catalogue().kinds) * partitions
    wanted = dict.fromkeys(RTM_TOPICS.values(), partitions) | {TOPIC: java_partitions}
    ensure_topics(target, wanted)
    variants = [v for v in VARIANTS if available(v)]
    skipped = [v.name for v in VARIANTS if not available(v)]
    with (
        producer_stopped(target),
        producer_may_write(target, list(RTM_TOPICS.values())),
        tempfile.TemporaryDirectory(prefix="rtm-bench-") as tmp,
    ):
        data_dir = Path(tmp) / "data"
        generate(data_dir, scale)
        host = padded_host(data_dir)
        size = round(mean_record_bytes(data_dir, host))
        section.settings |= {
            "records_per_rtm_run": scale.records,
            "records_per_java_run": scale.java_records,
            "record_bytes": size,
            "partitions_per_rtm_topic": partitions,
            "partitions_java_topic": java_partitions,
            "replication": target.replication,
            "min_insync_replicas": target.min_insync,
        }
        # Unmeasured: the first runs after a deployment were up to twice as slow as later ones.
        log.info("throughput warm-up (not measured)")
        write_config(Path(tmp) / "rtm.yml", target, data_dir, host, VARIANTS[0])
        run_rtm(Path(tmp) / "rtm.yml", scale.records)
        run_java(target, home, scale.java_records, size, VARIANTS[0])
        section.settings["warm_up"] = "one unmeasured rtm-producer and ProducerPerformance run"
        section.settings["deployed_producer"] = "stopped during the runs"
        read_fig = section.figure("CSV read + schedule only (no Kafka)", "records/s")
        build_fig = section.figure("CSV read + record build + JSON (no Kafka)", "records/s")
        library_fig = section.figure(
            LIBRARY, "records/s", "the deployed client settings, records built in advance"
        )
        records = built_records(data_dir, host)
        for number in range(1, runs + 1):
            log.info("throughput run %d of %d", number, runs)
            read_rate, build_rate = serialisation_rates(data_dir, host)
            read_fig.add(read_rate)
            build_fig.add(build_rate)
            write_config(Path(tmp) / "rtm.yml", target, data_dir, host, VARIANTS[0])
            library_fig.add(run_library(Path(tmp) / "rtm.yml", records))
            for v in variants:
                config = Path(tmp) / "rtm.yml"
                write_config(config, target, data_dir, host, v)
                rtm_rate = run_rtm(config, scale.records)
                java = run_java(target, home, scale.java_records, size, v)
                section.figure(f"rtm-producer, {v.name}", "records/s", v.why).add(rtm_rate)
                section.figure(f"ProducerPerformance, {v.name}", "records/s").add(java.rate)
                section.figure(f"ratio rtm/java, {v.name}", "x").add(rtm_rate / java.rate)
                log.info(
                    "%s: rtm %.0f/s, java %.0f/s (ratio %.3f)",
                    v.name, rtm_rate, java.rate, rtm_rate / java.rate,
                )  # fmt: skip
    delete_topics(target, list(wanted))
    _explain(section, skipped)


def _explain(section: Section, skipped: list[str]) -> None:
    base = section.median_of(f"rtm-producer, {VARIANTS[0].name}")
    build = section.median_of("CSV read + record build + JSON (no Kafka)")
    library = section.median_of(LIBRARY)
    if base:
        for v in VARIANTS[1:]:
            rate = section.median_of(f"rtm-producer, {v.name}")
            if rate:
                section.notes.append(
                    f"{v.name} ({v.why}): {rate / base - 1:+.0%} records/s against the deployed "
                    "settings."
                )
        if build and library:
            rest = 1e6 / base - 1e6 / build - 1e6 / library
            section.notes.append(
                f"One rtm-producer process spends {1e6 / base:.1f} µs a record: reading the CSV"
                f" and building the JSON {1e6 / build:.1f} µs (measured alone), kafka-python's"
                f" send path {1e6 / library:.1f} µs (kafka-python alone), and {rest:.1f} µs"
                " keeping each record until it is acknowledged (the rest)."
            )
    if base and library:
        section.notes.append(
            f"kafka-python alone sends {library:,.0f} records/s with the deployed settings in the"
            f" same runs: one rtm-producer process reaches {base / library:.2f} of it."
        )
    goal = [
        (v, rate, ratio)
        for v in VARIANTS
        if v.compression == VARIANTS[0].compression and v.linger_ms == VARIANTS[0].linger_ms
        and v.batch_size == VARIANTS[0].batch_size
        and (rate := section.median_of(f"rtm-producer, {v.name}"))
        and (ratio := section.median_of(f"ratio rtm/java, {v.name}"))
    ]  # fmt: skip
    if goal:
        reached = "; ".join(
            f"{v.processes} process{'es' if v.processes > 1 else ''}: {rate:,.0f} records/s,"
            f" {ratio:.2f} of ProducerPerformance"
            for v, rate, ratio in goal
        )
        section.notes.append(
            f"Goal: rtm-producer at 0.5 of ProducerPerformance with the same settings and at"
            f" {GOAL_RATE:,} records/s. With the deployed settings, {reached}."
        )
    for name in skipped:
        section.notes.append(f"{name}: not measured, its compression library is not installed.")
