"""The lab's own lifecycle on real systemd-nspawn hosts: up, reachable, idempotent, down."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rtm.lab import lab
from rtm.lab.network import link_exists

pytestmark = pytest.mark.lab

HERE = Path(__file__).parent
SMOKE = HERE / "smoke"
BIN = Path(sys.executable).parent


def rtm_lab(*args: str, inventory: Path = SMOKE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "rtm-lab", *args, "-i", str(inventory)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def ansible(*args: str) -> dict[str, dict]:
    """Run an ad-hoc module on every smoke host; its result per host, from the json callback."""
    env = {
        **os.environ,
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
    }
    result = subprocess.run(
        [BIN / "ansible", "-i", str(SMOKE), "all", *args],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # Over Mitogen the one ad-hoc task is reported once per host: merge them.
    tasks = json.loads(result.stdout)["plays"][0]["tasks"]
    return {name: r for task in tasks for name, r in task["hosts"].items()}


def pids(spec) -> dict[str, int | None]:
    return {m.host.name: m.pid() for m in lab.machines(spec, lab.LabSettings())}


@pytest.fixture(scope="module")
def smoke_lab():
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root")
    spec = lab.load_spec(SMOKE)
    try:
        rtm_lab("down")  # a leftover of an interrupted session is not adopted
        up = rtm_lab("up")
        assert up.returncode == 0, up.stderr
        yield spec
    finally:
        rtm_lab("down")


def test_every_host_answers_ansible_ping(smoke_lab):
    results = ansible("-m", "ansible.builtin.ping")
    assert {name: r.get("ping") for name, r in results.items()} == {
        host.name: "pong" for host in smoke_lab.hosts
    }


def test_hosts_run_systemd_as_service_manager(smoke_lab):
    results = ansible("-m", "ansible.builtin.setup", "-a", "filter=ansible_service_mgr")
    managers = {name: r["ansible_facts"]["ansible_service_mgr"] for name, r in results.items()}
    assert managers == {host.name: "systemd" for host in smoke_lab.hosts}


def test_hosts_have_their_own_name_and_address(smoke_lab):
    for machine in lab.machines(smoke_lab, lab.LabSettings()):
        result = machine.ssh("hostname; ip -4 -o addr show dev host0")
        assert result.returncode == 0, result.stderr
        name, addr = result.stdout.splitlines()
        assert name == machine.host.name
        assert f"{machine.host.address}/24" in addr


def test_second_up_changes_nothing(smoke_lab):
    before = pids(smoke_lab)
    again = rtm_lab("up")
    assert again.returncode == 0, again.stderr
    assert "booting" not in again.stderr
    assert pids(smoke_lab) == before


def test_a_killed_host_comes_back_on_the_next_up(smoke_lab):
    victim = lab.machines(smoke_lab, lab.LabSettings())[0]
    # /run is a tmpfs inside the host: the marker vanishes only if the host really rebooted.
    assert victim.ssh("touch /run/before-kill").returncode == 0
    pid = victim.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while victim.pid() is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert victim.pid() is None
    assert victim.orphans(), "a killed nspawn leaves its container running"
    again = rtm_lab("up")
    assert again.returncode == 0, again.stderr
    assert f"booting {victim.host.name}" in again.stderr
    assert victim.orphans() == []
    assert victim.ssh("test ! -e /run/before-kill").returncode == 0


def test_a_lab_on_an_address_in_use_is_refused(smoke_lab):
    clash = rtm_lab("up", inventory=HERE / "smoke-conflict")
    assert clash.returncode == 1
    assert "overlaps 10.239.0.1/24 on rtmsmoke0" in clash.stderr
    assert not link_exists("rtmclash0")


def test_down_leaves_no_container_bridge_or_state(smoke_lab):
    down = rtm_lab("down")
    assert down.returncode == 0, down.stderr
    assert all(pid is None for pid in pids(smoke_lab).values())
    assert not link_exists(smoke_lab.bridge)
    assert not (lab.DEFAULT_STATE_DIR / smoke_lab.name).exists()
    assert rtm_lab("down").returncode == 0, "a second down must be harmless"
