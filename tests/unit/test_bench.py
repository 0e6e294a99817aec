"""The pure parts of the benchmarks: parsing, statistics, Markdown rendering."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

# bench/ is not installed: `python -m bench` runs it from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import report
from bench.deploy import role_times, task_times
from bench.lab import recap
from bench.latency import catch_up_seconds, ceiling, keeps_up, lag_by_job, latencies
from bench.stats import Figure, median, percentile, rounded
from bench.throughput import parse_summary, producer_window

JAVA_OUTPUT = """\
59461 records sent, 11887.8 records/sec (1.70 MB/sec), 1450.3 ms avg latency, 2513.0 ms max latency.
200000 records sent, 21367.521368 records/sec (3.06 MB/sec), 1120.41 ms avg latency, 2513.00 ms max latency, 1090 ms 50th, 2101 ms 95th, 2390 ms 99th, 2501 ms 99.9th.
"""  # noqa: E501


def test_parse_summary_takes_the_final_line() -> None:
    result = parse_summary(JAVA_OUTPUT)
    assert result.records == 200000
    assert result.rate == pytest.approx(21367.521368)
    assert result.mb_per_s == pytest.approx(3.06)
    assert result.avg_ms == pytest.approx(1120.41)
    assert result.p99_ms == 2390


def test_parse_summary_without_a_summary_fails() -> None:
    with pytest.raises(ValueError, match="no ProducerPerformance summary"):
        parse_summary(JAVA_OUTPUT.splitlines()[0])


def test_producer_window_from_the_log() -> None:
    text = (
        "2026-01-01T10:00:00.000Z INFO rtm.producer.service: replaying /d (pace=rows ...)\n"
        "2026-01-01T10:00:04.500Z INFO rtm.producer.publisher: progress: sent=1 failed=0\n"
        "2026-01-01T10:00:10.000Z INFO rtm.producer.publisher: final: sent=5000 failed=0 "
        "malformed=0 pending=0\n"
    )
    assert producer_window(text) == (5000, 0, 10.0)


def test_percentiles_interpolate_between_ranks() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert median(values) == 3.0
    assert median([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 95) == pytest.approx(4.8)
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_figure_summary_and_rounding() -> None:
    figure = Figure("rate", "records/s", [1000.123456, 3000.0, 2000.0])
    body = figure.to_json()
    assert (body["median"], body["min"], body["max"], body["runs"]) == (2000.0, 1000.0, 3000.0, 3)
    assert rounded(0.0123456) == 0.01235
    assert "median" not in Figure("none", "s").to_json()


def test_latencies_to_window_end_and_the_evidence() -> None:
    ticks = [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]

    def window(job: str, start: int, end: int, samples: int = 1) -> dict[str, object]:
        iso = "1970-01-01T00:{:02d}:{:02d}Z".format
        return {
            "job": job,
            "aggregation": "max" if job == "net_disk" else "avg",
            "window_start": iso(*divmod(start, 60)),
            "window_end": iso(*divmod(end, 60)),
            "samples": samples,
        }

    alerts = [
        (130.0, window("cpu_mem", 90, 100)),  # no event of this run in it
        (140.0, window("net_disk", 100, 104, samples=2)),  # crossed at its 2nd sample: 101
        (150.0, window("cpu_mem", 90, 120)),  # AVG: the newest event in it, 105
        (103.5, window("net_disk", 102, 130)),  # crossed at its first: 102, before the end
    ]
    assert latencies(alerts, ticks) == [
        ("net_disk", 36.0, 39.0),
        ("cpu_mem", 30.0, 45.0),
        ("net_disk", -26.5, 1.5),
    ]


def test_lag_by_job_reads_fab_status_json() -> None:
    status = {
        "hosts": {
            "consumer1": [
                {"name": "cpu_mem lag", "ok": True, "detail": "keeping up: 384 records behind, "},
                {"name": "disk /var/lib/rtm", "ok": True, "detail": "25% used"},
            ],
            "consumer2": [
                {"name": "net_disk lag", "ok": False, "detail": "falling behind: 9 records behind"}
            ],
        }
    }
    assert lag_by_job(status) == {"cpu_mem": 384, "net_disk": 9}


def test_keeps_up_needs_a_bounded_lag() -> None:
    steady = [(t, 2000) for t in range(0, 100, 10)]
    growing = [(t, 1000 * t) for t in range(0, 100, 10)]
    assert keeps_up(steady, input_rate=200, period=10)
    assert not keeps_up(growing, input_rate=200, period=10)
    assert not keeps_up([], input_rate=200, period=10)


def test_catch_up_after_the_load() -> None:
    samples = [(10.0, {"a": 500, "b": 9}), (50.0, {"a": 0, "b": 3}), (62.0, {"a": 0, "b": 0})]
    assert catch_up_seconds(samples, load_end=45.0) == 17.0
    assert catch_up_seconds(samples[:2], load_end=45.0) is None


def test_recap_counts() -> None:
    text = (
        "PLAY RECAP ****\n"
        "broker1   : ok=50   changed=0    unreachable=0    failed=0    skipped=3\n"
        "consumer1 : ok=40   changed=2    unreachable=0    failed=0    skipped=1\n"
    )
    assert recap(text)["consumer1"]["changed"] == 2


PROFILED = """\
TASK [kafka : Wait for the Kafka listener on this node] ************************
Friday 04 December 2026  04:41:02 +0000 (0:00:01.072)       0:01:12.004 *******
ok: [broker1]

TASKS RECAP ********************************************************************
Friday 04 December 2026  04:42:59 +0000 (0:00:00.242)       0:02:50.317 *******
===============================================================================
kafka_dist : Ensure the operator tools are on the PATH ------------------ 9.37s
kafka : Wait until no partition is under-replicated --------------------- 6.09s
Gathering Facts --------------------------------------------------------- 3.63s
kafka : Ensure server.properties is rendered from the inventory --------- 3.38s
"""


def test_profile_of_a_run_per_task_and_per_role() -> None:
    tasks = task_times(PROFILED)
    assert tasks[0] == ("kafka_dist : Ensure the operator tools are on the PATH", 9.37)
    assert len(tasks) == 4
    assert role_times(tasks) == pytest.approx({"kafka": 9.47, "kafka_dist": 9.37, "(play)": 3.63})
    assert list(role_times(tasks)) == ["kafka", "kafka_dist", "(play)"]
    assert task_times("PLAY RECAP ****\n") == []


def test_markdown_tables_and_stable_json(tmp_path) -> None:
    section = report.Section("throughput", {"cpu": "Test CPU", "cores": 2, "date": "2026-01-01"})
    section.figure("rtm-producer, deployed", "records/s").add(12000.0)
    section.figure("rtm-producer, deployed", "records/s").add(11000.0)
    section.notes.append("gzip costs CPU.")
    report.write_section(tmp_path, section)
    written = (tmp_path / "throughput.json").read_text()
    assert written == report.dump(json.loads(written))
    report.write_readme(tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert "## Producer throughput" in text
    assert "| rtm-producer, deployed | 11,500 | 11,000 | 12,000 | 2 | records/s |" in text
    assert "Test CPU, 2 cores" in text
    assert "- gzip costs CPU." in text


def test_the_ceiling_is_the_largest_size_that_reacts_within_ten_seconds() -> None:
    section = report.Section("latency-lab", {})
    for n, reaction, batch in (
        (100, 6.0, 2.5),
        (1000, 7.4, 3.0),
        (2500, 12.5, 6.0),
        (5000, 43.6, 13.2),
    ):
        section.figure(f"N={n}: cpu_mem p95 alert - evidence", "s").add(reaction)
        section.figure(f"N={n}: net_disk p95 alert - evidence", "s").add(reaction / 2)
        section.figure(f"N={n}: cpu_mem micro-batch p50", "s").add(batch)
    text = ceiling(section)
    assert text is not None
    assert "within 10 s of their evidence (p95) up to N=1000 of the sizes measured" in text
    assert "at N=2500 the slowest job took 12.5 s" in text
    assert "cpu_mem: 2.5 s at N=100, 3.0 s at N=1000, 6.0 s at N=2500, 13.2 s at N=5000" in text
    assert ceiling(report.Section("latency-lab", {})) is None
    # A slow small size (the first after a warm-up) does not hide a larger one that reacts.
    section.figures[0].values[:] = [12.0]
    assert "up to N=1000 of the sizes measured; at N=2500 the slowest" in (ceiling(section) or "")
