"""Result files: one JSON document per section and a Markdown summary of all of them.

JSON is written with sorted keys, two-space indents and rounded numbers, so a re-run changes
only the lines whose figures changed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.machine import one_line
from bench.stats import Figure, median

log = logging.getLogger(__name__)

# Latency is measured on each lab of its own: one section per inventory, latency-<name>.
SECTION_ORDER = ("throughput", "latency-*", "deploy")
TITLES = {
    "throughput": "Producer throughput",
    "latency": "End-to-end alert latency",
    "deploy": "Deployment",
}


def title(name: str) -> str:
    family, _, inventory = name.partition("-")
    if family == "latency" and inventory:
        return f"{TITLES[family]} on inventory/{inventory}"
    return TITLES.get(name, name)


@dataclass
class Section:
    """What one benchmark section measured, ready to be written."""

    name: str
    machine: Mapping[str, object]
    settings: dict[str, object] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def figure(self, name: str, unit: str, note: str = "") -> Figure:
        """The figure called ``name``, created on first use (keeps insertion order)."""
        for existing in self.figures:
            if existing.name == name:
                return existing
        created = Figure(name, unit, note=note)
        self.figures.append(created)
        return created

    def median_of(self, name: str) -> float | None:
        """The median of the figure called ``name``; None when it was not measured."""
        found = next((f for f in self.figures if f.name == name), None)
        return median(found.values) if found and found.values else None

    def to_json(self) -> dict[str, object]:
        return {
            "section": self.name,
            "title": title(self.name),
            "machine": dict(self.machine),
            "settings": self.settings,
            "figures": [f.to_json() for f in self.figures],
            "notes": self.notes,
            "details": self.details,
        }


def dump(document: Mapping[str, object]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_section(results: Path, section: Section) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{section.name}.json"
    path.write_text(dump(section.to_json()), encoding="utf-8")
    log.info("wrote %s", path)
    return path


def load_sections(results: Path) -> list[dict[str, Any]]:
    """Every section file present, in the report's order (sections not run keep old files)."""
    found = []
    for pattern in SECTION_ORDER:
        for path in sorted(results.glob(f"{pattern}.json")):
            found.append(json.loads(path.read_text(encoding="utf-8")))
    return found


def _number(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def figure_table(figures: Iterable[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| figure | median | min | max | runs | unit |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for f in figures:
        cells = [
            str(f["name"]),
            *(_number(f.get(k)) for k in ("median", "min", "max")),
            str(f.get("runs", 0)),
            str(f.get("unit", "")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_section(section: Mapping[str, Any]) -> list[str]:
    settings = section.get("settings", {})
    lines = [f"## {section.get('title', section.get('section'))}", ""]
    lines.append(f"Machine: {one_line(section.get('machine', {}))}.")
    if settings:
        shown = ", ".join(f"{k}={_number(v)}" for k, v in sorted(settings.items()))
        lines.append(f"Settings: {shown}.")
    lines.append("")
    lines += figure_table(section.get("figures", []))
    notes: Sequence[str] = section.get("notes", [])
    if notes:
        lines.append("")
        lines += [f"- {note}" for note in notes]
    lines.append("")
    return lines


def render(sections: Iterable[Mapping[str, Any]]) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m bench`); do not edit by hand. Every figure is the",
        "median of its runs with the min and max; the raw values are in the JSON files beside",
        "this one. Timings measure, they never pass or fail anything.",
        "",
    ]
    for section in sections:
        lines += render_section(section)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_readme(results: Path) -> Path:
    path = results / "README.md"
    path.write_text(render(load_sections(results)), encoding="utf-8")
    log.info("wrote %s", path)
    return path
