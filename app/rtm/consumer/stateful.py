"""Per-server windows in Spark: a ``ServerWindows`` per server, in streaming and in batch mode.

Streaming keeps each server's windows in the state store (``transformWithState``, RocksDB)
with one event-time timer per server at its oldest window's deadline, so a server that goes
silent still has its windows closed once the watermark passes them. Batch mode gives each
server all its samples at once and closes by the final watermark. Both emit the same rows
(``EMITTED``): the final aggregates, and the alerts as soon as they are certain.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F  # noqa: N812
from pyspark.sql.streaming.stateful_processor import (
    ExpiredTimerInfo,
    StatefulProcessor,
    StatefulProcessorHandle,
    TimerValues,
)

from rtm.consumer.server_windows import Emitted, Rules, ServerWindows

# What both modes emit, one row per final aggregate or alert (times in epoch milliseconds).
EMITTED = (
    "server_id STRING, metric STRING, window_start_ms LONG, window_end_ms LONG,"
    " value DOUBLE, samples LONG, alert BOOLEAN"
)
# One value per server: its windows and clocks (JSON), its late count, its registered timer.
_STATE = "windows STRING, late LONG, timer LONG"
_NO_TIMER = -1


def _rows(emitted: Iterable[Emitted]) -> Iterator[Row]:
    for e in emitted:
        yield Row(
            server_id=e.server_id,
            metric=e.metric,
            window_start_ms=e.window_start_ms,
            window_end_ms=e.window_end_ms,
            value=float(e.value),
            samples=e.samples,
            alert=e.is_alert,
        )


def _samples(rows: Iterable[Row]) -> Iterator[tuple[int, str, float]]:
    return ((r.event_ms, r.metric, r.value) for r in rows)


class WindowsProcessor(StatefulProcessor):
    """The stateful processor: one ``ServerWindows`` per server (the grouping key)."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.handle = handle
        self.state = handle.getValueState("server", _STATE)

    def handleInputRows(  # noqa: N802 - Spark's name
        self,
        key: tuple[str],
        rows: Iterator[Row],
        timerValues: TimerValues,  # noqa: N803
    ) -> Iterator[Row]:
        windows, timer = self._load(key[0])
        emitted = windows.add(_samples(rows))
        emitted += windows.close_through(timerValues.getCurrentWatermarkInMs() - 1)
        self._save(windows, timer)
        yield from _rows(emitted)

    def handleExpiredTimer(  # noqa: N802 - Spark's name
        self,
        key: tuple[str],
        timerValues: TimerValues,  # noqa: N803
        expiredTimerInfo: ExpiredTimerInfo,  # noqa: N803
    ) -> Iterator[Row]:
        windows, _fired = self._load(key[0])
        # Spark fires a timer once the watermark is past it: what is due is what is before it.
        emitted = windows.close_through(timerValues.getCurrentWatermarkInMs() - 1)
        self._save(windows, _NO_TIMER)  # the fired timer is gone
        yield from _rows(emitted)

    def close(self) -> None:
        pass

    def _load(self, server_id: str) -> tuple[ServerWindows, int]:
        # get() alone, no exists() first: each is a round trip from this Python worker to the
        # JVM's state store, and a micro-batch makes one per server.
        stored = self.state.get()
        if stored is None:
            return ServerWindows(self.rules, server_id), _NO_TIMER
        text, late, timer = stored
        return ServerWindows.from_state(self.rules, server_id, (text, late)), int(timer)

    def _save(self, windows: ServerWindows, timer: int) -> None:
        # Kept even with no window open: the clocks say which windows are closed for good.
        deadline = windows.deadline()
        wanted = _NO_TIMER if deadline is None else deadline
        if wanted != timer:
            if timer != _NO_TIMER:
                self.handle.deleteTimer(timer)
            if wanted != _NO_TIMER:
                self.handle.registerTimer(wanted)
        self.state.update((*windows.to_state(), wanted))


def _timed(measured: DataFrame) -> DataFrame:
    return measured.select(
        "server_id",
        "event_time",
        F.unix_millis("event_time").alias("event_ms"),
        "metric",
        "value",
    )


def stream(measured: DataFrame, rules: Rules) -> DataFrame:
    """Streaming: ``measured`` (with its watermark) to the emitted rows, per server."""
    return (
        _timed(measured)
        .groupBy("server_id")
        .transformWithState(WindowsProcessor(rules), EMITTED, "Append", "EventTime")
    )


def batch(measured: DataFrame, rules: Rules, watermark_ms: int) -> DataFrame:
    """Batch mode: every server's samples at once, closed by ``watermark_ms`` (the newest
    event time minus the watermark delay) as the streaming timers close them at the end."""

    def server(item: tuple[str, Iterable[tuple[int, str, float]]]) -> Iterator[Row]:
        server_id, samples = item
        windows = ServerWindows(rules, server_id)
        emitted = windows.add(samples)
        emitted += windows.close_through(watermark_ms - 1)
        return _rows(emitted)

    pairs = _timed(measured).rdd.map(lambda r: (r.server_id, (r.event_ms, r.metric, r.value)))
    return measured.sparkSession.createDataFrame(pairs.groupByKey().flatMap(server), EMITTED)
