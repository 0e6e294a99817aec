"""Every role's meta/argument_specs.yml describes exactly the keys of its defaults/main.yml,
and every public default carries a one-line comment (prometheus-community checks the same)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"
ROLES = sorted(p.parent.parent.name for p in ROLES_DIR.glob("*/defaults/main.yml"))
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):")


def _defaults(role: str) -> dict:
    return yaml.safe_load((ROLES_DIR / role / "defaults" / "main.yml").read_text()) or {}


def _spec_options(role: str, entry: str = "main") -> dict:
    path = ROLES_DIR / role / "meta" / "argument_specs.yml"
    assert path.exists(), f"{role}: meta/argument_specs.yml is missing"
    specs = yaml.safe_load(path.read_text())["argument_specs"]
    return specs[entry].get("options") or {}


def test_roles_found() -> None:
    assert ROLES, f"no roles with defaults under {ROLES_DIR}"


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_list_the_same_keys(role: str) -> None:
    defaults = set(_defaults(role))
    options = set(_spec_options(role))
    assert defaults - options == set(), f"{role}: in defaults but not in argument_specs"
    assert options - defaults == set(), f"{role}: in argument_specs but not in defaults"


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_match_plain_defaults(role: str) -> None:
    defaults = _defaults(role)
    for key, option in _spec_options(role).items():
        if "default" in option:
            assert option["default"] == defaults[key], (
                f"{role}: {key} default differs from defaults/main.yml"
            )
        assert option.get("description"), f"{role}: {key} has no description"


@pytest.mark.parametrize("role", ROLES)
def test_every_public_default_has_a_comment_above_it(role: str) -> None:
    lines = (ROLES_DIR / role / "defaults" / "main.yml").read_text().splitlines()
    for index, line in enumerate(lines):
        match = _KEY.match(line)
        if match:
            above = lines[index - 1] if index else ""
            assert above.startswith("# "), f"{role}: {match.group(1)} has no comment line above it"


@pytest.mark.parametrize("role", ROLES)
def test_public_defaults_carry_the_role_prefix(role: str) -> None:
    prefix = f"{role}_"
    wrong = [key for key in _defaults(role) if not key.startswith(prefix)]
    assert not wrong, f"{role}: defaults without the {prefix} prefix: {wrong}"
