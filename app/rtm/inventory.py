"""The Ansible inventory, read the way Ansible reads it.

Every controller-side tool (the lab, ``fab status``) asks ``ansible-inventory --list`` instead
of parsing YAML itself, so group_vars, children groups and per-host overrides mean exactly
what they mean to ``ansible-playbook``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class InventoryError(Exception):
    """The inventory cannot be read or contradicts itself."""


@dataclass(frozen=True)
class Host:
    name: str
    vars: Mapping[str, Any]
    groups: frozenset[str]

    @property
    def address(self) -> str:
        return str(self.vars.get("ansible_host", self.name))


@dataclass(frozen=True)
class Inventory:
    hosts: Mapping[str, Host]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = ""

    def group(self, name: str) -> list[Host]:
        """Hosts of a group (children included), in inventory order."""
        return [self.hosts[h] for h in self.groups.get(name, ()) if h in self.hosts]

    @classmethod
    def from_ansible_json(cls, data: Mapping[str, Any], source: str = "") -> Inventory:
        hostvars: Mapping[str, Any] = data.get("_meta", {}).get("hostvars", {})
        members: dict[str, list[str]] = {}

        def collect(group: str, trail: tuple[str, ...]) -> list[str]:
            if group in trail:
                raise InventoryError(f"{source}: group cycle {' -> '.join((*trail, group))}")
            if group not in members:
                entry = data.get(group, {})
                names = list(entry.get("hosts", []))
                for child in entry.get("children", []):
                    names += [h for h in collect(child, (*trail, group)) if h not in names]
                members[group] = names
            return members[group]

        for group in data:
            if group != "_meta":
                collect(group, ())
        order = members.get("all", [])
        order += [h for names in members.values() for h in names if h not in order]
        host_groups: dict[str, set[str]] = {h: set() for h in order}
        for group, names in members.items():
            for h in names:
                host_groups[h].add(group)
        hosts = {
            h: Host(name=h, vars=dict(hostvars.get(h, {})), groups=frozenset(host_groups[h]))
            for h in order
        }
        groups = {g: tuple(names) for g, names in members.items()}
        return cls(hosts=hosts, groups=groups, source=source)

    @classmethod
    def load(cls, path: Path | str) -> Inventory:
        if not Path(path).exists():
            raise InventoryError(f"cannot read inventory {path}: it does not exist")
        cmd = [_ansible_inventory(), "-i", str(path), "--list"]
        result = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if result.returncode != 0:
            raise InventoryError(f"cannot read inventory {path}: {result.stderr.strip()}")
        try:
            data = json.loads(result.stdout)
        except json.JSONDecodeError as exc:
            raise InventoryError(f"ansible-inventory printed no JSON for {path}: {exc}") from exc
        return cls.from_ansible_json(data, source=str(path))


def _ansible_inventory() -> str:
    # Prefer the one installed beside this interpreter (the project's virtualenv).
    sibling = Path(sys.executable).with_name("ansible-inventory")
    if sibling.exists():
        return str(sibling)
    found = shutil.which("ansible-inventory")
    if found is None:
        raise InventoryError("ansible-inventory not found; run `make venv` first")
    return found
