"""Load for the latency benchmark: N simulated servers sending every metric kind each second.

Event time is the wall clock when a second's records are built, as a live producer would
stamp them. A few "hot" servers report the first rule's metric of every job above its default
threshold, so every consumer job raises an alert for them in every window.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rtm.catalogue import catalogue
from rtm.config import parse
from rtm.kafka_client import Connection
from rtm.producer.publisher import kafka_producer
from rtm.records import format_ts

log = logging.getLogger(__name__)

KINDS = tuple(k.name for k in catalogue().kinds)
# The metric of each job that hot servers push over its threshold.
_HOT = {j.rules[0].metric: j.rules[0].threshold for j in catalogue().jobs}


@dataclass(frozen=True)
class Plan:
    servers: int
    seconds: int
    run_id: str

    @property
    def prefix(self) -> str:
        return f"bench-{self.run_id}-"

    @property
    def hot(self) -> int:
        """Servers above the thresholds: enough alerts for a p99, few enough to be rare."""
        return min(self.servers, max(5, self.servers // 100))

    def server_id(self, index: int) -> str:
        return f"{self.prefix}{index:05d}"

    @property
    def records_per_second(self) -> int:
        return self.servers * len(KINDS)


def metrics(kind: str, hot: bool, index: int) -> dict[str, float]:
    """One record's values: each metric inside its sample baseline, a hot one over its rule."""
    values = {}
    for metric in catalogue().kind(kind).metrics:
        low, high = metric.sample.base
        value = low + (high - low) * (index % 7) / 7
        if hot and metric.name in _HOT:
            value = _HOT[metric.name] * 1.1
            if metric.maximum is not None:
                value = min(value, (_HOT[metric.name] + metric.maximum) / 2)
        values[metric.name] = round(value, 3)
    return values


@dataclass(frozen=True)
class Template:
    """A record with a hole for its timestamp: building a second's records is then a concat."""

    topic: str
    key: bytes
    head: bytes
    rest: bytes


def templates(plan: Plan, topics: Mapping[str, str]) -> list[Template]:
    found = []
    for index in range(plan.servers):
        sid = plan.server_id(index)
        for kind in KINDS:
            body = json.dumps(metrics(kind, index < plan.hot, index), separators=(",", ":"))
            found.append(
                Template(
                    topic=topics[kind],
                    key=sid.encode(),
                    head=f'{{"server_id":"{sid}","ts":"'.encode(),
                    rest=f'",{body[1:-1]},"producer_host":"bench-loadgen"}}'.encode(),
                )
            )
    return found


@dataclass
class LoadResult:
    ticks: list[float] = field(default_factory=list)  # event time of each second, epoch seconds
    sent: int = 0
    failed: int = 0
    seconds: float = 0.0
    late_ticks: int = 0  # seconds that began more than a second behind schedule

    @property
    def rate(self) -> float:
        # A generator that keeps up spends one second per tick; one that does not, longer.
        spent = max(self.seconds, float(len(self.ticks)))
        return self.sent / spent if spent else 0.0


def _event_time(now: float) -> tuple[float, bytes]:
    moment = datetime.fromtimestamp(now, UTC)
    text = format_ts(moment)
    # The record carries milliseconds; keep the same truncation for the latency arithmetic.
    return int(now * 1000) / 1000, text.encode()


def run_load(
    plan: Plan, connection: Connection, topics: Mapping[str, str], stop: threading.Event
) -> LoadResult:
    """Send every server's four records each second for ``plan.seconds`` seconds."""
    servers = list(connection.bootstrap_servers)
    config = parse({"kafka": {"bootstrap_servers": servers}}, base=Path.cwd())
    producer = kafka_producer(config, client_id="rtm-bench-load", connection=connection)
    batch = templates(plan, topics)
    result = LoadResult()
    lock = threading.Lock()

    def failed(_exc: BaseException) -> None:
        with lock:
            result.failed += 1

    start = time.time()
    try:
        for tick in range(plan.seconds):
            due = start + tick
            if (pause := due - time.time()) > 0 and stop.wait(pause):
                break
            now = time.time()
            result.late_ticks += now - due > 1.0
            event_time, stamp = _event_time(now)
            result.ticks.append(event_time)
            for t in batch:
                producer.send(t.topic, value=t.head + stamp + t.rest, key=t.key).add_errback(failed)
            result.sent += len(batch)
    finally:
        producer.flush(timeout=120)
        producer.close(timeout=10)
        result.seconds = time.time() - start
    log.info(
        "load: %d records in %.1fs (%.0f/s, target %d/s), %d failed, %d late seconds",
        result.sent, result.seconds, result.rate, plan.records_per_second,
        result.failed, result.late_ticks,
    )  # fmt: skip
    return result
