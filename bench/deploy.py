"""Deployment: site.yml on fresh hosts, runs with nothing to change, and fab status.

A fresh lab each cycle (rtm-lab down, then up), so the first run installs everything. The
no-change run is repeated with one Ansible setting switched off through its environment
variable (ansible.cfg itself is never edited), which shows what that setting buys, then three
times as tuned with the pipeline settled (the first overlaps the JVMs' warm-up). Last, one
threshold is changed in a copy of the inventory and applied the documented way
(docs/operations.md, "Targeted runs"), counting the consumer jobs it restarted.
"""

from __future__ import annotations

import configparser
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench import REPO
from bench.lab import BenchError, Target, Timed, lab_down, playbook, recap, run, tail, tool
from bench.report import Section
from bench.stats import median
from rtm.catalogue import catalogue
from rtm.layout import load_layout

log = logging.getLogger(__name__)

STATUS_RUNS = 5
SETTLED_RUNS = 3
SLOWEST = 10
# The as-deployed no-change run is profiled: every task's wall time, slowest first.
PROFILE_ENV = {
    "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
    "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all",
    "PROFILE_TASKS_SORT_ORDER": "descending",
}
_TASK_TIME = re.compile(r"^(?P<task>\S.*?) -+ (?P<seconds>\d+\.\d+)s$", re.MULTILINE)


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


def task_times(output: str) -> list[tuple[str, float]]:
    """The profile_tasks summary of a run: (task, seconds) in its order, slowest first."""
    _, found, summary = output.rpartition("TASKS RECAP")
    return [(m["task"], float(m["seconds"])) for m in _TASK_TIME.finditer(summary)] if found else []


def role_times(tasks: list[tuple[str, float]]) -> dict[str, float]:
    """Seconds per role ("role : task"); tasks of no role (fact gathering) as "(play)"."""
    totals: dict[str, float] = {}
    for task, seconds in tasks:
        role = task.split(" : ", 1)[0] if " : " in task else "(play)"
        totals[role] = totals.get(role, 0.0) + seconds
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def _profile(result: Timed, section: Section) -> None:
    tasks = task_times(result.output)
    if not tasks:
        raise BenchError(f"no TASKS RECAP in the profiled run:\n{tail(result.output)}")
    for role, seconds in role_times(tasks).items():
        section.figure(f"site.yml, nothing to change: role {role}", "s").add(seconds)
    section.details.setdefault("slowest_tasks_no_change", []).append(
        [[task, round(seconds, 2)] for task, seconds in tasks[:SLOWEST]]
    )


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
        second = playbook(inventory, extra_env=PROFILE_ENV)
        section.figure("site.yml, nothing to change", "s").add(second.seconds)
        section.figure("site.yml, nothing to change: changed tasks", "tasks").add(changed(second))
        _profile(second, section)
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
        # The first no-change run overlaps the JVMs' warm-up after the fresh deploy; the same
        # run again once the toggled runs have given the pipeline minutes to settle. Several
        # times: the pipeline shares the cores, and one run can meet a busy micro-batch.
        for number in range(1, SETTLED_RUNS + 1):
            log.info("site.yml again, nothing to change, pipeline settled (%d)", number)
            settled = playbook(inventory)
            section.figure(SETTLED, "s").add(settled.seconds)
            section.figure(f"{SETTLED}: changed tasks", "tasks").add(changed(settled))
        # Last: it leaves the consumers with a threshold the inventory does not have.
        _threshold_change(inventory, section)
    finally:
        if not keep:
            lab_down(inventory)


THRESHOLD_CHANGE = "threshold change applied (--tags configure --limit consumers)"
SETTLED = "site.yml, nothing to change, pipeline settled"


def _threshold_change(inventory: Path, section: Section) -> None:
    """Raise the first rule's threshold in a copy of the inventory and apply it."""
    target = Target.load(inventory)
    consumers = target.addresses("consumers")
    rule = catalogue().jobs[0].rules[0]
    with tempfile.TemporaryDirectory(prefix="rtm-bench-inventory-") as tmp:
        changed_inventory = Path(tmp) / inventory.name
        shutil.copytree(inventory, changed_inventory)
        # Its own file: group_vars/all/*.yml merge, and the lab's rtm.yml sets no thresholds.
        (changed_inventory / "group_vars" / "all" / "zz-bench-threshold.yml").write_text(
            yaml.safe_dump({"rtm_app_thresholds": {rule.metric: rule.threshold + 0.5}})
        )
        before = _consumer_starts(target, consumers)
        log.info("site.yml --tags configure --limit consumers, %s threshold changed", rule.metric)
        cmd = [tool("ansible-playbook"), "-i", str(changed_inventory),
               str(REPO / "ansible" / "site.yml"), "--tags", "configure",
               "--limit", target.layout.group("consumers")]  # fmt: skip
        result = run(cmd, timeout=600)
    changed(result)
    section.figure(THRESHOLD_CHANGE, "s").add(result.seconds)
    after = _consumer_starts(target, consumers)
    restarted = sorted(unit for unit in after if before.get(unit) != after[unit])
    section.details.setdefault("threshold_change_restarted", []).append(restarted)


def _consumer_starts(target: Target, addresses: list[str]) -> dict[str, str]:
    """Per consumer job unit ("address unit"): its systemd invocation id, new at every start."""
    starts = {}
    for address in addresses:
        listed = target.ssh(
            address,
            "for u in $(systemctl list-units --plain --no-legend 'rtm-consumer@*' | cut -d' ' -f1);"
            " do echo $u $(systemctl show -p InvocationID --value $u); done",
        )
        if listed.returncode != 0:
            raise BenchError(f"no consumer job list from {address}:\n{tail(listed.output)}")
        for line in listed.stdout.splitlines():
            unit, _, invocation = line.partition(" ")
            starts[f"{address} {unit}"] = invocation
    return starts


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
    security = "tls" if load_layout(inventory).tls else "plaintext"
    section.settings |= {
        "inventory": str(inventory),
        "fresh_cycles": runs,
        "security": security,
    } | {f"ansible_{k}": v for k, v in settings.items()}
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
    settled = med(SETTLED)
    if base and settled:
        section.notes.append(
            f"Nothing to change: {base:.0f} s right after the fresh deploy, while the JVMs warm "
            f"up; {settled:.0f} s once the pipeline has run for minutes."
        )
    restarts = section.details.get("threshold_change_restarted")
    if restarts:
        section.notes.append(
            f"The threshold change restarted {', '.join(restarts[-1]) or 'no unit'} "
            f"(last cycle), in {med(THRESHOLD_CHANGE):.0f} s (median)."
        )
    slowest = section.details.get("slowest_tasks_no_change")
    if slowest:
        listed = "; ".join(f"{task} {seconds:.1f} s" for task, seconds in slowest[-1][:5])
        section.notes.append(f"Slowest tasks of the last no-change run: {listed}.")
    # The toggled runs follow the first no-change run, on a pipeline past its warm-up: the
    # settled run is the tuned one to hold them against.
    tuned = settled or base
    for toggle in TOGGLES:
        value = med(f"site.yml, nothing to change, {toggle.name}")
        if tuned and value:
            section.notes.append(
                f"{toggle.name}: the no-change run takes {value:.0f} s instead of {tuned:.0f} s "
                f"({value / tuned - 1:+.0%})."
            )
