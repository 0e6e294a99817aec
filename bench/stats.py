"""Medians, percentiles and the median/min/max summary every reported figure uses."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), ``pct`` in [0, 100]."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile {pct} is outside [0, 100]")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def rounded(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits, so result files do not churn on noise."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, max(0, digits - 1 - math.floor(math.log10(abs(value)))))


@dataclass
class Figure:
    """One measured quantity: every run's value; reported as median, min and max."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    note: str = ""

    def add(self, value: float) -> None:
        self.values.append(value)

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "name": self.name,
            "unit": self.unit,
            "runs": len(self.values),
            "values": [rounded(v) for v in self.values],
            "note": self.note,
        }
        if self.values:
            body |= {
                "median": rounded(median(self.values)),
                "min": rounded(min(self.values)),
                "max": rounded(max(self.values)),
            }
        return body
