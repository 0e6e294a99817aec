"""Run a job in streaming or batch mode; both use the transforms in ``rtm.consumer.transforms``."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812
from pyspark.sql.streaming import StreamingQuery

from rtm.config import Config, ConfigError, ConsumerConfig
from rtm.consumer import sinks, transforms
from rtm.consumer.jobs import Job
from rtm.kafka_client import Connection

log = logging.getLogger(__name__)

# SPARK-55271 (Spark 4.1.1): when a restarted query first re-runs the batch it had planned but
# not committed, the Kafka source's progress metrics throw a NullPointerException *after* the
# batch is committed. Restarting the query then continues normally from the next batch.
SPARK_55271 = 'because the return value of "scala.Option.get()" is null'
MAX_RESTARTS = 3


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

    def checkpoint(self, query: str) -> Path:
        return self.consumer.checkpoint_dir / self.job.name / query


def build_session(consumer: ConsumerConfig, app_name: str) -> SparkSession:
    """A SparkSession with the connector jars from local files (never downloaded)."""
    missing = [str(j) for j in consumer.spark.jars if not j.is_file()]
    if missing:
        raise ConfigError(f"consumer.spark.jars: file(s) not found: {', '.join(missing)}")
    if not consumer.spark.jars:
        raise ConfigError("consumer.spark.jars: list the Spark Kafka connector jars")
    builder = (
        SparkSession.builder.master(consumer.spark.master)
        .appName(app_name)
        .config("spark.jars", ",".join(str(j) for j in consumer.spark.jars))
        .config("spark.sql.shuffle.partitions", str(consumer.spark.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    for key, value in consumer.spark.conf:
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _source_options(ctx: JobContext) -> dict[str, str]:
    return {
        **ctx.connection.spark(),
        "subscribe": ctx.subscribe,
        "failOnDataLoss": "true",
    }


def _write_windows(ctx: JobContext, aggregated: DataFrame, batch: str) -> None:
    """Aggregates and alerts of final windows: files first, then the Kafka alerts topic."""
    lines = transforms.window_lines(aggregated, ctx.job, dict(ctx.consumer.thresholds))
    raised = sinks.write_windows(
        lines, ctx.outputs.file("aggregates", batch), ctx.outputs.file("alerts", batch)
    )
    if raised:
        sinks.publish_alerts(
            aggregated.sparkSession, raised, ctx.connection, ctx.config.kafka.topics.alerts
        )
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
        max_time = measured.agg(F.max("event_time")).first()
        aggregated = transforms.final_windows(
            transforms.aggregate(measured, ctx.job, ctx.consumer.window),
            max_time[0] if max_time else None,
            ctx.consumer.window,
        )
        _write_windows(ctx, aggregated, "all")
    finally:
        parsed.unpersist()
    log.info("%s batch run done; output in %s", ctx.job.name, ctx.outputs.root)


def stream_queries(
    spark: SparkSession, ctx: JobContext, available_now: bool
) -> dict[str, Callable[[], StreamingQuery]]:
    """Starters of the two queries of a job: windows (aggregates, alerts) and quarantine."""

    def parsed() -> DataFrame:
        reader = spark.readStream.format("kafka").options(**_source_options(ctx))
        reader = reader.option("startingOffsets", ctx.consumer.starting_offsets)
        if ctx.consumer.max_offsets_per_trigger:
            reader = reader.option(
                "maxOffsetsPerTrigger", str(ctx.consumer.max_offsets_per_trigger)
            )
        return transforms.parse(
            reader.load(), ctx.job, ctx.config.kafka.topics, ctx.consumer.max_future
        )

    def windows() -> StreamingQuery:
        window = ctx.consumer.window
        measured = transforms.measurements(
            parsed(), ctx.job, ctx.config.kafka.topics, per_metric=_read_per_metric(ctx)
        )
        aggregated = transforms.aggregate(
            measured.withWatermark("event_time", f"{window.watermark} seconds"), ctx.job, window
        )
        return _start(aggregated, ctx, "windows", available_now, _write_windows)

    def quarantine() -> StreamingQuery:
        bad = transforms.quarantined(parsed(), ctx.job)
        return _start(bad, ctx, "quarantine", available_now, _write_quarantine)

    return {"windows": windows, "quarantine": quarantine}


def _read_per_metric(ctx: JobContext) -> bool:
    """Whether the windows checkpoint was written reading the topics once per metric, as rtm
    did before: it is resumed that way, exactly, since Spark refuses another number of sources."""
    checkpoint = ctx.checkpoint("windows")
    sources = sinks.checkpoint_sources(checkpoint)
    if sources is None or sources == 1 or sources != len(ctx.job.metrics):
        return False  # new, current, or a mismatch Spark itself names
    log.warning(
        "%s: checkpoint %s reads the topics once per metric (%d Kafka sources), as rtm did"
        " before; resuming it that way. To read them once: stop the job and move the"
        " checkpoint aside; the new one starts from consumer.starting_offsets and its files"
        " never overwrite the earlier ones (a new generation)",
        ctx.job.name, checkpoint, sources,
    )  # fmt: skip
    return True


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
    the batch, when it ran, its input rows, the offsets read up to and the watermark; and of
    the ``recent`` batches (Spark keeps the last hundred) when each ran, how long it took in
    milliseconds and its input rows, for the benchmarks."""
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
        writer = writer.trigger(processingTime=f"{ctx.consumer.trigger.interval} seconds")
    return writer.start()
