"""Preflight checks that the layout cases do not cover: the common role's host checks refuse a
host whose facts contradict the inventory, rtm_app's an inventory without brokers or a cache
without the rtm wheel (or, for online hosts, the lock), each with the sentence naming the fix,
and both pass what fits. Runs the roles' preflight tasks on the controller against given facts
and values: nothing is contacted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
PLAY = """
- name: A role's preflight checks against given facts and values
  hosts: localhost
  gather_facts: false
  connection: local
  vars:
    ansible_facts: "{{{{ facts | default({{}}) }}}}"
  tasks:
    - name: The checks
      ansible.builtin.import_tasks: {tasks}
"""
VM = {
    "all_ipv4_addresses": ["10.0.0.1"],
    "virtualization_role": "guest",
    "virtualization_type": "kvm",
}
CONTAINER = {**VM, "virtualization_type": "systemd-nspawn"}
ADDRESSED = {"host_addresses": {"localhost": "10.0.0.1"}}
COMMON = {"common_sysctl_apply": True}
RTM_APP = {
    "_rtm_layout": {"kafka_bootstrap_servers": "10.0.0.1:9092"},
    "_rtm_app_rtm_wheel": "wheels/rtm-0.1.0-py3-none-any.whl",
    "rtm_kafka_group": "kafka",
    "rtm_app_version": "0.1.0",
    "rtm_artifacts_dir": "/srv/rtm-artifacts",
    "rtm_install_source": "offline",
    "_rtm_app_lock": "locks/producer.txt",
    "_rtm_app_manifest": {"files": {"locks/producer.txt": "0" * 64}},
}


def _run(tmp_path: Path, role: str, **extra: object) -> tuple[int, str]:
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(tasks=REPO / "roles" / role / "tasks" / "preflight.yml"))
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
            {"_rtm_layout": {"host_addresses": {"localhost": "192.0.2.9"}}, "facts": VM},
            "ansible_host=192.0.2.9 is not one of this host's addresses (10.0.0.1)",
        ),
        (
            {"_rtm_layout": ADDRESSED, "facts": CONTAINER},
            "is a systemd-nspawn container, where /proc/sys is read-only:"
            " set common_sysctl_apply: false",
        ),
    ],
    ids=["address_not_on_the_host", "sysctl_applied_in_a_container"],
)
def test_a_host_that_contradicts_the_inventory_is_refused(
    tmp_path: Path, extra: dict[str, object], refusal: str
) -> None:
    returncode, message = _run(tmp_path, "common", **{**COMMON, **extra})
    assert returncode != 0
    assert refusal in " ".join(message.split()), message


@pytest.mark.parametrize(
    "extra",
    [
        {"_rtm_layout": ADDRESSED, "facts": VM},
        {"_rtm_layout": ADDRESSED, "facts": CONTAINER, "common_sysctl_apply": False},
    ],
    ids=["vm", "container_without_sysctl"],
)
def test_a_host_that_fits_passes(tmp_path: Path, extra: dict[str, object]) -> None:
    returncode, message = _run(tmp_path, "common", **{**COMMON, **extra})
    assert (returncode, message) == (0, "")


@pytest.mark.parametrize(
    ("extra", "refusals"),
    [
        ({}, []),
        (
            {"_rtm_layout": {"kafka_bootstrap_servers": ""}},
            ["rtm_app: the inventory needs hosts in the 'kafka' group."],
        ),
        (
            {"_rtm_app_rtm_wheel": ""},
            [
                "rtm_app: no rtm-0.1.0 wheel in /srv/rtm-artifacts/manifest.json;"
                " run `make artifacts` on the controller first."
            ],
        ),
        ({"rtm_install_source": "online"}, []),
        (
            {"rtm_install_source": "online", "_rtm_app_manifest": {"files": {}}},
            [
                "rtm_app: no locks/producer.txt in /srv/rtm-artifacts/manifest.json (online hosts"
                " install the locked dependencies); run `make artifacts` on the controller again."
            ],
        ),
    ],
    ids=[
        "fits",
        "no_brokers",
        "no_rtm_wheel",
        "online_fits",
        "online_without_the_lock",
    ],
)
def test_rtm_app_needs_brokers_the_rtm_wheel_and_online_the_lock(
    tmp_path: Path, extra: dict[str, object], refusals: list[str]
) -> None:
    returncode, message = _run(tmp_path, "rtm_app", **{**RTM_APP, **extra})
    assert returncode == (2 if refusals else 0), message
    assert " ".join(message.split()) == " ".join(refusals)
