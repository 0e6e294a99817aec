"""One server's sliding windows, closed on that server's own clock.

The windowed query closes a window when the *global* watermark (the newest event of any server
minus the watermark delay) passes its end, so every alert waits for the slowest part of the
fleet plus the delay. Here each server's windows close as soon as that server's own newest event
is ``grace`` past their end; a server that goes silent has its windows closed by a timer on the
global watermark instead. A MAX rule does not wait at all: one sample above the threshold makes
the window's alert certain, so it is raised then, once per window.

Pure Python and Spark-free: the streaming processor keeps a ``ServerWindows`` per server in its
state store, batch mode feeds one with everything, and unit tests drive it directly.

Late data: a sample is left out of the windows of this server that are already closed (and
counted in ``late``); the windows still open take it. Nothing already emitted changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
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
    clock: int = -1  # the newest event time seen
    closed_until: int = -1  # the end of the newest closed window
    late: int = 0  # samples left out of at least one window: it was closed
    _open: dict[tuple[int, str], _Window] = field(default_factory=dict)

    def add(self, samples: Iterable[tuple[int, str, float]]) -> list[Emitted]:
        """Take ``(event time ms, metric, value)`` samples in any order; what they make final.

        MAX alerts come first (their windows may stay open), then the windows this server's
        clock has closed, oldest first."""
        crossed: list[tuple[int, str]] = []
        for moment, metric, value in sorted(samples):
            starts = self.rules.starts(moment)
            if starts[0] + self.rules.size_ms <= self.closed_until:
                self.late += 1  # its oldest window is closed; the newer ones still take it
            for start in starts:
                if start + self.rules.size_ms <= self.closed_until:
                    continue
                window = self._open.setdefault((start, metric), _Window())
                window.add(value)
                if self._raises(metric, window):
                    window.alerted = True
                    crossed.append((start, metric))
            self.clock = max(self.clock, moment)
        alerts = [self._alert(start, metric) for start, metric in crossed]
        return alerts + self.close_through(self.clock)

    def close_through(self, moment: int) -> list[Emitted]:
        """Close the windows whose end plus the grace is at or before ``moment`` (the server's
        clock, or the global watermark when its timer fires)."""
        size, grace = self.rules.size_ms, self.rules.grace_ms
        due = sorted(k for k in self._open if k[0] + size + grace <= moment)
        out: list[Emitted] = []
        for start, metric in due:
            window = self._open.pop((start, metric))
            value = self._value(window)
            out.append(Emitted(self.server_id, metric, start, start + size, value, window.samples))
            if self.rules.aggregation == "avg" and value > self.rules.thresholds[metric]:
                out.append(self._emitted(start, metric, value, window.samples))
            self.closed_until = max(self.closed_until, start + size)
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

    def _alert(self, start: int, metric: str) -> Emitted:
        # The peak when the evidence came in: later samples of the window may raise it, the
        # final aggregate says by how much.
        window = self._open[(start, metric)]
        return self._emitted(start, metric, window.peak, window.samples)

    def _emitted(self, start: int, metric: str, value: float, samples: int) -> Emitted:
        end = start + self.rules.size_ms
        threshold = float(self.rules.thresholds[metric])
        return Emitted(self.server_id, metric, start, end, value, samples, threshold)

    def _value(self, window: _Window) -> float:
        if self.rules.aggregation == "avg":
            return window.total / window.samples
        return window.peak

    # -- state -----------------------------------------------------------------------------

    def to_state(self) -> tuple[str, int, int, int]:
        """One value for the state store: a state call is a round trip to the JVM, so the
        whole server is one value, not one per window."""
        windows = [
            [s, m, w.total, w.samples, w.peak, w.alerted] for (s, m), w in self._open.items()
        ]
        return json.dumps(windows, separators=(",", ":")), self.clock, self.closed_until, self.late

    @classmethod
    def from_state(
        cls, rules: Rules, server_id: str, state: tuple[str, int, int, int] | None
    ) -> ServerWindows:
        if state is None:
            return cls(rules, server_id)
        windows, clock, closed_until, late = state
        kept = {
            (int(s), str(m)): _Window(float(t), int(n), float(p), bool(a))
            for s, m, t, n, p, a in json.loads(windows)
        }
        return cls(rules, server_id, int(clock), int(closed_until), int(late), kept)
