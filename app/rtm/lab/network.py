"""The lab bridge on the controller, and the checks that keep it off addresses in use."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass

from rtm.lab.spec import LabError, LabSpec


@dataclass(frozen=True)
class LocalAddress:
    ifname: str
    interface: ipaddress.IPv4Interface


def local_addresses() -> list[LocalAddress]:
    result = subprocess.run(
        ["ip", "-json", "-4", "addr", "show"], check=True, capture_output=True, text=True
    )
    found = []
    for link in json.loads(result.stdout or "[]"):
        for info in link.get("addr_info", []):
            iface = ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
            found.append(LocalAddress(ifname=link["ifname"], interface=iface))
    return found


def link_exists(name: str) -> bool:
    result = subprocess.run(["ip", "link", "show", "dev", name], capture_output=True, check=False)
    return result.returncode == 0


def check_addresses(spec: LabSpec, addresses: list[LocalAddress]) -> None:
    """Refuse a lab whose network or host addresses are already used on this machine."""
    lab_ips = {h.address: h.name for h in spec.hosts}
    for local in addresses:
        if local.ifname == spec.bridge:
            continue
        if local.interface.ip in lab_ips:
            raise LabError(
                f"address {local.interface.ip} of lab host {lab_ips[local.interface.ip]!r} is "
                f"already taken by {local.ifname} on this machine; pick another in the inventory"
            )
        if local.interface.ip == spec.gateway.ip:
            raise LabError(
                f"the lab gateway {spec.gateway.ip} is already taken by {local.ifname}; "
                "change rtm_lab_gateway in the inventory"
            )
        if local.interface.network.overlaps(spec.gateway.network):
            raise LabError(
                f"the lab network {spec.gateway.network} overlaps {local.interface} on "
                f"{local.ifname}; change rtm_lab_gateway and the host addresses"
            )


def ensure_bridge(spec: LabSpec) -> None:
    if not link_exists(spec.bridge):
        _ip("link", "add", spec.bridge, "type", "bridge")
    present = {a.interface for a in local_addresses() if a.ifname == spec.bridge}
    if spec.gateway not in present:
        _ip("addr", "add", str(spec.gateway), "dev", spec.bridge)
    _ip("link", "set", spec.bridge, "up")


def remove_bridge(spec: LabSpec) -> None:
    if link_exists(spec.bridge):
        _ip("link", "del", spec.bridge)


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
