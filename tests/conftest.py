"""Fixtures shared by the unit and integration tiers.

One SparkSession per test process: Spark's static settings (``spark.jars``) are fixed when the
first session starts, so the session is built once here, with the Kafka connector jars from the
artifact cache when it exists (the integration tier fails with "run make artifacts" otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def artifacts_root() -> Path:
    return Path(os.environ.get("RTM_ARTIFACTS", REPO / "artifacts")).resolve()


def connector_jars() -> list[Path]:
    return sorted((artifacts_root() / "spark").glob("*.jar"))


def _tier(path: Path | str) -> str:
    parts = Path(path).parts
    return next((p for p in ("unit", "integration", "lab") if p in parts), "other")


# The services the unit and integration tiers share (Spark, the broker) start once and stop as
# the lab tier begins: it comes last, and its labs need both cores and the memory.
_UNTIL_LAB = pytest.StashKey[ExitStack]()


@pytest.fixture(scope="session")
def until_lab(pytestconfig: pytest.Config) -> Iterator[ExitStack]:
    """Enter a service here to have it stopped before the first lab test (or at the end)."""
    stack = pytestconfig.stash.setdefault(_UNTIL_LAB, ExitStack())
    with stack:
        yield stack


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _tier(item.path) == "lab" and _UNTIL_LAB in item.config.stash:
        item.config.stash[_UNTIL_LAB].close()


def _stop_with_its_jvm(session) -> None:
    """SparkSession.stop() keeps the JVM it launched for this process; end that too."""
    from pyspark import SparkContext  # noqa: PLC0415

    gateway = SparkContext._gateway  # pyspark has no public way to end its JVM
    session.stop()
    if gateway is not None and getattr(gateway, "proc", None) is not None:
        gateway.shutdown()
        gateway.proc.stdin.close()  # pyspark's JVM exits when its stdin closes
        gateway.proc.wait(timeout=60)
        SparkContext._gateway = SparkContext._jvm = None


@pytest.fixture(scope="session")
def spark(until_lab: ExitStack) -> object:
    # Only tests that need Spark pay for importing it.
    from pyspark.sql import SparkSession  # noqa: PLC0415

    from rtm.consumer.runner import SESSION_CONF, use_this_python  # noqa: PLC0415

    use_this_python()
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("rtm-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.memory", "1g")
    )
    for key, value in SESSION_CONF.items():
        builder = builder.config(key, value)
    jars = connector_jars()
    if jars:
        builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
    session = builder.getOrCreate()
    until_lab.callback(_stop_with_its_jvm, session)
    session.sparkContext.setLogLevel("ERROR")
    return session


# Wall time per tier (unit, integration, lab), summed over each test's setup, call and
# teardown, printed at the end of the run: the budget of `make test` is watched tier by tier.
_TIER_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    tier = _tier(report.fspath)
    _TIER_SECONDS[tier] = _TIER_SECONDS.get(tier, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _TIER_SECONDS:
        return
    terminalreporter.section("time per tier")
    for tier, seconds in sorted(_TIER_SECONDS.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{tier:<12} {seconds / 60:6.1f} min")
