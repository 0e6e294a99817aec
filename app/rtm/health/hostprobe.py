"""Everything ``fab status`` learns about one host, in one SSH round trip.

A small POSIX shell script prints tab-separated facts; ``parse`` turns them into ``HostFacts``.
Keeping the remote side to ``sh``, ``systemctl``, ``df`` and ``/proc`` means nothing has to be
installed on the hosts for the report to work.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

# The query of each consumer job whose Kafka offsets define its progress.
PROGRESS_QUERY = "windows"


@dataclass(frozen=True)
class Unit:
    name: str
    active: str
    sub: str
    restarts: int
    uptime: float | None  # seconds in the current active state


@dataclass(frozen=True)
class Checkpoint:
    job: str
    batch: int
    age: float
    offsets: dict[str, dict[str, int]]


@dataclass
class HostFacts:
    load: tuple[float, float, float] | None = None
    mem_total_kb: int | None = None
    mem_available_kb: int | None = None
    disks: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (avail kB, use %)
    units: dict[str, Unit] = field(default_factory=dict)
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    output_age: dict[tuple[str, str], float] = field(default_factory=dict)  # (job, kind) -> s
    problems: list[str] = field(default_factory=list)


def script(units: list[str], disk_paths: list[str], rtm_data_dir: str | None) -> str:
    """The probe: prints one fact per line, never fails half-way."""
    quoted_units = " ".join(shlex.quote(u) for u in units)
    quoted_paths = " ".join(shlex.quote(p) for p in disk_paths)
    lines = [
        "export LC_ALL=C",
        "now=$(cut -d' ' -f1 /proc/uptime)",
        "printf 'load\\t%s\\n' \"$(cut -d' ' -f1-3 /proc/loadavg)\"",
        'awk \'/^MemTotal:|^MemAvailable:/ {sub(":","",$1); print "mem\\t" $1 "\\t" $2}\' '
        "/proc/meminfo",
        f'for p in {quoted_paths}; do [ -d "$p" ] && df -Pk "$p" | '
        'awk -v p="$p" \'NR==2 {sub("%","",$5); print "disk\\t" p "\\t" $4 "\\t" $5}\'; '
        "done",
        f"for u in {quoted_units} $(systemctl list-units --all --plain --no-legend "
        "'rtm-consumer@*' 2>/dev/null | awk '{print $1}'); do",
        '  printf \'unit\\t%s\\t%s\\n\' "$u" "$(systemctl show "$u" '
        "-p ActiveState,SubState,NRestarts,ActiveEnterTimestampMonotonic | paste -sd' ')\"",
        "done",
        "printf 'now\\t%s\\n' \"$now\"",
    ]
    if rtm_data_dir:
        base = shlex.quote(rtm_data_dir)
        lines += [
            f"for d in {base}/checkpoints/*/{PROGRESS_QUERY}; do",
            '  [ -d "$d/commits" ] || continue',
            '  job=$(basename "$(dirname "$d")")',
            "  n=$(ls \"$d/commits\" 2>/dev/null | grep -E '^[0-9]+$' | sort -n | tail -1)",
            '  [ -n "$n" ] || continue',
            '  age=$(( $(date +%s) - $(stat -c %Y "$d/commits/$n") ))',
            '  printf \'checkpoint\\t%s\\t%s\\t%s\\t%s\\n\' "$job" "$n" "$age" '
            '"$(sed -n 3p "$d/offsets/$n")"',
            "done",
            f"for d in {base}/output/*/stream/alerts {base}/output/*/stream/aggregates; do",
            '  [ -d "$d" ] || continue',
            "  newest=$(find \"$d\" -maxdepth 1 -type f -name 'part-*' -printf '%T@\\n' "
            "| sort -n | tail -1)",
            '  [ -n "$newest" ] || continue',
            '  job=$(basename "$(dirname "$(dirname "$d")")")',
            '  printf \'output\\t%s\\t%s\\t%s\\n\' "$job" "$(basename "$d")" '
            '"$(( $(date +%s) - ${newest%.*} ))"',
            "done",
        ]
    return "\n".join(lines) + "\n"


def parse(text: str) -> HostFacts:
    facts = HostFacts()
    now: float | None = None
    entered: dict[str, float] = {}
    for raw in text.splitlines():
        kind, _, rest = raw.partition("\t")
        fields = rest.split("\t")
        try:
            if kind == "now":
                now = float(fields[0])
            elif kind == "unit":
                unit, entered[fields[0]] = _unit(fields[0], fields[1])
                facts.units[unit.name] = unit
            elif kind in _FACTS:
                _FACTS[kind](facts, rest, fields)
        except (ValueError, IndexError, json.JSONDecodeError) as exc:
            facts.problems.append(f"unreadable probe line {raw!r}: {exc}")
    if now is not None:
        for name, mono in entered.items():
            unit = facts.units[name]
            if unit.active == "active" and mono > 0:
                facts.units[name] = Unit(
                    unit.name, unit.active, unit.sub, unit.restarts, now - mono
                )
    return facts


def _load(facts: HostFacts, rest: str, _: list[str]) -> None:
    a, b, c = (float(x) for x in rest.split())
    facts.load = (a, b, c)


def _mem(facts: HostFacts, _: str, fields: list[str]) -> None:
    if fields[0] == "MemTotal":
        facts.mem_total_kb = int(fields[1])
    else:
        facts.mem_available_kb = int(fields[1])


def _disk(facts: HostFacts, _: str, fields: list[str]) -> None:
    facts.disks[fields[0]] = (int(fields[1]), int(fields[2]))


def _checkpoint(facts: HostFacts, _: str, fields: list[str]) -> None:
    raw = json.loads(fields[3]) if fields[3].strip() else {}
    offsets = {t: {p: int(o) for p, o in parts.items()} for t, parts in raw.items()}
    job = fields[0]
    facts.checkpoints[job] = Checkpoint(job, int(fields[1]), float(fields[2]), offsets)


def _output(facts: HostFacts, _: str, fields: list[str]) -> None:
    facts.output_age[(fields[0], fields[1])] = float(fields[2])


_FACTS = {"load": _load, "mem": _mem, "disk": _disk, "checkpoint": _checkpoint, "output": _output}


def _unit(name: str, props: str) -> tuple[Unit, float]:
    values = dict(item.split("=", 1) for item in props.split() if "=" in item)
    mono = int(values.get("ActiveEnterTimestampMonotonic", "0") or 0) / 1e6
    restarts = int(values.get("NRestarts", "0") or 0)
    unit = Unit(name, values.get("ActiveState", "unknown"), values.get("SubState", "unknown"),
                restarts, None)  # fmt: skip
    return unit, mono
