"""The metric catalogue as Markdown tables, kept in ``docs/metrics.md`` between two markers.

``python -m rtm.catalogue_docs docs/metrics.md`` rewrites that part of the page; a unit test
fails when the page and the catalogue disagree, so the tables never drift from the data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rtm.catalogue import Catalogue, catalogue

BEGIN = "<!-- catalogue tables: begin (python -m rtm.catalogue_docs docs/metrics.md) -->"
END = "<!-- catalogue tables: end -->"


def _number(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:,.0f}"


def render(cat: Catalogue) -> str:
    """The kinds, jobs and other topics of the catalogue as Markdown."""
    lines = [
        "| kind | topic (`kafka.topics.KIND`) | CSV file | metric | meaning | range |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for kind in cat.kinds:
        for m in kind.metrics:
            bound = f"0 to {_number(m.maximum)}" if m.maximum is not None else "≥ 0"
            lines.append(
                f"| `{kind.name}` | `{kind.topic}` | `{kind.csv_name}` | `{m.name}` "
                f"| {m.description} | {bound} |"
            )
    lines += [
        "",
        "| job (unit `rtm-consumer@JOB`) | aggregation | reads | rule | default threshold |",
        "| --- | --- | --- | --- | --- |",
    ]
    for job in cat.jobs:
        reads = ", ".join(f"`{k.topic}`" for k in job.kinds)
        for rule in job.rules:
            lines.append(
                f"| `{job.name}` | {job.aggregation} | {reads} | `{job.rule(rule.metric)}` "
                f"| {_number(rule.threshold)} |"
            )
    lines += ["", "| other topic | default name |", "| --- | --- |"]
    lines += [f"| `{role}` | `{spec['name']}` |" for role, spec in cat.topics]
    return "\n".join(lines) + "\n"


def updated(page: str, cat: Catalogue) -> str:
    """The page with the part between the markers replaced by the catalogue's tables."""
    head, sep, rest = page.partition(BEGIN + "\n")
    _old, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"the page has no '{BEGIN}' … '{END}' section")
    return head + BEGIN + "\n" + render(cat) + END + tail


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m rtm.catalogue_docs",
        description="Rewrite the catalogue tables of a Markdown page from the metric catalogue.",
    )
    p.add_argument("page", type=Path, help="the page, e.g. docs/metrics.md")
    args = p.parse_args(argv)
    try:
        text = updated(args.page.read_text(encoding="utf-8"), catalogue())
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"rtm.catalogue_docs: {exc}\n")
        return 2
    args.page.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
