"""Idempotent outputs: one JSON-lines file per micro-batch, written atomically.

A file is written to a temporary name and renamed into place, so readers never see half a
file. A micro-batch that Spark replays after a crash has the same id and the same content, and
overwrites the same file: the file outputs hold every alert exactly once.

Batch ids start again at 0 when a checkpoint is deleted (the recovery when retention removed
offsets it needs), so file names carry the checkpoint's *generation* too: a number kept in the
checkpoint directory, and for a new checkpoint the next one after every generation already in
the outputs. A new checkpoint never overwrites the files of an earlier one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame

from rtm.consumer import transforms
from rtm.kafka_client import Connection

log = logging.getLogger(__name__)

ALERT_ORDER = ("window_start", "server_id", "rule")
AGGREGATE_ORDER = ("window_start", "server_id", "metric")
QUARANTINE_ORDER = ("topic", "partition", "offset")


@dataclass(frozen=True)
class Outputs:
    """``<output_dir>/<job>/<mode>/{alerts,aggregates,quarantine}/part-<batch>.jsonl``, where
    ``<batch>`` is ``g<generation>-<batch id>`` in streaming and ``all`` in batch mode."""

    root: Path

    @classmethod
    def for_job(cls, output_dir: Path, job: str, mode: str) -> Outputs:
        return cls(output_dir / job / mode)

    def file(self, kind: str, batch: str) -> Path:
        return self.root / kind / f"part-{batch}.jsonl"

    @property
    def progress(self) -> Path:
        """The job's own account of its newest micro-batch, for ``fab status`` (one JSON line)."""
        return self.root / "progress.json"

    def generations(self) -> set[int]:
        """The checkpoint generations that have written files here."""
        found = set()
        for path in self.root.glob("*/part-g*-*.jsonl"):
            match = _GENERATION.match(path.name)
            if match:
                found.add(int(match.group(1)))
        return found


GENERATION_FILE = "rtm-generation"
_GENERATION = re.compile(r"^part-g(\d+)-\d+\.jsonl$")


def generation(checkpoint: Path, outputs: Outputs) -> int:
    """The generation of a query's checkpoint; a new checkpoint gets the next free one."""
    marker = checkpoint / GENERATION_FILE
    try:
        return int(marker.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        pass
    except ValueError as exc:
        raise RuntimeError(f"{marker}: not a generation number ({exc}); delete the file") from exc
    number = max(outputs.generations(), default=0) + 1
    checkpoint.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{GENERATION_FILE}.", dir=checkpoint)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"{number}\n")
    os.replace(tmp, marker)
    log.info("checkpoint %s is new: its outputs are generation %d", checkpoint, number)
    return number


def batch_name(batch_id: int, generation_number: int) -> str:
    return f"g{generation_number:04d}-{batch_id:010d}"


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


def publish_alerts(alert_rows: DataFrame, connection: Connection, topic: str) -> None:
    """Send alerts to the Kafka alerts topic (at-least-once: a replayed batch sends again)."""
    transforms.as_kafka(alert_rows).write.format("kafka").options(**connection.spark()).option(
        "topic", topic
    ).save()


def write_progress(path: Path, progress: dict[str, object]) -> None:
    """Replace the progress file atomically: a reader sees the old line or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".progress.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(progress, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
