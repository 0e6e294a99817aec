"""Run a job in streaming or batch mode; both use the transforms in ``rtm.consumer.transforms``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812
from pyspark.sql.streaming import StreamingQuery

from rtm import kafka_client
from rtm.config import Config, ConfigError, ConsumerConfig
from rtm.consumer import sinks, stateful, transforms
from rtm.consumer.jobs import Job
from rtm.consumer.server_windows import Rules
from rtm.kafka_client import Connection

log = logging.getLogger(__name__)

# SPARK-55271 (Spark 4.1.1): when a restarted query first re-runs the batch it had planned but
# not committed, the Kafka source's progress metrics throw a NullPointerException *after* the
# batch is committed. Restarting the query then continues normally from the next batch.
SPARK_55271 = 'because the return value of "scala.Option.get()" is null'
MAX_RESTARTS = 3
# What every session of the jobs needs (the tests' too), whatever consumer.spark.conf says.
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # The per-server windows (transformWithState) keep their state in RocksDB only.
    "spark.sql.streaming.stateStore.providerClass": (
        "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
    ),
}


# A micro-batch longer than a short trigger interval is normal (the next one starts at once),
# yet Spark warns about it on every batch: only its errors are worth the journal.
BACK_TO_BACK = "org.apache.spark.sql.execution.streaming.runtime.ProcessingTimeExecutor"


def quiet_back_to_back_batches(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    log4j = jvm.org.apache.logging.log4j  # type: ignore[union-attr]
    log4j.core.config.Configurator.setLevel(BACK_TO_BACK, log4j.Level.ERROR)


def use_this_python() -> None:
    """Have Spark's Python workers (the per-server windows run in them) start this
    interpreter, which has rtm and its dependencies, unless PYSPARK_PYTHON names another.
    PySpark reads the variable when the SparkContext starts."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


# The windows query's checkpoint, and the one an earlier rtm kept its windows in.
WINDOWS, EARLIER_WINDOWS = "server-windows", "windows"
TAKEN_OVER = "rtm-starting-offsets.json"
WINDOW_SHAPE = "rtm-window-shape.json"  # the size and slide the checkpoint's state holds
QUARANTINE_INTERVAL = 10.0  # seconds, at least, between the quarantine query's micro-batches


class StreamError(RuntimeError):
    """A streaming query terminated with an error."""


@dataclass(frozen=True)
class JobContext:
    config: Config
    consumer: ConsumerConfig
    job: Job
    mode: str  # "stream" or "batch"

    @property
    def outputs(self) -> sinks.Outputs:
        return sinks.Outputs.for_job(self.consumer.output_dir, self.job.name, self.mode)

    @property
    def connection(self) -> Connection:
        return self.config.kafka.connection(self.job.name)

    @property
    def subscribe(self) -> str:
        return ",".join(self.config.kafka.topics.for_kind(k.name) for k in self.job.kinds)

    @cached_property
    def alerts_producer(self) -> KafkaProducer:
        """The driver's Kafka client for the alerts, made at the first one."""
        return kafka_client.producer(
            self.connection, client_id=f"rtm-{self.job.name}-alerts", acks="all", linger_ms=0
        )

    def checkpoint(self, query: str) -> Path:
        return self.consumer.checkpoint_dir / self.job.name / query


def build_session(consumer: ConsumerConfig, app_name: str) -> SparkSession:
    """A SparkSession with the connector jars from local files (never downloaded)."""
    missing = [str(j) for j in consumer.spark.jars if not j.is_file()]
    if missing:
        raise ConfigError(f"consumer.spark.jars: file(s) not found: {', '.join(missing)}")
    if not consumer.spark.jars:
        raise ConfigError("consumer.spark.jars: list the Spark Kafka connector jars")
    use_this_python()
    builder = (
        SparkSession.builder.master(consumer.spark.master)
        .appName(app_name)
        .config("spark.jars", ",".join(str(j) for j in consumer.spark.jars))
        .config("spark.sql.shuffle.partitions", str(consumer.spark.shuffle_partitions))
    )
    for key, value in [*SESSION_CONF.items(), *consumer.spark.conf]:
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _source_options(ctx: JobContext) -> dict[str, str]:
    return {
        **ctx.connection.spark(),
        "subscribe": ctx.subscribe,
        "failOnDataLoss": "true",
    }


def _write_windows(ctx: JobContext, emitted: DataFrame, batch: str) -> None:
    """Final aggregates and alerts (``stateful.EMITTED``): files first, then the Kafka alerts
    topic."""
    lines = transforms.window_lines(emitted, ctx.job, dict(ctx.consumer.thresholds))
    raised = sinks.write_windows(
        lines, ctx.outputs.file("aggregates", batch), ctx.outputs.file("alerts", batch)
    )
    if raised:
        sinks.publish_alerts(ctx.alerts_producer, raised, ctx.config.kafka.topics.alerts)
        log.info("%s batch %s: %d alert(s)", ctx.job.name, batch, len(raised))


def _write_quarantine(ctx: JobContext, bad: DataFrame, batch: str) -> None:
    count = sinks.write_lines(bad, ctx.outputs.file("quarantine", batch), sinks.QUARANTINE_ORDER)
    if count:
        log.warning("%s batch %s: %d record(s) quarantined", ctx.job.name, batch, count)


def run_batch(spark: SparkSession, ctx: JobContext) -> None:
    """Everything retained in the topics, earliest to latest; replaces the previous batch output."""
    raw = (
        spark.read.format("kafka")
        .options(**_source_options(ctx))
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
    topics, max_future = ctx.config.kafka.topics, ctx.consumer.max_future
    parsed = transforms.parse(raw, ctx.job, topics, max_future).persist()
    try:
        _write_quarantine(ctx, transforms.quarantined(parsed, ctx.job), "all")
        measured = transforms.measurements(parsed, ctx.job, ctx.config.kafka.topics)
        newest = measured.agg(F.max(F.unix_millis("event_time"))).first()
        # The watermark the streaming query ends at, on the same data.
        watermark_ms = (newest[0] or 0) - ctx.consumer.window.watermark * 1000
        emitted = stateful.batch(measured, _rules(ctx), watermark_ms)
        _write_windows(ctx, emitted, "all")
    finally:
        parsed.unpersist()
    log.info("%s batch run done; output in %s", ctx.job.name, ctx.outputs.root)


def stream_queries(
    spark: SparkSession, ctx: JobContext, available_now: bool
) -> dict[str, Callable[[], StreamingQuery]]:
    """Starters of the two queries of a job: windows (aggregates, alerts) and quarantine."""

    def parsed(starting: str = ctx.consumer.starting_offsets) -> DataFrame:
        reader = spark.readStream.format("kafka").options(**_source_options(ctx))
        reader = reader.option("startingOffsets", starting)
        if ctx.consumer.max_offsets_per_trigger:
            reader = reader.option(
                "maxOffsetsPerTrigger", str(ctx.consumer.max_offsets_per_trigger)
            )
        return transforms.parse(
            reader.load(), ctx.job, ctx.config.kafka.topics, ctx.consumer.max_future
        )

    def windows() -> StreamingQuery:
        starting = _take_over_unresumable(ctx) or ctx.consumer.starting_offsets
        measured = transforms.measurements(parsed(starting), ctx.job, ctx.config.kafka.topics)
        watermarked = measured.withWatermark(
            "event_time", f"{ctx.consumer.window.watermark} seconds"
        )
        emitted = stateful.stream(watermarked, _rules(ctx))
        interval = ctx.consumer.trigger.interval
        return _start(emitted, ctx, WINDOWS, available_now, _write_windows, interval=interval)

    def quarantine() -> StreamingQuery:
        bad = transforms.quarantined(parsed(), ctx.job)
        # Nobody waits on the quarantine: a short trigger would only take CPU from the windows.
        interval = max(ctx.consumer.trigger.interval, QUARANTINE_INTERVAL)
        return _start(bad, ctx, "quarantine", available_now, _write_quarantine, interval=interval)

    return {"windows": windows, "quarantine": quarantine}


def _take_over_unresumable(ctx: JobContext) -> str | None:
    """Where the windows query starts when its checkpoint replaces one Spark cannot resume:
    an earlier rtm's (windows closed by the global watermark) or one written with another
    window size or slide (its state holds windows of the old shape). The replaced checkpoint is
    renamed, never read again; the new one starts at the offsets it committed, kept in the new
    checkpoint until its first batch. None: start as consumer.starting_offsets says."""
    checkpoint, earlier = ctx.checkpoint(WINDOWS), ctx.checkpoint(EARLIER_WINDOWS)
    shape = {"size": ctx.consumer.window.size, "slide": ctx.consumer.window.slide}
    recorded = checkpoint / WINDOW_SHAPE
    if earlier.is_dir():
        _take_over(ctx, earlier, "is from an earlier rtm (windows closed by the global watermark)")
    elif recorded.is_file() and (was := json.loads(recorded.read_text(encoding="utf-8"))) != shape:
        _take_over(
            ctx,
            checkpoint,
            f"holds windows of size {was['size']} s sliding {was['slide']} s; the config asks"
            f" for {shape['size']} s sliding {shape['slide']} s",
        )
    if not recorded.is_file():
        checkpoint.mkdir(parents=True, exist_ok=True)
        recorded.write_text(json.dumps(shape, sort_keys=True) + "\n", encoding="utf-8")
    kept = checkpoint / TAKEN_OVER
    return kept.read_text(encoding="utf-8").strip() if kept.is_file() else None


def _take_over(ctx: JobContext, replaced: Path, why: str) -> None:
    checkpoint = ctx.checkpoint(WINDOWS)
    offsets = sinks.committed_offsets(replaced)
    retired = replaced.with_name(f"{replaced.name}.replaced-{int(time.time())}")
    replaced.rename(retired)
    if offsets is not None and sinks.committed_offsets(checkpoint) is None:
        checkpoint.mkdir(parents=True, exist_ok=True)
        text = json.dumps(offsets, sort_keys=True) + "\n"
        (checkpoint / TAKEN_OVER).write_text(text, encoding="utf-8")
    log.warning(
        "%s: the windows checkpoint %s %s: the windows continue from where it stopped, in a new"
        " checkpoint %s, and it is kept as %s (delete it at will). Windows open at the switch"
        " are closed with the samples read after it",
        ctx.job.name, replaced, why, checkpoint, retired,
    )  # fmt: skip


def _rules(ctx: JobContext) -> Rules:
    return transforms.rules(ctx.job, ctx.consumer.window, dict(ctx.consumer.thresholds))


def run_stream(
    spark: SparkSession,
    ctx: JobContext,
    available_now: bool,
    stop: threading.Event | None = None,
    timeout: float | None = None,
) -> None:
    """Run both queries until they finish (available-now), ``stop`` is set, or one fails.

    Raises StreamError when a query fails, TimeoutError after ``timeout`` seconds. The queries
    are stopped on the way out; a batch interrupted by the stop is redone on the next start.
    """
    starters = stream_queries(spark, ctx, available_now)
    queries = {name: start() for name, start in starters.items()}
    restarts = dict.fromkeys(queries, 0)
    finished: set[str] = set()
    deadline = None if timeout is None else time.monotonic() + timeout
    log.info("%s streaming from %s (%s)", ctx.job.name, ctx.subscribe, ctx.connection)
    reported: int | None = None
    try:
        while len(finished) < len(queries) and not (stop is not None and stop.is_set()):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{ctx.job.name}: queries still running after {timeout}s")
            reported = publish_progress(ctx, queries["windows"], reported)
            for name, query in queries.items():
                if name in finished:
                    continue
                if query.isActive:
                    _wait(query, 0.5)
                    continue
                error = query.exception()
                if error is None:
                    finished.add(name)
                elif SPARK_55271 in str(error) and restarts[name] < MAX_RESTARTS:
                    restarts[name] += 1
                    log.warning("%s: restarting after SPARK-55271 (batch was committed)", name)
                    queries[name] = starters[name]()
                else:
                    raise StreamError(f"{ctx.job.name}-{name} failed: {error}")
    finally:
        for query in queries.values():
            if query.isActive:
                query.stop()
        publish_progress(ctx, queries["windows"], reported)


def progress_of(job: str, progress: dict, recent: list[dict] | None = None) -> dict[str, object]:
    """What the job reports of a micro-batch of its windows query (Spark's progress event):
    the batch, when it ran, its input rows, the offsets read up to, the watermark and where
    its time went; and of the ``recent`` batches (Spark keeps the last hundred) when each ran,
    how long it took in milliseconds and its input rows, for the benchmarks."""
    offsets: dict[str, dict[str, int]] = {}
    for source in progress.get("sources") or []:
        end = source.get("endOffset")
        if isinstance(end, str):
            end = json.loads(end)
        if isinstance(end, dict):
            offsets.update(
                {t: {str(p): int(o) for p, o in parts.items()} for t, parts in end.items()}
            )
    return {
        "job": job,
        "batch_id": progress.get("batchId"),
        "batch_at": progress.get("timestamp"),
        "input_rows": progress.get("numInputRows"),
        "offsets": offsets,
        "watermark": (progress.get("eventTime") or {}).get("watermark"),
        # Where the newest batch's time went (planning, the sink, commits): Spark's own names.
        "duration_ms": progress.get("durationMs") or {},
        "recent": [
            [p.get("timestamp"), (p.get("durationMs") or {}).get("triggerExecution"),
             p.get("numInputRows")]
            for p in recent or []
        ],
    }  # fmt: skip


def publish_progress(ctx: JobContext, query: StreamingQuery, reported: int | None) -> int | None:
    """Write the progress file when the windows query finished a new batch; its batch id."""
    last = query.lastProgress
    if last is None:
        return reported
    progress = _as_dict(last)
    if progress.get("batchId") == reported:
        return reported
    recent = [_as_dict(p) for p in query.recentProgress]
    sinks.write_progress(ctx.outputs.progress, progress_of(ctx.job.name, progress, recent))
    return progress.get("batchId")


def _as_dict(progress: Any) -> dict:
    """A progress event as a dict (PySpark gives objects with ``json``, older ones dicts)."""
    return json.loads(progress.json) if hasattr(progress, "json") else dict(progress)


def _wait(query: StreamingQuery, seconds: float) -> None:
    # A failure is read back through query.exception() by the caller.
    with contextlib.suppress(StreamingQueryException):
        query.awaitTermination(seconds)


def _start(
    df: DataFrame,
    ctx: JobContext,
    name: str,
    available_now: bool,
    write: Callable[[JobContext, DataFrame, str], None],
    *,
    interval: float,
) -> StreamingQuery:
    checkpoint = ctx.checkpoint(name)
    generation = sinks.generation(checkpoint, ctx.outputs)
    writer = (
        df.writeStream.queryName(f"{ctx.job.name}-{name}")
        .outputMode("append")
        .option("checkpointLocation", str(checkpoint))
        .foreachBatch(
            lambda batch_df, batch_id: write(ctx, batch_df, sinks.batch_name(batch_id, generation))
        )
    )
    if available_now:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{interval} seconds")
    return writer.start()
