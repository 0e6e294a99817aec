"""Hosts install only what they run: rtm's host wheel holds the producer and the consumer with
the modules they import, and none of the controller's (lab, artifacts, fab status, layout)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rtm.artifacts import hostwheel

REPO = Path(__file__).resolve().parents[2]
CONTROLLER_ONLY = (
    "rtm/lab/",
    "rtm/artifacts/",
    "rtm/health/",
    "rtm/layout.py",
    "rtm/inventory.py",
    "rtm/demo.py",
    "rtm/drill.py",
    "rtm/generate.py",
)


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hostwheel.stage(REPO, tmp_path_factory.mktemp("host") / "project")


@pytest.fixture(scope="module")
def wheel(staged: Path, tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheels")
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    result = subprocess.run(
        [*cmd, "--wheel-dir", str(out), str(staged)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("rtm-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_holds_the_host_programs_and_their_data(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for needed in (
        "rtm/producer/cli.py",
        "rtm/consumer/cli.py",
        "rtm/consumer/sinks.py",
        "rtm/catalogue.yml",
        "rtm/sample/cpu_data.csv",
    ):
        assert needed in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    scripts = wheel.read(entry_points).decode().split("[console_scripts]")[1].split()
    assert sorted(s for s in scripts if s.startswith("rtm-")) == ["rtm-consumer", "rtm-producer"]
    metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Provides-Extra: consumer" in metadata
    assert "controller" not in metadata.lower().split("provides-extra:")[-1]


def test_the_wheel_holds_no_controller_code(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    leaked = [n for n in names if n.startswith(CONTROLLER_ONLY)]
    assert leaked == []


def test_the_host_programs_import_from_the_staged_tree_alone(staged: Path) -> None:
    # The staged tree first on the path: an rtm module the imports missed fails here.
    code = (
        "import rtm, rtm.producer.cli, rtm.consumer.cli, rtm.consumer.runner;"
        "import importlib.util as u; print(rtm.__file__, u.find_spec('rtm.lab'))"
    )
    env = {**os.environ, "PYTHONPATH": str(staged)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    where, lab = result.stdout.split()
    assert Path(where).is_relative_to(staged)
    assert lab == "None"


def test_imports_are_followed_through_packages_and_from_imports(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "rtm" / "a").mkdir(parents=True)
    (app / "rtm" / "__init__.py").write_text("")
    (app / "rtm" / "a" / "__init__.py").write_text("")
    (app / "rtm" / "a" / "main.py").write_text("from rtm import b\nfrom rtm.c import thing\n")
    (app / "rtm" / "b.py").write_text("import rtm.d\n")
    (app / "rtm" / "c.py").write_text("thing = 1\n")
    (app / "rtm" / "d.py").write_text("")
    (app / "rtm" / "unused.py").write_text("")
    found = hostwheel.host_modules(app, ["rtm.a.main"])
    assert set(found) == {"rtm", "rtm.a", "rtm.a.main", "rtm.b", "rtm.c", "rtm.d"}
    with pytest.raises(hostwheel.HostWheelError, match=r"rtm\.nope: no such module"):
        hostwheel.host_modules(app, ["rtm.nope"])
