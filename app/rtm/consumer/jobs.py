"""The two consumer jobs of the seed: which topics they read and which rules they apply."""

from __future__ import annotations

from dataclasses import dataclass

from rtm.records import Kind, kind


@dataclass(frozen=True)
class Job:
    """A job aggregates some metrics of some topic kinds with one function (avg or max)."""

    name: str
    aggregation: str  # "avg" or "max"
    metrics: tuple[tuple[str, str], ...]  # (kind name, metric name), each one alert rule

    @property
    def kinds(self) -> tuple[Kind, ...]:
        names = dict.fromkeys(k for k, _ in self.metrics)
        return tuple(kind(name) for name in names)

    def rule(self, metric: str) -> str:
        """The alert rule name of one metric, e.g. ``cpu_pct_avg``."""
        return f"{metric}_{self.aggregation}"


JOBS: tuple[Job, ...] = (
    Job("cpu_mem", "avg", (("cpu", "cpu_pct"), ("mem", "mem_pct"))),
    Job(
        "net_disk",
        "max",
        (("net", "net_in_bytes_per_s"), ("net", "net_out_bytes_per_s"), ("disk", "disk_pct")),
    ),
)


def job(name: str) -> Job:
    for j in JOBS:
        if j.name == name:
            return j
    raise KeyError(f"unknown job {name!r}; expected one of {[j.name for j in JOBS]}")
