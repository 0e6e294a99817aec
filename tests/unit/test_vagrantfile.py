"""The Vagrantfile reads inventory/vagrant: same machines, same addresses, and it validates."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rtm.inventory import Inventory

REPO = Path(__file__).resolve().parents[2]
VAGRANT_DIR = REPO / "vagrant"

RECORDER = Path(__file__).with_name("vagrant_recorder.rb")


def vagrantfile_definitions() -> dict:
    ruby = shutil.which("ruby")
    if ruby is None:
        pytest.fail("ruby is missing: install Debian's vagrant package (make system-deps)")
    result = subprocess.run(
        [ruby, str(RECORDER), str(VAGRANT_DIR / "Vagrantfile")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_machines_and_addresses_are_the_inventorys():
    inventory = Inventory.load(REPO / "inventory" / "vagrant")
    defined = vagrantfile_definitions()
    machines = {name: spec["ip"] for name, spec in defined["machines"].items()}
    assert machines == {h.name: h.address for h in inventory.hosts.values()}


def test_site_yml_runs_once_after_the_last_vm_on_all_hosts():
    defined = vagrantfile_definitions()
    (provisioner,) = defined["provisioners"]
    assert provisioner["machine"] == list(defined["machines"])[-1]
    assert provisioner["limit"] == "all"
    assert Path(provisioner["inventory"]) == REPO / "inventory" / "vagrant"
    assert Path(provisioner["playbook"]) == REPO / "ansible" / "site.yml"


def test_vagrant_validate_passes():
    vagrant = shutil.which("vagrant")
    if vagrant is None:
        pytest.fail("vagrant is missing: install Debian's vagrant package (make system-deps)")
    result = subprocess.run(
        [vagrant, "validate", "--ignore-provider"],
        cwd=VAGRANT_DIR, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout
