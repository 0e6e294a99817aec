"""Idempotent outputs: one JSON-lines file per micro-batch, written atomically.

A file is written to a temporary name and renamed into place, so readers never see half a
file. A micro-batch that Spark replays after a crash has the same id and the same content, and
overwrites the same file: the file outputs hold every alert exactly once.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame

from rtm.consumer import transforms

log = logging.getLogger(__name__)

ALERT_ORDER = ("window_start", "server_id", "rule")
AGGREGATE_ORDER = ("window_start", "server_id", "metric")
QUARANTINE_ORDER = ("topic", "partition", "offset")


@dataclass(frozen=True)
class Outputs:
    """``<output_dir>/<job>/<mode>/{alerts,aggregates,quarantine}/part-<batch>.jsonl``."""

    root: Path

    @classmethod
    def for_job(cls, output_dir: Path, job: str, mode: str) -> Outputs:
        return cls(output_dir / job / mode)

    def file(self, kind: str, batch: str) -> Path:
        return self.root / kind / f"part-{batch}.jsonl"


def batch_name(batch_id: int) -> str:
    return f"{batch_id:010d}"


def write_lines(df: DataFrame, path: Path, order: tuple[str, ...]) -> int:
    """Write ``df`` as JSON lines to ``path`` atomically; no file for an empty result.

    Returns the number of lines written. An empty result removes a stale file of the same name.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = transforms.as_json_lines(df, *order)
    count = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row in lines.toLocalIterator():
                handle.write(row["line"] + "\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        if count:
            tmp.replace(path)
        else:
            tmp.unlink()
            path.unlink(missing_ok=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def publish_alerts(alert_rows: DataFrame, bootstrap_servers: str, topic: str) -> None:
    """Send alerts to the Kafka alerts topic (at-least-once: a replayed batch sends again)."""
    transforms.as_kafka(alert_rows).write.format("kafka").option(
        "kafka.bootstrap.servers", bootstrap_servers
    ).option("topic", topic).save()
