"""Nothing accepted is lost, against a real broker and real Spark: a broker outage longer than
the delivery timeout, a stop in the middle of one, and a deleted checkpoint."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from itutil import PROCESS_TIMEOUT, Pipeline, read_jsonl
from pyspark.sql import SparkSession
from test_pipeline_integration import (
    QUERY_TIMEOUT,
    SAMPLE,
    _context,
    _split_sample,
    assert_alerts,
)

from reference_alerts import expected_alerts
from rtm.catalogue import catalogue
from rtm.consumer.runner import WINDOWS, run_stream
from rtm.producer.publisher import SPOOL_FILE
from rtm.producer.workers import spool_dir_of

METRIC_KINDS = tuple(k.name for k in catalogue().kinds)
# Short timeouts, so that an outage of a few seconds outlasts the delivery timeout a few times.
FAST_EXPIRY = {"request_timeout": "2 seconds", "delivery_timeout": "4 seconds", "linger_ms": 20}
# Longer than the 15 s without an acknowledgement after which the producer reports an outage.
OUTAGE = 20.0


def _sample_rows() -> int:
    """Data rows in the sample, every kind's file (one header line each)."""
    return sum(
        len((SAMPLE / kind.csv_name).read_text(encoding="utf-8").splitlines()) - 1
        for kind in catalogue().kinds
    )


def _producer(config: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "rtm.producer.cli", "--config", str(config), *args]
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)


def _wait_for_line(proc: subprocess.Popen[str], needle: str, seen: list[str]) -> None:
    assert proc.stderr is not None
    while not any(needle in line for line in seen):
        line = proc.stderr.readline()
        assert line, f"the producer ended before logging {needle!r}: {''.join(seen)[-3000:]}"
        seen.append(line)


def _finish(proc: subprocess.Popen[str], seen: list[str]) -> str:
    watchdog = threading.Timer(PROCESS_TIMEOUT, proc.kill)
    watchdog.start()
    try:
        _out, rest = proc.communicate(timeout=PROCESS_TIMEOUT)
    finally:
        watchdog.cancel()
    return "".join(seen) + rest


def _spooled_state(pipe: Pipeline, spooled: int) -> dict:
    """state.json after a stop during an outage: what was taken is acknowledged or spooled."""
    state = json.loads((pipe.workdir / "state.json").read_text(encoding="utf-8"))
    assert state["spooled"] == spooled
    assert state["submitted"] == state["sent"] + spooled
    return state


def _one_live_sample(config: Path) -> str:
    """Run the producer for one live sample (it sends any spool first); its log."""
    again = subprocess.run(
        [sys.executable, "-m", "rtm.producer.cli", "--config", str(config), "--mode", "live",
         "--samples", "1"],
        capture_output=True, text=True, timeout=PROCESS_TIMEOUT, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-4000:]
    return again.stderr


def _records(pipe: Pipeline) -> Counter[tuple[str, str, str]]:
    """How often each (kind, server, event time) is in the metric topics."""
    return Counter(
        (kind, value["server_id"], value["ts"])
        for kind in METRIC_KINDS
        for _key, value in pipe.read(kind)
        if isinstance(value, dict)
    )


def _replay_through_an_outage(pipe: Pipeline, delivery: dict[str, object]) -> tuple[str, str]:
    """Replay the sample while the broker is down for OUTAGE seconds; the log and final line."""
    config = pipe.config(producer={"delivery": delivery, "spool_dir": str(pipe.workdir)})
    # 720 rows per file at 30 rows/s: the replay runs for about 24 s, the outage in its middle.
    proc = _producer(config, "--data-dir", str(SAMPLE), "--rate", "30")
    seen: list[str] = []
    _wait_for_line(proc, "progress: sent=", seen)
    with pipe.broker.stopped():
        time.sleep(OUTAGE)
    log = _finish(proc, seen)
    assert proc.returncode == 0, log[-4000:]
    final = next(line for line in log.splitlines() if "final: sent=" in line)
    assert "failed=0" in final, final
    assert "dropped=0" in final, final
    # The outage in a few lines: lost, reachable again, backlog sent; not a line per retry.
    assert log.count("brokers not acknowledging") == 1, log[-4000:]
    assert log.count("brokers acknowledge again") == 1, log[-4000:]
    assert log.count("backlog sent") == 1, log[-4000:]
    assert len([line for line in log.splitlines() if " ERROR kafka" in line]) < 20
    return log, final


def test_a_broker_outage_loses_and_duplicates_no_record(
    pipeline_factory: Callable[[str], Pipeline],
) -> None:
    pipe = pipeline_factory("outage")
    _log, final = _replay_through_an_outage(pipe, {})  # the default delivery settings
    counts = _records(pipe)
    assert len(counts) == _sample_rows(), "a record is missing"
    assert set(counts.values()) == {1}, [k for k, n in counts.items() if n > 1][:5]
    assert " resent=0" in final, final


def test_an_outage_longer_than_the_delivery_timeout_loses_no_record(
    pipeline_factory: Callable[[str], Pipeline],
) -> None:
    pipe = pipeline_factory("expiry")
    _log, final = _replay_through_an_outage(pipe, FAST_EXPIRY)
    assert " resent=0" not in final, "no send expired: the outage did not outlast the timeout"
    counts = _records(pipe)
    # Every record is there; one the broker had written just before it stopped may be there
    # twice (a batch that expired is sent again as a new one).
    assert len(counts) == _sample_rows(), "a record is missing"


def test_a_stop_during_an_outage_spools_what_waits_and_the_next_start_sends_it_first(
    pipeline_factory: Callable[[str], Pipeline],
) -> None:
    pipe = pipeline_factory("spool")
    config = pipe.config(
        producer={
            "spool_dir": str(pipe.workdir),
            "stop_timeout": "1 second",
            "live": {"interval": "100 ms", "server_id": "live-host"},
        }
    )
    proc = _producer(config, "--mode", "live")
    seen: list[str] = []
    _wait_for_line(proc, "progress: sent=", seen)
    with pipe.broker.stopped():
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        log = _finish(proc, seen)
        assert proc.returncode == 0, log[-4000:]
        spool = pipe.workdir / SPOOL_FILE
        lines = spool.read_text(encoding="utf-8").splitlines()
        spooled = len(lines)
        assert spooled > 0, log[-3000:]
        in_spool = {
            (kind, record["server_id"], record["ts"])
            for line in lines
            for item in [json.loads(line)]
            for record in [json.loads(item["value"])]
            for kind in METRIC_KINDS
            if pipe.topic(kind) == item["topic"]
        }
        state = _spooled_state(pipe, spooled)
    again = _one_live_sample(config)
    assert f"sending {spooled} record(s) spooled by the previous run" in again
    assert not spool.exists()
    counts = _records(pipe)
    # Everything the first run took (acknowledged or spooled) and the new sample's four
    # records, each at least once.
    assert in_spool <= set(counts)
    assert len(counts) == state["submitted"] + len(METRIC_KINDS), "a record is missing"
    assert {k for k in counts if k[2] > max(r[2] for r in in_spool)}, "the new sample is missing"
    # At-least-once at a stop during an outage: a record written as the broker went away, its
    # acknowledgement lost, may be there twice; never more of them than were waiting.
    assert len([k for k, n in counts.items() if n > 1]) <= spooled


def test_a_replay_shared_among_processes_sends_every_record_once_in_each_servers_order(
    pipeline_factory: Callable[[str], Pipeline],
) -> None:
    pipe = pipeline_factory("processes")
    config = pipe.config(producer={"spool_dir": str(pipe.workdir)})
    # What a stopped run with more processes spooled: no process of this run has it as its own.
    left = {"server_id": "left-over", "ts": "2025-01-01T00:00:00Z", "cpu_pct": 1.0}
    spooled = {"topic": pipe.topic("cpu"), "key": "left-over", "value": json.dumps(left)}
    left_dir = spool_dir_of(pipe.workdir, 5)
    left_dir.mkdir()
    (left_dir / SPOOL_FILE).write_text(json.dumps(spooled | {"ts": left["ts"]}) + "\n")
    proc = _producer(config, "--data-dir", str(SAMPLE), "--as-fast-as-possible", "--processes", "2")
    log = _finish(proc, [])
    assert proc.returncode == 0, log[-4000:]
    counts = _records(pipe)
    assert len(counts) == _sample_rows() + 1, "a record is missing"
    assert set(counts.values()) == {1}, [k for k, n in counts.items() if n > 1][:5]
    assert ("cpu", "left-over", left["ts"]) in counts
    assert not left_dir.exists()
    # A server's records of a kind leave one process: in the file's order in their partition.
    for kind in METRIC_KINDS:
        times: dict[str, list[str]] = {}
        for _key, value in pipe.read(kind):
            assert isinstance(value, dict)
            times.setdefault(value["server_id"], []).append(value["ts"])
        assert all(ts == sorted(ts) for ts in times.values()), kind
    # Both processes sent their share, and state.json adds their counts up for fab status.
    shares = [int(n) for n in re.findall(r"servers \d/2 final: sent=(\d+)", log)]
    assert len(shares) == 2, log[-4000:]
    assert all(shares), shares
    state = json.loads((pipe.workdir / "state.json").read_text(encoding="utf-8"))
    assert (state["processes"], state["sent"], state["failed"]) == (2, _sample_rows(), 0)


def test_a_shared_replay_stopped_during_an_outage_spools_per_process_and_loses_nothing(
    pipeline_factory: Callable[[str], Pipeline],
) -> None:
    pipe = pipeline_factory("procspool")
    config = pipe.config(producer={"spool_dir": str(pipe.workdir), "stop_timeout": "1 second"})
    proc = _producer(config, "--data-dir", str(SAMPLE), "--rate", "30", "--processes", "2")
    seen: list[str] = []
    _wait_for_line(proc, "progress: sent=", seen)
    with pipe.broker.stopped():
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)  # to the first process only: it passes the stop on
        log = _finish(proc, seen)
        assert proc.returncode == 0, log[-4000:]
        spools = [spool_dir_of(pipe.workdir, i) / SPOOL_FILE for i in range(2)]
        spooled = sum(len(p.read_text().splitlines()) for p in spools if p.exists())
        assert spooled > 0, log[-3000:]
        state = _spooled_state(pipe, spooled)
        assert state["processes"] == 2
    # One process now (a live sample): it sends both processes' spools before anything else.
    again = _one_live_sample(config)
    assert not any(spool_dir_of(pipe.workdir, i).exists() for i in range(2)), again[-3000:]
    counts = _records(pipe)
    # Everything the shared replay took (acknowledged or spooled) and the live sample's records.
    assert len(counts) == state["submitted"] + len(METRIC_KINDS), "a record is missing"


def test_a_deleted_checkpoint_keeps_the_earlier_alert_files(
    pipeline_factory: Callable[[str], Pipeline], spark: SparkSession
) -> None:
    pipe = pipeline_factory("reset")
    first, second = _split_sample(pipe.workdir)
    assert pipe.produce(first).returncode == 0
    ctx = _context(pipe.config(), "cpu_mem", "stream")
    run_stream(spark, ctx, available_now=True, timeout=QUERY_TIMEOUT)
    alerts_dir = pipe.output / "cpu_mem" / "stream" / "alerts"
    earlier = {p.name: p.read_bytes() for p in alerts_dir.glob("part-*.jsonl")}
    assert earlier, "the first half raised no alert: nothing to keep"
    # The recovery when retention removed offsets a checkpoint needs: delete it, start again.
    shutil.rmtree(ctx.checkpoint(WINDOWS))
    assert pipe.produce(second).returncode == 0
    run_stream(spark, ctx, available_now=True, timeout=QUERY_TIMEOUT)
    now = {p.name: p.read_bytes() for p in alerts_dir.glob("part-*.jsonl")}
    assert {name: now.get(name) for name in earlier} == earlier, "an earlier file was changed"
    assert set(now) > set(earlier), "the new checkpoint wrote no alert file of its own"
    # Every alert is still found, once per alert id after de-duplication.
    by_id = {a["alert_id"]: a for a in read_jsonl(alerts_dir)}
    assert_alerts(list(by_id.values()), expected_alerts([SAMPLE], "cpu_mem"))
