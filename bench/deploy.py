"""Deployment: site.yml on fresh hosts, a second run with nothing to change, and fab status.

A fresh lab each cycle (rtm-lab down, then up), so the first run installs everything. The
no-change run is repeated with one Ansible setting switched off through its environment
variable (ansible.cfg itself is never edited), which shows what that setting buys.
"""

from __future__ import annotations

import configparser
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import REPO
from bench.lab import BenchError, Timed, lab_down, playbook, recap, run, tail, tool
from bench.report import Section
from bench.stats import median

log = logging.getLogger(__name__)

STATUS_RUNS = 5


@dataclass(frozen=True)
class Toggle:
    name: str
    env: dict[str, str]
    prime: bool = False  # run once untimed first (a cache has to be filled)


# Each switches one thing against ansible/ansible.cfg for a no-change run.
TOGGLES = (
    Toggle("Mitogen off (linear strategy)", {"ANSIBLE_STRATEGY": "linear"}),
    Toggle("pipelining off", {"ANSIBLE_PIPELINING": "False"}),
    Toggle("SSH ControlPersist off", {"ANSIBLE_SSH_ARGS": "-o ControlMaster=no"}),
    Toggle("forks 1", {"ANSIBLE_FORKS": "1"}),
    Toggle(
        "fact cache (jsonfile) on",
        {"ANSIBLE_CACHE_PLUGIN": "jsonfile", "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "86400"},
        prime=True,
    ),
)


def ansible_settings(cfg: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(cfg)
    defaults, ssh = parser["defaults"], parser["ssh_connection"]
    return {
        "strategy": defaults.get("strategy", "linear"),
        "forks": defaults.get("forks", "5"),
        "gathering": defaults.get("gathering", "implicit"),
        "fact_caching": defaults.get("fact_caching", "memory (nothing kept between runs)"),
        "pipelining": ssh.get("pipelining", "false"),
        "ssh_args": ssh.get("ssh_args", ""),
    }


def changed(result: Timed) -> int:
    """The run's changed-task count (all hosts); BenchError when it failed."""
    counts = recap(result.output)
    if not counts:
        raise BenchError(f"no PLAY RECAP in the site.yml output:\n{tail(result.output)}")
    failed = sum(c["failed"] + c["unreachable"] for c in counts.values())
    if result.returncode != 0 or failed:
        raise BenchError(f"site.yml failed (exit {result.returncode}):\n{tail(result.output, 30)}")
    total = sum(c["changed"] for c in counts.values())
    log.info("site.yml took %.0fs, changed=%d", result.seconds, total)
    return total


def _toggle_env(toggle: Toggle, cache_dir: Path) -> dict[str, str]:
    if "ANSIBLE_CACHE_PLUGIN" in toggle.env:
        return toggle.env | {"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache_dir)}
    return toggle.env


def cycle(inventory: Path, section: Section, cache_dir: Path, *, keep: bool) -> None:
    lab_down(inventory)
    try:
        booted = run([tool("rtm-lab"), "up", "-i", str(inventory)], timeout=1200)
        if booted.returncode != 0:
            raise BenchError(f"rtm-lab up failed:\n{tail(booted.output)}")
        section.figure("rtm-lab up (boot the fresh hosts)", "s").add(booted.seconds)
        log.info("site.yml on the fresh hosts")
        first = playbook(inventory)
        section.figure("site.yml, fresh hosts", "s").add(first.seconds)
        section.figure("site.yml, fresh hosts: changed tasks", "tasks").add(changed(first))
        log.info("site.yml again, nothing to change")
        second = playbook(inventory)
        section.figure("site.yml, nothing to change", "s").add(second.seconds)
        section.figure("site.yml, nothing to change: changed tasks", "tasks").add(changed(second))
        _status_runs(inventory, section)
        for toggle in TOGGLES:
            log.info("site.yml again, %s", toggle.name)
            extra = _toggle_env(toggle, cache_dir)
            if toggle.prime:
                changed(playbook(inventory, extra_env=extra))
            again = playbook(inventory, extra_env=extra)
            section.details.setdefault("changed_tasks_no_change_runs", {}).setdefault(
                toggle.name, []
            ).append(changed(again))
            section.figure(f"site.yml, nothing to change, {toggle.name}", "s").add(again.seconds)
    finally:
        if not keep:
            lab_down(inventory)


def _status_runs(inventory: Path, section: Section) -> None:
    healthy = 0
    for _ in range(STATUS_RUNS):
        result = run([tool("fab"), "status", "--inventory", str(inventory), "--json"], timeout=120)
        healthy += result.returncode == 0
        section.figure("fab status --json", "s").add(result.seconds)
    section.details["fab_status_healthy_runs"] = (
        section.details.get("fab_status_healthy_runs", 0) + healthy
    )


def measure(inventory: Path, section: Section, runs: int, *, keep: bool) -> None:
    settings = ansible_settings(REPO / "ansible" / "ansible.cfg")
    section.settings |= {"inventory": str(inventory), "fresh_cycles": runs} | {
        f"ansible_{k}": v for k, v in settings.items()
    }
    for number in range(1, runs + 1):
        log.info("deployment cycle %d of %d", number, runs)
        with tempfile.TemporaryDirectory(prefix="rtm-bench-facts-") as cache_dir:
            cycle(inventory, section, Path(cache_dir), keep=keep and number == runs)
    _explain(section)


def _explain(section: Section) -> None:
    def med(name: str) -> float | None:
        figure = next((f for f in section.figures if f.name == name), None)
        return median(figure.values) if figure and figure.values else None

    base = med("site.yml, nothing to change")
    for toggle in TOGGLES:
        value = med(f"site.yml, nothing to change, {toggle.name}")
        if base and value:
            section.notes.append(
                f"{toggle.name}: the no-change run takes {value:.0f} s instead of {base:.0f} s "
                f"({value / base - 1:+.0%})."
            )
