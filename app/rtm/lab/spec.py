"""What a lab is, read from an inventory: a bridge, its gateway, and the hosts."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from rtm.inventory import Inventory

BRIDGE_VAR = "rtm_lab_bridge"
GATEWAY_VAR = "rtm_lab_gateway"
_IFNAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,14}$")
_MACHINE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class LabError(Exception):
    """The lab cannot be built or booted; the message names the fix."""


@dataclass(frozen=True)
class LabHost:
    name: str
    address: ipaddress.IPv4Address


@dataclass(frozen=True)
class LabSpec:
    name: str
    bridge: str
    gateway: ipaddress.IPv4Interface
    hosts: tuple[LabHost, ...]

    @property
    def prefixlen(self) -> int:
        return self.gateway.network.prefixlen


def lab_name(inventory_path: Path | str) -> str:
    return Path(inventory_path).resolve().name


def spec_from_inventory(inventory: Inventory, name: str) -> LabSpec:
    if not inventory.hosts:
        raise LabError(f"{inventory.source}: the inventory has no hosts")
    bridge = _single_value(inventory, BRIDGE_VAR)
    gateway_text = _single_value(inventory, GATEWAY_VAR)
    if not _IFNAME.match(bridge):
        raise LabError(
            f"{BRIDGE_VAR}={bridge!r}: a bridge name is 1-15 letters, digits, '-' or '_'"
        )
    try:
        gateway = ipaddress.IPv4Interface(gateway_text)
    except ValueError as exc:
        raise LabError(
            f"{GATEWAY_VAR}={gateway_text!r}: expected the controller's address on the lab "
            "network with its prefix, like 10.231.0.1/24"
        ) from exc
    if gateway.network.prefixlen in (0, 32) or gateway.ip == gateway.network.network_address:
        raise LabError(f"{GATEWAY_VAR}={gateway_text!r}: needs a host address and a /1-/31 prefix")

    hosts: list[LabHost] = []
    seen: dict[ipaddress.IPv4Address, str] = {gateway.ip: f"the gateway ({GATEWAY_VAR})"}
    for host in inventory.hosts.values():
        if not _MACHINE.match(host.name):
            raise LabError(
                f"host {host.name!r}: lab host names must be lowercase letters, digits and '-'"
            )
        raw = host.vars.get("ansible_host")
        if raw is None:
            raise LabError(
                f"host {host.name!r} has no ansible_host; give every lab host an address"
            )
        try:
            address = ipaddress.IPv4Address(str(raw))
        except ValueError as exc:
            raise LabError(
                f"host {host.name!r}: ansible_host={raw!r} is not an IPv4 address"
            ) from exc
        if address not in gateway.network or address == gateway.network.broadcast_address:
            raise LabError(
                f"host {host.name!r}: {address} is not a host address of the lab network "
                f"{gateway.network} ({GATEWAY_VAR})"
            )
        if address in seen:
            raise LabError(f"host {host.name!r}: {address} is already used by {seen[address]}")
        seen[address] = f"host {host.name!r}"
        hosts.append(LabHost(name=host.name, address=address))
    return LabSpec(name=name, bridge=bridge, gateway=gateway, hosts=tuple(hosts))


def _single_value(inventory: Inventory, var: str) -> str:
    values = {str(h.vars[var]) for h in inventory.hosts.values() if var in h.vars}
    missing = [h.name for h in inventory.hosts.values() if var not in h.vars]
    if not values:
        raise LabError(f"{inventory.source}: set {var} in the inventory's vars for all hosts")
    if missing or len(values) > 1:
        raise LabError(
            f"{inventory.source}: {var} must be one value for every host "
            f"(found {sorted(values)}; missing on {missing or 'none'})"
        )
    return values.pop()
