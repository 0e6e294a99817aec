"""One server's windows close on its own clock; a MAX alert is raised once, when the evidence
comes; a silent server's windows close on the global watermark; state survives a restart."""

from __future__ import annotations

import random

import pytest

from rtm.consumer.server_windows import Emitted, Rules, ServerWindows

S = 1000  # ms
AVG = Rules("cpu_mem", "avg", {"cpu_pct": 80.0}, size_ms=30 * S, slide_ms=10 * S, grace_ms=S)
MAX = Rules("net_disk", "max", {"net_mbps": 100.0}, size_ms=30 * S, slide_ms=10 * S, grace_ms=S)


def aggregates(out: list[Emitted]) -> list[tuple[int, float, int]]:
    return [(e.window_start_ms // S, e.value, e.samples) for e in out if not e.is_alert]


def alerts(out: list[Emitted]) -> list[tuple[int, float]]:
    return [(e.window_start_ms // S, e.value) for e in out if e.is_alert]


def test_windows_hold_a_moment_as_sparks_do() -> None:
    assert list(AVG.starts(25 * S)) == [0, 10 * S, 20 * S]
    assert list(AVG.starts(30 * S)) == [10 * S, 20 * S, 30 * S]  # ends are exclusive
    assert list(AVG.starts(-5 * S)) == [-30 * S, -20 * S, -10 * S]


def test_a_window_closes_once_the_servers_own_clock_is_grace_past_its_end() -> None:
    server = ServerWindows(AVG, "srv-1")
    early = server.add((t * S, "cpu_pct", 90.0) for t in range(30))  # clock 29 s
    assert [a[0] for a in aggregates(early)] == [-20, -10]  # ended by 19 s; [0,30) is open
    assert server.add([(30 * S + 999, "cpu_pct", 10.0)]) == []  # its end + 999 ms: not yet
    closed = server.add([(31 * S, "cpu_pct", 10.0)])
    assert aggregates(closed) == [(0, 90.0, 30)]
    assert alerts(closed) == [(0, 90.0)]  # the average is above 80
    assert closed[1].threshold == 80.0
    assert server.closed_until == {"cpu_pct": 30 * S}


def test_an_average_at_or_below_its_threshold_gives_an_aggregate_and_no_alert() -> None:
    server = ServerWindows(AVG, "srv-1")
    out = server.add([(t * S, "cpu_pct", 80.0) for t in range(31)] + [(41 * S, "cpu_pct", 0.0)])
    assert (0, 80.0, 30) in aggregates(out)
    assert alerts(out) == []  # 80 is not above 80


def test_a_max_alert_is_raised_at_the_first_crossing_and_only_once() -> None:
    server = ServerWindows(MAX, "srv-9")
    first = server.add([(1 * S, "net_mbps", 50.0), (2 * S, "net_mbps", 150.0)])
    # Every window holding the crossing sample is certain now: [-20,10), [-10,20), [0,30),
    # with that sample's value and the samples the window had then.
    assert alerts(first) == [(-20, 150.0), (-10, 150.0), (0, 150.0)]
    assert [a.samples for a in first] == [2, 2, 2]
    again = server.add([(3 * S, "net_mbps", 400.0), (4 * S, "net_mbps", 120.0)])
    assert alerts(again) == []  # the same windows: already raised
    closed = server.add([(31 * S, "net_mbps", 1.0)])
    assert alerts(closed) == []
    # The final aggregates carry the final maxima, which the alerts could not know.
    assert (0, 400.0, 4) in aggregates(closed)


def test_a_silent_servers_windows_close_when_the_watermark_passes_its_deadline() -> None:
    server = ServerWindows(AVG, "srv-quiet")
    assert server.add([(5 * S, "cpu_pct", 95.0)]) == []
    deadline = server.deadline()
    assert deadline == 11 * S  # the oldest window, [-20,10), ends at 10 s; + the grace
    assert server.close_through(deadline - 1) == []
    out = server.close_through(deadline)
    assert aggregates(out) == [(-20, 95.0, 1)]
    assert alerts(out) == [(-20, 95.0)]
    everything = server.close_through(10**12)
    assert aggregates(everything) == [(-10, 95.0, 1), (0, 95.0, 1)]
    assert server.deadline() is None


def test_a_late_sample_is_left_out_of_closed_windows_and_counted() -> None:
    server = ServerWindows(AVG, "srv-1")
    server.add([(t * S, "cpu_pct", 10.0) for t in range(42)])  # clock 41 s: up to [10,40)
    assert server.closed_until == {"cpu_pct": 40 * S}
    out = server.add([(25 * S, "cpu_pct", 70.0)])  # [0,30) and [10,40) closed, [20,50) open
    assert out == []
    assert server.late == 1
    final = server.close_through(10**12)
    assert (20, pytest.approx((22 * 10.0 + 70.0) / 23), 23) in aggregates(final)


def test_samples_out_of_order_within_a_batch_are_taken_in_event_order() -> None:
    ordered, shuffled = ServerWindows(AVG, "a"), ServerWindows(AVG, "a")
    samples = [(t * S, "cpu_pct", float(t % 7) * 20) for t in range(100)]
    mixed = samples[:]
    random.Random(3).shuffle(mixed)  # noqa: S311 - test data
    assert ordered.add(samples) == shuffled.add(mixed)


@pytest.mark.parametrize("rules", [AVG, MAX], ids=["avg", "max"])
def test_state_kept_between_batches_gives_what_one_batch_gives(rules: Rules) -> None:
    """A consumer stopped and restarted between micro-batches resumes from the state store."""
    metric = next(iter(rules.thresholds))
    rng = random.Random(11)  # noqa: S311 - test data
    samples = [(t * 250, metric, rng.uniform(0, 160)) for t in range(600)]
    whole = ServerWindows(rules, "srv-7").add(samples)
    pieces: list[Emitted] = []
    state = None
    for chunk in range(0, 600, 37):
        server = ServerWindows.from_state(rules, "srv-7", state)
        pieces += server.add(samples[chunk : chunk + 37])
        state = server.to_state()
    assert sorted(aggregates(pieces)) == sorted(aggregates(whole))
    assert sorted(alerts(pieces)) == sorted(alerts(whole))


def test_each_metric_keeps_its_own_clock() -> None:
    """A job reads several topics at their own pace: memory samples behind the CPU ones are not
    late, and close their windows when memory's own clock passes them."""
    rules = Rules("cpu_mem", "avg", {"cpu_pct": 80.0, "mem_pct": 80.0}, 30 * S, 10 * S, S)
    server = ServerWindows(rules, "srv-1")
    ahead = server.add((t * S, "cpu_pct", 10.0) for t in range(60))
    assert {e.metric for e in ahead} == {"cpu_pct"}
    behind = server.add((t * S, "mem_pct", 90.0) for t in range(60))
    assert server.late == 0
    assert [e.window_start_ms for e in behind if not e.is_alert] == [
        e.window_start_ms for e in ahead
    ]
    assert len(alerts(behind)) == len(aggregates(behind))  # memory averages 90, above 80
