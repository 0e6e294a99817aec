"""Shared fixtures for the lab tests: boot a lab from an inventory, run playbooks, ssh in.

The lab tests need root and the systemd-nspawn lab (``make`` installs systemd-container and
debootstrap and builds the artifact cache). A lab is taken down before it boots (a leftover of
an interrupted session is not adopted) and again at the end, so every lab starts from fresh hosts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rtm.lab.machine import SSH_OPTIONS
from rtm.layout import Layout, load_layout

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
ANSIBLE_CFG = REPO / "ansible" / "ansible.cfg"
_RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)
_HEADER = re.compile(r"^(?P<kind>PLAY|TASK|RUNNING HANDLER) \[(?P<name>.*)\] \*+$")
_RESULT = re.compile(r"^(ok|changed|skipping|failed|fatal): \[")
# The tools' client settings on every Kafka node (kafka_dist_client_config), and the flag each
# console tool reads them with.
CLIENT_PROPERTIES = "/opt/kafka/client.properties"
_CLIENT_CONFIG_FLAGS = {
    "kafka-console-producer": "--producer.config",
    "kafka-console-consumer": "--consumer.config",
    "kafka-leader-election": "--admin.config",
}


def tool(name: str) -> str:
    """A tool from the project's virtualenv, else from PATH."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found (run `make` to create .venv)")
    return found


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(ANSIBLE_CFG)
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


@dataclass
class PlaybookRun:
    returncode: int
    output: str

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        return {
            m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
            for m in _RECAP.finditer(self.output)
        }

    def results_in(self, plays: list[str]) -> list[tuple[str, str]]:
        """(task, line) for each task result (``ok:``, ``changed:``, ...) of the named plays."""
        found, play, task = [], None, ""
        for line in self.output.splitlines():
            if m := _HEADER.match(line):
                play, task = (m["name"], "") if m["kind"] == "PLAY" else (play, m["name"])
            elif play in plays and _RESULT.match(line):
                found.append((task, line))
        return found


@dataclass
class Lab:
    """A booted lab: its inventory and helpers to deploy to it and run commands on its hosts."""

    inventory: Path
    addresses: dict[str, str]

    def playbook(
        self, playbook: str = "ansible/site.yml", *extra: str, timeout: float = 1800
    ) -> PlaybookRun:
        cmd = [tool("ansible-playbook"), "-i", str(self.inventory), str(REPO / playbook), *extra]
        proc = subprocess.run(
            cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        return PlaybookRun(proc.returncode, proc.stdout + proc.stderr)

    @property
    def layout(self) -> Layout:
        return load_layout(self.inventory)

    def kafka_tool(
        self, host: str, command: str, *, timeout: float = 120, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A Kafka tool on a Kafka node as the roles run it, whatever rtm_security says: the
        node's client settings, on the listener they are for (under tls the brokers' own,
        with the node's certificate)."""
        layout = self.layout
        port = layout.port("kafka_internal" if layout.tls else "kafka")
        servers = ",".join(f"{self.addresses[b]}:{port}" for b in layout.kafka_brokers)
        # Before the rest: kafka-metadata-quorum takes them before its subcommand only.
        tool, _, rest = command.partition(" ")
        flag = _CLIENT_CONFIG_FLAGS.get(tool, "--command-config")
        return self.ssh(
            host,
            f"{tool} --bootstrap-server {servers} {flag} {CLIENT_PROPERTIES} {rest}",
            timeout=timeout,
            stdin=stdin,
        )

    def zookeeper_shell(self, host: str, command: str) -> subprocess.CompletedProcess[str]:
        """zookeeper-shell on a broker, as the broker reaches ZooKeeper (under tls, with its
        certificate: the client port takes nothing else)."""
        layout = self.layout
        tls = " -zk-tls-config-file /etc/kafka/server.properties" if layout.tls else ""
        return self.ssh(host, f"zookeeper-shell {layout.data['zookeeper_connect']}{tls} {command}")

    def topics(self, host: str) -> dict[str, dict[str, str]]:
        """``kafka-topics --describe`` on a host, one dict of fields per topic."""
        result = self.kafka_tool(host, "kafka-topics --describe --exclude-internal")
        assert result.returncode == 0, result.stderr
        return {
            fields["Topic"]: fields
            for line in result.stdout.splitlines()
            if line.startswith("Topic:")
            for fields in [dict(part.split(": ", 1) for part in line.split("\t") if ": " in part)]
        }

    def alert_files(self, hosts: tuple[str, ...]) -> dict[str, dict]:
        """Every alert in the consumers' streaming alert files, by alert id."""
        alerts = {}
        for host in hosts:
            out = self.ssh(host, "cat /var/lib/rtm/output/*/stream/alerts/part-*.jsonl 2>/dev/null")
            for line in out.stdout.splitlines():
                alert = json.loads(line)
                alerts[alert["alert_id"]] = alert
        return alerts

    def ssh(
        self, host: str, command: str, *, timeout: float = 120, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", *SSH_OPTIONS, f"root@{self.addresses[host]}", command],
            input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip


# A lab test that cannot run fails: skipping would let a machine without the lab pass the suite.
def _require_root_lab() -> None:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (systemd-nspawn)")
    if not shutil.which("systemd-nspawn"):
        pytest.fail("systemd-nspawn missing: apt-get install systemd-container debootstrap")
    if not (REPO / "artifacts" / "manifest.json").exists():
        pytest.fail("artifact cache missing: run `make artifacts`")


def _addresses(inventory: Path) -> dict[str, str]:
    out = subprocess.run(
        [tool("ansible-inventory"), "-i", str(inventory), "--list"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    hostvars = json.loads(out.stdout)["_meta"]["hostvars"]
    return {h: str(v.get("ansible_host", h)) for h, v in hostvars.items()}


def _lab(inventory_name: str) -> Iterator[Lab]:
    _require_root_lab()
    inventory = REPO / "inventory" / inventory_name
    lab_cmd = [tool("rtm-lab")]
    # `rtm-lab up` adopts a lab that is already running, and one left by an interrupted session
    # carries that session's deployment: take it down first, so every lab starts from fresh hosts.
    down = subprocess.run(
        [*lab_cmd, "down", "-i", str(inventory)],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert down.returncode == 0, f"rtm-lab down (of a leftover lab) failed:\n{down.stderr}"
    up = subprocess.run(
        [*lab_cmd, "up", "-i", str(inventory)],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    try:
        assert up.returncode == 0, f"rtm-lab up failed:\n{up.stdout}\n{up.stderr}"
        yield Lab(inventory=inventory, addresses=_addresses(inventory))
    finally:
        if os.environ.get("RTM_LAB_KEEP") != "1":
            subprocess.run(
                [*lab_cmd, "down", "-i", str(inventory)],
                cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The default lab (inventory/lab), booted fresh; RTM_LAB_KEEP=1 leaves it running."""
    yield from _lab("lab")


# Module scope: the KRaft module and the drills each get fresh hosts (the drills run ZooKeeper
# mode), and two labs at once would crowd two cores.
@pytest.fixture(scope="module")
def lab_ha() -> Iterator[Lab]:
    """The three-broker lab (inventory/lab-ha), booted fresh; RTM_LAB_KEEP=1 leaves it running."""
    yield from _lab("lab-ha")


@pytest.fixture(scope="session")
def deploy() -> Callable[..., PlaybookRun]:
    """Run a playbook once per (lab, playbook, extra args) per session; remember the result."""
    cache: dict[tuple[str, str, tuple[str, ...]], PlaybookRun] = {}

    def run(lab: Lab, playbook: str = "ansible/site.yml", *extra: str) -> PlaybookRun:
        key = (str(lab.inventory), playbook, extra)
        if key not in cache:
            cache[key] = lab.playbook(playbook, *extra)
        return cache[key]

    return run


# Cheap checks first, then each lab's modules back to back so one lab at a time is busy.
_MODULE_ORDER = (
    "test_infra_filters",
    "test_lab_lifecycle",
    "test_molecule",
    "test_infra_kraft_mode",
    "test_drills",
    "test_infra_zookeeper_mode",
    "test_pipeline_e2e",
    "test_security",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent

    def rank(item: pytest.Item) -> int:
        path = Path(str(item.fspath))
        if path.parent != here:
            return -1  # other tiers keep their place, before the lab
        return _MODULE_ORDER.index(path.stem) if path.stem in _MODULE_ORDER else len(_MODULE_ORDER)

    items.sort(key=rank)


# Each Molecule scenario's own wall time, printed at the end of the run: the pool's tests wait
# on one another, so their durations do not say which scenario costs what.
_SCENARIO_SECONDS: dict[str, float] = {}
_SCENARIO_PROPERTY = "scenario_seconds"


@pytest.fixture
def report_scenario_seconds(record_property) -> Callable[[float], None]:
    """Report the wall time of the scenario a test checks, for the summary below."""
    return lambda seconds: record_property(_SCENARIO_PROPERTY, seconds)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, value in report.user_properties:
        if name == _SCENARIO_PROPERTY:
            _SCENARIO_SECONDS[report.nodeid.rsplit("[", 1)[-1].rstrip("]")] = float(value)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _SCENARIO_SECONDS:
        return
    terminalreporter.section("time per Molecule scenario (RTM_MOLECULE_JOBS at a time)")
    for scenario, seconds in sorted(_SCENARIO_SECONDS.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{scenario:<24} {seconds:6.0f} s")
