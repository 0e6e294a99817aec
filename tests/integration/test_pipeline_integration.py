"""The pipeline against a real broker and real Spark: producer -> Kafka -> consumers -> outputs.

Expected alerts and aggregates come from ``reference_alerts`` (plain Python over the CSVs),
never from the code under test.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from itutil import PROCESS_TIMEOUT, Pipeline, end_offsets, read_jsonl
from kafka import KafkaProducer
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812
from rtm_broker import Broker

from reference_alerts import WATERMARK, aggregates, expected_alerts
from rtm.catalogue import catalogue
from rtm.config import load
from rtm.consumer import runner, sinks
from rtm.consumer.jobs import job as job_named
from rtm.consumer.runner import JobContext, run_batch, run_stream

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "app" / "rtm" / "sample"
JOBS = tuple(j.name for j in catalogue().jobs)
QUERY_TIMEOUT = 300
# Malformed rows appended to the CSVs: (file, raw line, part of the reason).
BAD_ROWS = (
    ("cpu_data.csv", "2025-01-01T00:01:00Z,srv-01,150", "above the maximum"),
    ("cpu_data.csv", "2025-01-01T00:01:00Z,srv-02", "expected 3 fields, got 2"),
    ("mem_data.csv", "2025-01-01T00:01:00Z,srv-01,lots", "not a number"),
    ("net_data.csv", "last tuesday,srv-01,1,2", "not an ISO-8601 timestamp"),
    ("disk_data.csv", "2025-01-01T00:01:00Z,srv-03,-4,1,1", "negative"),
    ("disk_data.csv", "2025-01-01T00:01:00Z,,50,1,1", "missing field(s): server_id"),
    # One record from the future would move the watermark to the year 9999.
    ("cpu_data.csv", "9999-12-31T00:00:00Z,srv-01,50.0", "days in the future"),
)
# Lines that are not text: (file, bytes, how the dead letter shows them, part of the reason).
BAD_BYTES = (
    ("mem_data.csv", b"2025-01-01T00:01:09Z,web-\xff,50.0", "2025-01-01T00:01:09Z,web-\\xff,50.0",
     "not UTF-8 text: byte 0xff at column 26"),
    ("net_data.csv", b"2025-01-01T00:01:09Z,srv-01," + b"9" * 70_000 + b",1",
     "2025-01-01T00:01:09Z,srv-01," + "9" * 172 + "...", "longer than 65536 bytes"),
)  # fmt: skip
# Records that are not valid JSON or do not fit the schema, sent straight to the topics.
GARBAGE = (
    ("cpu", b"not json at all", "not a JSON object"),
    ("mem", b'{"server_id": "srv-01", "ts": "2025-01-01T00:01:00Z"}', "missing field mem_pct"),
    (
        "net",
        b'{"server_id": "srv-01", "ts": "noon", "net_in_bytes_per_s": 1, "net_out_bytes_per_s": 2}',
        "ts: not an ISO-8601 timestamp",
    ),
    ("disk", b"[1, 2, 3]", "not a JSON object"),
    (
        "mem",
        b'{"server_id": "srv-01", "ts": "9999-12-31T00:00:00Z", "mem_pct": 50}',
        "ts: {days} days in the future",
    ),
)


def _reason(template: str) -> str:
    """The reason of a GARBAGE record, with the days until 9999-12-31 filled in (as of now)."""
    days = (datetime(9999, 12, 31, tzinfo=UTC) - datetime.now(UTC)).days
    return template.format(days=days)


def _copy_sample(target: Path, bad_rows: bool) -> Path:
    shutil.copytree(SAMPLE, target, ignore=shutil.ignore_patterns("*.json"))
    if bad_rows:
        for name, line, _reason in BAD_ROWS:
            with (target / name).open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        for name, data, _shown, _reason in BAD_BYTES:
            with (target / name).open("ab") as handle:
                handle.write(data + b"\n")
    return target


def _send_garbage(pipe: Pipeline) -> None:
    producer = KafkaProducer(bootstrap_servers=pipe.broker.bootstrap)
    for kind, value, _reason in GARBAGE:
        producer.send(pipe.topic(kind), value).get(timeout=30)
    producer.close()


@pytest.fixture(scope="module")
def published(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """The sample data plus malformed rows, produced once; garbage sent to the topics."""
    pipe = Pipeline(broker, tmp_path_factory.mktemp("main"), "main")
    pipe.create_topics()
    workdir = pipe.workdir
    data = _copy_sample(workdir / "csv", bad_rows=True)
    result = pipe.produce(data)
    assert result.returncode == 0, result.stderr
    assert f"malformed={len(BAD_ROWS) + len(BAD_BYTES)}" in result.stderr
    assert "Traceback" not in result.stderr
    _send_garbage(pipe)
    return pipe


def _by_id(alerts: list[dict]) -> dict[str, dict]:
    ids = [a["alert_id"] for a in alerts]
    assert len(ids) == len(set(ids)), "an alert was written twice"
    return {a["alert_id"]: a for a in alerts}


def assert_alerts(got: list[dict], expected: list[dict]) -> None:
    got_by_id, want_by_id = _by_id(got), _by_id(expected)
    assert sorted(got_by_id) == sorted(want_by_id)
    for alert_id, want in want_by_id.items():
        have = got_by_id[alert_id]
        for key, value in want.items():
            if key == "value":
                assert math.isclose(have[key], value, rel_tol=1e-9), (alert_id, have, want)
            else:
                assert have[key] == value, (key, have, want)


def assert_aggregates(rows: list[dict], data_dirs: list[Path], job: str) -> None:
    want = aggregates(data_dirs, job)
    got = {(r["server_id"], r["metric"], r["window_start"]): r for r in rows}
    assert len(got) == len(rows), "an aggregate was written twice"
    want_keys = {
        (server, metric, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)))
        for server, metric, start in want
    }
    assert set(got) == want_keys
    for (server, metric, start), (value, samples) in want.items():
        row = got[(server, metric, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)))]
        assert row["samples"] == samples
        assert math.isclose(row["value"], value, rel_tol=1e-9)


def _clean(pipe: Pipeline) -> list[Path]:
    return [pipe.workdir / "csv"]


def _context(config: Path, job: str, mode: str) -> JobContext:
    cfg = load(config)
    return JobContext(cfg, cfg.require_consumer(), job_named(job), mode)


def test_producer_publishes_the_documented_records(published: Pipeline) -> None:
    records = [(k, v) for k, v in published.read("cpu") if isinstance(v, dict)]
    from_producer = [(k, v) for k, v in records if v.get("producer_host") == "it-producer"]
    assert len(from_producer) == 3 * 240  # 3 servers x 4 minutes, every valid row once
    for key, value in from_producer:
        assert set(value) == {"server_id", "ts", "cpu_pct", "producer_host"}
        assert key == value["server_id"]
        assert value["ts"].endswith("Z")


def test_malformed_rows_reach_the_dead_letter_topic(published: Pipeline) -> None:
    letters = [v for _k, v in published.read("dead_letter")]
    assert len(letters) == len(BAD_ROWS) + len(BAD_BYTES)
    got = {(d["source"], d["raw"]): d for d in letters if isinstance(d, dict)}
    for name, line, reason in (*BAD_ROWS, *((n, shown, r) for n, _b, shown, r in BAD_BYTES)):
        letter = got[(name, line)]
        assert reason in letter["reason"]
        assert letter["line"] > 1
        assert letter["producer_host"] == "it-producer"


@pytest.mark.parametrize("job", JOBS)
def test_batch_mode_gives_the_reference_alerts_and_quarantines_garbage(
    published: Pipeline, spark: SparkSession, job: str
) -> None:
    run_batch(spark, _context(published.config(), job, "batch"))
    assert_alerts(published.alerts(job, "batch"), expected_alerts(_clean(published), job))
    assert_aggregates(
        read_jsonl(published.output / job / "batch" / "aggregates"), _clean(published), job
    )
    quarantine = read_jsonl(published.output / job / "batch" / "quarantine")
    topics = {published.topic(k.name) for k in job_named(job).kinds}
    want = sorted(
        (published.topic(kind), value.decode(), _reason(reason))
        for kind, value, reason in GARBAGE
        if published.topic(kind) in topics
    )
    assert sorted((q["topic"], q["value"], q["reason"]) for q in quarantine) == want


@pytest.mark.parametrize("job", JOBS)
def test_streaming_gives_the_same_alerts_as_batch(
    published: Pipeline, spark: SparkSession, job: str
) -> None:
    ctx = _context(published.config(), job, "stream")
    run_stream(spark, ctx, available_now=True, timeout=QUERY_TIMEOUT)
    expected = expected_alerts(_clean(published), job)
    assert_alerts(published.alerts(job, "stream"), expected)
    assert_aggregates(
        read_jsonl(published.output / job / "stream" / "aggregates"), _clean(published), job
    )
    quarantined = read_jsonl(published.output / job / "stream" / "quarantine")
    topics = {published.topic(k.name) for k in job_named(job).kinds}
    assert len(quarantined) == sum(published.topic(kind) in topics for kind, _v, _r in GARBAGE)
    # The alerts topic is at-least-once: after de-duplication by alert_id it holds the same set.
    in_topic = {v["alert_id"] for _k, v in published.read("alerts") if isinstance(v, dict)}
    assert {a["alert_id"] for a in expected} <= in_topic
    every_job = {a["alert_id"] for j in JOBS for a in expected_alerts(_clean(published), j)}
    assert in_topic <= every_job
    # The job's own progress report (what fab status reads): it has read every topic to its end.
    progress = json.loads((published.output / job / "stream" / "progress.json").read_text())
    assert progress["job"] == job
    assert progress["offsets"] == {t: end_offsets(published.broker.bootstrap, t) for t in topics}
    # And the recent batches the benchmarks read: when each ran, how long it took.
    assert progress["recent"][-1][0] == progress["batch_at"]
    assert all(isinstance(ms, int) and ms >= 0 for _at, ms, _rows in progress["recent"])


def _sample_cut() -> str:
    """An event time inside the cpu_mem job's alerting windows, with half its alerts final
    before it (their windows end a watermark and a few seconds earlier)."""
    alerts = expected_alerts([SAMPLE], "cpu_mem")
    ends = sorted(datetime.fromisoformat(str(a["window_end"])) for a in alerts)
    cut = ends[len(ends) // 2] + timedelta(seconds=WATERMARK + 5)
    return cut.strftime("%Y-%m-%dT%H:%M:%SZ")


def _split_sample(workdir: Path) -> tuple[Path, Path]:
    """The sample cut in two inside alerting windows: two CSV sets."""
    first, second = workdir / "first", workdir / "second"
    first.mkdir()
    second.mkdir()
    cut = _sample_cut()
    for path in SAMPLE.glob("*.csv"):
        header, *rows = path.read_text(encoding="utf-8").splitlines()
        early = [r for r in rows if r < cut]
        late = [r for r in rows if r >= cut]
        (first / path.name).write_text("\n".join([header, *early]) + "\n", encoding="utf-8")
        (second / path.name).write_text("\n".join([header, *late]) + "\n", encoding="utf-8")
    return first, second


def test_a_silent_servers_windows_close_when_the_others_move_the_watermark(
    pipeline_factory: Callable[[str], Pipeline], spark: SparkSession
) -> None:
    """The per-server timers: a server that stops sending is not left with open windows."""
    pipe = pipeline_factory("silent")
    producer = KafkaProducer(bootstrap_servers=pipe.broker.bootstrap)
    origin = datetime(2025, 1, 1, tzinfo=UTC)
    for server, seconds, cpu_pct in (("quiet", 20, 95.0), ("busy", 120, 10.0)):
        for second in range(seconds):
            ts = (origin + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%SZ")
            record = {"server_id": server, "ts": ts, "cpu_pct": cpu_pct}
            producer.send(pipe.topic("cpu"), json.dumps(record).encode(), key=server.encode())
    producer.flush(timeout=30)
    producer.close()
    config = pipe.config()

    run_stream(
        spark, _context(config, "cpu_mem", "stream"), available_now=True, timeout=QUERY_TIMEOUT
    )
    run_batch(spark, _context(config, "cpu_mem", "batch"))

    # The quiet server's own clock (00:00:19) closes only [23:59:40, 00:00:10); the watermark,
    # 00:01:59 - 10 s, closes the rest of its windows: their ends plus a second are before it.
    stream, batch = (
        read_jsonl(pipe.output / "cpu_mem" / mode / "aggregates") for mode in ("stream", "batch")
    )
    quiet = sorted(a["window_end"][11:19] for a in stream if a["server_id"] == "quiet")
    assert quiet == ["00:00:10", "00:00:20", "00:00:30", "00:00:40"]
    assert sorted(stream, key=json.dumps) == sorted(batch, key=json.dumps)
    raised = {(a["server_id"], a["window_end"][11:19]) for a in pipe.alerts("cpu_mem", "stream")}
    assert raised == {("quiet", end) for end in quiet}


def test_restarted_stream_resumes_from_its_checkpoint(
    pipeline_factory: Callable[[str], Pipeline], spark: SparkSession
) -> None:
    pipe = pipeline_factory("restart")
    first, second = _split_sample(pipe.workdir)
    assert pipe.produce(first).returncode == 0
    ctx = _context(pipe.config(), "cpu_mem", "stream")
    run_stream(spark, ctx, available_now=True, timeout=QUERY_TIMEOUT)
    after_first = {a["alert_id"] for a in pipe.alerts("cpu_mem", "stream")}
    assert pipe.produce(second).returncode == 0
    run_stream(spark, ctx, available_now=True, timeout=QUERY_TIMEOUT)
    expected = expected_alerts([SAMPLE], "cpu_mem")
    assert_alerts(pipe.alerts("cpu_mem", "stream"), expected)
    first_half = {a["alert_id"] for a in expected_alerts([first], "cpu_mem")}
    assert after_first == first_half
    assert set() < first_half < {a["alert_id"] for a in expected}


def test_an_earlier_rtms_windows_checkpoint_is_taken_over_where_it_stopped(
    pipeline_factory: Callable[[str], Pipeline],
    spark: SparkSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipe = pipeline_factory("takeover")
    first, second = _split_sample(pipe.workdir)
    assert pipe.produce(first).returncode == 0
    ctx = _context(pipe.config(), "cpu_mem", "stream")
    # What earlier rtm left: a windows checkpoint of an aggregation by the global watermark,
    # which Spark cannot resume with the per-server windows, having read the first half.
    earlier = ctx.checkpoint(runner.EARLIER_WINDOWS)
    raw = spark.readStream.format("kafka").options(**runner._source_options(ctx)).load()
    aggregated = (
        raw.withWatermark("timestamp", "10 seconds")
        .groupBy(F.window("timestamp", "30 seconds"), "topic")
        .count()
    )
    query = (
        aggregated.writeStream.outputMode("append")
        .option("checkpointLocation", str(earlier))
        .format("noop")
        .trigger(availableNow=True)
        .start()
    )
    assert query.awaitTermination(QUERY_TIMEOUT), "the earlier query did not finish"
    assert sinks.committed_offsets(earlier) is not None
    assert pipe.produce(second).returncode == 0

    run_stream(spark, ctx, available_now=True, timeout=QUERY_TIMEOUT)

    assert "is from an earlier rtm" in caplog.text
    assert not earlier.exists()
    assert list(earlier.parent.glob(f"{runner.EARLIER_WINDOWS}.replaced-*"))
    # It went on from where the earlier checkpoint stopped: the second half only, once.
    assert_alerts(pipe.alerts("cpu_mem", "stream"), expected_alerts([second], "cpu_mem"))


def test_a_changed_window_size_continues_in_a_new_checkpoint_where_the_old_stopped(
    pipeline_factory: Callable[[str], Pipeline],
    spark: SparkSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipe = pipeline_factory("reshape")
    first, second = _split_sample(pipe.workdir)
    assert pipe.produce(first).returncode == 0
    run_stream(spark, _context(pipe.config(), "cpu_mem", "stream"), available_now=True,
               timeout=QUERY_TIMEOUT)  # fmt: skip
    assert pipe.produce(second).returncode == 0
    narrower = _context(pipe.config(window={"size": "20 seconds"}), "cpu_mem", "stream")

    run_stream(spark, narrower, available_now=True, timeout=QUERY_TIMEOUT)

    assert "holds windows of size 30 s sliding 10 s; the config asks for 20 s" in caplog.text
    assert list(narrower.checkpoint(runner.WINDOWS).parent.glob(f"{runner.WINDOWS}.replaced-*"))
    # The new checkpoint is a new generation of files, of the second half only, once.
    alerts_dir = pipe.output / "cpu_mem" / "stream" / "alerts"
    newer = [json.loads(line) for path in sorted(alerts_dir.glob("part-g0002-*.jsonl"))
             for line in path.read_text().splitlines()]  # fmt: skip
    assert_alerts(newer, expected_alerts([second], "cpu_mem", size=20))


def _consumer(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "rtm.consumer.cli", "--config", str(config), *args]


def test_killed_consumer_process_recovers_without_loss_or_duplicates(published: Pipeline) -> None:
    pipe = Pipeline(published.broker, published.workdir / "killed", published.prefix)
    pipe.workdir.mkdir()
    # Small micro-batches, so the kill lands mid-stream. Partitions advance unevenly by a few
    # seconds of event time between batches; a 30 s watermark keeps such rows from being late.
    config = pipe.config(max_offsets_per_trigger=400, window={"watermark": "30 seconds"})
    aggregates_dir = pipe.output / "net_disk" / "stream" / "aggregates"
    proc = subprocess.Popen(
        _consumer(config, "--job", "net_disk"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while not list(aggregates_dir.glob("part-*.jsonl")):
            assert proc.poll() is None, f"consumer exited early with {proc.returncode}"
            assert time.monotonic() < deadline, "no micro-batch committed in time"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(PROCESS_TIMEOUT)
    done_before = len(list(aggregates_dir.glob("part-*.jsonl")))
    rerun = subprocess.run(
        _consumer(config, "--job", "net_disk", "--available-now"),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    errors = [line[:1500] for line in rerun.stderr.splitlines() if " ERROR " in line]
    assert rerun.returncode == 0, errors or rerun.stderr[-3000:]
    assert len(list(aggregates_dir.glob("part-*.jsonl"))) > done_before
    expected = expected_alerts(_clean(published), "net_disk", watermark=30)
    assert_alerts(pipe.alerts("net_disk", "stream"), expected)


def test_sigterm_flushes_the_producer_and_exits_cleanly(
    pipeline_factory: Callable[[str], Pipeline],
) -> None:
    pipe = pipeline_factory("term")
    cmd = [sys.executable, "-m", "rtm.producer.cli", "--config", str(pipe.config())]
    proc = subprocess.Popen(
        [*cmd, "--data-dir", str(SAMPLE), "--rate", "50"],
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(PROCESS_TIMEOUT, proc.kill)
    watchdog.start()
    try:
        assert proc.stderr is not None
        seen = []
        # Wait for the first progress line (stats every second): records are flowing.
        while not any("progress: sent=" in line for line in seen[-1:]):
            line = proc.stderr.readline()
            assert line, f"producer ended before its first progress line: {seen}"
            seen.append(line)
        assert proc.poll() is None, "the replay (720 rows per file at 50/s) should still run"
        proc.send_signal(signal.SIGTERM)
        _out, rest = proc.communicate(timeout=PROCESS_TIMEOUT)
    finally:
        watchdog.cancel()
    err = "".join(seen) + rest
    assert proc.returncode == 0, err
    final = next(line for line in err.splitlines() if "final: sent=" in line)
    sent = int(final.split("sent=")[1].split()[0])
    assert "failed=0" in final
    assert "pending=0" in final
    kinds = catalogue().kinds
    in_topics = sum(len(pipe.read(k.name)) for k in kinds)
    assert 0 < in_topics == sent < len(kinds) * 720


def test_live_mode_publishes_host_samples(pipeline_factory: Callable[[str], Pipeline]) -> None:
    pipe = pipeline_factory("live")
    config = pipe.config(producer={"live": {"interval": "200 ms", "server_id": "live-host"}})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtm.producer.cli",
            "--config",
            str(config),
            "--mode",
            "live",
            "--samples",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    fields = {k.name: {m.name for m in k.metrics} for k in catalogue().kinds}
    assert "load" in fields, "the fifth kind is sampled live too"
    for kind, metrics in fields.items():
        records = [v for _k, v in pipe.read(kind)]
        assert len(records) == 2
        for record in records:
            assert isinstance(record, dict)
            assert set(record) == {"server_id", "ts", "producer_host", *metrics}
            assert record["server_id"] == "live-host"
            assert record["ts"].endswith("Z")
            assert all(record[m] >= 0 for m in metrics)
