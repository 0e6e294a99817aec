"""CSV replay: read the four metric files, validate each row, and schedule it for sending.

Pacing (``producer.replay.pace``):

* ``rows`` (the seed's behaviour): each file advances by ``rate * speedup`` rows per second,
  the four files side by side (default one row per second per file).
* ``event_time``: rows are sent when their timestamp comes due, ``speedup`` times faster than
  real time (``rate`` is ignored).

``as_fast_as_possible`` ignores both and sends without pausing (benchmarks, tests).
With ``loop`` the files are replayed again and again; each pass shifts the timestamps by the
span of the data plus one second, so event time keeps moving forward.
"""

from __future__ import annotations

import csv
import heapq
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from rtm.config import ReplayConfig
from rtm.records import KINDS, Kind, RowError, parse_ts

log = logging.getLogger(__name__)


class ReplayError(Exception):
    """The replay cannot start (a file is missing or its header is wrong)."""


@dataclass(frozen=True)
class Row:
    """One data line of a CSV file; ``fields`` is None when the line is not valid CSV."""

    kind: Kind
    source: str
    line: int
    raw: str
    fields: dict[str, str] | None
    problem: str | None = None


@dataclass(frozen=True)
class Scheduled:
    due: float  # seconds after the start of the pass
    order: int  # position of the file, to keep a stable order between files
    row: Row


def csv_path(data_dir: Path, k: Kind) -> Path:
    return data_dir / k.csv_name


def check_files(data_dir: Path) -> None:
    """Fail early, with the file named, when a CSV is missing or lacks a column."""
    for k in KINDS:
        path = csv_path(data_dir, k)
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                header = next(csv.reader(handle), [])
        except OSError as exc:
            raise ReplayError(f"{path}: cannot read: {exc.strerror}") from exc
        missing = [c for c in k.columns if c not in [h.strip() for h in header]]
        if missing:
            raise ReplayError(f"{path}: header lacks column(s) {', '.join(missing)}")


def read_rows(path: Path, k: Kind) -> Iterator[Row]:
    """Every non-blank data line of ``path`` (line numbers count the header as line 1)."""
    with path.open(newline="", encoding="utf-8") as handle:
        header = [h.strip() for h in next(csv.reader([handle.readline()]), [])]
        for number, line in enumerate(handle, start=2):
            raw = line.rstrip("\r\n")
            if not raw.strip():
                continue
            try:
                values = next(csv.reader([raw]))
            except csv.Error as exc:
                yield Row(k, path.name, number, raw, None, f"not valid CSV: {exc}")
                continue
            if len(values) != len(header):
                problem = f"expected {len(header)} fields, got {len(values)}"
                yield Row(k, path.name, number, raw, None, problem)
                continue
            yield Row(k, path.name, number, raw, dict(zip(header, values, strict=True)))


def row_time(row: Row) -> datetime | None:
    if row.fields is None:
        return None
    try:
        return parse_ts(row.fields.get("ts") or "")
    except RowError:
        return None


def first_time(path: Path, k: Kind) -> datetime | None:
    for row in read_rows(path, k):
        moment = row_time(row)
        if moment is not None:
            return moment
    return None


def _file_schedule(
    path: Path, k: Kind, order: int, cfg: ReplayConfig, origin: datetime | None
) -> Iterator[Scheduled]:
    per_second = cfg.rate * cfg.speedup
    due = 0.0
    for index, row in enumerate(read_rows(path, k)):
        if cfg.pace == "rows":
            due = index / per_second
        else:
            moment = row_time(row)
            if moment is not None and origin is not None:
                due = max(due, (moment - origin).total_seconds() / cfg.speedup)
        yield Scheduled(due, order, row)


def schedule(data_dir: Path, cfg: ReplayConfig) -> Iterator[Scheduled]:
    """One pass over the four files, merged in the order the rows come due."""
    paths = [(csv_path(data_dir, k), k) for k in KINDS]
    origin = None
    if cfg.pace == "event_time":
        firsts = [m for m in (first_time(p, k) for p, k in paths) if m is not None]
        origin = min(firsts) if firsts else None
    streams = [_file_schedule(path, k, order, cfg, origin) for order, (path, k) in enumerate(paths)]
    return heapq.merge(*streams, key=lambda s: (s.due, s.order))


def data_span(data_dir: Path) -> timedelta:
    """How far one loop pass shifts timestamps: last - first timestamp, plus one second."""
    times = [
        m
        for k in KINDS
        for m in (row_time(r) for r in read_rows(csv_path(data_dir, k), k))
        if m is not None
    ]
    if not times:
        return timedelta(seconds=1)
    return max(times) - min(times) + timedelta(seconds=1)
