"""The cluster layout exactly as the roles compute it, for tools that are not Ansible.

The layout (bootstrap servers, ZooKeeper ensemble, ids, ports, topics) is defined once, in the
`rtm` role; ``ansible/layout.yml`` evaluates it against an inventory. Running Ansible takes a
few seconds, so the result is cached under ``.rtm/layout/`` keyed by a hash of everything it
depends on: the inventory's files, the role's defaults and the playbook.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtm.kafka_client import Connection

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "ansible" / "layout.yml"
INPUTS = (REPO / "roles" / "rtm", PLAYBOOK, REPO / "app" / "rtm" / "catalogue.yml")


class LayoutError(Exception):
    """Ansible could not compute the layout; the message carries its error."""


@dataclass(frozen=True)
class Layout:
    data: dict[str, Any]

    @property
    def bootstrap_servers(self) -> list[str]:
        return [s for s in str(self.data["kafka_bootstrap_servers"]).split(",") if s]

    @property
    def connection(self) -> Connection:
        """How the controller's clients (fab status, the demo, the benchmarks) reach Kafka."""
        return Connection.of(self.bootstrap_servers)

    @property
    def host_addresses(self) -> dict[str, str]:
        return dict(self.data["host_addresses"])

    @property
    def topics(self) -> dict[str, dict[str, Any]]:
        """Topic specs keyed by pipeline role (cpu, mem, …): name, partitions, replication."""
        return dict(self.data["topics"])

    def topic(self, role: str) -> str:
        return str(self.topics[role]["name"])

    @property
    def zookeeper_hosts(self) -> list[str]:
        return list(self.data["zookeeper_hosts"])

    @property
    def kafka_brokers(self) -> list[str]:
        return list(self.data["kafka_brokers"])

    @property
    def kraft(self) -> bool:
        return bool(self.data["kraft_enabled"])

    def group(self, role: str) -> str:
        """The inventory group of a pipeline role (producers, consumers, …)."""
        return str(self.data.get("groups", {}).get(role, role))

    def port(self, name: str) -> int:
        return int(self.data["ports"][name])


def _fingerprint(inventory: Path) -> str:
    digest = hashlib.sha256()
    for root in (inventory.resolve(), *INPUTS):
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            digest.update(str(path).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load_layout(inventory: Path | str, cache_dir: Path | None = None) -> Layout:
    inventory = Path(inventory)
    if not inventory.exists():
        raise LayoutError(f"inventory {inventory} does not exist")
    cache_dir = cache_dir or REPO / ".rtm" / "layout"
    cached = cache_dir / f"{_fingerprint(inventory)}.json"
    if cached.is_file():
        return Layout(json.loads(cached.read_text()))
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "layout.json"
        cmd = [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i", str(inventory), str(PLAYBOOK), "-e", f"rtm_layout_file={out}",
        ]  # fmt: skip
        env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible" / "ansible.cfg")}
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0 or not out.is_file():
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
            raise LayoutError(f"ansible/layout.yml failed for {inventory}:\n{tail}")
        text = out.read_text()
    cached.write_text(text)
    return Layout(json.loads(text))
