"""The hosts' locks (``make lock``) pin what pyproject.toml asks for, every pin with its hashes,
and the artifact build knows which pins it has already built."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from rtm.artifacts.build import LOCKS, _sync_with_lock

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
WANTED = {
    "producer": PROJECT["dependencies"],
    "consumer": PROJECT["dependencies"] + PROJECT["optional-dependencies"]["consumer"],
}


def _pins(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of each requirement of a pip-compile lock."""
    pins: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if not line[0].isspace():
            pinned = Requirement(line.rstrip(" \\"))
            name = canonicalize_name(pinned.name)
            pins[name] = (str(pinned.specifier).removeprefix("=="), [])
        elif line.strip().startswith("--hash=sha256:"):
            pins[name][1].append(line.strip().removeprefix("--hash=sha256:").rstrip(" \\"))
    return pins


@pytest.mark.parametrize("kind", sorted(WANTED))
def test_each_lock_pins_what_pyproject_asks_with_hashes(kind: str) -> None:
    pins = _pins(LOCKS / f"{kind}.txt")
    for wanted in map(Requirement, WANTED[kind]):
        name = canonicalize_name(wanted.name)
        assert name in pins, f"{kind}.txt lacks {wanted}: run make lock"
        assert wanted.specifier.contains(pins[name][0]), f"{kind}.txt pins {name}=={pins[name][0]}"
    for name, (version, hashes) in pins.items():
        assert hashes, f"{kind}.txt: {name}=={version} has no hash"
        assert all(len(h) == 64 for h in hashes), f"{kind}.txt: {name}: {hashes}"


def test_the_producer_lock_is_part_of_the_consumer_lock() -> None:
    producer, consumer = _pins(LOCKS / "producer.txt"), _pins(LOCKS / "consumer.txt")
    assert producer == {name: consumer[name] for name in producer}


def test_the_build_keeps_the_locked_wheels_and_fetches_the_rest(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text(
        "kafka-python==3.0.12 \\\n    --hash=sha256:" + "a" * 64 + "\n"
        "    # via rtm (pyproject.toml)\n"
        "pyyaml==6.0.4 \\\n    --hash=sha256:" + "b" * 64 + "\n"
    )
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    kept = ["kafka_python-3.0.12-py3-none-any.whl", "rtm-0.1.0-py3-none-any.whl"]
    stale = "pyyaml-6.0.3-cp311-cp311-manylinux2014_x86_64.whl"
    for name in [*kept, stale]:
        (wheels / name).touch()
    assert _sync_with_lock(wheels, lock) == ["pyyaml==6.0.4"]
    assert sorted(p.name for p in wheels.iterdir()) == kept
