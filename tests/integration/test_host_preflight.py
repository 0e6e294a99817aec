"""The common role's host checks refuse a host whose facts contradict the inventory, with the
sentence naming the fix, and pass a host that fits. Runs the role's preflight tasks on the
controller against given facts: nothing is contacted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
PLAY = f"""
- name: The common role's host checks against given facts
  hosts: localhost
  gather_facts: false
  connection: local
  vars:
    _rtm_layout: {{host_addresses: {{localhost: "{{{{ address }}}}"}}}}
    ansible_facts: "{{{{ facts }}}}"
  tasks:
    - name: The checks
      ansible.builtin.import_tasks: {REPO / "roles" / "common" / "tasks" / "preflight.yml"}
"""
VM = {
    "all_ipv4_addresses": ["10.0.0.1"],
    "virtualization_role": "guest",
    "virtualization_type": "kvm",
}
CONTAINER = {**VM, "virtualization_type": "systemd-nspawn"}


def _run(tmp_path: Path, **extra: object) -> tuple[int, str]:
    play = tmp_path / "play.yml"
    play.write_text(PLAY, encoding="utf-8")
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible" / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
    }
    run = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", str(play), "-e", json.dumps(extra)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    report = json.loads(run.stdout)
    messages = [
        str(result.get("msg", ""))
        for play_ in report["plays"]
        for task in play_["tasks"]
        for result in task["hosts"].values()
        if result.get("failed")
    ]
    return run.returncode, " ".join(messages)


@pytest.mark.parametrize(
    ("extra", "refusal"),
    [
        (
            {"address": "192.0.2.9", "facts": VM, "common_sysctl_apply": True},
            "ansible_host=192.0.2.9 is not one of this host's addresses (10.0.0.1)",
        ),
        (
            {"address": "10.0.0.1", "facts": CONTAINER, "common_sysctl_apply": True},
            "is a systemd-nspawn container, where /proc/sys is read-only:"
            " set common_sysctl_apply: false",
        ),
    ],
    ids=["address_not_on_the_host", "sysctl_applied_in_a_container"],
)
def test_a_host_that_contradicts_the_inventory_is_refused(
    tmp_path: Path, extra: dict[str, object], refusal: str
) -> None:
    returncode, message = _run(tmp_path, **extra)
    assert returncode != 0
    assert refusal in " ".join(message.split()), message


@pytest.mark.parametrize(
    "extra",
    [
        {"address": "10.0.0.1", "facts": VM, "common_sysctl_apply": True},
        {"address": "10.0.0.1", "facts": CONTAINER, "common_sysctl_apply": False},
    ],
    ids=["vm", "container_without_sysctl"],
)
def test_a_host_that_fits_passes(tmp_path: Path, extra: dict[str, object]) -> None:
    returncode, message = _run(tmp_path, **extra)
    assert (returncode, message) == (0, "")
