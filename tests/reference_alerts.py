"""An independent plain-Python reference for the consumers' alerts (no rtm imports on purpose).

It re-implements, from the documented rules only: reading the CSV of every kind, dropping
invalid rows, event times from the future, sliding event-time windows aligned to the epoch,
the job's avg or max per server, window and metric, "a server's window of a metric is final
once that server's newest sample of the metric is at least the grace past its end, or once its
end plus the grace is before the watermark (the job's newest event time - the watermark
delay)", "an AVG rule alerts on a final window whose average is strictly above the threshold",
and "a MAX rule alerts on a window at its first sample strictly above the threshold, with that
sample's value and the window's sample count then".

    python tests/reference_alerts.py app/rtm/sample > app/rtm/sample/expected_alerts.json
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

WINDOW_SIZE, WINDOW_SLIDE, WATERMARK, GRACE = 30, 10, 10, 1
MAX_FUTURE_SECONDS = 300  # producer.max_future and consumer.max_future
_SURROGATE = re.compile("[\udc80-\udcff]")
# The list of kinds, metrics, jobs and default thresholds is the catalogue's, read as plain
# YAML; everything computed from it is computed here again.
_CATALOGUE = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "app" / "rtm" / "catalogue.yml").read_text()
)
FILES = {kind: spec["csv"] for kind, spec in _CATALOGUE["kinds"].items()}
FIELDS = {kind: tuple(spec["metrics"]) for kind, spec in _CATALOGUE["kinds"].items()}
MAXIMUM = {
    metric: float(m["maximum"])
    for spec in _CATALOGUE["kinds"].values()
    for metric, m in spec["metrics"].items()
    if m.get("maximum") is not None
}
_KIND_OF = {metric: kind for kind, fields in FIELDS.items() for metric in fields}
JOBS = {
    job: (spec["aggregation"], tuple((_KIND_OF[m], m) for m in spec["rules"]))
    for job, spec in _CATALOGUE["jobs"].items()
}
THRESHOLDS = {m: float(t) for spec in _CATALOGUE["jobs"].values() for m, t in spec["rules"].items()}
AMBIGUITY = 1e-6


@dataclass(frozen=True)
class Sample:
    server: str
    epoch: float
    metric: str
    value: float


def _valid_row(kind: str, row: dict[str, str | None]) -> tuple[str, float, dict[str, float]] | None:
    try:
        moment = datetime.fromisoformat((row.get("ts") or "").strip())
        values = {f: float(row.get(f) or "x") for f in FIELDS[kind]}
    except ValueError:
        return None
    server = (row.get("server_id") or "").strip()
    if not server or None in row:
        return None
    # Bytes that are not UTF-8 (read as surrogates) or a time from the future: not data.
    if any(_SURROGATE.search(v) for v in row.values() if isinstance(v, str)):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.timestamp() > time.time() + MAX_FUTURE_SECONDS:
        return None
    for name, value in values.items():
        if not math.isfinite(value) or value < 0 or value > MAXIMUM.get(name, math.inf):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return server, moment.timestamp(), values


def samples(data_dir: Path, kind: str) -> list[tuple[str, float, dict[str, float]]]:
    path = data_dir / FILES[kind]
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        rows = [_valid_row(kind, row) for row in csv.DictReader(handle)]
    return [r for r in rows if r is not None]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_starts(epoch: float, size: int, slide: int) -> list[int]:
    last = math.floor(epoch / slide) * slide
    starts = []
    start = last
    while start + size > epoch:
        starts.append(start)
        start -= slide
    return sorted(starts)


def _by_window(
    data_dirs: list[Path], job: str, size: int, slide: int
) -> tuple[dict[tuple[str, str, int], list[tuple[float, float]]], float | None]:
    """(server, metric, window start) -> its (event time, value) samples in event order; and
    the job's newest event time."""
    _func, metrics = JOBS[job]
    groups: dict[tuple[str, str, int], list[tuple[float, float]]] = defaultdict(list)
    latest = None
    for data_dir in data_dirs:
        for kind in dict.fromkeys(k for k, _ in metrics):
            for server, epoch, values in samples(data_dir, kind):
                latest = epoch if latest is None else max(latest, epoch)
                for k, metric in metrics:
                    if k != kind:
                        continue
                    for start in window_starts(epoch, size, slide):
                        groups[(server, metric, start)].append((epoch, values[metric]))
    return {key: sorted(found) for key, found in groups.items()}, latest


def aggregates(
    data_dirs: list[Path],
    job: str,
    size: int = WINDOW_SIZE,
    slide: int = WINDOW_SLIDE,
    watermark: int = WATERMARK,
    *,
    grace: int = GRACE,
) -> dict[tuple[str, str, int], tuple[float, int]]:
    """(server, metric, window start) -> (aggregate, samples), final windows only."""
    func = JOBS[job][0]
    groups, latest = _by_window(data_dirs, job, size, slide)
    if latest is None:
        return {}
    clocks: dict[tuple[str, str], float] = defaultdict(lambda: -math.inf)
    for (server, metric, _start), found in groups.items():
        clocks[(server, metric)] = max(clocks[(server, metric)], found[-1][0])
    out = {}
    for key, found in groups.items():
        due = key[2] + size + grace
        if due <= clocks[key[:2]] or due < latest - watermark:
            values = [v for _, v in found]
            value = sum(values) / len(values) if func == "avg" else max(values)
            out[key] = (value, len(values))
    return out


def _first_crossings(
    data_dirs: list[Path], job: str, thresholds: dict[str, float], size: int, slide: int
) -> dict[tuple[str, str, int], tuple[float, int]]:
    """MAX rules: (server, metric, window start) -> (the first sample above the threshold,
    the window's samples up to it), for every window that has one."""
    groups, _latest = _by_window(data_dirs, job, size, slide)
    out = {}
    for key, found in groups.items():
        for count, (_epoch, value) in enumerate(found, start=1):
            if value > thresholds[key[1]]:
                out[key] = (value, count)
                break
    return out


def alert_id(job: str, rule: str, server: str, start: str) -> str:
    return hashlib.sha256(f"{job}|{rule}|{server}|{start}".encode()).hexdigest()[:32]


def expected_alerts(
    data_dirs: list[Path], job: str, thresholds: dict[str, float] | None = None, **window: int
) -> list[dict[str, object]]:
    thresholds = thresholds or THRESHOLDS
    func = JOBS[job][0]
    size = window.get("size", WINDOW_SIZE)
    if func == "max":
        slide = window.get("slide", WINDOW_SLIDE)
        found = _first_crossings(data_dirs, job, thresholds, size, slide)
    else:
        found = aggregates(data_dirs, job, **window)
    alerts = []
    for (server, metric, start), (value, count) in found.items():
        limit = thresholds[metric]
        if abs(value - limit) < AMBIGUITY:
            raise ValueError(f"{server} {metric} {start}: {value} too close to {limit}")
        if value > limit:
            rule = f"{metric}_{func}"
            begin = _iso(start)
            alerts.append(
                {
                    "alert_id": alert_id(job, rule, server, begin),
                    "job": job,
                    "rule": rule,
                    "server_id": server,
                    "metric": metric,
                    "aggregation": func,
                    "window_start": begin,
                    "window_end": _iso(start + size),
                    "value": value,
                    "threshold": limit,
                    "samples": count,
                }
            )
    return sorted(alerts, key=lambda a: (a["job"], a["window_start"], a["server_id"], a["rule"]))


def all_expected(data_dirs: list[Path], **window: int) -> list[dict[str, object]]:
    return [a for job in JOBS for a in expected_alerts(data_dirs, job, **window)]


if __name__ == "__main__":
    json.dump(all_expected([Path(sys.argv[1])]), sys.stdout, indent=1)
    sys.stdout.write("\n")
