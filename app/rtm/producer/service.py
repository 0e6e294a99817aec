"""The producer's two loops (CSV replay, live sampling), stoppable by a threading.Event."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TypeVar

from kafka.errors import KafkaError

from rtm.config import Config
from rtm.producer.live import HostSampler, Values
from rtm.producer.publisher import WATCH_INTERVAL, Publisher
from rtm.producer.replay import WHOLE, Row, Share, check_files, data_span, schedule
from rtm.records import KINDS, RowError, from_row, measurement

log = logging.getLogger(__name__)
T = TypeVar("T")


class Stopper:
    """Set by the SIGTERM/SIGINT handler; waits are interruptible."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def stop(self) -> None:
        self._event.set()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)


def sample_dir() -> Path:
    """The small data set shipped inside the package."""
    return Path(str(resources.files("rtm") / "sample"))


def replay(
    config: Config, publisher: Publisher, stopper: Stopper, host: str, share: Share = WHOLE
) -> None:
    cfg = config.producer.replay
    data_dir = cfg.data_dir or sample_dir()
    check_files(data_dir)
    shift = timedelta(0)
    span = data_span(data_dir) if cfg.loop else timedelta(0)
    log.info(
        "replaying %s (pace=%s rate=%g speedup=%g fast=%s loop=%s%s)",
        data_dir,
        cfg.pace,
        cfg.rate,
        cfg.speedup,
        cfg.as_fast_as_possible,
        cfg.loop,
        f" servers={share.index + 1}/{share.count}" if share.count > 1 else "",
    )
    sending = _Sending.of(config, publisher, host)
    for pass_no in itertools.count():
        start = time.monotonic()
        for item in schedule(data_dir, cfg, share):
            if not cfg.as_fast_as_possible:
                delay = start + item.due - time.monotonic()
                if delay > 0 and stopper.wait(delay):
                    return
            if stopper.stopped:
                return
            _send_row(sending, item.row, shift)
            publisher.tick()
        if not cfg.loop:
            return
        shift += span
        log.info("pass %d done; replaying again with timestamps shifted by %s", pass_no + 1, shift)


@dataclass(frozen=True)
class _Sending:
    """What every row of a replay needs, looked up once."""

    publisher: Publisher
    host: str
    topics: dict[str, str]  # kind name -> topic
    max_future: timedelta

    @classmethod
    def of(cls, config: Config, publisher: Publisher, host: str) -> _Sending:
        topics = {k.name: config.kafka.topics.for_kind(k.name) for k in KINDS}
        return cls(publisher, host, topics, timedelta(seconds=config.producer.max_future))


def _send_row(sending: _Sending, row: Row, shift: timedelta) -> None:
    topic = sending.topics[row.kind.name]
    reason = row.problem
    if row.fields is not None:
        future = (datetime.now(UTC), sending.max_future)
        try:
            record = from_row(row.kind, row.fields, sending.host, shift, future)
        except RowError as exc:
            reason = str(exc)
        else:
            sending.publisher.publish(topic, str(record["server_id"]), record)
            return
    sending.publisher.dead_letter(
        kind=row.kind.name,
        topic=topic,
        source=row.source,
        line=row.line,
        raw=row.raw,
        reason=reason or "invalid row",
    )


# When a sample was taken, and its values by kind.
Sample = tuple[datetime, dict[str, Values]]


def live(
    config: Config, publisher: Publisher, stopper: Stopper, host: str, samples: int | None
) -> None:
    """Sample this host every interval and publish each sample's records.

    The samples are taken on a thread of their own: a send that waits (for metadata, right
    after the brokers come back, say) delays the records, not the sampling."""
    cfg = config.producer.live
    server_id = cfg.server_id or host
    sampler = HostSampler(KINDS, cfg.disk_path)
    unsampled = [k.name for k in KINDS if k not in sampler.kinds]
    if unsampled:
        log.warning("live mode has no sampler for %s; those topics get nothing", unsampled)
    log.info("sampling this host as %s every %gs", server_id, cfg.interval)
    taken: queue.Queue[Sample | Exception | None] = queue.Queue()
    threading.Thread(
        target=_sample, args=(sampler, cfg.interval, stopper, samples, taken), daemon=True
    ).start()
    while True:
        try:
            sample = taken.get(timeout=WATCH_INTERVAL)
        except queue.Empty:
            publisher.tick()
            continue
        if sample is None:
            return  # every sample taken is published
        if isinstance(sample, Exception):
            raise sample  # the sampler failed: the producer fails, as if it had sampled here
        moment, values = sample
        for k in sampler.kinds:
            record = measurement(k, server_id, moment, values[k.name], host)
            publisher.publish(config.kafka.topics.for_kind(k.name), server_id, record)
        publisher.tick()


def _sample(
    sampler: HostSampler,
    interval: float,
    stopper: Stopper,
    samples: int | None,
    taken: queue.Queue[Sample | Exception | None],
) -> None:
    """Put a sample on ``taken`` every ``interval``, then None once stopped or done (or the
    exception that ended the sampling)."""
    deadline = time.monotonic()
    previous: datetime | None = None
    try:
        for _ in range(samples) if samples is not None else itertools.count():
            # Behind schedule (the host starved of CPU, say): sample once now and keep the
            # cadence from here. Catching up in a burst would take samples in the same
            # millisecond, one event time for two samples, and the second would hide the first.
            deadline = max(deadline + interval, time.monotonic())
            if stopper.wait(max(deadline - time.monotonic(), 0.0)):
                break
            moment = datetime.now(UTC)
            # So would a late wake-up followed by one on time: half an interval apart at least,
            # on the clock the event times come from.
            if previous is not None and (gap := (moment - previous).total_seconds()) < interval / 2:
                if stopper.wait(interval / 2 - max(gap, 0.0)):
                    break
                moment = datetime.now(UTC)
            previous = moment
            taken.put((moment, sampler.sample()))
    except Exception as exc:  # handed to the publishing thread, which raises it
        taken.put(exc)
    else:
        taken.put(None)


def connect(config: Config, stopper: Stopper, make: Callable[[], T]) -> T | None:
    """The Kafka client, waiting for the brokers as long as it takes (None if stopped first).

    A producer started during an outage waits here, logging every minute, instead of failing
    again and again; what a previous run spooled stays on disk until then."""
    servers = ",".join(config.kafka.bootstrap_servers)
    started = time.monotonic()
    next_log = started
    while not stopper.stopped:
        try:
            return make()
        except KafkaError as exc:
            now = time.monotonic()
            if now >= next_log:
                log.warning(
                    "no broker of %s answers yet (%s); waiting %.0fs so far",
                    servers,
                    exc,
                    now - started,
                )
                next_log = now + 60
        stopper.wait(5)
    return None
