"""The publisher keeps every record until the brokers acknowledge it: resends, back-pressure,
the live buffer's bound, the spool over a stop, and an outage logged as state changes."""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from kafka.partitioner import DefaultPartitioner

from rtm.config import parse
from rtm.producer import service
from rtm.producer.live import HostSampler
from rtm.producer.publisher import SPOOL_FILE, STATE_FILE, KeyCachePartitioner, Publisher
from rtm.producer.service import Stopper, live


class HeldFuture:
    """A send's future answered later by the test, like kafka-python's: ``f(*args, value)``."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[object], None]] = []
        self.errbacks: list[Callable[[BaseException], None]] = []

    def add_callback(self, f: Callable[..., None], *args: object) -> HeldFuture:
        self.callbacks.append(lambda value: f(*args, value))
        return self

    def add_errback(self, f: Callable[..., None], *args: object) -> HeldFuture:
        self.errbacks.append(lambda exc: f(*args, exc))
        return self


class HeldProducer:
    """Stands in for KafkaProducer: keeps every send's future for the test to answer."""

    def __init__(self) -> None:
        self.sends: list[tuple[str, bytes, HeldFuture]] = []
        self.closed_with: float | None = None

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> HeldFuture:
        future = HeldFuture()
        self.sends.append((topic, value, future))
        return future

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        self.closed_with = timeout

    def answer(self, index: int, error: BaseException | None = None) -> None:
        future = self.sends[index][2]
        for f in future.errbacks if error else future.callbacks:
            f(error if error else None)


def record(n: int) -> dict[str, object]:
    return {"server_id": "s1", "ts": f"2026-03-14T09:00:{n:02d}Z", "cpu_pct": float(n)}


def test_a_retriable_failure_is_sent_again_until_acknowledged() -> None:
    producer = HeldProducer()
    publisher = Publisher(producer, "dlq", "p", 60)
    publisher.publish("topic-cpu", "s1", record(1))
    for attempt in range(3):
        producer.answer(attempt, KafkaTimeoutError("Expiring 1 record(s): 120000 ms has passed"))
        publisher.tick()  # the reading thread sends again
    assert len(producer.sends) == 4
    assert {value for _t, value, _f in producer.sends} == {producer.sends[0][1]}
    producer.answer(3)
    counts = publisher.close()
    assert (counts.sent, counts.failed, counts.resent, publisher.unaccounted) == (1, 0, 3, 0)


def test_an_error_no_retry_can_mend_is_counted_as_failed() -> None:
    producer = HeldProducer()
    publisher = Publisher(producer, "dlq", "p", 60)
    publisher.publish("topic-cpu", "s1", record(1))
    producer.answer(0, MessageSizeTooLargeError())
    publisher.tick()
    assert len(producer.sends) == 1
    assert (publisher.snapshot().failed, publisher.pending) == (1, 0)


def test_replay_waits_for_room_instead_of_reading_ahead() -> None:
    producer = HeldProducer()
    publisher = Publisher(producer, "dlq", "p", 60, max_pending=2)
    publisher.publish("topic-cpu", "s1", record(1))
    publisher.publish("topic-cpu", "s1", record(2))
    third = threading.Thread(target=publisher.publish, args=("topic-cpu", "s1", record(3)))
    third.start()
    third.join(0.5)
    assert third.is_alive(), "a third record was accepted with two unacknowledged"
    assert len(producer.sends) == 2
    producer.answer(0)
    third.join(5)
    assert not third.is_alive()
    assert len(producer.sends) == 3


def test_live_mode_drops_the_newest_when_full_and_counts_their_span(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = HeldProducer()
    publisher = Publisher(producer, "dlq", "p", 60, max_pending=2, drop_when_full=True)
    accepted = [publisher.publish("topic-cpu", "s1", record(n)) for n in range(5)]
    assert accepted == [True, True, False, False, False]
    counts = publisher.snapshot()
    assert counts.dropped == 3
    assert (counts.first_dropped, counts.last_dropped) == (
        "2026-03-14T09:00:02Z",
        "2026-03-14T09:00:04Z",
    )
    assert "dropped 1 record(s) so far, event times 2026-03-14T09:00:02Z" in caplog.text


def test_what_is_unacknowledged_at_a_stop_is_spooled_and_sent_first_next_time(
    tmp_path: Path,
) -> None:
    down = HeldProducer()
    stopped = threading.Event()
    publisher = Publisher(
        down, "dlq", "p", 60, spool_dir=tmp_path, stopped=stopped.is_set, stop_timeout=0.2
    )
    publisher.publish("topic-cpu", "s1", record(1))
    publisher.publish("topic-mem", "s1", record(2))
    down.answer(0)
    stopped.set()
    counts = publisher.close()
    assert (counts.sent, counts.spooled, publisher.unaccounted) == (1, 1, 0)
    assert down.closed_with == 0  # what is spooled is not waited for
    lines = (tmp_path / SPOOL_FILE).read_text().splitlines()
    assert [json.loads(line)["topic"] for line in lines] == ["topic-mem"]
    assert json.loads((tmp_path / STATE_FILE).read_text())["spooled"] == 1

    up = HeldProducer()
    again = Publisher(up, "dlq", "p", 60, spool_dir=tmp_path)
    assert again.send_spooled() == 1
    assert [(t, json.loads(v)) for t, v, _f in up.sends] == [("topic-mem", record(2))]
    assert (tmp_path / SPOOL_FILE).exists(), "removed before the brokers acknowledged it"
    up.answer(0)
    assert not (tmp_path / SPOOL_FILE).exists()
    assert again.close().sent == 1


def test_an_outage_is_logged_as_state_changes_not_a_line_per_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rtm.producer.publisher")
    producer = HeldProducer()
    publisher = Publisher(producer, "dlq", "p", 60)
    for n in range(3):
        publisher.publish("topic-cpu", "s1", record(n))
    for _round in range(5):
        for index in range(len(producer.sends) - 3, len(producer.sends)):
            producer.answer(index, KafkaTimeoutError("Expiring 1 record(s)"))
        publisher.tick()
    assert caplog.text.count("brokers not acknowledging") == 1
    assert "keeping 3 record(s)" in caplog.text
    for index in range(len(producer.sends) - 3, len(producer.sends)):
        producer.answer(index)
    assert caplog.text.count("brokers acknowledge again") == 1
    assert caplog.text.count("backlog sent") == 1
    assert publisher.close().sent == 3


class AckingProducer(HeldProducer):
    """Acknowledges each send as soon as its callback is added."""

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> HeldFuture:
        future = super().send(topic, value, key)
        future.add_callback = lambda f, *args: (f(*args, None), future)[1]  # type: ignore[method-assign]
        return future


def test_a_spool_acknowledged_at_once_is_removed_at_once(tmp_path: Path) -> None:
    spool = tmp_path / SPOOL_FILE
    spool.write_text('{"topic":"topic-cpu","key":"s1","value":"{}","ts":null}\n')
    publisher = Publisher(AckingProducer(), "dlq", "p", 60, spool_dir=tmp_path)
    assert publisher.send_spooled() == 1
    assert not spool.exists(), "a stale spool would be sent again by the next start"


class FirstSendWaits:
    """Records what live mode publishes; the first send waits, as one waiting for metadata,
    until ``go`` is set (or 10 s pass)."""

    def __init__(self, go: threading.Event) -> None:
        self.go = go
        self.waited_for_go: bool | None = None
        self.records: list[tuple[str, dict[str, object]]] = []

    def publish(self, topic: str, key: str | None, record: dict[str, object]) -> bool:
        if self.waited_for_go is None:
            self.waited_for_go = self.go.wait(10)
        self.records.append((topic, record))
        return True

    def tick(self) -> None:
        pass


def test_live_mode_samples_on_while_a_send_waits(tmp_path: Path, monkeypatch) -> None:
    config = parse(
        {
            "kafka": {"bootstrap_servers": ["localhost:9092"]},
            "producer": {"live": {"interval": "10 ms", "server_id": "s1"}},
        },
        base=tmp_path,
    )
    all_taken = threading.Event()

    class CountingSampler(HostSampler):
        taken = 0

        def sample(self) -> dict[str, dict[str, float]]:
            CountingSampler.taken += 1
            if CountingSampler.taken == 20:
                all_taken.set()
            return super().sample()

    monkeypatch.setattr(service, "HostSampler", CountingSampler)
    publisher = FirstSendWaits(go=all_taken)
    live(config, publisher, Stopper(), "host", samples=20)  # type: ignore[arg-type]
    # The first send was still waiting when the twentieth sample was taken.
    assert publisher.waited_for_go is True
    per_topic = Counter(topic for topic, _ in publisher.records)
    assert set(per_topic.values()) == {20}
    # One event time per sample.
    times = Counter((topic, rec["ts"]) for topic, rec in publisher.records)
    assert max(times.values()) == 1, times.most_common(3)


def test_live_mode_fails_when_sampling_fails(tmp_path: Path, monkeypatch) -> None:
    config = parse(
        {
            "kafka": {"bootstrap_servers": ["localhost:9092"]},
            "producer": {"live": {"interval": "10 ms", "server_id": "s1"}},
        },
        base=tmp_path,
    )

    class BrokenSampler(HostSampler):
        def sample(self) -> dict[str, dict[str, float]]:
            raise OSError("no /proc")

    monkeypatch.setattr(service, "HostSampler", BrokenSampler)
    # The producer exits with the error (and systemd restarts it), not quietly with status 0.
    with pytest.raises(OSError, match="no /proc"):
        live(config, FirstSendWaits(go=threading.Event()), Stopper(), "host", samples=5)  # type: ignore[arg-type]


class Partitions:
    """kafka-python's cluster metadata, as much as a partitioner reads of it."""

    def __init__(self, count: int) -> None:
        self.count = count

    def topics(self) -> set[str]:
        return {"cpu"}

    def partitions_for_topic(self, _topic: str) -> set[int]:
        return set(range(self.count))

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions_for_topic(topic)


def test_the_remembered_partition_is_kafkas_and_follows_a_new_partition_count() -> None:
    cached, default = KeyCachePartitioner(), DefaultPartitioner()
    keys = [f"srv-{n:04d}".encode() for n in range(200)]
    for count in (6, 6, 7):  # the second pass is answered from memory; then the topic grows
        cluster = Partitions(count)
        chosen = [cached.partition("cpu", None, k, None, None, cluster) for k in keys]
        assert chosen == [default.partition("cpu", None, k, None, None, cluster) for k in keys]
    assert len(set(chosen)) == 7  # the keys spread over every partition


def test_a_late_wake_up_is_not_followed_by_a_sample_in_the_same_millisecond() -> None:
    class LateOnce(Stopper):
        waits = 0

        def wait(self, seconds: float) -> bool:
            LateOnce.waits += 1
            return super().wait(seconds + (0.05 if LateOnce.waits == 3 else 0.0))

    class Instant:
        def sample(self) -> dict[str, dict[str, float]]:
            return {}

    taken: queue.Queue = queue.Queue()
    service._sample(Instant(), 0.01, LateOnce(), 6, taken)  # type: ignore[arg-type]
    moments = [item[0] for item in iter(taken.get, None)]
    assert len(moments) == 6
    # The sample after the late one waits half an interval; at once, it could share its
    # millisecond with the late one: one event time for two samples.
    assert min((b - a).total_seconds() for a, b in itertools.pairwise(moments)) >= 0.005
