"""The metric catalogue (``catalogue.yml`` beside this file): metric kinds, their topics and
metrics, and the consumer jobs with their alert rules, validated.

Everything that knows a kind, a metric, a job or a pipeline topic reads it from here: the app,
``fab status``, the benchmarks, the tests, and the Ansible roles (through the ``rtm_catalogue``
lookup of the ``rtm`` role, which loads this module by its file path). So this module imports
nothing of rtm and nothing outside the standard library but PyYAML.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PATH = Path(__file__).with_name("catalogue.yml")
AGGREGATIONS = ("avg", "max")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_INCIDENTS = ("spike", "ramp", "scale")


class CatalogueError(ValueError):
    """The catalogue is invalid; the message names the entry."""


@dataclass(frozen=True)
class Incident:
    """What a kind's incident does to one metric: ``spike`` draws from a range, ``ramp``
    climbs towards a value (``steep`` times faster than the incident lasts), ``scale``
    multiplies."""

    shape: str
    low: float
    high: float
    steep: float = 1.0

    def apply(self, value: float, progress: float, draw: float) -> float:
        """The value during the incident; ``draw`` is a uniform random number in [0, 1)."""
        if self.shape == "spike":
            return self.low + (self.high - self.low) * draw
        if self.shape == "ramp":
            return value + (self.high - value) * min(1.0, progress * self.steep)
        return value * self.high


@dataclass(frozen=True)
class Sample:
    """The sample data generator's model of one metric."""

    base: tuple[float, float]  # per-server baseline, drawn uniformly from this range
    daily: float  # amplitude of the daily cycle
    noise: float  # standard deviation of gaussian noise
    drift: float  # change per hour
    decimals: int
    incident: Incident | None


@dataclass(frozen=True)
class Metric:
    name: str
    maximum: float | None  # None: no upper bound (only >= 0)
    description: str
    sample: Sample


@dataclass(frozen=True)
class Kind:
    """One metric kind: its topic, its CSV file and the metric fields of its records."""

    name: str
    topic: str  # the default Kafka topic name (kafka.topics.<name> overrides it)
    csv_name: str
    incident: str  # the name of the sample data's incident of this kind
    metrics: tuple[Metric, ...]

    @functools.cached_property
    def columns(self) -> tuple[str, ...]:
        return ("ts", "server_id", *(m.name for m in self.metrics))


@dataclass(frozen=True)
class Rule:
    kind: str
    metric: str
    threshold: float  # the default; the config's consumer.thresholds overrides it


@dataclass(frozen=True)
class Job:
    """A job aggregates some metrics of some kinds with one function (avg or max)."""

    name: str
    aggregation: str
    rules: tuple[Rule, ...]
    catalogue_kinds: tuple[Kind, ...]

    @property
    def kinds(self) -> tuple[Kind, ...]:
        """The kinds the job reads, in catalogue order."""
        return self.catalogue_kinds

    @property
    def metrics(self) -> tuple[tuple[str, str], ...]:
        """(kind name, metric name) of each rule."""
        return tuple((r.kind, r.metric) for r in self.rules)

    def rule(self, metric: str) -> str:
        """The alert rule name of one metric, e.g. ``cpu_pct_avg``."""
        return f"{metric}_{self.aggregation}"


@dataclass(frozen=True)
class Catalogue:
    kinds: tuple[Kind, ...]
    jobs: tuple[Job, ...]
    topics: tuple[tuple[str, Mapping[str, Any]], ...]  # topics that carry no kind: role -> spec

    def kind(self, name: str) -> Kind:
        for k in self.kinds:
            if k.name == name:
                return k
        raise KeyError(name)

    def job(self, name: str) -> Job:
        for j in self.jobs:
            if j.name == name:
                return j
        raise KeyError(f"unknown job {name!r}; expected one of {[j.name for j in self.jobs]}")

    @property
    def thresholds(self) -> tuple[tuple[str, float], ...]:
        """Default threshold by metric, for every rule of every job."""
        return tuple((r.metric, r.threshold) for j in self.jobs for r in j.rules)

    @property
    def topic_specs(self) -> dict[str, dict[str, Any]]:
        """Every pipeline topic by role (each kind, then alerts, dead_letter): {name, …}."""
        specs: dict[str, dict[str, Any]] = {k.name: {"name": k.topic} for k in self.kinds}
        specs.update((role, dict(spec)) for role, spec in self.topics)
        return specs

    def for_ansible(self) -> dict[str, Any]:
        """The catalogue as plain data for the roles (see roles/rtm/vars/main.yml)."""
        return {
            "kinds": {
                k.name: {
                    "topic": k.topic,
                    "csv": k.csv_name,
                    "metrics": [m.name for m in k.metrics],
                }
                for k in self.kinds
            },
            "jobs": {
                j.name: {
                    "aggregation": j.aggregation,
                    "kinds": [k.name for k in j.kinds],
                    "rules": {r.metric: r.threshold for r in j.rules},
                }
                for j in self.jobs
            },
            "topics": self.topic_specs,
            "thresholds": dict(self.thresholds),
        }


@functools.cache
def catalogue() -> Catalogue:
    """The catalogue shipped with rtm (read once per process)."""
    return load(PATH)


def load(path: Path) -> Catalogue:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{path}: {exc}") from exc
    return parse(data)


def parse(data: object) -> Catalogue:
    top = _mapping(data, "catalogue")
    _only(top, "catalogue", ("kinds", "jobs", "topics"))
    kinds = tuple(_kind(name, spec) for name, spec in _named(top.get("kinds"), "kinds"))
    if not kinds:
        raise CatalogueError("kinds: the catalogue needs at least one kind")
    by_metric = {m.name: k for k in kinds for m in k.metrics}
    if len(by_metric) != sum(len(k.metrics) for k in kinds):
        raise CatalogueError("kinds: every metric name must be unique across kinds")
    jobs = tuple(
        _job(name, spec, kinds, by_metric) for name, spec in _named(top.get("jobs"), "jobs")
    )
    ruled = [r.metric for j in jobs for r in j.rules]
    if len(set(ruled)) != len(ruled):
        raise CatalogueError(
            "jobs: a metric may be the rule of one job only (thresholds are by metric)"
        )
    topics = tuple((role, _topic(role, spec)) for role, spec in _named(top.get("topics"), "topics"))
    clash = {k.name for k in kinds} & {role for role, _ in topics}
    if clash:
        raise CatalogueError(f"topics: {sorted(clash)} is also a kind")
    names = [k.topic for k in kinds] + [str(spec["name"]) for _, spec in topics]
    if len(set(names)) != len(names):
        raise CatalogueError(f"every topic needs its own name, got {names}")
    if len({k.csv_name for k in kinds}) != len(kinds):
        raise CatalogueError("kinds: every kind needs its own csv file")
    return Catalogue(kinds=kinds, jobs=jobs, topics=topics)


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CatalogueError(f"{where}: expected a mapping, got {value!r}")
    return value


def _only(spec: Mapping[str, Any], where: str, known: tuple[str, ...]) -> None:
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise CatalogueError(f"{where}.{unknown[0]}: unknown key (known: {list(known)})")


def _named(value: object, where: str) -> list[tuple[str, Mapping[str, Any]]]:
    entries = []
    for name, spec in _mapping(value, where).items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise CatalogueError(f"{where}.{name}: a name is a lower-case identifier")
        entries.append((name, _mapping(spec, f"{where}.{name}")))
    return entries


def _number(value: object, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise CatalogueError(f"{where}: expected a number >= 0, got {value!r}")
    return float(value)


def _kind(name: str, spec: Mapping[str, Any]) -> Kind:
    where = f"kinds.{name}"
    _only(spec, where, ("topic", "csv", "incident", "metrics"))
    topic = spec.get("topic")
    if not isinstance(topic, str) or not _TOPIC.match(topic):
        raise CatalogueError(f"{where}.topic: not a valid Kafka topic name: {topic!r}")
    csv_name = spec.get("csv")
    if not isinstance(csv_name, str) or not re.match(r"^[\w.-]+\.csv$", csv_name):
        raise CatalogueError(f"{where}.csv: expected a file name ending in .csv, got {csv_name!r}")
    incident = spec.get("incident", f"{name}_incident")
    if not isinstance(incident, str) or not _NAME.match(incident):
        raise CatalogueError(f"{where}.incident: a name is a lower-case identifier")
    metrics = tuple(
        _metric(f"{where}.metrics", m, s)
        for m, s in _named(spec.get("metrics"), f"{where}.metrics")
    )
    if not metrics:
        raise CatalogueError(f"{where}.metrics: a kind needs at least one metric")
    if {"ts", "server_id", "producer_host"} & {m.name for m in metrics}:
        raise CatalogueError(f"{where}.metrics: ts, server_id and producer_host are record fields")
    return Kind(name, topic, csv_name, incident, metrics)


def _metric(where: str, name: str, spec: Mapping[str, Any]) -> Metric:
    where = f"{where}.{name}"
    _only(spec, where, ("description", "maximum", "sample"))
    description = spec.get("description")
    if not isinstance(description, str) or not description:
        raise CatalogueError(f"{where}.description: required")
    maximum = spec.get("maximum")
    top = None if maximum is None else _number(maximum, f"{where}.maximum")
    return Metric(name, top, description, _sample(spec.get("sample"), f"{where}.sample", top))


def _sample(value: object, where: str, maximum: float | None) -> Sample:
    spec = _mapping(value, where)
    _only(spec, where, ("base", "daily", "noise", "drift", "decimals", "incident"))
    base = spec.get("base")
    if not isinstance(base, list) or len(base) != 2:
        raise CatalogueError(f"{where}.base: expected [low, high], got {base!r}")
    low, high = (_number(b, f"{where}.base") for b in base)
    if low > high or (maximum is not None and high > maximum):
        raise CatalogueError(f"{where}.base: expected low <= high <= the maximum, got {base!r}")
    decimals = spec.get("decimals", 0)
    if not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 6:
        raise CatalogueError(f"{where}.decimals: expected 0 to 6, got {decimals!r}")
    return Sample(
        base=(low, high),
        daily=_number(spec.get("daily", 0), f"{where}.daily"),
        noise=_number(spec.get("noise", 0), f"{where}.noise"),
        drift=_number(spec.get("drift", 0), f"{where}.drift"),
        decimals=decimals,
        incident=_incident(spec.get("incident"), f"{where}.incident"),
    )


def _incident(value: object, where: str) -> Incident | None:
    if value is None:
        return None
    spec = _mapping(value, where)
    shapes = [s for s in _INCIDENTS if s in spec]
    if len(shapes) != 1:
        raise CatalogueError(f"{where}: expected exactly one of {list(_INCIDENTS)}")
    shape = shapes[0]
    _only(spec, where, (shape, "steep"))
    steep = _number(spec.get("steep", 1), f"{where}.steep")
    if shape == "spike":
        bounds = spec[shape]
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise CatalogueError(f"{where}.spike: expected [low, high], got {bounds!r}")
        low, high = (_number(b, f"{where}.spike") for b in bounds)
        return Incident(shape, low, high, steep)
    target = _number(spec[shape], f"{where}.{shape}")
    return Incident(shape, target, target, steep)


def _topic(role: str, spec: Mapping[str, Any]) -> Mapping[str, Any]:
    where = f"topics.{role}"
    _only(spec, where, ("name", "partitions", "replication_factor", "retention_ms"))
    name = spec.get("name")
    if not isinstance(name, str) or not _TOPIC.match(name):
        raise CatalogueError(f"{where}.name: not a valid Kafka topic name: {name!r}")
    for key in set(spec) - {"name"}:
        if not isinstance(spec[key], int) or isinstance(spec[key], bool) or spec[key] < 1:
            raise CatalogueError(f"{where}.{key}: expected an integer >= 1, got {spec[key]!r}")
    return spec


def _job(
    name: str, spec: Mapping[str, Any], kinds: tuple[Kind, ...], by_metric: dict[str, Kind]
) -> Job:
    where = f"jobs.{name}"
    _only(spec, where, ("aggregation", "rules"))
    aggregation = spec.get("aggregation")
    if aggregation not in AGGREGATIONS:
        raise CatalogueError(f"{where}.aggregation: expected one of {list(AGGREGATIONS)}")
    rules = []
    for metric, threshold in _mapping(spec.get("rules"), f"{where}.rules").items():
        if metric not in by_metric:
            raise CatalogueError(f"{where}.rules.{metric}: no kind has this metric")
        rules.append(
            Rule(by_metric[metric].name, metric, _number(threshold, f"{where}.rules.{metric}"))
        )
    if not rules:
        raise CatalogueError(f"{where}.rules: a job needs at least one rule")
    read = dict.fromkeys(r.kind for r in rules)
    return Job(name, str(aggregation), tuple(rules), tuple(k for k in kinds if k.name in read))
