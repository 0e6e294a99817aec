"""The lab's reading of an inventory, and its early refusals."""

import ipaddress
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rtm.inventory import Host, Inventory
from rtm.lab import lab
from rtm.lab.image import host_mirror
from rtm.lab.network import LocalAddress, check_addresses
from rtm.lab.spec import LabError, spec_from_inventory

REPO = Path(__file__).resolve().parents[2]
LAB_VARS = {"rtm_lab_bridge": "rtmtest0", "rtm_lab_gateway": "10.50.0.1/24"}


def inventory(**hosts: dict) -> Inventory:
    return Inventory(
        hosts={
            name: Host(name=name, vars={**LAB_VARS, **hv}, groups=frozenset({"all"}))
            for name, hv in hosts.items()
        },
        source="test",
    )


def test_spec_from_the_default_lab_inventory():
    spec = lab.load_spec(REPO / "inventory" / "lab")
    assert spec.name == "lab"
    assert spec.bridge == "rtmlab0"
    assert {h.name for h in spec.hosts} == {"producer1", "broker1", "consumer1", "consumer2"}
    assert all(h.address in spec.gateway.network for h in spec.hosts)


def test_spec_keeps_addresses():
    spec = spec_from_inventory(inventory(a={"ansible_host": "10.50.0.10"}), "t")
    assert spec.hosts[0].address == ipaddress.IPv4Address("10.50.0.10")
    assert spec.prefixlen == 24


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        ({"a": {}}, "has no ansible_host"),
        ({"a": {"ansible_host": "laptop.local"}}, "is not an IPv4 address"),
        ({"a": {"ansible_host": "10.51.0.10"}}, "not a host address of the lab network"),
        ({"a": {"ansible_host": "10.50.0.255"}}, "not a host address of the lab network"),
        ({"a": {"ansible_host": "10.50.0.1"}}, "already used by the gateway"),
        (
            {"a": {"ansible_host": "10.50.0.9"}, "b": {"ansible_host": "10.50.0.9"}},
            "already used by host 'a'",
        ),
        ({"Bad_Name": {"ansible_host": "10.50.0.9"}}, "lowercase"),
        (
            {
                "a": {"ansible_host": "10.50.0.9"},
                "b": {"ansible_host": "10.50.0.8", "rtm_lab_bridge": "x0"},
            },
            "one value",
        ),
        ({"a": {"ansible_host": "10.50.0.9", "rtm_lab_bridge": "much-too-long-name"}}, "1-15"),
        ({"a": {"ansible_host": "10.50.0.9", "rtm_lab_gateway": "10.50.0.1"}}, "/1-/31"),
        ({"a": {"ansible_host": "10.50.0.9", "rtm_lab_gateway": "lab"}}, "with its prefix"),
    ],
)
def test_inventory_problems_are_named(hosts, message):
    with pytest.raises(LabError, match=message):
        spec_from_inventory(inventory(**hosts), "t")


def test_empty_inventory_is_refused():
    with pytest.raises(LabError, match="no hosts"):
        spec_from_inventory(Inventory(hosts={}, source="x"), "t")


def local(ifname: str, cidr: str) -> LocalAddress:
    return LocalAddress(ifname=ifname, interface=ipaddress.IPv4Interface(cidr))


def test_address_checks():
    spec = spec_from_inventory(inventory(a={"ansible_host": "10.50.0.10"}), "t")
    check_addresses(spec, [local("lo", "127.0.0.1/8"), local("rtmtest0", "10.50.0.1/24")])
    with pytest.raises(LabError, match="overlaps"):
        check_addresses(spec, [local("eth0", "10.50.0.200/16")])
    with pytest.raises(LabError, match="already taken by eth1"):
        check_addresses(spec, [local("eth1", "10.50.0.10/32")])
    with pytest.raises(LabError, match=r"gateway 10\.50\.0\.1 is already taken"):
        check_addresses(spec, [local("eth1", "10.50.0.1/32")])


def test_mirror_from_deb822_and_one_line_sources(tmp_path):
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\n"
    )
    assert host_mirror((deb822,)) == "http://mirror.example/debian"
    legacy = tmp_path / "sources.list"
    legacy.write_text(
        "deb http://sec.example/debian-security bookworm-security main\n"
        "deb [arch=amd64] http://old.example/debian bookworm main\n"
    )
    assert host_mirror((tmp_path / "missing", legacy)) == "http://old.example/debian"
    assert host_mirror((tmp_path / "missing",)) is None


def test_preflight_refuses_non_root(monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root"):
        lab.preflight()


def test_preflight_names_missing_packages(monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("shutil.which", lambda tool: None if tool == "systemd-nspawn" else "/x")
    with pytest.raises(LabError, match="apt-get install systemd-container"):
        lab.preflight()


def test_preflight_refuses_other_systems(monkeypatch):
    monkeypatch.setattr("platform.system", lambda: "Darwin")
    with pytest.raises(LabError, match="needs Linux"):
        lab.preflight()


def test_labs_booted_side_by_side_make_the_image_and_key_one_at_a_time(
    tmp_path, monkeypatch
) -> None:
    busy, overlaps = threading.Lock(), []

    def one_at_a_time(made: str) -> Callable[..., object]:
        def make(*_: object) -> object:
            if not busy.acquire(blocking=False):
                overlaps.append(made)
                return made
            time.sleep(0.1)  # long enough for the other labs to reach the lock
            busy.release()
            return made

        return make

    monkeypatch.setattr(lab, "ensure_image", one_at_a_time("image"))
    monkeypatch.setattr(lab, "_controller_key", one_at_a_time("key"))
    settings = lab.LabSettings(cache_dir=tmp_path)
    with ThreadPoolExecutor(max_workers=3) as pool:
        made = list(pool.map(lambda _: lab.controller_setup(settings), range(3)))
    assert overlaps == []
    assert made == [("image", "key")] * 3
