"""The playbooks honour the inventory's group names (``rtm_*_group``): every play targets a
group that the ``rtm`` role builds from them, and those groups hold the right hosts, dedicated
KRaft controllers included. Runs on the controller only: nothing is contacted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
GROUPS_TASKS = REPO / "roles" / "rtm" / "tasks" / "groups.yml"
# Groups in the other namespace: an inventory that calls its machines what it likes.
RENAMED = {
    "rtm_zookeeper_group": "coordinators",
    "rtm_kafka_group": "brokers",
    "rtm_kafka_controller_group": "quorum",
    "rtm_producer_group": "senders",
    "rtm_consumer_group": "sparks",
}
HOSTS = {
    "coordinators": {f"zk{n}": {"ansible_host": f"192.0.2.{10 + n}"} for n in (1, 2, 3)},
    "brokers": {f"b{n}": {"ansible_host": f"192.0.2.{20 + n}"} for n in (1, 2, 3)},
    "quorum": {f"c{n}": {"ansible_host": f"192.0.2.{30 + n}"} for n in (1, 2, 3)},
    "senders": {"p1": {"ansible_host": "192.0.2.41"}},
    "sparks": {"s1": {"ansible_host": "192.0.2.51"}, "s2": {"ansible_host": "192.0.2.52"}},
}
PROBE = """
- name: Build the groups and write them down
  hosts: all
  gather_facts: false
  connection: local
  tasks:
    - name: The rtm role's groups
      ansible.builtin.import_role:
        name: rtm
        tasks_from: groups.yml
    - name: Write every group
      ansible.builtin.copy:
        content: "{{ groups | to_json }}"
        dest: "{{ out }}"
        mode: "0644"
      run_once: true
      delegate_to: localhost
"""


def _built_groups() -> set[str]:
    """The group names groups.yml builds: one group_by over its ``__rtm_groups``."""
    tasks = yaml.safe_load(GROUPS_TASKS.read_text(encoding="utf-8"))
    grouping = [t for t in tasks if "ansible.builtin.group_by" in t]
    return {name for task in grouping for name in task["vars"]["__rtm_groups"]}


def _plays(playbook: Path) -> list[dict[str, Any]]:
    plays = []
    for play in yaml.safe_load(playbook.read_text(encoding="utf-8")):
        if "ansible.builtin.import_playbook" in play:
            plays += _plays(playbook.parent / play["ansible.builtin.import_playbook"])
        else:
            plays.append(play)
    return plays


@pytest.mark.parametrize("playbook", sorted((REPO / "ansible").glob("*.yml")), ids=lambda p: p.name)
def test_every_play_targets_a_group_the_rtm_role_builds(playbook: Path) -> None:
    allowed = {"all", "localhost"} | _built_groups()
    # A pattern such as "rtm_producers:rtm_consumers" targets each of its groups.
    targets = {group for play in _plays(playbook) for group in play["hosts"].split(":")}
    assert targets <= allowed, f"{playbook.name} targets {targets - allowed}: use {allowed}"


def _groups(tmp_path: Path, kraft: bool) -> dict[str, list[str]]:
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    hosts = {"all": {"children": {g: {"hosts": members} for g, members in HOSTS.items()}}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts), encoding="utf-8")
    settings = {**RENAMED, "rtm_kafka_kraft_enabled": kraft, "rtm_install_source": "offline"}
    (inventory / "group_vars" / "all" / "rtm.yml").write_text(yaml.safe_dump(settings))
    playbook = tmp_path / "probe.yml"
    playbook.write_text(PROBE, encoding="utf-8")
    out = tmp_path / "groups.json"
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible" / "ansible.cfg")}
    done = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(playbook), "-e", f"out={out}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return json.loads(out.read_text(encoding="utf-8"))


def test_kraft_groups_follow_the_renamed_groups_and_include_the_controllers(
    tmp_path: Path,
) -> None:
    groups = _groups(tmp_path, kraft=True)
    assert sorted(groups["rtm_kafka_nodes"]) == ["b1", "b2", "b3", "c1", "c2", "c3"]
    assert groups["rtm_producers"] == ["p1"]
    assert sorted(groups["rtm_consumers"]) == ["s1", "s2"]
    assert "rtm_zookeeper_nodes" not in groups or groups["rtm_zookeeper_nodes"] == []


def test_zookeeper_mode_groups_follow_the_renamed_groups(tmp_path: Path) -> None:
    groups = _groups(tmp_path, kraft=False)
    assert sorted(groups["rtm_zookeeper_nodes"]) == ["zk1", "zk2", "zk3"]
    assert sorted(groups["rtm_kafka_nodes"]) == ["b1", "b2", "b3"]
