"""Fixtures shared by the unit and integration tiers.

One SparkSession per test process: Spark's static settings (``spark.jars``) are fixed when the
first session starts, so the session is built once here, with the Kafka connector jars from the
artifact cache when it exists (the integration tier fails with "run make artifacts" otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def artifacts_root() -> Path:
    return Path(os.environ.get("RTM_ARTIFACTS", REPO / "artifacts")).resolve()


def connector_jars() -> list[Path]:
    return sorted((artifacts_root() / "spark").glob("*.jar"))


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from pyspark.sql import SparkSession  # noqa: PLC0415  (only tests that need Spark pay for it)

    builder = (
        SparkSession.builder.master("local[2]")
        .appName("rtm-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "1g")
    )
    jars = connector_jars()
    if jars:
        builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# Wall time per tier (unit, integration, lab), summed over each test's setup, call and
# teardown, printed at the end of the run: the budget of `make test` is watched tier by tier.
_TIER_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    parts = Path(report.fspath).parts
    tier = next((p for p in ("unit", "integration", "lab") if p in parts), "other")
    _TIER_SECONDS[tier] = _TIER_SECONDS.get(tier, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _TIER_SECONDS:
        return
    terminalreporter.section("time per tier")
    for tier, seconds in sorted(_TIER_SECONDS.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{tier:<12} {seconds / 60:6.1f} min")
