"""End-to-end alert latency: event time of a metric to its alert on the alerts topic.

For N simulated servers (bench.loadgen) the benchmark reads the alerts topic from its end,
keeps this run's alerts (server ids carry a run id, so nothing clashes with other data) and
computes for each alert its Kafka record timestamp minus the window end, and minus the newest
event time in that window. ``fab status --json`` is sampled meanwhile for the consumer jobs'
lag (end offsets against the offsets in their Spark checkpoints).
"""

from __future__ import annotations

import bisect
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from kafka import TopicPartition

from bench.lab import BenchError, Target, producer_stopped, run, tool
from bench.loadgen import KINDS, LoadResult, Plan, run_load
from bench.report import Section
from bench.stats import percentile
from rtm import kafka_client
from rtm.catalogue import catalogue
from rtm.config import parse_duration
from rtm.health import hostprobe
from rtm.records import parse_ts

log = logging.getLogger(__name__)

# The three sizes, and one between where the pipeline stops reacting in seconds.
SIZES = (100, 1000, 2500, 5000)
REACTION = 10.0  # seconds, p95 alert - evidence: the bound of "real time" for the ceiling
CONFIG_FILE = "/etc/rtm/rtm.yml"  # rtm_app_config_file
JOB_KINDS = {j.name: len(j.kinds) for j in catalogue().jobs}  # metric topics each job reads
_BEHIND = re.compile(r"(\d+) records behind")


@dataclass(frozen=True)
class Timing:
    seconds: int  # of load per run
    drain: int  # after the load, for alerts of the last closed windows
    catch_up: int  # at most, before a run, for the consumers to work off earlier load
    warm_up: int  # of unmeasured load before the first run


# Only windows ending at least the watermark delay before the load stops are final during the
# run (event time stops moving with the load), so a run must be well over window + watermark.
FULL = Timing(seconds=90, drain=75, catch_up=240, warm_up=120)
QUICK = Timing(seconds=45, drain=45, catch_up=90, warm_up=30)
WARM_UP_SERVERS = 1000


def latencies(
    alerts: Iterable[tuple[float, dict[str, Any]]], ticks: Sequence[float]
) -> list[tuple[str, float, float]]:
    """(job, alert time - window end, alert time - its evidence) per alert.

    The evidence is the sample that made the alert certain: for an AVG rule the window's newest
    sample; for a MAX rule the first one above the threshold, the alert's ``samples``-th of
    the window (the load sends one per server per tick)."""
    found = []
    for alert_time, body in alerts:
        start = parse_ts(str(body["window_start"])).timestamp()
        end = parse_ts(str(body["window_end"])).timestamp()
        first, newest = bisect.bisect_left(ticks, start), bisect.bisect_left(ticks, end) - 1
        if newest < first:
            continue  # no event of this run in the window: not this run's alert
        evidence = newest
        if body.get("aggregation") == "max":
            evidence = min(newest, first + max(int(body.get("samples") or 1), 1) - 1)
        found.append((str(body.get("job")), alert_time - end, alert_time - ticks[evidence]))
    return found


def lag_by_job(status: dict[str, Any]) -> dict[str, int]:
    """Records behind per consumer job, from ``fab status --json``."""
    found = {}
    for checks in status.get("hosts", {}).values():
        for check in checks:
            name = str(check.get("name", ""))
            if name.endswith(" lag") and (m := _BEHIND.search(str(check.get("detail", "")))):
                found[name.removesuffix(" lag")] = int(m[1])
    return found


def keeps_up(samples: Sequence[tuple[float, int]], input_rate: float, period: float) -> bool:
    """Lag bounded: never more than about three micro-batches of the input during the load.

    ``period`` is how often a micro-batch starts: the trigger interval, or the batches' own
    duration when they take longer and run back to back. Lag is a saw-tooth (it grows between
    micro-batches, then drops), so sampled lag is judged against what a consumer that keeps up
    can be behind, not by its trend.
    """
    return bool(samples) and max(v for _, v in samples) <= 3 * input_rate * period


def catch_up_seconds(
    samples: Sequence[tuple[float, dict[str, int]]], load_end: float
) -> float | None:
    """Seconds after the load ended until every job's lag was 0; None if it never was."""
    for t, lag in samples:
        if t >= load_end and lag and not any(lag.values()):
            return t - load_end
    return None


def fab_status(target: Target) -> dict[str, Any] | None:
    cmd = [tool("fab"), "status", "--inventory", str(target.inventory), "--json"]
    try:
        result = run(cmd, timeout=90)
    except BenchError as exc:
        log.warning("%s", exc)
        return None
    start = result.stdout.find("{")
    try:
        return json.loads(result.stdout[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        return None


class AlertReader(threading.Thread):
    """Reads the alerts topic from its current end; keeps this run's alerts by alert_id."""

    def __init__(self, target: Target, topic: str, prefix: str) -> None:
        super().__init__(name="alert-reader", daemon=True)
        self.alerts: dict[str, tuple[float, dict[str, Any]]] = {}
        self.stop = threading.Event()
        self._prefix = prefix
        self._consumer = kafka_client.consumer(
            target.layout.connection(), enable_auto_commit=False, group_id=None
        )
        parts = sorted(self._consumer.partitions_for_topic(topic) or ())
        if not parts:
            raise BenchError(f"topic {topic} does not exist; is the pipeline deployed?")
        partitions = [TopicPartition(topic, p) for p in parts]
        self._consumer.assign(partitions)
        self._consumer.seek_to_end(*partitions)
        for tp in partitions:
            self._consumer.position(tp)  # resolve the end now, before any load is sent

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for records in self._consumer.poll(timeout_ms=500).values():
                    for record in records:
                        self._keep(record.timestamp / 1000, record.value)
        finally:
            self._consumer.close()

    def _keep(self, when: float, value: bytes) -> None:
        try:
            body = json.loads(value)
        except ValueError:
            return
        if str(body.get("server_id", "")).startswith(self._prefix):
            self.alerts.setdefault(str(body.get("alert_id")), (when, body))


class LagSampler(threading.Thread):
    """Samples the consumer jobs' lag with ``fab status --json`` every ``interval`` seconds."""

    def __init__(self, target: Target, interval: float) -> None:
        super().__init__(name="lag-sampler", daemon=True)
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.stop = threading.Event()
        self._target = target
        self._interval = interval

    def run(self) -> None:
        start = time.monotonic()
        while not self.stop.is_set():
            status = fab_status(self._target)
            if status is not None:
                self.samples.append((time.monotonic() - start, lag_by_job(status)))
            self.stop.wait(self._interval)


def batch_seconds(target: Target, since: float, until: float) -> dict[str, list[float]]:
    """Per job, how long its micro-batches that ran between ``since`` and ``until`` (epoch
    seconds) took, from the progress reports on the consumer hosts (read as fab status does)."""
    found: dict[str, list[float]] = {}
    for address in target.addresses("consumers"):
        result = target.ssh(address, hostprobe.command([], sudo=False), timeout=60)
        if result.returncode != 0:
            log.warning("progress of %s: %s", address, result.output.strip()[:300])
            continue
        for job, progress in hostprobe.parse(result.stdout).progress.items():
            found.setdefault(job, []).extend(
                ms / 1000
                for at, ms in progress.recent
                if since <= parse_ts(at).timestamp() <= until
            )
    return found


def _consumer_window(target: Target) -> dict[str, float]:
    """The deployed consumers' trigger interval, grace and watermark in seconds, read from the
    config on the first consumer host (what rtm_app rendered, defaults included)."""
    address = target.addresses("consumers")[0]
    result = target.ssh(address, f"cat {CONFIG_FILE}", timeout=60)
    if result.returncode != 0:
        raise BenchError(f"{address}: cannot read {CONFIG_FILE}: {result.output.strip()[:300]}")
    consumer = yaml.safe_load(result.stdout).get("consumer") or {}
    window, trigger = consumer.get("window") or {}, consumer.get("trigger") or {}
    return {
        "trigger": parse_duration(str(trigger.get("interval", "10 seconds"))) or 10.0,
        "grace": parse_duration(str(window.get("grace", "1 second"))) or 1.0,
        "watermark": parse_duration(str(window.get("watermark", "10 seconds"))) or 10.0,
    }


def wait_for_consumers(target: Target, servers: int, trigger: float, limit: float) -> bool:
    """Wait (at most ``limit`` seconds) until earlier load is worked off; False on time-out."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status = fab_status(target)
        lag = lag_by_job(status) if status else {}
        if lag and all(v <= 2 * servers * trigger * JOB_KINDS.get(j, 2) for j, v in lag.items()):
            return True
        time.sleep(5)
    return False


def metric_topics(target: Target) -> dict[str, str]:
    return {k: target.layout.topic(k) for k in KINDS}


def one_run(target: Target, section: Section, plan: Plan, timing: Timing, trigger: float) -> None:
    reader = AlertReader(target, target.layout.topic("alerts"), plan.prefix)
    sampler = LagSampler(target, interval=max(10.0, trigger))
    topics = metric_topics(target)
    reader.start()
    sampler.start()
    started = time.time()
    try:
        load = run_load(plan, target.layout.connection("producer"), topics, threading.Event())
        time.sleep(timing.drain)
    finally:
        sampler.stop.set()
        reader.stop.set()
        sampler.join(timeout=120)
        reader.join(timeout=30)
    batches = batch_seconds(target, started, time.time())
    periods = {
        job: max([trigger, percentile(s, 50)] if s else [trigger]) for job, s in batches.items()
    }
    _record(section, plan, load, reader=reader, sampler=sampler, periods=periods, trigger=trigger)
    for job, seconds in sorted(batches.items()):
        if seconds:
            for pct in (50, 95):
                section.figure(f"N={plan.servers}: {job} micro-batch p{pct}", "s",
                               "from the query progress, during the run").add(
                    percentile(seconds, pct))  # fmt: skip


def _record(
    section: Section,
    plan: Plan,
    load: LoadResult,
    *,
    reader: AlertReader,
    sampler: LagSampler,
    periods: dict[str, float],
    trigger: float,
) -> None:
    n = plan.servers
    pairs = latencies(reader.alerts.values(), load.ticks)
    section.figure(f"N={n}: records/s sent by the load generator", "records/s",
                   f"target {plan.records_per_second}/s").add(load.rate)  # fmt: skip
    section.figure(f"N={n}: alerts measured", "alerts").add(len(pairs))
    for job in sorted({p[0] for p in pairs}):
        for label, index in (("window end", 1), ("evidence", 2)):
            values = [p[index] for p in pairs if p[0] == job]
            for pct in (50, 95, 99):
                section.figure(f"N={n}: {job} p{pct} alert - {label}", "s").add(
                    percentile(values, pct)
                )
    if (caught_up := catch_up_seconds(sampler.samples, load.seconds)) is not None:
        section.figure(f"N={n}: lag back to 0 after the load", "s",
                       "sampled every ~10 s").add(caught_up)  # fmt: skip
    up = True
    for job, kinds in JOB_KINDS.items():
        # Judged while the load runs: afterwards any consumer catches up.
        series = [(t, lag[job]) for t, lag in sampler.samples if job in lag and t <= load.seconds]
        job_rate = load.rate * kinds / len(KINDS)  # records/s this job reads
        if series:
            highest = max(v for _, v in series)
            section.figure(f"N={n}: max lag {job}", "records").add(highest)
            if job_rate:
                section.figure(f"N={n}: max lag {job}, in seconds of its input", "s",
                               "max lag / records per second the job reads").add(
                    highest / job_rate)  # fmt: skip
        up = up and keeps_up(series, job_rate, periods.get(job, trigger))
    details = section.details.setdefault("runs", [])
    details.append({
        "servers": n,
        "alerts": len(pairs),
        "sent": load.sent,
        "failed": load.failed,
        "late_seconds": load.late_ticks,
        "generator_rate": round(load.rate),
        "target_rate": plan.records_per_second,
        "consumers_keep_up": up,
        "lag_samples": [[round(t), lag] for t, lag in sampler.samples],
    })  # fmt: skip


def measure(target: Target, section: Section, runs: int, quick: bool) -> None:
    timing = QUICK if quick else FULL
    deployed = _consumer_window(target)
    trigger = deployed["trigger"]
    section.settings |= {
        "load_seconds": timing.seconds,
        "drain_seconds": timing.drain,
        "warm_up": f"N={WARM_UP_SERVERS} for {timing.warm_up} s, not measured",
        "trigger_seconds": trigger,
        "grace_seconds": deployed["grace"],
        "watermark_seconds": deployed["watermark"],
        "partitions": int(target.layout.topics["cpu"]["partitions"]),
    }
    # The deployed producer replays the sample into the same topics: stopped meanwhile.
    with producer_stopped(target):
        warm_up(target, timing)
        for n in SIZES:
            for number in range(1, runs + 1):
                if not wait_for_consumers(target, n, trigger, timing.catch_up):
                    log.warning(
                        "consumers still behind after %ds; measuring anyway", timing.catch_up
                    )
                log.info("latency: N=%d, run %d of %d", n, number, runs)
                plan = Plan(servers=n, seconds=timing.seconds, run_id=uuid.uuid4().hex[:8])
                one_run(target, section, plan, timing, trigger)
    _explain(section, trigger)


def warm_up(target: Target, timing: Timing) -> None:
    """Unmeasured load first, so that no size is measured on consumers fresh from a deployment
    that have not yet run a loaded micro-batch."""
    log.info("latency: warm-up, N=%d for %ds (not measured)", WARM_UP_SERVERS, timing.warm_up)
    plan = Plan(servers=WARM_UP_SERVERS, seconds=timing.warm_up, run_id=uuid.uuid4().hex[:8])
    topics = metric_topics(target)
    run_load(plan, target.layout.connection("producer"), topics, threading.Event())


def _explain(section: Section, trigger: float) -> None:
    for n in SIZES:
        rows = [r for r in section.details.get("runs", []) if r["servers"] == n]
        if not rows:
            continue
        reached = min(r["generator_rate"] / r["target_rate"] for r in rows)
        kept = all(r["consumers_keep_up"] for r in rows)
        text = f"N={n}: the load generator reached {reached:.0%} of its target rate"
        text += " (it could not keep up on this machine)" if reached < 0.95 else ""
        text += "; the consumers " + (
            ("kept up with what it sent" if reached < 0.95 else "kept up") + " (lag bounded)."
            if kept
            else "fell behind (lag above three micro-batches of input)."
        )
        section.notes.append(text)
    if (found := ceiling(section)) is not None:
        section.notes.append(found)
    section.notes.append(
        "Floor of the design: an AVG window is final once its server's own newest sample is the"
        " grace past its end; a MAX alert is certain at the first sample above the threshold."
        f" Either is written by the micro-batch (every {trigger:g} s) after the sample arrives."
        " Evidence: the sample that made the alert certain (AVG: the window's newest; MAX: the"
        " first above the threshold), so a MAX alert comes before its window ends."
    )


def ceiling(section: Section) -> str | None:
    """Where this machine stops reacting in seconds, in servers monitored, and what bounds it."""
    jobs = sorted(JOB_KINDS)
    reaction = {}
    for n in SIZES:
        values = [section.median_of(f"N={n}: {job} p95 alert - evidence") for job in jobs]
        if all(v is not None for v in values):
            reaction[n] = max(v for v in values if v is not None)
    if not reaction:
        return None
    within = [n for n, seconds in reaction.items() if seconds <= REACTION]
    beyond = [n for n, seconds in reaction.items() if seconds > REACTION]
    batches = [
        f"{section.median_of(f'N={n}: {job} micro-batch p50'):.1f} s at N={n}"
        for n in reaction
        for job in jobs[:1]
        if section.median_of(f"N={n}: {job} micro-batch p50") is not None
    ]
    text = f"Ceiling: every job's alerts come within {REACTION:g} s of their evidence (p95) "
    text += f"up to N={max(within)} of the sizes measured" if within else "at no size measured"
    if past := [n for n in beyond if not within or n > max(within)]:
        text += f"; at N={min(past)} the slowest job took {reaction[min(past)]:.1f} s"
    text += (
        ". What bounds it is the micro-batch: its duration grows with its input ("
        f"{jobs[0]}: {', '.join(batches)}) while the brokers, the load generator and both jobs"
        " share the machine's cores; an alert waits for the batch running when its evidence"
        " arrives and for the next."
    )
    return text
