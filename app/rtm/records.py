"""The record schema of each metric topic, and validation of one CSV row against it.

Every record is a flat JSON object::

    {"server_id": "srv-01", "ts": "2025-01-01T00:00:00Z", "cpu_pct": 42.5,
     "producer_host": "producer-1"}

``ts`` is the event time (when the metric was measured) in UTC, ISO-8601 with a ``Z``.
The metric fields of each kind come from the catalogue (``rtm.catalogue``).
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime, timedelta

from rtm.catalogue import Kind, Metric, catalogue

KINDS: tuple[Kind, ...] = catalogue().kinds
MAX_SERVER_ID = 128


class RowError(ValueError):
    """A CSV row that cannot become a record; the message is the reason."""


def kind(name: str) -> Kind:
    return catalogue().kind(name)


def format_ts(moment: datetime) -> str:
    """UTC ISO-8601 with ``Z``; milliseconds only when there are any."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec)[:-6] + "Z"  # without its "+00:00"


def parse_ts(text: str) -> datetime:
    """An ISO-8601 timestamp; one without a zone is taken as UTC. Raises RowError."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise RowError(f"ts: not an ISO-8601 timestamp: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def describe_ahead(ahead: timedelta) -> str:
    """How far a moment lies ahead, in its largest whole unit: ``250000 days``, ``3 minutes``."""
    seconds = int(ahead.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def check_not_future(moment: datetime, now: datetime, max_future: timedelta) -> None:
    """Raise RowError when ``moment`` is more than ``max_future`` ahead of ``now``.

    One such record would move the consumers' watermark into the future and every later record
    would be dropped as late; it is a dead letter instead."""
    if moment - now > max_future:
        raise RowError(f"ts: {describe_ahead(moment - now)} in the future")


def parse_metric(metric: Metric, text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise RowError(f"{metric.name}: not a number: {text!r}") from exc
    if not math.isfinite(value):
        raise RowError(f"{metric.name}: not a finite number: {text!r}")
    if value < 0:
        raise RowError(f"{metric.name}: negative value {value:g}")
    if metric.maximum is not None and value > metric.maximum:
        raise RowError(f"{metric.name}: {value:g} is above the maximum {metric.maximum:g}")
    return value


def from_row(
    k: Kind,
    row: dict[str, str],
    producer_host: str,
    shift: timedelta = timedelta(0),
    future: tuple[datetime, timedelta] | None = None,
) -> dict[str, object]:
    """Build the record of a CSV row (a header-to-value mapping). Raises RowError.

    ``shift`` moves the event time (the replay's loop passes use it). With ``future`` as
    ``(now, max_future)``, an event time further ahead than that is an error."""
    missing = [c for c in k.columns if not (row.get(c) or "").strip()]
    if missing:
        raise RowError(f"missing field(s): {', '.join(missing)}")
    server_id = row["server_id"].strip()
    if len(server_id) > MAX_SERVER_ID:
        raise RowError(f"server_id: longer than {MAX_SERVER_ID} characters")
    moment, ts = _event_time(row["ts"], shift)
    if future is not None:
        check_not_future(moment, *future)
    record: dict[str, object] = {"server_id": server_id, "ts": ts}
    for metric in k.metrics:
        record[metric.name] = parse_metric(metric, row[metric.name])
    record["producer_host"] = producer_host
    return record


@functools.lru_cache(maxsize=4096)
def _event_time(text: str, shift: timedelta) -> tuple[datetime, str]:
    """The moment of a row's ``ts`` text, shifted, and its record text. Remembered: in a replay
    every server's row of every kind repeats the same few timestamps."""
    moment = parse_ts(text) + shift
    return moment, format_ts(moment)


def measurement(
    k: Kind, server_id: str, moment: datetime, values: dict[str, float], producer_host: str
) -> dict[str, object]:
    """A record from live measurements (same shape as a CSV record)."""
    record: dict[str, object] = {"server_id": server_id, "ts": format_ts(moment)}
    for metric in k.metrics:
        record[metric.name] = round(values[metric.name], 3)
    record["producer_host"] = producer_host
    return record
