"""``rtm-generate``: deterministic sample metrics with daily patterns, noise and incidents.

Writes one CSV file per metric kind of the catalogue with one row per server per second; each
metric follows its catalogue ``sample`` model. The same arguments always give byte-identical
files. Incidents are scheduled in turn, one kind after the other (CPU spike, memory leak, …),
spread over the servers, at least one of each kind, plus one more per server per hour of data.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import random
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from rtm import logsetup
from rtm.catalogue import Kind
from rtm.records import KINDS, RowError, format_ts, parse_ts

log = logging.getLogger(__name__)

DEFAULT_START = "2025-01-01T00:00:00Z"
_DAY = 86400.0


@dataclass(frozen=True)
class Incident:
    kind: Kind
    server: int
    start: int  # second offset from the start of the data
    duration: int

    def progress(self, second: int) -> float | None:
        """0..1 through the incident at ``second``, None outside it."""
        if self.start <= second < self.start + self.duration:
            return (second - self.start) / max(self.duration - 1, 1)
        return None


@dataclass(frozen=True)
class Server:
    name: str
    base: dict[str, float]  # baseline by metric
    phase: float  # offset of the daily cycle, seconds


def plan_incidents(
    rng: random.Random, kinds: tuple[Kind, ...], servers: int, seconds: int
) -> list[Incident]:
    count = max(len(kinds), servers * seconds // 3600 + len(kinds))
    incidents = []
    for i in range(count):
        duration = min(max(seconds // 4, 20), rng.randint(45, 150))
        start = rng.randint(seconds // 10, max(seconds - duration - seconds // 5, seconds // 10))
        incidents.append(Incident(kinds[i % len(kinds)], i % servers, start, duration))
    return incidents


def make_servers(rng: random.Random, kinds: tuple[Kind, ...], count: int) -> list[Server]:
    return [
        Server(
            name=f"srv-{i + 1:02d}",
            base={m.name: rng.uniform(*m.sample.base) for k in kinds for m in k.metrics},
            phase=rng.uniform(0, _DAY),
        )
        for i in range(count)
    ]


def _daily(server: Server, moment: datetime) -> float:
    seconds = moment.hour * 3600 + moment.minute * 60 + moment.second
    return math.sin(2 * math.pi * (seconds + server.phase) / _DAY)


def _active(incidents: list[Incident], server: int, kind: Kind, second: int) -> float | None:
    for inc in incidents:
        if inc.server == server and inc.kind == kind:
            progress = inc.progress(second)
            if progress is not None:
                return progress
    return None


def sample_rows(
    rng: random.Random,
    server: Server,
    index: int,
    *,
    second: int,
    moment: datetime,
    inc: list[Incident],
    kinds: tuple[Kind, ...] = KINDS,
) -> dict[str, list[object]]:
    """The CSV row of every kind for one server at one second."""
    day = _daily(server, moment)
    ts = format_ts(moment)
    rows: dict[str, list[object]] = {}
    for k in kinds:
        progress = _active(inc, index, k, second)
        row: list[object] = [ts, server.name]
        for metric in k.metrics:
            model = metric.sample
            value = server.base[metric.name] + model.daily * day + model.drift * second / 3600
            if model.noise:
                value += rng.gauss(0, model.noise)
            if progress is not None and model.incident is not None:
                value = model.incident.apply(value, progress, rng.random())
            value = max(value, 0.0)
            if metric.maximum is not None:
                value = min(value, metric.maximum)
            row.append(f"{value:.{model.decimals}f}")
        rows[k.name] = row
    return rows


def generate(out: Path, servers: int, minutes: float, seed: int, start: datetime) -> list[Incident]:
    """Write the CSV file of every kind into ``out``; return the incidents injected."""
    rng = random.Random(seed)  # noqa: S311  (reproducible sample data, not cryptography)
    seconds = round(minutes * 60)
    fleet = make_servers(rng, KINDS, servers)
    incidents = plan_incidents(rng, KINDS, servers, seconds)
    out.mkdir(parents=True, exist_ok=True)
    handles = {k.name: (out / k.csv_name).open("w", newline="", encoding="utf-8") for k in KINDS}
    try:
        writers = {name: csv.writer(h, lineterminator="\n") for name, h in handles.items()}
        for k in KINDS:
            writers[k.name].writerow(k.columns)
        for second in range(seconds):
            moment = start + timedelta(seconds=second)
            for index, server in enumerate(fleet):
                rows = sample_rows(rng, server, index, second=second, moment=moment, inc=incidents)
                for name, row in rows.items():
                    writers[name].writerow(row)
    finally:
        for handle in handles.values():
            handle.close()
    return incidents


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rtm-generate",
        description=(
            "Write deterministic sample metrics, one CSV file per metric kind of the catalogue ("
            + ", ".join(k.csv_name for k in KINDS)
            + "; one row per server per second) with daily patterns, noise and injected "
            "incidents (" + ", ".join(k.incident.replace("_", " ") for k in KINDS) + ")."
        ),
    )
    p.add_argument("--servers", type=int, default=3, help="number of servers (default 3)")
    p.add_argument("--minutes", type=float, default=4, help="minutes of data (default 4)")
    p.add_argument("--seed", type=int, default=103, help="random seed (default 103)")
    p.add_argument("--out", type=Path, required=True, help="directory to write the CSVs into")
    p.add_argument(
        "--start",
        default=DEFAULT_START,
        help=f"timestamp of the first row, ISO-8601 (default {DEFAULT_START}; no zone means UTC)",
    )
    p.add_argument("--log-level", default="INFO", choices=logsetup.LEVELS, help="log verbosity")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    logsetup.configure(args.log_level)
    if args.servers < 1 or args.minutes <= 0:
        p.error("--servers must be >= 1 and --minutes > 0")
    try:
        start = parse_ts(args.start)
    except RowError as exc:
        p.error(f"--start: {exc}")
    incidents = generate(args.out, args.servers, args.minutes, args.seed, start)
    for inc in incidents:
        log.info(
            "incident %s on srv-%02d from +%ds for %ds",
            inc.kind.incident,
            inc.server + 1,
            inc.start,
            inc.duration,
        )
    log.info("wrote %s", ", ".join(str(args.out / k.csv_name) for k in KINDS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
