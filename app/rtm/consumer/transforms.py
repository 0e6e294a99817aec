"""Pure DataFrame transforms shared by the streaming and the batch mode.

raw Kafka rows -> ``parse`` -> ``quarantined`` (invalid, with a reason)
                            -> ``measurements`` (valid, one row per metric value)
                            -> (``stateful``: per server, its windows' final aggregates and
                                alerts, as soon as each is certain)
                            -> ``window_lines`` (the aggregates and alerts files)
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F  # noqa: N812  (the usual Spark spelling)

from rtm.config import Topics, WindowConfig
from rtm.consumer.jobs import Job
from rtm.consumer.server_windows import Rules
from rtm.records import Kind

TS_PATTERN = "yyyy-MM-dd'T'HH:mm:ss[.SSS]XXX"
ISO_OUT = "yyyy-MM-dd'T'HH:mm:ss'Z'"
_CORRUPT = "_corrupt_record"


def _json_schema(job: Job) -> str:
    fields = ["server_id", "ts", *(m.name for k in job.kinds for m in k.metrics)]
    return ", ".join(f"`{f}` STRING" for f in dict.fromkeys(fields)) + f", `{_CORRUPT}` STRING"


def _kind_problems(k: Kind, max_future: float) -> Column:
    """Every problem of a parsed record of kind ``k`` joined by '; ', or '' when it is valid."""
    problems: list[Column] = []
    for field in ("server_id", "ts"):
        text = F.col(f"j.{field}")
        problems.append(
            F.when(text.isNull() | (F.trim(text) == ""), F.lit(f"missing field {field}"))
        )
    problems.append(
        F.when(
            F.col("j.ts").isNotNull() & F.col("event_time").isNull(),
            F.lit("ts: not an ISO-8601 timestamp"),
        )
    )
    problems.append(_future_problem(max_future))
    for m in k.metrics:
        text, value = F.col(f"j.{m.name}"), F.col(f"j.{m.name}").try_cast("double")
        problems.append(F.when(text.isNull(), F.lit(f"missing field {m.name}")))
        problems.append(
            F.when(
                text.isNotNull() & (value.isNull() | F.isnan(value)),
                F.lit(f"{m.name}: not a number"),
            )
        )
        problems.append(F.when(value < 0, F.lit(f"{m.name}: negative value")))
        if m.maximum is not None:
            problems.append(F.when(value > m.maximum, F.lit(f"{m.name}: above {m.maximum:g}")))
    return F.concat_ws("; ", *problems)


def _future_problem(max_future: float) -> Column:
    """``ts: 250000 days in the future`` when the event time is more than ``max_future``
    seconds ahead of this query's clock (the batch's time in streaming): such a record would
    move the watermark ahead and make every later record late. Same words as the producer's."""
    ahead = F.unix_timestamp("event_time") - F.unix_timestamp(F.current_timestamp())
    described = reduce(
        lambda acc, unit: acc.when(
            ahead >= unit[1],
            F.concat(
                F.floor(ahead / unit[1]).cast("string"),
                F.lit(f" {unit[0]}"),
                F.when(F.floor(ahead / unit[1]) != 1, F.lit("s")).otherwise(F.lit("")),
            ),
        ),
        (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)),
        F.when(F.lit(False), F.lit("")),
    )
    return F.when(ahead > max_future, F.concat(F.lit("ts: "), described, F.lit(" in the future")))


def parse(raw: DataFrame, job: Job, topics: Topics, max_future: float) -> DataFrame:
    """Kafka rows (topic, partition, offset, timestamp, value) to parsed rows with a ``reason``.

    ``reason`` is null for a valid record, else why it is not (not JSON, missing or bad field,
    an event time more than ``max_future`` seconds ahead).
    """
    topic_kind = {topics.for_kind(k.name): k for k in job.kinds}
    parsed = raw.select(
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("value").cast("string").alias("value"),
    ).withColumn("j", F.from_json("value", _json_schema(job), {"mode": "PERMISSIVE"}))
    parsed = parsed.withColumn("event_time", F.try_to_timestamp("j.ts", F.lit(TS_PATTERN)))
    by_topic = reduce(
        lambda acc, item: acc.when(F.col("topic") == item[0], _kind_problems(item[1], max_future)),
        topic_kind.items(),
        F.when(F.lit(False), F.lit("")),
    ).otherwise(F.lit("unexpected topic"))
    invalid_json = F.col("j").isNull() | F.col(f"j.{_CORRUPT}").isNotNull()
    reason = F.when(invalid_json, F.lit("not a JSON object")).otherwise(
        F.nullif(by_topic, F.lit(""))
    )
    return parsed.withColumn("reason", reason)


def quarantined(parsed: DataFrame, job: Job) -> DataFrame:
    """The invalid records, with their raw value and the reason, for the quarantine output."""
    return parsed.where(F.col("reason").isNotNull()).select(
        F.lit(job.name).alias("job"),
        "topic",
        "partition",
        "offset",
        F.date_format("kafka_timestamp", "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").alias("kafka_timestamp"),
        "reason",
        "value",
    )


def measurements(parsed: DataFrame, job: Job, topics: Topics) -> DataFrame:
    """Valid records as (server_id, event_time, metric, value), one row per aggregated metric.

    One pass over the records: each becomes the array of its kind's metrics, exploded.
    """
    by_kind: dict[str, list[str]] = {}
    for kind_name, metric in job.metrics:
        by_kind.setdefault(kind_name, []).append(metric)
    branches = [
        (
            F.col("topic") == topics.for_kind(kind_name),
            F.array(
                *(
                    F.struct(
                        F.lit(m).alias("metric"), F.col(f"j.{m}").try_cast("double").alias("value")
                    )
                    for m in metrics
                )
            ),
        )
        for kind_name, metrics in by_kind.items()
    ]
    entries = reduce(lambda acc, branch: acc.when(*branch), branches[1:], F.when(*branches[0]))
    return (
        parsed.where(F.col("reason").isNull())
        .select(
            F.col("j.server_id").alias("server_id"), "event_time", F.explode(entries).alias("m")
        )
        .select("server_id", "event_time", "m.metric", "m.value")
    )


def rules(job: Job, window: WindowConfig, thresholds: Mapping[str, float]) -> Rules:
    """What ``ServerWindows`` needs of a job and the consumer's window and thresholds."""
    return Rules(
        job=job.name,
        aggregation=job.aggregation,
        thresholds={metric: float(thresholds[metric]) for _, metric in job.metrics},
        size_ms=window.size * 1000,
        slide_ms=window.slide * 1000,
        grace_ms=round(window.grace * 1000),
    )


def report_rows(emitted: DataFrame, job: Job) -> DataFrame:
    """Emitted rows (``stateful.EMITTED``) with the columns of the files: the job and its
    aggregation, the window bounds as ISO-8601 UTC strings, and ``alert``."""
    return emitted.select(
        F.lit(job.name).alias("job"),
        "server_id",
        "metric",
        F.lit(job.aggregation).alias("aggregation"),
        F.date_format(F.timestamp_millis("window_start_ms"), ISO_OUT).alias("window_start"),
        F.date_format(F.timestamp_millis("window_end_ms"), ISO_OUT).alias("window_end"),
        "value",
        "samples",
        "alert",
    )


# The columns of an aggregates line, and their order in a file.
AGGREGATE_COLUMNS = (
    "job",
    "server_id",
    "metric",
    "aggregation",
    "window_start",
    "window_end",
    "value",
    "samples",
)
AGGREGATE_ORDER = ("window_start", "server_id", "metric")
ALERT_COLUMNS = (
    "alert_id",
    "job",
    "rule",
    "server_id",
    "metric",
    "aggregation",
    "window_start",
    "window_end",
    "value",
    "threshold",
    "samples",
)


def _judged(emitted: DataFrame, job: Job, thresholds: Mapping[str, float]) -> DataFrame:
    """Report rows with the columns of an alert too (rule, threshold, alert_id)."""
    threshold = reduce(
        lambda acc, m: acc.when(F.col("metric") == m, F.lit(float(thresholds[m]))),
        [metric for _, metric in job.metrics],
        F.when(F.lit(False), F.lit(0.0)),
    )
    rows = report_rows(emitted, job).withColumn("threshold", threshold)
    rows = rows.withColumn("rule", F.concat_ws("_", "metric", "aggregation"))
    key = F.concat_ws("|", "job", "rule", "server_id", "window_start")
    return rows.withColumn("alert_id", F.substring(F.sha2(key, 256), 1, 32))


def aggregates(emitted: DataFrame, job: Job) -> DataFrame:
    """The final aggregates, as the aggregates file has them."""
    return report_rows(emitted, job).where(~F.col("alert")).select(*AGGREGATE_COLUMNS)


def alerts(emitted: DataFrame, job: Job, thresholds: Mapping[str, float]) -> DataFrame:
    """The alerts, as the alerts file has them.

    ``alert_id`` is deterministic: sha256 of ``job|rule|server_id|window_start`` (first 32 hex).
    """
    return _judged(emitted, job, thresholds).where("alert").select(*ALERT_COLUMNS)


def window_lines(emitted: DataFrame, job: Job, thresholds: Mapping[str, float]) -> DataFrame:
    """A batch's two outputs in one pass: per emitted row its JSON line, as an ``aggregate``
    or an ``alert`` (the other null), with ``server_id``, in file order.

    One Spark job writes both files: reading the batch back once for each output would cost a
    job (and a cache) each on every micro-batch. Within a job the rule is the metric with the
    job's aggregation, so one order serves both files.
    """
    judged = _in_file_order(_judged(emitted, job, thresholds), *AGGREGATE_ORDER, "alert")
    return judged.select(
        "server_id",
        F.when(~F.col("alert"), F.to_json(F.struct(*AGGREGATE_COLUMNS))).alias("aggregate"),
        F.when(F.col("alert"), F.to_json(F.struct(*ALERT_COLUMNS))).alias("alert"),
    )


def as_json_lines(df: DataFrame, *order: str) -> DataFrame:
    """One ``line`` column of JSON per row, in file order (``_in_file_order``)."""
    return _in_file_order(df, *order).select(F.to_json(F.struct(*df.columns)).alias("line"))


def _in_file_order(df: DataFrame, *order: str) -> DataFrame:
    """Sorted for deterministic files, in one partition.

    A file is written by one reader on the driver anyway: one partition sorted in place (Spark
    spills the sort to disk when it is large) reads back in one job, where a global ``orderBy``
    costs a sampling job, a shuffle and a job per partition on every micro-batch.
    """
    return df.coalesce(1).sortWithinPartitions(*order)
