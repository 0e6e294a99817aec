"""One server's sliding windows, closed on that server's own clock.

The windowed query closes a window when the *global* watermark (the newest event of any server
minus the watermark delay) passes its end, so every alert waits for the slowest part of the
fleet plus the delay. Here each server's windows of a metric close as soon as that server's own
newest sample of the metric is ``grace`` past their end; a server that goes silent has its
windows closed by the global watermark instead (a window is due once its end plus the grace is
*before* the watermark, as Spark's event-time timers fire). A MAX rule does not wait at all: the
first sample above the threshold makes the window's alert certain, so it is raised then, once
per window, with that sample's value.

Pure Python and Spark-free: the streaming processor keeps a ``ServerWindows`` per server in its
state store, batch mode feeds one with everything, and unit tests drive it directly.

Late data: a sample is left out of the windows of its metric that are already closed (and
counted in ``late``); the windows still open take it. Nothing already emitted changes. Each
metric keeps its own clock: the topics of a job are read at their own pace.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rules:
    """What a job does with one server's samples (times in epoch milliseconds)."""

    job: str
    aggregation: str  # "avg" or "max"
    thresholds: Mapping[str, float]  # by metric
    size_ms: int
    slide_ms: int
    grace_ms: int

    def starts(self, moment: int) -> range:
        """The starts of the windows holding ``moment`` (aligned to the epoch, as Spark's)."""
        first = (moment - self.size_ms) // self.slide_ms * self.slide_ms + self.slide_ms
        return range(first, moment + 1, self.slide_ms)


@dataclass(frozen=True)
class Emitted:
    """A final aggregate, or an alert (``threshold`` set)."""

    server_id: str
    metric: str
    window_start_ms: int
    window_end_ms: int
    value: float
    samples: int
    threshold: float | None = None

    @property
    def is_alert(self) -> bool:
        return self.threshold is not None


@dataclass
class _Window:
    total: float = 0.0
    samples: int = 0
    peak: float = float("-inf")
    alerted: bool = False

    def add(self, value: float) -> None:
        self.total += value
        self.samples += 1
        self.peak = max(self.peak, value)


@dataclass
class ServerWindows:
    """The open windows of one server, its clock and what it has closed."""

    rules: Rules
    server_id: str
    clocks: dict[str, int] = field(default_factory=dict)  # by metric: the newest event time
    closed_until: dict[str, int] = field(default_factory=dict)  # by metric: newest closed end
    late: int = 0  # samples left out of at least one window: it was closed
    _open: dict[tuple[int, str], _Window] = field(default_factory=dict)

    def add(self, samples: Iterable[tuple[int, str, float]]) -> list[Emitted]:
        """Take ``(event time ms, metric, value)`` samples in any order; what they make final.

        MAX alerts come first (their windows may stay open), then the windows this server's
        clocks have closed, oldest first."""
        alerts: list[Emitted] = []
        for moment, metric, value in sorted(samples):
            closed = self.closed_until.get(metric, -1)
            starts = self.rules.starts(moment)
            if starts[0] + self.rules.size_ms <= closed:
                self.late += 1  # its oldest window is closed; the newer ones still take it
            for start in starts:
                if start + self.rules.size_ms <= closed:
                    continue
                window = self._open.setdefault((start, metric), _Window())
                window.add(value)
                if self._raises(metric, window):
                    window.alerted = True
                    alerts.append(self._emitted(start, metric, value, window.samples))
            self.clocks[metric] = max(self.clocks.get(metric, -1), moment)
        return alerts + self._close(lambda start, metric: self.clocks.get(metric, -1))

    def close_through(self, moment: int) -> list[Emitted]:
        """Close the windows whose end plus the grace is at or before ``moment``, for every
        metric (the global watermark, less a millisecond, when the server's timer fires)."""
        return self._close(lambda start, metric: moment)

    def _close(self, until: Callable[[int, str], int]) -> list[Emitted]:
        size, grace = self.rules.size_ms, self.rules.grace_ms
        due = sorted(k for k in self._open if k[0] + size + grace <= until(*k))
        out: list[Emitted] = []
        for start, metric in due:
            window = self._open.pop((start, metric))
            value = self._value(window)
            out.append(Emitted(self.server_id, metric, start, start + size, value, window.samples))
            if self.rules.aggregation == "avg" and value > self.rules.thresholds[metric]:
                out.append(self._emitted(start, metric, value, window.samples))
            self.closed_until[metric] = max(self.closed_until.get(metric, -1), start + size)
        return out

    def deadline(self) -> int | None:
        """When the oldest open window is due (its end plus the grace): the server's timer."""
        ends = [start for start, _ in self._open]
        return min(ends) + self.rules.size_ms + self.rules.grace_ms if ends else None

    def _raises(self, metric: str, window: _Window) -> bool:
        return (
            self.rules.aggregation == "max"
            and not window.alerted
            and window.peak > self.rules.thresholds[metric]
        )

    def _emitted(self, start: int, metric: str, value: float, samples: int) -> Emitted:
        end = start + self.rules.size_ms
        threshold = float(self.rules.thresholds[metric])
        return Emitted(self.server_id, metric, start, end, value, samples, threshold)

    def _value(self, window: _Window) -> float:
        if self.rules.aggregation == "avg":
            return window.total / window.samples
        return window.peak

    # -- state -----------------------------------------------------------------------------

    def to_state(self) -> tuple[str, int]:
        """One value for the state store: a state call is a round trip to the JVM, so the
        whole server is one value (its windows and clocks as JSON), not one per window."""
        windows = [
            [s, m, w.total, w.samples, w.peak, w.alerted] for (s, m), w in self._open.items()
        ]
        kept = {"windows": windows, "clocks": self.clocks, "closed_until": self.closed_until}
        return json.dumps(kept, separators=(",", ":")), self.late

    @classmethod
    def from_state(
        cls, rules: Rules, server_id: str, state: tuple[str, int] | None
    ) -> ServerWindows:
        if state is None:
            return cls(rules, server_id)
        text, late = state
        kept = json.loads(text)
        windows = {
            (int(s), str(m)): _Window(float(t), int(n), float(p), bool(a))
            for s, m, t, n, p, a in kept["windows"]
        }
        clocks = {str(m): int(c) for m, c in kept["clocks"].items()}
        closed = {str(m): int(c) for m, c in kept["closed_until"].items()}
        return cls(rules, server_id, clocks, closed, int(late), windows)
