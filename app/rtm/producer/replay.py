"""CSV replay: read the metric files (one per kind of the catalogue), validate each row, and
schedule it for sending.

Pacing (``producer.replay.pace``):

* ``rows`` (the seed's behaviour): each file advances by ``rate * speedup`` rows per second,
  the files side by side (default one row per second per file).
* ``event_time``: rows are sent when their timestamp comes due, ``speedup`` times faster than
  real time (``rate`` is ignored).

``as_fast_as_possible`` ignores both and sends without pausing (benchmarks, tests).
With ``loop`` the files are replayed again and again; each pass shifts the timestamps by the
span of the data plus one second, so event time keeps moving forward.

With several processes (``producer.replay.processes``) each follows the same schedule and
sends the rows of its ``Share`` of each file's servers: a server's records of a kind all leave
one process, in the order of the file, so they keep their order in its partition.
"""

from __future__ import annotations

import csv
import heapq
import logging
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from rtm.config import ReplayConfig
from rtm.records import KINDS, Kind, RowError, parse_ts

log = logging.getLogger(__name__)


class ReplayError(Exception):
    """The replay cannot start (a file is missing or its header is wrong)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One data line of a CSV file; ``fields`` is None when the line is not valid CSV."""

    kind: Kind
    source: str
    line: int
    raw: str
    fields: dict[str, str] | None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Scheduled:
    due: float  # seconds after the start of the pass
    order: int  # position of the file, to keep a stable order between files
    row: Row


SERVER_COLUMN = "server_id"  # what a shared replay shares out
MAX_DEALT = 100_000  # servers of a file remembered by a shared replay's dealing


@dataclass(frozen=True, slots=True)
class Share:
    """Process ``index`` of ``count`` of a shared replay."""

    index: int = 0
    count: int = 1

    def dealer(self) -> Callable[[str], bool]:
        """Whether a server of one file is this process's, asked in the order of the file.

        A file's servers are dealt out in the order they first appear in it: as even as the
        servers allow, and alike in every process, since each reads the whole file. Rows
        without a server (dead letters) are the first process's."""
        if self.count == 1:
            return lambda _server: True
        dealt: dict[str, int] = {}

        def mine(server: str) -> bool:
            owner = dealt.get(server)
            if owner is None:
                if not server:
                    owner = 0
                elif len(dealt) < MAX_DEALT:
                    owner = dealt[server] = len(dealt) % self.count
                else:  # a file of endless distinct ids: a hash, in bounded memory
                    owner = zlib.crc32(server.encode("utf-8", "surrogateescape")) % self.count
            return owner == self.index

        return mine


WHOLE = Share()


def csv_path(data_dir: Path, k: Kind) -> Path:
    return data_dir / k.csv_name


# A data line longer than this is a dead letter; reading it never holds more than this in memory.
MAX_LINE_BYTES = 64 * 1024
_SHOWN_BYTES = 200  # how much of an over-long line its dead letter shows


@dataclass(frozen=True)
class _Line:
    number: int
    data: bytes  # without the line break; only the first bytes of an over-long line
    too_long: bool = False


def _lines(handle: BinaryIO, first: int = 1) -> Iterator[_Line]:
    """The lines of a binary file, numbered from ``first``, each read with at most
    MAX_LINE_BYTES (+1) bytes in memory."""
    number = first - 1
    while chunk := handle.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            head = chunk[:_SHOWN_BYTES]
            while chunk and not chunk.endswith(b"\n"):  # skip the rest of the line
                chunk = handle.readline(MAX_LINE_BYTES)
            yield _Line(number, head, too_long=True)
            continue
        yield _Line(number, chunk.rstrip(b"\r\n"))


def shown(data: bytes) -> str:
    """Bytes as text for a dead letter: what is not UTF-8 appears escaped, like ``\\xff``."""
    return data.decode("utf-8", "backslashreplace")


def _header(path: Path, handle: BinaryIO) -> list[str]:
    """The column names of the first line; ReplayError when it cannot be read as text."""
    first = next(_lines(handle), None)
    if first is None:
        return []
    if first.too_long:
        raise ReplayError(f"{path}: line 1 (the header) is longer than {MAX_LINE_BYTES} bytes")
    try:
        # utf-8-sig: a header saved by a spreadsheet may start with a byte-order mark.
        text = first.data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReplayError(
            f"{path}: line 1 (the header) is not UTF-8 text: byte 0x{first.data[exc.start]:02x}"
            f" at column {exc.start + 1}"
        ) from None
    try:
        return [h.strip() for h in next(csv.reader([text]), [])]
    except csv.Error as exc:
        raise ReplayError(f"{path}: line 1 (the header) is not valid CSV: {exc}") from None


def check_files(data_dir: Path) -> None:
    """Fail early, with the file named, when a CSV is missing, unreadable or lacks a column."""
    for k in KINDS:
        path = csv_path(data_dir, k)
        try:
            with path.open("rb") as handle:
                header = _header(path, handle)
        except OSError as exc:
            raise ReplayError(f"{path}: cannot read: {exc.strerror}") from exc
        missing = [c for c in k.columns if c not in header]
        if missing:
            raise ReplayError(f"{path}: header lacks column(s) {', '.join(missing)}")


def _split(
    k: Kind, path: Path, header: list[str], line: _Line
) -> tuple[str, list[str]] | Row | None:
    """The text and field values of one data line; a Row with its problem when it cannot be
    split into fields; None for a blank line."""
    if line.too_long:
        raw = shown(line.data) + "..."
        return Row(k, path.name, line.number, raw, None, f"longer than {MAX_LINE_BYTES} bytes")
    try:
        text = line.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text: byte 0x{line.data[exc.start]:02x} at column {exc.start + 1}"
        return Row(k, path.name, line.number, shown(line.data), None, problem)
    if not text.strip():
        return None
    if '"' in text:
        try:
            values = next(csv.reader([text]))
        except csv.Error as exc:
            return Row(k, path.name, line.number, text, None, f"not valid CSV: {exc}")
    else:
        values = text.split(",")  # what csv.reader gives for a line without quotes, faster
    if len(values) != len(header):
        problem = f"expected {len(header)} fields, got {len(values)}"
        return Row(k, path.name, line.number, text, None, problem)
    return text, values


def read_rows(path: Path, k: Kind) -> Iterator[Row]:
    """Every non-blank data line of ``path`` (line numbers count the header as line 1).

    No content stops the reading: a line that is not UTF-8, not CSV, or too long is a Row with
    its problem (it becomes a dead letter)."""
    for row in _scan(path, k, None):
        if row is not None:
            yield row


def _scan(path: Path, k: Kind, mine: Callable[[str], bool] | None) -> Iterator[Row | None]:
    """As ``read_rows``, but None for each row ``mine`` says is another process's (a dead
    letter when ``mine("")`` says so): counted for the pace, never built."""
    first = mine is None or mine("")
    with path.open("rb") as handle:
        header = _header(path, handle)
        at = header.index(SERVER_COLUMN) if SERVER_COLUMN in header else None
        for line in _lines(handle, first=2):
            split = _split(k, path, header, line)
            if split is None:
                continue
            if isinstance(split, Row):
                yield split if first else None
                continue
            text, values = split
            if mine is None or mine(values[at].strip() if at is not None else ""):
                yield Row(k, path.name, line.number, text, dict(zip(header, values, strict=True)))
            else:
                yield None


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
    path: Path, k: Kind, order: int, cfg: ReplayConfig, origin: datetime | None, *, share: Share
) -> Iterator[Scheduled]:
    per_second = cfg.rate * cfg.speedup
    due = 0.0
    by_rows = cfg.pace == "rows"
    mine = share.dealer()
    # Paced by event time, every row's time counts, the other processes' too: build them all.
    for index, row in enumerate(_scan(path, k, mine if by_rows else None)):
        if row is None:
            continue  # another process's: it only moved the index
        if by_rows:
            due = index / per_second
        else:
            moment = row_time(row)
            if moment is not None and origin is not None:
                due = max(due, (moment - origin).total_seconds() / cfg.speedup)
            if not mine((row.fields or {}).get(SERVER_COLUMN, "").strip()):
                continue
        yield Scheduled(due, order, row)


def schedule(data_dir: Path, cfg: ReplayConfig, share: Share = WHOLE) -> Iterator[Scheduled]:
    """One pass over the files, merged in the order the rows come due (the rows of ``share``
    only, each due when it would be in the whole replay)."""
    paths = [(csv_path(data_dir, k), k) for k in KINDS]
    origin = None
    if cfg.pace == "event_time":
        firsts = [m for m in (first_time(p, k) for p, k in paths) if m is not None]
        origin = min(firsts) if firsts else None
    streams = [
        _file_schedule(path, k, order, cfg, origin, share=share)
        for order, (path, k) in enumerate(paths)
    ]
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
