"""Everything ``fab status`` learns about one host, in one SSH round trip.

``probe.sh`` prints tab-separated facts; ``parse`` turns them into ``HostFacts``.
Keeping the remote side to ``sh``, ``systemctl``, ``df`` and ``/proc`` means nothing has to be
installed on the hosts for the report to work.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

PROBE = Path(__file__).with_name("probe.sh")


@dataclass(frozen=True)
class Unit:
    name: str
    active: str
    sub: str
    restarts: int
    uptime: float | None  # seconds in the current active state


@dataclass(frozen=True)
class Progress:
    """A streaming job's newest micro-batch, from its progress file: the batch, how long ago
    the file was written, and the offsets the batch read up to; and the recent batches as
    (when it ran, milliseconds it took)."""

    job: str
    batch: int
    age: float
    offsets: dict[str, dict[str, int]]
    recent: tuple[tuple[str, int], ...] = ()


@dataclass
class HostFacts:
    load: tuple[float, float, float] | None = None
    mem_total_kb: int | None = None
    mem_available_kb: int | None = None
    disks: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (avail kB, use %)
    units: dict[str, Unit] = field(default_factory=dict)
    progress: dict[str, Progress] = field(default_factory=dict)
    output_age: dict[tuple[str, str], float] = field(default_factory=dict)  # (job, kind) -> s
    producer: dict[str, object] | None = None  # the producer's state.json (counts, outage)
    problems: list[str] = field(default_factory=list)


def command(units: list[str], sudo: bool) -> str:
    """The remote command: the probe's text as ``sh -c`` with the units as its arguments."""
    words = ["sudo", "-n"] if sudo else []
    words += ["sh", "-c", PROBE.read_text(), "rtm-probe", *units]
    return " ".join(shlex.quote(w) for w in words)


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
                unit, entered[fields[0]] = _unit(fields[0], fields[1:])
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


def _progress(facts: HostFacts, rest: str, _: list[str]) -> None:
    job, age, text = rest.split("\t", 2)
    report = json.loads(text)
    if not isinstance(report, dict) or not isinstance(report.get("offsets"), dict):
        raise ValueError("the progress file is not a JSON object with offsets")
    offsets = {t: {p: int(o) for p, o in parts.items()} for t, parts in report["offsets"].items()}
    batch = int(report["batch_id"]) if report.get("batch_id") is not None else -1
    recent = tuple(
        (str(at), int(ms)) for at, ms, *_ in report.get("recent") or [] if at and ms is not None
    )
    facts.progress[job] = Progress(job, batch, float(age), offsets, recent)


def _output(facts: HostFacts, _: str, fields: list[str]) -> None:
    facts.output_age[(fields[0], fields[1])] = float(fields[2])


def _producer(facts: HostFacts, rest: str, _: list[str]) -> None:
    state = json.loads(rest)
    if not isinstance(state, dict):
        raise ValueError("the producer state is not a JSON object")
    facts.producer = state


_FACTS = {
    "load": _load,
    "mem": _mem,
    "disk": _disk,
    "progress": _progress,
    "output": _output,
    "producer": _producer,
}


def _unit(name: str, props: list[str]) -> tuple[Unit, float]:
    values = dict(item.split("=", 1) for item in props if "=" in item)
    mono = int(values.get("ActiveEnterTimestampMonotonic", "0") or 0) / 1e6
    restarts = int(values.get("NRestarts", "0") or 0)
    unit = Unit(name, values.get("ActiveState", "unknown"), values.get("SubState", "unknown"),
                restarts, None)  # fmt: skip
    return unit, mono
