"""Every role's Molecule scenario: create (lab hosts), converge, idempotence, verify, destroy.

Each scenario boots its own lab (own inventory, bridge and subnet), so scenarios can run side
by side: RTM_MOLECULE_JOBS of them at once (default 2), the longest first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

ROLES = Path(__file__).resolve().parents[2] / "roles"
SCENARIOS = sorted(ROLES.glob("*/molecule/*/molecule.yml"))
# Scenarios that start a broker, and Spark on top, take longest: start them first.
_SLOW_FIRST = ("rtm_consumer", "rtm_producer", "kafka", "kafka_topics", "zookeeper")


Result = subprocess.CompletedProcess[str]


def _timed(scenario: Path) -> tuple[Result, float]:
    started = time.monotonic()
    return _run(scenario), time.monotonic() - started


def _run(scenario: Path) -> Result:
    venv_bin = Path(sys.executable).parent
    # molecule calls ansible-config and the scenario calls rtm-lab: both live in the venv.
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("ANSIBLE_CONFIG", None)
    return subprocess.run(
        [str(venv_bin / "molecule"), "test", "-s", scenario.parent.name],
        cwd=scenario.parents[2], env=env, capture_output=True, text=True, timeout=1800,
        check=False,
    )  # fmt: skip


def _rank(scenario: Path) -> int:
    role = scenario.parents[2].name
    return _SLOW_FIRST.index(role) if role in _SLOW_FIRST else len(_SLOW_FIRST)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest) -> Iterator[dict[Path, Future[tuple[Result, float]]]]:
    """Start every selected scenario in a pool; each test waits for its own."""
    selected = {
        item.callspec.params["scenario"]
        for item in request.session.items
        if hasattr(item, "callspec") and "scenario" in item.callspec.params
    }
    jobs = max(1, int(os.environ.get("RTM_MOLECULE_JOBS", "2")))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        yield {s: pool.submit(_timed, s) for s in sorted(selected, key=_rank)}


def test_scenarios_found() -> None:
    assert SCENARIOS, f"no Molecule scenarios under {ROLES}"


def test_every_role_has_a_scenario() -> None:
    roles = {p.name for p in ROLES.iterdir() if (p / "tasks" / "main.yml").exists()}
    with_scenario = {s.parents[2].name for s in SCENARIOS}
    assert roles == with_scenario, f"roles without a scenario: {sorted(roles - with_scenario)}"


@pytest.mark.parametrize(
    "scenario", SCENARIOS, ids=[f"{s.parents[2].name}-{s.parent.name}" for s in SCENARIOS]
)
def test_molecule_scenario(scenario: Path, runs, report_scenario_seconds) -> None:
    result, seconds = runs[scenario].result()
    report_scenario_seconds(seconds)
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
