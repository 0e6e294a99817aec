"""The lab (or any inventory's hosts) as the benchmarks use it: boot, deploy, ssh, tools."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import REPO
from rtm.inventory import Inventory
from rtm.lab.machine import SSH_OPTIONS
from rtm.layout import Layout, load_layout

log = logging.getLogger(__name__)

_RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


class BenchError(RuntimeError):
    """A benchmark could not run (not a slow result: those are only reported)."""


def tool(name: str) -> str:
    """A tool installed beside this interpreter (the project's virtualenv)."""
    return str(Path(sys.executable).with_name(name))


def env(**overrides: str) -> dict[str, str]:
    base = dict(os.environ)
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    base["ANSIBLE_CONFIG"] = str(REPO / "ansible" / "ansible.cfg")
    base["ANSIBLE_NOCOLOR"] = "1"
    base["ANSIBLE_FORCE_COLOR"] = "0"
    return base | overrides


@dataclass(frozen=True)
class Timed:
    returncode: int
    output: str  # stdout and stderr
    seconds: float
    stdout: str = ""


def run(cmd: Sequence[str], *, timeout: float, extra_env: dict[str, str] | None = None) -> Timed:
    """Run a command from the repository root; its wall time, exit status and output."""
    log.debug("running %s", " ".join(cmd))
    start = time.monotonic()
    try:
        proc = subprocess.run(
            list(cmd), cwd=REPO, env=env(**(extra_env or {})), capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(cmd[:4])} … did not finish within {timeout:.0f}s") from exc
    elapsed = time.monotonic() - start
    return Timed(proc.returncode, proc.stdout + proc.stderr, elapsed, proc.stdout)


def recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP counts of an ansible-playbook run, by host."""
    return {
        m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
        for m in _RECAP.finditer(output)
    }


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Target:
    """A deployed inventory: where its brokers, producers and consumers are."""

    inventory: Path
    inv: Inventory
    layout: Layout

    @classmethod
    def load(cls, inventory: Path) -> Target:
        return cls(inventory, Inventory.load(inventory), load_layout(inventory))

    @property
    def bootstrap(self) -> list[str]:
        return self.layout.bootstrap_servers

    @property
    def replication(self) -> int:
        return int(self.layout.data["kafka_replication_factor"])

    @property
    def min_insync(self) -> int:
        return int(self.layout.data["kafka_min_insync_replicas"])

    def addresses(self, role: str) -> list[str]:
        return [h.address for h in self.inv.group(self.layout.group(role))]

    def ssh(self, address: str, command: str, *, timeout: float = 120) -> Timed:
        return run(["ssh", *SSH_OPTIONS, f"root@{address}", command], timeout=timeout)


def lab_up(inventory: Path) -> None:
    log.info("booting the lab of %s", inventory)
    result = run([tool("rtm-lab"), "up", "-i", str(inventory)], timeout=1200)
    if result.returncode != 0:
        raise BenchError(f"rtm-lab up -i {inventory} failed:\n{tail(result.output)}")


def lab_down(inventory: Path) -> None:
    log.info("taking the lab of %s down", inventory)
    result = run([tool("rtm-lab"), "down", "-i", str(inventory)], timeout=600)
    if result.returncode != 0:
        log.error("rtm-lab down -i %s failed:\n%s", inventory, tail(result.output))


def playbook(
    inventory: Path, *, timeout: float = 3600, extra_env: dict[str, str] | None = None
) -> Timed:
    cmd = [tool("ansible-playbook"), "-i", str(inventory), str(REPO / "ansible" / "site.yml")]
    return run(cmd, timeout=timeout, extra_env=extra_env)


def deploy(inventory: Path) -> None:
    log.info("deploying ansible/site.yml onto %s", inventory)
    result = playbook(inventory)
    if result.returncode != 0:
        raise BenchError(f"site.yml failed on {inventory}:\n{tail(result.output, 30)}")
    log.info("site.yml done in %.0fs", result.seconds)


@contextmanager
def producer_stopped(target: Target) -> Iterator[None]:
    """The deployed rtm-producer stopped meanwhile: it replays the sample into the pipeline,
    whose micro-batches then take most of a core of a two-core machine."""
    _producer_service(target, "stop")
    try:
        yield
    finally:
        _producer_service(target, "start")


def _producer_service(target: Target, action: str) -> None:
    for address in target.addresses("producers"):
        result = target.ssh(address, f"systemctl {action} rtm-producer.service", timeout=120)
        if result.returncode != 0:
            log.warning("systemctl %s rtm-producer on %s: %s", action, address, result.output)
