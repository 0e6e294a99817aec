"""The roles and the controller's tools refuse the same inventories with the same words, and
compute the same layout from the others.

The layout is computed by app/rtm/layout.py (its cases run in Python in
tests/unit/test_layout.py). Here a selection of them is written as inventory directories and
run through the two ways in: ``ansible/layout.yml`` (the rtm role's preflight and its
``rtm_layout`` lookup; it touches no host) and ``load_layout`` (``ansible-inventory``, as
``fab status`` and the Vagrantfile read it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from inventory_cases import REFUSED, VALID, Case, dig, write_inventory
from rtm.layout import LayoutError, load_layout

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "ansible" / "layout.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
RUN_TIMEOUT = 180
# One refusal of each kind the layout makes: a setting, the groups, a per-host value, a
# computed name set by hand, a topic.
THROUGH_ANSIBLE = (
    *VALID,
    *(
        c
        for c in REFUSED
        if c.name
        in (
            "unknown_install_source",
            "even_zookeeper_ensemble",
            "port_set_for_one_group_only",
            "computed_value_set_in_the_inventory",
            "replication_above_broker_count",
        )
    ),
)


@dataclass(frozen=True)
class Outcome:
    returncode: int
    failure: str  # the message of the task that failed, "" when none did
    layout: dict[str, Any] | None  # what "Print the layout" showed, None when it did not run
    output: str


def _task_results(report: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            for result in task.get("hosts", {}).values():
                yield task["task"]["name"], result


def _failure_message(result: dict[str, Any]) -> str:
    """A failed task's message; a failed loop reports its failed items' messages."""
    items = [r for r in result.get("results", []) if r.get("failed")]
    return " ".join(str(r.get("msg", "")) for r in [*items, result])


def run_layout(inventory: Path, *extra: str) -> Outcome:
    # The json callback gives each task's message whole; the default one wraps long lines.
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible" / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
    }
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(PLAYBOOK), *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    output = result.stdout + result.stderr
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        return Outcome(result.returncode, "", None, output)
    failure, layout = "", None
    for name, task_result in _task_results(report):
        if task_result.get("failed"):
            failure = _failure_message(task_result)
        if name == "Print the layout":
            layout = task_result.get("_rtm_layout")
    return Outcome(result.returncode, failure, layout, output)


@pytest.fixture(scope="module")
def inventories(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {c.name: write_inventory(c, tmp_path_factory.mktemp(c.name)) for c in THROUGH_ANSIBLE}


@pytest.fixture(scope="module")
def outcomes(inventories: dict[str, Path]) -> dict[str, Outcome]:
    """Run every case once, side by side: each run is seconds of Ansible start-up."""
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        runs = pool.map(run_layout, inventories.values())
        return dict(zip(inventories, runs, strict=True))


@pytest.mark.parametrize("case", VALID, ids=[c.name for c in VALID])
def test_roles_and_tools_compute_one_layout(
    case: Case, outcomes: dict[str, Outcome], inventories: dict[str, Path]
) -> None:
    outcome = outcomes[case.name]
    assert outcome.returncode == 0, outcome.output[-3000:]
    assert outcome.layout is not None
    assert {path: dig(outcome.layout, path) for path in case.layout} == case.layout
    tools = load_layout(inventories[case.name])
    assert {**tools.data, "problems": []} == outcome.layout


@pytest.mark.parametrize(
    "case", THROUGH_ANSIBLE[len(VALID) :], ids=[c.name for c in THROUGH_ANSIBLE[len(VALID) :]]
)
def test_roles_and_tools_refuse_with_the_same_words(
    case: Case, outcomes: dict[str, Outcome], inventories: dict[str, Path]
) -> None:
    outcome = outcomes[case.name]
    assert case.refusal is not None
    assert outcome.returncode != 0, outcome.output[-3000:]
    assert outcome.layout is None, "the layout was printed despite the contradiction"
    assert case.refusal in " ".join(outcome.failure.split()), outcome.output[-3000:]
    with pytest.raises(LayoutError) as info:
        load_layout(inventories[case.name])
    assert case.refusal in str(info.value)


def test_a_setting_given_above_the_inventory_holds_for_every_host(
    inventories: dict[str, Path],
) -> None:
    # Extra vars (like play or role vars) outrank group_vars for every host alike.
    outcome = run_layout(inventories["zookeeper_mode_lab_like"], "-e", "rtm_topic_partitions=5")
    assert outcome.returncode == 0, outcome.output[-3000:]
    assert outcome.layout is not None
    assert {spec["partitions"] for spec in outcome.layout["topics"].values()} == {5}
