"""Every role's Molecule scenario: create (lab hosts), converge, idempotence, verify, destroy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

ROLES = Path(__file__).resolve().parents[2] / "roles"
SCENARIOS = sorted(ROLES.glob("*/molecule/*/molecule.yml"))


def test_scenarios_found() -> None:
    assert SCENARIOS, f"no Molecule scenarios under {ROLES}"


@pytest.mark.parametrize(
    "scenario", SCENARIOS, ids=[f"{s.parents[2].name}-{s.parent.name}" for s in SCENARIOS]
)
def test_molecule_scenario(scenario: Path) -> None:
    venv_bin = Path(sys.executable).parent
    # molecule calls ansible-config and the scenario calls rtm-lab: both live in the venv.
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("ANSIBLE_CONFIG", None)
    result = subprocess.run(
        [str(venv_bin / "molecule"), "test", "-s", scenario.parent.name],
        cwd=scenario.parents[2], env=env, capture_output=True, text=True, timeout=1500,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
