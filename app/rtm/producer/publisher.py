"""Durable publishing: every send's outcome is checked and counted; malformed input goes to the
dead-letter topic with its reason and raw text."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka import codec as kafka_codec
from kafka.errors import KafkaError

from rtm.config import Config
from rtm.records import format_ts

log = logging.getLogger(__name__)

_CODEC_CHECKS: Mapping[str, Callable[[], bool]] = MappingProxyType(
    {
        "gzip": kafka_codec.has_gzip,
        "lz4": kafka_codec.has_lz4,
        "snappy": kafka_codec.has_snappy,
        "zstd": kafka_codec.has_zstd,
    }
)


class SendFuture(Protocol):
    def add_callback(self, f: Callable[..., Any], *args: Any) -> SendFuture: ...
    def add_errback(self, f: Callable[..., Any], *args: Any) -> SendFuture: ...


class ProducerLike(Protocol):
    """The part of KafkaProducer the publisher uses (lets unit tests count calls)."""

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> SendFuture: ...
    def flush(self, timeout: float | None = None) -> None: ...
    def close(self, timeout: float | None = None) -> None: ...


@dataclass
class Counts:
    sent: int = 0  # acknowledged by the brokers (acks=all)
    failed: int = 0  # could not be delivered after the retries
    malformed: int = 0  # input rows that went to the dead-letter topic
    submitted: int = 0


def compression_type(wanted: str) -> str | None:
    """The codec to use: ``wanted`` if its library is present, else gzip (always present)."""
    if wanted == "none":
        return None
    if _CODEC_CHECKS[wanted]():
        return wanted
    log.warning("compression %s needs a library that is not installed; using gzip", wanted)
    return "gzip"


def kafka_producer(config: Config, client_id: str) -> KafkaProducer:
    """A durable producer: acks=all, idempotent, bounded retries, compressed."""
    delivery = config.producer.delivery
    return KafkaProducer(
        bootstrap_servers=list(config.kafka.bootstrap_servers),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        retries=delivery.retries,
        max_in_flight_requests_per_connection=5,
        compression_type=compression_type(delivery.compression),
        linger_ms=delivery.linger_ms,
        request_timeout_ms=delivery.request_timeout_ms,
        delivery_timeout_ms=delivery.delivery_timeout_ms,
    )


class Publisher:
    """Sends JSON records and dead letters; counts outcomes; logs a line every interval."""

    def __init__(
        self,
        producer: ProducerLike,
        dead_letter_topic: str,
        producer_host: str,
        stats_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._producer = producer
        self._dead_letter_topic = dead_letter_topic
        self._host = producer_host
        self._interval = stats_interval
        self._clock = clock
        self._next_log = clock() + stats_interval
        self._lock = threading.Lock()
        self.counts = Counts()

    def publish(self, topic: str, key: str | None, record: dict[str, object]) -> None:
        """Send one record; its outcome is counted when the broker answers."""
        value = json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
        with self._lock:
            self.counts.submitted += 1
        try:
            future = self._producer.send(
                topic, value=value, key=key.encode() if key is not None else None
            )
        except KafkaError as exc:
            self._on_error(exc, topic)
            return
        future.add_callback(self._on_sent).add_errback(self._on_error, topic)

    def dead_letter(
        self, *, kind: str, topic: str, source: str, line: int, raw: str, reason: str
    ) -> None:
        """Publish a row that could not become a record, with why, to the dead-letter topic."""
        log.warning("malformed row %s:%d (%s): %s", source, line, reason, raw[:200])
        with self._lock:
            self.counts.malformed += 1
        letter: dict[str, object] = {
            "reason": reason,
            "source": source,
            "line": line,
            "raw": raw,
            "kind": kind,
            "topic": topic,
            "producer_host": self._host,
            "detected_at": format_ts(datetime.now(UTC)),
        }
        self.publish(self._dead_letter_topic, source, letter)

    def tick(self) -> None:
        """Log the counts when the stats interval has passed."""
        now = self._clock()
        if now >= self._next_log:
            self._next_log = now + self._interval
            self.log_counts("progress")

    def log_counts(self, label: str) -> None:
        c = self.snapshot()
        log.info(
            "%s: sent=%d failed=%d malformed=%d pending=%d",
            label,
            c.sent,
            c.failed,
            c.malformed,
            c.submitted - c.sent - c.failed,
        )

    def snapshot(self) -> Counts:
        with self._lock:
            return Counts(**vars(self.counts))

    def close(self, timeout: float) -> Counts:
        """Flush what is pending (waiting for every outcome), close, and return the counts."""
        try:
            self._producer.flush(timeout=timeout)
        except KafkaError as exc:
            log.error("flush did not complete within %.0fs: %s", timeout, exc)
        self._producer.close(timeout=timeout)
        self.log_counts("final")
        return self.snapshot()

    def _on_sent(self, _metadata: object) -> None:
        with self._lock:
            self.counts.sent += 1

    def _on_error(self, exc: BaseException, topic: str) -> None:
        with self._lock:
            self.counts.failed += 1
            failed = self.counts.failed
        # Log the first failures and then one in a hundred, so an outage cannot flood the log.
        if failed <= 10 or failed % 100 == 0:
            log.error("send to %s failed (%d failures so far): %r", topic, failed, exc)
