"""``rtm-generate``: deterministic sample metrics with daily patterns, noise and incidents.

Writes cpu_data.csv, mem_data.csv, net_data.csv and disk_data.csv with one row per server per
second. The same arguments always give byte-identical files. Incidents are scheduled in turn
(CPU spike, memory leak, network burst, disk filling up), spread over the servers, at least one
of each kind, plus one more per server per hour of data.
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
from rtm.records import KINDS, RowError, format_ts, parse_ts

log = logging.getLogger(__name__)

INCIDENTS = ("cpu_spike", "memory_leak", "network_burst", "disk_filling")
DEFAULT_START = "2025-01-01T00:00:00Z"
_DAY = 86400.0


@dataclass(frozen=True)
class Incident:
    kind: str
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
    cpu: float
    mem: float
    net: float
    disk: float
    phase: float  # offset of the daily cycle, seconds


def plan_incidents(rng: random.Random, servers: int, seconds: int) -> list[Incident]:
    count = max(len(INCIDENTS), servers * seconds // 3600 + len(INCIDENTS))
    incidents = []
    for i in range(count):
        kind = INCIDENTS[i % len(INCIDENTS)]
        duration = min(max(seconds // 4, 20), rng.randint(45, 150))
        start = rng.randint(seconds // 10, max(seconds - duration - seconds // 5, seconds // 10))
        incidents.append(Incident(kind, i % servers, start, duration))
    return incidents


def make_servers(rng: random.Random, count: int) -> list[Server]:
    return [
        Server(
            name=f"srv-{i + 1:02d}",
            cpu=rng.uniform(20, 45),
            mem=rng.uniform(40, 60),
            net=rng.uniform(1e6, 5e6),
            disk=rng.uniform(40, 70),
            phase=rng.uniform(0, _DAY),
        )
        for i in range(count)
    ]


def _daily(server: Server, moment: datetime) -> float:
    seconds = moment.hour * 3600 + moment.minute * 60 + moment.second
    return math.sin(2 * math.pi * (seconds + server.phase) / _DAY)


def _active(incidents: list[Incident], server: int, kind: str, second: int) -> float | None:
    for inc in incidents:
        if inc.server == server and inc.kind == kind:
            progress = inc.progress(second)
            if progress is not None:
                return progress
    return None


def _clamp(value: float, high: float = 100.0) -> float:
    return min(max(value, 0.0), high)


def sample_rows(
    rng: random.Random,
    server: Server,
    index: int,
    *,
    second: int,
    moment: datetime,
    inc: list[Incident],
) -> dict[str, list[object]]:
    """The four CSV rows of one server at one second."""
    day = _daily(server, moment)
    cpu = server.cpu + 10 * day + rng.gauss(0, 3)
    if _active(inc, index, "cpu_spike", second) is not None:
        cpu = rng.uniform(91, 99.5)
    mem = server.mem + 5 * day + rng.gauss(0, 1)
    leak = _active(inc, index, "memory_leak", second)
    if leak is not None:
        mem = mem + (98.5 - mem) * min(1.0, leak * 1.6)  # leaks, then stays near full
    traffic = server.net * (1.5 + day) * 0.5
    net_in = traffic * rng.lognormvariate(0, 0.25)
    net_out = traffic * 0.6 * rng.lognormvariate(0, 0.25)
    if _active(inc, index, "network_burst", second) is not None:
        net_in = max(net_in * 15, rng.uniform(45e6, 90e6))
        net_out = max(net_out * 15, rng.uniform(20e6, 60e6))
    disk = server.disk + second / 3600
    write = 2e6 * rng.lognormvariate(0, 0.4)
    filling = _active(inc, index, "disk_filling", second)
    if filling is not None:
        disk, write = disk + (97 - disk) * filling, write * 20
    ts = format_ts(moment)
    return {
        "cpu": [ts, server.name, f"{_clamp(cpu):.1f}"],
        "mem": [ts, server.name, f"{_clamp(mem):.1f}"],
        "net": [ts, server.name, f"{net_in:.0f}", f"{net_out:.0f}"],
        "disk": [ts, server.name, f"{_clamp(disk):.2f}", f"{write * 0.4:.0f}", f"{write:.0f}"],
    }


def generate(out: Path, servers: int, minutes: float, seed: int, start: datetime) -> list[Incident]:
    """Write the four CSV files into ``out``; return the incidents injected."""
    rng = random.Random(seed)  # noqa: S311  (reproducible sample data, not cryptography)
    seconds = round(minutes * 60)
    fleet = make_servers(rng, servers)
    incidents = plan_incidents(rng, servers, seconds)
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
            "Write deterministic sample metrics (cpu_data.csv, mem_data.csv, net_data.csv, "
            "disk_data.csv; one row per server per second) with daily patterns, noise and "
            "injected incidents: CPU spikes, memory leaks, network bursts, disks filling up."
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
            inc.kind,
            inc.server + 1,
            inc.start,
            inc.duration,
        )
    log.info("wrote %s", ", ".join(str(args.out / k.csv_name) for k in KINDS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
