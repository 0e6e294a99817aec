"""The strategy plugin's cache of Mitogen's module scans finds the same module_utils as Mitogen
alone, and compiles a file shared by several modules once."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import ansible
import pytest

finder = pytest.importorskip("ansible_mitogen.module_finder")

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "ansible" / "plugins" / "strategy" / "mitogen_linear.py"
ANSIBLE_DIR = Path(ansible.__file__).parent
MODULES = ["file", "user", "stat", "command", "systemd_service"]


def _scans() -> list[list[tuple[str, str, bool]]]:
    search_path = (str(ANSIBLE_DIR / "module_utils"),)
    modules = {name: str(ANSIBLE_DIR / "modules" / f"{name}.py") for name in MODULES}
    return [
        finder.scan(f"ansible_module_{name}", path, search_path) for name, path in modules.items()
    ]


def test_cached_scans_find_what_mitogen_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    # Undone after the test: the plugin replaces both names in Mitogen's module.
    monkeypatch.setattr(finder, "walk_imports", finder.walk_imports)
    monkeypatch.setattr(finder, "compile", compile, raising=False)
    expected = _scans()
    assert all(expected), "Mitogen found no module_utils for some module"

    spec = importlib.util.spec_from_file_location("rtm_mitogen_linear", PLUGIN)
    assert spec is not None
    assert spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))

    assert _scans() == expected
    # basic.py and its imports are shared by every module: compiled for the first one only.
    assert finder.compile.cache_info().hits > 0
