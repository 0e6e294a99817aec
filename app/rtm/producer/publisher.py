"""Publishing that loses nothing: every record is kept until the brokers acknowledge it.

A send that fails for a reason that can pass (the brokers are unreachable, a leader moves, the
delivery timeout expired) is sent again, as often as it takes; only an error that no retry can
mend (a record too large, a topic that cannot exist) counts as ``failed``. How many records may
wait for their acknowledgement is bounded: the replay waits for room (back-pressure), live
sampling drops the newest samples and counts them (``dropped``, with their time span). On stop,
what is still not acknowledged is written to the spool file and sent first at the next start.

An outage is logged as a few state changes (not acknowledging, still down, reachable again,
backlog sent), not as a line per failed send.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import orjson
from kafka import KafkaProducer
from kafka import codec as kafka_codec
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.partitioner import DefaultPartitioner

from rtm import kafka_client
from rtm.config import PRODUCER, Config
from rtm.kafka_client import Connection
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
# No acknowledgement for this long while records wait: the brokers are taken to be unreachable.
UNACKNOWLEDGED_OUTAGE = 15.0
# While they are, a reminder with the number of waiting records this often.
OUTAGE_REMINDER = 60.0
# How often a new client is tried after a send expired, while no broker answers.
CLIENT_RETRY = 5.0
SPOOL_FILE = "spool.jsonl"
STATE_FILE = "state.json"
# How often, at most, the sending loop looks for an outage (a lock and a clock read each time).
WATCH_INTERVAL = 0.1


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
    failed: int = 0  # refused for good: an error no retry can mend
    malformed: int = 0  # input rows that went to the dead-letter topic
    submitted: int = 0
    resent: int = 0  # sends repeated after a retriable failure
    dropped: int = 0  # live samples dropped because the buffer was full
    spooled: int = 0  # written to the spool file on stop
    first_dropped: str | None = None  # event time span of the dropped records
    last_dropped: str | None = None


@dataclass(slots=True)
class Pending:
    """A record kept until acknowledged (made once per record: slots, not frozen, which
    costs a call per field)."""

    topic: str
    key: bytes | None
    value: bytes
    ts: str | None  # the record's event time, for the span of what is dropped
    since: float = field(default=0.0, compare=False)


class KeyCachePartitioner(DefaultPartitioner):
    """Kafka's default partitioner (murmur2 of the key, as the Java client: the same server
    lands in the same partition whichever client sent it) remembering each key's partition.
    A fleet has few server ids, and murmur2 in pure Python costs more than the rest of a send."""

    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._known: dict[tuple[str, bytes], tuple[int, int]] = {}

    def partition(  # noqa: PLR0917 - kafka-python's signature
        self,
        topic: str,
        key: object,
        serialized_key: bytes | None,
        value: object,
        serialized_value: bytes | None,
        cluster: Any,
    ) -> int:
        if serialized_key is None:
            return super().partition(topic, key, None, value, serialized_value, cluster)
        count = len(cluster.partitions_for_topic(topic) or ())
        known = self._known.get((topic, serialized_key))
        if known is not None and known[0] == count:
            return known[1]
        chosen = super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        if len(self._known) >= self.MAX_KEYS:
            self._known.clear()
        self._known[(topic, serialized_key)] = (count, chosen)
        return chosen


def encode(record: Mapping[str, object]) -> bytes:
    """A record as the brokers get it: compact JSON, made in C (json.dumps took a tenth of a
    bulk replay's time). orjson writes NaN as null where json refused it: no record has one,
    from_row refuses values that are not finite."""
    return orjson.dumps(record)


def compression_type(wanted: str) -> str | None:
    """The codec to use: ``wanted`` if its library is present, else gzip (always present)."""
    if wanted == "none":
        return None
    if _CODEC_CHECKS[wanted]():
        return wanted
    log.warning("compression %s needs a library that is not installed; using gzip", wanted)
    return "gzip"


def kafka_producer(
    config: Config, client_id: str, connection: Connection | None = None
) -> KafkaProducer:
    """A durable producer: acks=all, idempotent, compressed.

    The client itself retries a batch, under the same producer id and sequence numbers (the
    brokers drop a batch they already have), until ``delivery_timeout``: an outage shorter
    than that gives neither loss nor duplicates. A batch that expires is sent again by the
    publisher as a new one; if the brokers had written it before the outage, it is there
    twice (at-least-once beyond the delivery timeout). It logs in as the config's producer,
    unless given another ``connection`` (the drills')."""
    delivery = config.producer.delivery
    return kafka_client.producer(
        connection or config.kafka.connection(PRODUCER),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        retries=float("inf") if delivery.retries is None else delivery.retries,
        max_in_flight_requests_per_connection=5,
        compression_type=compression_type(delivery.compression),
        linger_ms=delivery.linger_ms,
        batch_size=delivery.batch_size,
        partitioner=KeyCachePartitioner(),
        request_timeout_ms=delivery.request_timeout_ms,
        delivery_timeout_ms=delivery.delivery_timeout_ms,
    )


def retriable(exc: BaseException) -> bool:
    """Whether sending again can succeed (unreachable brokers, an expired delivery timeout)."""
    return bool(getattr(exc, "retriable", False))


class Publisher:
    """Sends JSON records and dead letters, keeps each until acknowledged, counts outcomes."""

    def __init__(
        self,
        producer: ProducerLike,
        dead_letter_topic: str,
        producer_host: str,
        stats_interval: float,
        *,
        max_pending: int = 10_000,
        drop_when_full: bool = False,
        spool_dir: Path | None = None,
        stopped: Callable[[], bool] = lambda: False,
        stop_timeout: float = 10.0,
        client_factory: Callable[[], ProducerLike] | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "",
        state_dir: Path | None = None,
    ) -> None:
        self._producer = producer
        self._name = name  # which process of a shared replay, in its count lines
        self._dead_letter_topic = dead_letter_topic
        self._host = producer_host
        self._interval = stats_interval
        self._clock = clock
        self._next_log = clock() + stats_interval
        self._next_watch = 0.0
        self._max_pending = max_pending
        self._drop_when_full = drop_when_full
        self._spool_dir = spool_dir
        self._state_dir = state_dir or spool_dir
        self._stopped = stopped
        self._stop_timeout = stop_timeout
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._last_seq = -1
        self._pending: dict[int, Pending] = {}  # by sequence number, oldest first
        self._retry: deque[int] = deque()  # failed sends to repeat, from the sender thread
        self._attempts: dict[int, int] = {}  # which send of a record its answers must be for
        self._client_factory = client_factory
        self._replace_client = False
        self._next_client_try = 0.0
        self._closing = False
        self._last_ack = clock()
        self._down_since: float | None = None
        self._next_reminder = 0.0
        self._backlog_until: int | None = None  # the newest record waiting when they came back
        self._spool_until: int | None = None  # the newest record read back from the spool
        self.counts = Counts()

    # -- sending ---------------------------------------------------------------------------

    def publish(self, topic: str, key: str | None, record: dict[str, object]) -> bool:
        """Send one record; it is kept until acknowledged. False when it was dropped (live
        mode with a full buffer); the replay waits for room instead."""
        value = encode(record)
        ts = record.get("ts")
        item = Pending(
            topic, key.encode() if key is not None else None, value, str(ts or ""), self._clock()
        )
        return self._submit(item, wait=not self._drop_when_full)

    def dead_letter(
        self, *, kind: str, topic: str, source: str, line: int, raw: str, reason: str
    ) -> None:
        """Publish a row that could not become a record, with why, to the dead-letter topic."""
        log.warning("malformed row %s:%d (%s): %s", source, line, reason, raw[:200])
        with self._cond:
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
        # A dead letter is kept like any record: it is evidence of bad input.
        value = encode(letter)
        item = Pending(self._dead_letter_topic, source.encode(), value, None, self._clock())
        self._submit(item, wait=True)

    def _submit(self, item: Pending, *, wait: bool) -> bool:
        """Keep ``item`` (its ``since`` is when it was read) and send it."""
        while True:
            self.resend_failed()
            with self._cond:
                full = len(self._pending) >= self._max_pending
                stopping = self._closing or self._stopped()
                if not full or stopping:
                    seq = self._last_seq = next(self._seq)
                    self._pending[seq] = item
                    self.counts.submitted += 1
                    if full or self._closing:
                        return True  # no room while stopping: kept for the spool, not sent
                    break
                if not wait:
                    self._drop(item)
                    return False
                self._cond.wait(0.2)
            self.tick()  # waiting for room: still note the outage and write the state
            item.since = self._clock()
        self._send(seq, item, 0)
        return True

    def _send(self, seq: int, item: Pending, attempt: int) -> None:
        """Send one attempt of a record; its answers count only while it is the latest."""
        try:
            future = self._producer.send(item.topic, value=item.value, key=item.key)
        except KafkaError as exc:
            self._on_error(seq, attempt, exc)
            return
        future.add_callback(self._on_sent, seq).add_errback(self._on_error, seq, attempt)

    def resend_failed(self) -> None:
        """Send again what failed for a reason that can pass (called from the reading thread:
        kafka-python's callbacks run on its sender thread, which must not block on a send)."""
        if self._replace_client and not self._new_client():
            return
        # Read without the lock (called for every record): a failure added just after this is
        # sent again at the next call.
        if not self._retry:
            return
        while True:
            with self._cond:
                if not self._retry or self._closing:
                    return
                seq = self._retry.popleft()
                item = self._pending.get(seq)
                if item is None:
                    continue
                attempt = self._attempts[seq] = self._attempts.get(seq, 0) + 1
                self.counts.resent += 1
            self._send(seq, item, attempt)

    def _new_client(self) -> bool:
        """After a batch expired, send everything again through a new Kafka client.

        kafka-python gives an idempotent producer a new producer id when a batch it had sent
        expires, and may then send nothing more at all; a new client starts clean. False while
        no broker answers yet (tried again every few seconds)."""
        if self._client_factory is None:
            self._replace_client = False
            return True
        now = self._clock()
        if now < self._next_client_try:
            return False
        self._next_client_try = now + CLIENT_RETRY
        try:
            client = self._client_factory()
        except KafkaError as exc:
            log.info("no new Kafka client yet: %s", exc)
            return False
        old, self._producer = self._producer, client
        with self._cond:
            self._replace_client = False
            self._retry.clear()
            self._retry.extend(self._pending)  # every attempt of the old client is void
            for seq in self._pending:
                self._attempts[seq] = self._attempts.get(seq, 0) + 1
            waiting = len(self._pending)
        log.warning("a send expired: sending the %d record(s) that wait with a new client", waiting)
        try:
            old.close(timeout=0)
        except KafkaError as exc:
            log.info("closing the old Kafka client: %s", exc)
        return True

    def _drop(self, item: Pending) -> None:
        c = self.counts
        c.dropped += 1
        if item.ts:
            c.first_dropped = c.first_dropped or item.ts
            c.last_dropped = item.ts
        if c.dropped == 1 or c.dropped % 1000 == 0:
            log.error(
                "buffer full (%d records wait for the brokers): dropped %d record(s) so far,"
                " event times %s to %s",
                len(self._pending),
                c.dropped,
                c.first_dropped,
                c.last_dropped,
            )

    # -- the brokers' answers (kafka-python's sender thread) ---------------------------------

    def _on_sent(self, seq: int, _metadata: object) -> None:
        with self._cond:
            if self._pending.pop(seq, None) is None:
                return
            self._attempts.pop(seq, None)
            self.counts.sent += 1
            self._last_ack = self._clock()
            if self._down_since is not None:
                waiting = len(self._pending)
                log.warning(
                    "brokers acknowledge again after %.0fs; sending the %d record(s) that wait",
                    self._last_ack - self._down_since,
                    waiting,
                )
                self._down_since = None
                self._backlog_until = max(self._pending, default=None)
            self._check_caught_up()
            self._cond.notify_all()

    def _on_error(self, seq: int, attempt: int, exc: BaseException) -> None:
        with self._cond:
            if self._closing or seq not in self._pending:
                return
            if attempt != self._attempts.get(seq, 0):
                return  # the answer to an attempt that was already superseded
            if retriable(exc):
                self._retry.append(seq)
                if isinstance(exc, KafkaTimeoutError) and "Expiring" in str(exc):
                    self._replace_client = True
                self._outage(f"{type(exc).__name__}: {exc}")
                return
            self._pending.pop(seq)
            self._attempts.pop(seq, None)
            self.counts.failed += 1
            failed = self.counts.failed
            self._cond.notify_all()
        # Log the first failures and then one in a hundred, so they cannot flood the log.
        if failed <= 10 or failed % 100 == 0:
            log.error("record refused for good (%d so far): %r", failed, exc)

    # -- outage state (called with the lock held) -------------------------------------------

    def _outage(self, why: str) -> None:
        if self._down_since is not None:
            return
        now = self._clock()
        self._down_since = now
        self._next_reminder = now + OUTAGE_REMINDER
        self._backlog_until = None
        log.warning(
            "brokers not acknowledging (%s): keeping %d record(s) and retrying until they are",
            why,
            len(self._pending),
        )

    def _watch(self) -> None:
        with self._cond:
            now = self._clock()
            if self._pending and self._down_since is None:
                oldest = next(iter(self._pending.values()))
                if now - max(oldest.since, self._last_ack) > UNACKNOWLEDGED_OUTAGE:
                    self._outage(f"no acknowledgement for {UNACKNOWLEDGED_OUTAGE:.0f}s")
            elif self._down_since is not None and now >= self._next_reminder:
                self._next_reminder = now + OUTAGE_REMINDER
                log.warning(
                    "brokers still not acknowledging after %.0fs: %d record(s) wait",
                    now - self._down_since,
                    len(self._pending),
                )

    def _check_caught_up(self) -> None:
        if self._backlog_until is None and self._spool_until is None:
            return  # the common case, and finding the oldest costs more the more were acked
        oldest = next(iter(self._pending), None)
        if self._backlog_until is not None and (oldest is None or oldest > self._backlog_until):
            log.warning("backlog sent: every record kept during the outage is acknowledged")
            self._backlog_until = None
        if self._spool_until is not None and (oldest is None or oldest > self._spool_until):
            self._spool_until = None
            if self._spool_dir is not None:
                (self._spool_dir / SPOOL_FILE).unlink(missing_ok=True)
                log.info("spooled records acknowledged; spool file removed")

    # -- progress ---------------------------------------------------------------------------

    def tick(self) -> None:
        """Resend what failed, note an outage, log the counts when the interval has passed."""
        self.resend_failed()
        now = self._clock()
        if now < self._next_watch:
            return
        self._next_watch = now + WATCH_INTERVAL
        self._watch()
        if now >= self._next_log:
            self._next_log = now + self._interval
            self.log_counts("progress")
            self.write_state()

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until nothing is pending, resending what fails; False when it gave up.

        ``None`` waits as long as it takes, unless the producer is stopped: then
        ``stop_timeout`` more."""
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            with self._cond:
                if not self._pending:
                    return True
                self._cond.wait(0.2)
            now = self._clock()
            if deadline is None and self._stopped():
                deadline = now + self._stop_timeout
            if deadline is not None and now >= deadline:
                with self._cond:
                    return not self._pending
            self.tick()

    def log_counts(self, label: str) -> None:
        c = self.snapshot()
        log.info(
            "%s%s: sent=%d failed=%d malformed=%d pending=%d resent=%d dropped=%d",
            self._name,
            label,
            c.sent,
            c.failed,
            c.malformed,
            self.pending,
            c.resent,
            c.dropped,
        )

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def snapshot(self) -> Counts:
        with self._cond:
            return Counts(**vars(self.counts))

    def write_state(self) -> None:
        """The counts as ``state.json`` in the state (or else the spool) directory, for
        ``fab status``."""
        if self._state_dir is None:
            return
        with self._cond:
            state = {
                **vars(self.counts),
                "pending": len(self._pending),
                "down_for": None
                if self._down_since is None
                else round(self._clock() - self._down_since, 1),
                "written_at": format_ts(datetime.now(UTC)),
            }
        write_atomically(self._state_dir / STATE_FILE, json.dumps(state, sort_keys=True) + "\n")

    # -- spool ------------------------------------------------------------------------------

    def send_spooled(self) -> int:
        """Send, before anything else, the records a previous run spooled; their file is
        removed once they are all acknowledged. Returns how many were read."""
        if self._spool_dir is None:
            return 0
        path = self._spool_dir / SPOOL_FILE
        items = list(_read_spool(path))
        if not items:
            path.unlink(missing_ok=True)
            return 0
        log.warning("sending %d record(s) spooled by the previous run (%s)", len(items), path)
        for item in items:
            item.since = self._clock()
            self._submit(item, wait=True)
        with self._cond:
            self._spool_until = self._last_seq
            self._check_caught_up()
        return len(items)

    def close(self, timeout: float | None = None) -> Counts:
        """Wait for what is pending (as ``wait_idle``); spool the rest; close the client."""
        self.wait_idle(timeout)
        with self._cond:
            self._closing = True
            left = list(self._pending.values())
        if left and self._spool_dir is not None:
            write_atomically(
                self._spool_dir / SPOOL_FILE, "".join(_spool_line(i) + "\n" for i in left)
            )
            with self._cond:
                self.counts.spooled = len(left)
            log.warning(
                "%d record(s) not acknowledged yet: spooled to %s, sent first at the next start",
                len(left),
                self._spool_dir / SPOOL_FILE,
            )
        elif left:
            log.error("%d record(s) not acknowledged and no spool directory: lost", len(left))
        elif self._spool_dir is not None and self._spool_until is None:
            (self._spool_dir / SPOOL_FILE).unlink(missing_ok=True)
        try:
            self._producer.close(timeout=0 if left else 30)
        except KafkaError as exc:
            log.error("closing the Kafka client: %s", exc)
        self.write_state()
        self.log_counts("final")
        return self.snapshot()

    @property
    def unaccounted(self) -> int:
        """Records read but neither acknowledged, refused, nor spooled (lost on exit)."""
        c = self.snapshot()
        return c.submitted - c.sent - c.failed - c.spooled


def _spool_line(item: Pending) -> str:
    return json.dumps(
        {
            "topic": item.topic,
            "key": None if item.key is None else item.key.decode("utf-8", "surrogateescape"),
            "value": item.value.decode("utf-8", "surrogateescape"),
            "ts": item.ts,
        },
        separators=(",", ":"),
    )


def _read_spool(path: Path) -> Iterator[Pending]:
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        return
    with handle:
        for number, line in enumerate(handle, start=1):
            try:
                data = json.loads(line)
                key = data["key"]
                yield Pending(
                    str(data["topic"]),
                    None if key is None else str(key).encode("utf-8", "surrogateescape"),
                    str(data["value"]).encode("utf-8", "surrogateescape"),
                    data.get("ts"),
                )
            except (ValueError, KeyError, TypeError) as exc:
                # A line cut short by a crash while the spool was written: say so, go on.
                log.error("%s:%d: unreadable spool line skipped: %s", path, number, exc)


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
