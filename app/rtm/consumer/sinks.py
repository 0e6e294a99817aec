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

from kafka import KafkaProducer
from pyspark.sql import DataFrame

from rtm.consumer import transforms

log = logging.getLogger(__name__)

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


def committed_offsets(checkpoint: Path) -> dict[str, dict[str, int]] | None:
    """Where a Spark checkpoint's newest committed batch read up to, per topic and partition
    (the lowest over its sources); None before its first commit.

    Spark's offsets log holds a version line, a metadata line, then one JSON line per source;
    a batch is committed once its number is in the commits log too.
    """
    commits = checkpoint / "commits"
    done = [int(p.name) for p in commits.iterdir() if p.name.isdigit()] if commits.is_dir() else []
    if not done:
        return None
    newest = checkpoint / "offsets" / str(max(done))
    lines = newest.read_text(encoding="utf-8").splitlines()
    if len(lines) < 3 or not lines[0].startswith("v"):
        raise RuntimeError(f"{newest}: not a Spark offsets file")
    offsets: dict[str, dict[str, int]] = {}
    for line in lines[2:]:
        for topic, partitions in json.loads(line).items():
            kept = offsets.setdefault(topic, {})
            for partition, offset in partitions.items():
                kept[partition] = min(int(offset), kept.get(partition, int(offset)))
    return offsets


def batch_name(batch_id: int, generation_number: int) -> str:
    return f"g{generation_number:04d}-{batch_id:010d}"


class _LineFile:
    """A JSON-lines file written atomically: to a temporary name, renamed into place on a
    clean exit. No lines leave no file (and remove a stale one of the same name)."""

    def __init__(self, path: Path) -> None:
        self.path, self.count = path, 0
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        self._tmp, self._handle = Path(tmp), os.fdopen(fd, "w", encoding="utf-8")

    def write(self, line: str) -> None:
        self._handle.write(line + "\n")
        self.count += 1

    def __enter__(self) -> _LineFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self._handle.flush()
                os.fsync(self._handle.fileno())
            self._handle.close()
            if kind is None and self.count:
                self._tmp.replace(self.path)
            elif kind is None:
                self.path.unlink(missing_ok=True)
        finally:
            self._tmp.unlink(missing_ok=True)


def write_lines(df: DataFrame, path: Path, order: tuple[str, ...]) -> int:
    """Write ``df`` as JSON lines to ``path`` atomically; the number of lines written."""
    with _LineFile(path) as out:
        for row in transforms.as_json_lines(df, *order).toLocalIterator():
            out.write(row["line"])
    return out.count


def write_windows(lines: DataFrame, aggregates: Path, alerts: Path) -> list[tuple[str, str]]:
    """Write a batch's ``transforms.window_lines`` to its aggregates and alerts files, both
    atomically, reading the batch once; its alerts as (server_id, JSON line)."""
    raised = []
    with _LineFile(aggregates) as aggregate_file, _LineFile(alerts) as alert_file:
        for row in lines.toLocalIterator():
            if row["aggregate"] is not None:
                aggregate_file.write(row["aggregate"])
            if row["alert"] is not None:
                alert_file.write(row["alert"])
                raised.append((row["server_id"], row["alert"]))
    return raised


# How long a batch waits for the brokers to acknowledge its alerts before it fails (and is
# replayed when the job restarts).
ALERTS_TIMEOUT = 120.0


def publish_alerts(producer: KafkaProducer, raised: list[tuple[str, str]], topic: str) -> None:
    """Send alerts to the Kafka alerts topic, keyed by server, and wait for the brokers'
    acknowledgement (at-least-once: a replayed batch sends again). They are on the driver
    already: a client there sends them in milliseconds, where a Spark write is a job of its
    own. Raises the first send's error, so that the batch fails rather than loses one."""
    sends = [producer.send(topic, key=key.encode(), value=line.encode()) for key, line in raised]
    producer.flush(timeout=ALERTS_TIMEOUT)
    for sent in sends:
        sent.get(timeout=0)


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
