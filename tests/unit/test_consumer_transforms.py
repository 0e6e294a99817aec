"""The consumer transforms as pure functions on tiny DataFrames (Spark local mode)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pyspark.sql import DataFrame, SparkSession

from rtm.config import Topics, WindowConfig
from rtm.consumer import sinks, stateful, transforms
from rtm.consumer.jobs import job

TOPICS = Topics(
    (
        ("cpu", "c"),
        ("mem", "m"),
        ("net", "n"),
        ("disk", "d"),
        ("load", "l"),
        ("alerts", "alerts"),
        ("dead_letter", "dlq"),
    )
)
WINDOW = WindowConfig(size=30, slide=10, watermark=10, grace=1.0)
EPOCH_2025 = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
MAX_FUTURE = 300.0
THRESHOLDS = {
    "cpu_pct": 85.0,
    "mem_pct": 90.0,
    "net_in_bytes_per_s": 1000.0,
    "load1_per_cpu": 2.0,
    "net_out_bytes_per_s": 1000.0,
    "disk_pct": 90.0,
}


def kafka_rows(spark: SparkSession, rows: list[tuple[str, object]]) -> DataFrame:
    data = [
        (topic, 0, offset, datetime(2025, 1, 1), (v if isinstance(v, str) else json.dumps(v)))
        for offset, (topic, v) in enumerate(rows)
    ]
    df = spark.createDataFrame(
        data, "topic string, partition int, offset long, timestamp timestamp, value string"
    )
    return df.withColumn("value", df["value"].cast("binary"))


def cpu(second: int, value: float, server: str = "s1") -> tuple[str, dict]:
    ts = f"2025-01-01T00:{second // 60:02d}:{second % 60:02d}Z"
    return ("c", {"server_id": server, "ts": ts, "cpu_pct": value, "producer_host": "p"})


def mem(second: int, value: float, server: str = "s1") -> tuple[str, dict]:
    ts = f"2025-01-01T00:{second // 60:02d}:{second % 60:02d}Z"
    return ("m", {"server_id": server, "ts": ts, "mem_pct": value, "producer_host": "p"})


def closed(spark: SparkSession, rows: list[tuple[str, object]], j, newest: int) -> DataFrame:
    """Batch mode's emitted rows for ``rows``, closed by the watermark of an event at second
    ``newest`` (rows parsed, measured, per server)."""
    parsed = transforms.parse(kafka_rows(spark, rows), j, TOPICS, MAX_FUTURE)
    watermark_ms = (EPOCH_2025 + newest - WINDOW.watermark) * 1000
    rules = transforms.rules(j, WINDOW, THRESHOLDS)
    return stateful.batch(transforms.measurements(parsed, j, TOPICS), rules, watermark_ms)


def test_invalid_records_get_a_reason_valid_ones_none(spark: SparkSession) -> None:
    rows = [
        cpu(0, 50.0),
        ("c", "not json"),
        ("c", "[1, 2]"),
        ("c", {"server_id": "s1", "ts": "2025-01-01T00:00:00Z"}),
        ("c", {"server_id": "s1", "ts": "2025-01-01T00:00:00Z", "cpu_pct": "high"}),
        ("c", {"server_id": "s1", "ts": "2025-01-01T00:00:00Z", "cpu_pct": 120}),
        ("m", {"server_id": "s1", "ts": "2025-01-01T00:00:00Z", "mem_pct": -3}),
        ("m", {"server_id": "", "ts": "2025-01-01T00:00:00Z", "mem_pct": 3}),
        ("m", {"server_id": "s1", "ts": "tomorrow", "mem_pct": 3}),
        ("m", {"server_id": "s1", "ts": "2025-01-01 00:00:00", "mem_pct": 3}),
    ]
    parsed = transforms.parse(kafka_rows(spark, rows), job("cpu_mem"), TOPICS, MAX_FUTURE)
    reasons = [r["reason"] for r in parsed.orderBy("offset").collect()]
    assert reasons == [
        None,
        "not a JSON object",
        "not a JSON object",
        "missing field cpu_pct",
        "cpu_pct: not a number",
        "cpu_pct: above 100",
        "mem_pct: negative value",
        "missing field server_id",
        "ts: not an ISO-8601 timestamp",
        "ts: not an ISO-8601 timestamp",
    ]
    bad = transforms.quarantined(parsed, job("cpu_mem")).orderBy("offset").collect()
    assert len(bad) == 9
    assert bad[0]["value"] == "not json"
    assert bad[0]["job"] == "cpu_mem"
    assert bad[0]["topic"] == "c"


def test_windows_average_per_server_and_alert_above_threshold(spark: SparkSession) -> None:
    rows = [cpu(s, 90.0) for s in range(10, 20)] + [cpu(s, 80.0) for s in range(20, 30)]
    rows += [mem(s, 50.0) for s in range(10, 30)] + [cpu(s, 10.0, "s2") for s in range(10, 30)]
    cm = job("cpu_mem")
    emitted = closed(spark, rows, cm, newest=10**6)  # a watermark past every window
    got = {
        (r["server_id"], r["metric"], r["window_start"]): (r["value"], r["samples"])
        for r in transforms.aggregates(emitted, cm).collect()
    }
    assert got[("s1", "cpu_pct", "2025-01-01T00:00:10Z")] == (85.0, 20)
    assert got[("s1", "cpu_pct", "2025-01-01T00:00:00Z")] == (85.0, 20)
    assert got[("s1", "cpu_pct", "2025-01-01T00:00:20Z")] == (80.0, 10)
    assert got[("s1", "cpu_pct", "2024-12-31T23:59:50Z")] == (90.0, 10)
    assert got[("s1", "mem_pct", "2025-01-01T00:00:10Z")] == (50.0, 20)
    assert got[("s2", "cpu_pct", "2025-01-01T00:00:20Z")] == (10.0, 10)
    alerts = transforms.alerts(emitted, cm, THRESHOLDS).collect()
    # 85.0 is not above 85.0: only the window whose average is strictly above alerts
    assert [(a["server_id"], a["window_start"]) for a in alerts] == [("s1", "2024-12-31T23:59:50Z")]
    first = alerts[0]
    assert first["window_end"] == "2025-01-01T00:00:20Z"
    assert first["rule"] == "cpu_pct_avg"
    assert first["value"] == 90.0
    assert first["threshold"] == 85.0
    assert len(first["alert_id"]) == 32


def test_alert_ids_are_deterministic_and_distinct(spark: SparkSession) -> None:
    import hashlib  # noqa: PLC0415

    cm = job("cpu_mem")
    rows = [cpu(s, 99.0) for s in range(0, 40)] + [mem(s, 99.0) for s in range(0, 40)]
    alerts = transforms.alerts(closed(spark, rows, cm, newest=39), cm, THRESHOLDS).collect()
    ids = [a["alert_id"] for a in alerts]
    assert len(ids) == len(set(ids))
    for a in alerts:
        key = f"cpu_mem|{a['rule']}|{a['server_id']}|{a['window_start']}"
        assert a["alert_id"] == hashlib.sha256(key.encode()).hexdigest()[:32]


def test_net_disk_takes_the_maximum(spark: SparkSession) -> None:
    nd = job("net_disk")
    rows: list[tuple[str, object]] = []
    for s in range(0, 10):
        ts = f"2025-01-01T00:00:{s:02d}Z"
        rows.append(
            (
                "n",
                {
                    "server_id": "s1",
                    "ts": ts,
                    "net_in_bytes_per_s": 100.0 * s,
                    "net_out_bytes_per_s": 5.0,
                },
            )
        )
        rows.append(
            (
                "d",
                {
                    "server_id": "s1",
                    "ts": ts,
                    "disk_pct": 91.0 if s == 3 else 50.0,
                    "disk_read_bytes_per_s": 1,
                    "disk_write_bytes_per_s": 2,
                },
            )
        )
    rows.append(("d", {"server_id": "s1", "ts": "2025-01-01T00:00:05Z", "disk_pct": 50}))
    parsed = transforms.parse(kafka_rows(spark, rows), nd, TOPICS, MAX_FUTURE)
    assert parsed.where("reason is not null").count() == 1  # the disk row lacking I/O fields
    emitted = closed(spark, rows, nd, newest=10**6)
    window = transforms.aggregates(emitted, nd).where("window_start = '2025-01-01T00:00:00Z'")
    got = {r["metric"]: r["value"] for r in window.collect()}
    assert got == {"net_in_bytes_per_s": 900.0, "net_out_bytes_per_s": 5.0, "disk_pct": 91.0}
    raised = transforms.alerts(emitted, nd, THRESHOLDS).collect()
    assert {a["rule"] for a in raised} == {"disk_pct_max"}
    # At the crossing sample, once per window holding it: its value, the samples until then.
    assert sorted((a["window_start"], a["value"], a["samples"]) for a in raised) == [
        ("2024-12-31T23:59:40Z", 91.0, 4),
        ("2024-12-31T23:59:50Z", 91.0, 4),
        ("2025-01-01T00:00:00Z", 91.0, 4),
    ]


def test_batch_closes_a_window_by_its_servers_clock_or_past_the_watermark(
    spark: SparkSession,
) -> None:
    cm = job("cpu_mem")
    rows = [cpu(s, 50.0) for s in range(0, 61)]  # s1's last event at 00:01:00
    rows += [cpu(s, 50.0, "quiet") for s in range(0, 21)]  # silent after 00:00:20
    ends = {
        (r["server_id"], r["window_end"])
        for r in transforms.aggregates(closed(spark, rows, cm, newest=60), cm).collect()
    }
    # s1's clock (00:01:00) is a second's grace past the ends up to 00:00:50 (not 00:01:00);
    # the quiet server's windows close once their end plus the grace is before the watermark,
    # 00:00:50: up to 00:00:40 (00:00:50 + 1 s is not before it).
    assert sorted(e for s, e in ends if s == "s1") == [
        f"2025-01-01T00:00:{t}0Z" for t in range(1, 6)
    ]
    assert sorted(e for s, e in ends if s == "quiet") == [
        f"2025-01-01T00:00:{t}0Z" for t in range(1, 5)
    ]


def test_a_record_from_the_future_is_quarantined_with_how_far_ahead(spark: SparkSession) -> None:
    rows = [
        cpu(0, 50.0),
        ("c", {"server_id": "s1", "ts": "9999-12-31T00:00:00Z", "cpu_pct": 50.0}),
        ("m", {"server_id": "s1", "ts": "9999-12-31T00:00:00Z", "mem_pct": 500}),
    ]
    parsed = transforms.parse(kafka_rows(spark, rows), job("cpu_mem"), TOPICS, MAX_FUTURE)
    reasons = [r["reason"] for r in parsed.orderBy("offset").collect()]
    assert reasons[0] is None
    assert reasons[1].startswith("ts: ")
    assert reasons[1].endswith(" days in the future")
    assert int(reasons[1].split()[1]) > 2_900_000  # about 8,000 years
    assert reasons[2].startswith("ts: ")
    assert reasons[2].endswith(" days in the future; mem_pct: above 100")
    measured = transforms.measurements(parsed, job("cpu_mem"), TOPICS)
    assert measured.count() == 1


def test_one_pass_writes_the_aggregates_and_alerts_files_in_order(
    spark: SparkSession, tmp_path
) -> None:
    cm = job("cpu_mem")
    rows = [cpu(s, 99.0 if s < 20 else 10.0) for s in range(0, 60)]
    rows += [mem(s, 95.0, "s2") for s in range(0, 60)] + [mem(s, 20.0) for s in range(0, 60)]
    emitted = closed(spark, rows, cm, newest=10**6)
    files = tmp_path / "aggregates.jsonl", tmp_path / "alerts.jsonl"
    (tmp_path / "alerts.jsonl").write_text("stale\n")

    raised = sinks.write_windows(transforms.window_lines(emitted, cm, THRESHOLDS), *files)

    written = [[json.loads(x) for x in f.read_text().splitlines()] for f in files]
    reports = [r.asDict() for r in transforms.aggregates(emitted, cm).collect()]
    alerts = [a.asDict() for a in transforms.alerts(emitted, cm, THRESHOLDS).collect()]

    def order(row: dict) -> tuple:
        return row["window_start"], row["server_id"], row["metric"]

    assert written[0] == sorted(reports, key=order)
    assert written[1] == sorted(alerts, key=order)
    assert {a["server_id"] for a in alerts} == {"s1", "s2"}
    assert [(key, json.loads(line)) for key, line in raised] == [
        (a["server_id"], a) for a in written[1]
    ]
    # a batch without alerts leaves no alerts file, and removes one a replay left behind
    calm = closed(spark, [cpu(s, 10.0) for s in range(0, 60)], cm, newest=10**6)
    assert sinks.write_windows(transforms.window_lines(calm, cm, THRESHOLDS), *files) == []
    assert files[0].exists()
    assert not files[1].exists()


def test_a_checkpoints_committed_offsets_are_its_newest_committed_batchs(tmp_path) -> None:
    assert sinks.committed_offsets(tmp_path / "none") is None
    offsets, commits = tmp_path / "offsets", tmp_path / "commits"
    offsets.mkdir()
    commits.mkdir()
    assert sinks.committed_offsets(tmp_path) is None
    meta = '{"batchWatermarkMs":0,"batchTimestampMs":1}'
    (offsets / "9").write_text("\n".join(["v1", meta, '{"c":{"0":3,"1":7}}']))
    # Two sources (rtm once read a job's topics once per metric): the lower offset of each.
    two = ['{"c":{"0":5,"1":9},"m":{"0":4}}', '{"c":{"0":6,"1":8},"m":{"0":4}}']
    (offsets / "10").write_text("\n".join(["v1", meta, *two]))
    (offsets / "11").write_text("\n".join(["v1", meta, '{"c":{"0":99,"1":99}}']))  # planned only
    for batch in (9, 10):
        (commits / str(batch)).write_text("v1\n{}")
    (commits / ".10.crc").write_text("")
    assert sinks.committed_offsets(tmp_path) == {"c": {"0": 5, "1": 8}, "m": {"0": 4}}
    (commits / "11").write_text("v1\n{}")
    (offsets / "11").write_text("not an offsets file")
    with pytest.raises(RuntimeError, match="11: not a Spark offsets file"):
        sinks.committed_offsets(tmp_path)
