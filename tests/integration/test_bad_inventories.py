"""Inventories that contradict themselves are refused before anything is deployed.

The ``rtm`` role's preflight runs on the controller (``ansible/layout.yml`` touches no host):
each case writes a small inventory, runs that playbook and expects the failure message to name
the problem. The valid cases prove the harness itself reads the inventory it was given.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from rtm.layout import LayoutError, load_layout

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "ansible" / "layout.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
RUN_TIMEOUT = 180
# Hosts of a lab-like inventory, in the documentation range 192.0.2.0/24: nothing is contacted.
BASE_GROUPS: dict[str, dict[str, dict[str, Any]]] = {
    "producers": {"producer1": {"ansible_host": "192.0.2.10"}},
    "zookeeper": {"broker1": {"ansible_host": "192.0.2.11", "zookeeper_id": 1}},
    "kafka": {"broker1": {"kafka_broker_id": 1}},
    "consumers": {
        "consumer1": {"ansible_host": "192.0.2.21"},
        "consumer2": {"ansible_host": "192.0.2.22"},
    },
}
BASE_SETTINGS: dict[str, Any] = {"rtm_install_source": "offline", "rtm_kafka_kraft_enabled": False}


@dataclass(frozen=True)
class Case:
    """One inventory: groups and settings laid over the base.

    ``refusal`` is part of the expected failure message, None for a valid inventory; ``layout``
    maps dotted paths of the computed layout to their expected values."""

    name: str
    refusal: str | None
    groups: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    layout: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    returncode: int
    failure: str  # the message of the task that failed, "" when none did
    layout: dict[str, Any] | None  # what "Print the layout" showed, None when it did not run
    output: str


def brokers(count: int, first: int = 11) -> dict[str, dict[str, Any]]:
    return {f"broker{n}": {"ansible_host": f"192.0.2.{first + n - 1}"} for n in range(1, count + 1)}


def topics(**changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """rtm_topics: only what changes; the roles merge it over the catalogue's topics."""
    return copy.deepcopy(changes)


VALID = (
    Case(
        "zookeeper_mode_lab_like",
        None,
        layout={
            "kraft_enabled": False,
            "host_addresses.broker1": "192.0.2.11",
            "host_addresses.consumer2": "192.0.2.22",
            "zookeeper_connect": "192.0.2.11:2181",
            "kafka_bootstrap_servers": "192.0.2.11:9092",
            "kafka_replication_factor": 1,
            "topics.cpu.partitions": 3,
            # every kind of the catalogue has its topic, the fifth too
            "topics.load.name": "topic-load",
        },
    ),
    Case(
        "kraft_three_brokers_keep_dead_letters_forever",
        None,
        groups={"zookeeper": {}, "kafka": brokers(3)},
        settings={
            "rtm_kafka_kraft_enabled": True,
            "rtm_topics": topics(dead_letter={"retention_ms": -1}),
        },
        layout={
            "kraft_enabled": True,
            "zookeeper_connect": "",
            "kafka_quorum_voters": "1@192.0.2.11:9093,2@192.0.2.12:9093,3@192.0.2.13:9093",
            "kafka_replication_factor": 3,
            "kafka_min_insync_replicas": 2,
            "topics.dead_letter.retention_ms": -1,
        },
    ),
)
REFUSED = (
    Case(
        "unknown_install_source",
        "rtm_install_source must be one of: online, offline, got: usb",
        settings={"rtm_install_source": "usb"},
    ),
    Case("empty_kafka_group", "'kafka' has no hosts", groups={"kafka": {}}),
    Case(
        "zookeeper_mode_without_zookeeper_hosts",
        "'zookeeper' has no hosts: add 1, 3 or 5 hosts",
        groups={"zookeeper": {}, "kafka": brokers(1)},
    ),
    Case(
        "even_zookeeper_ensemble",
        "an even ensemble tolerates no more failures",
        groups={"zookeeper": brokers(2), "kafka": brokers(2)},
    ),
    Case(
        "even_kraft_quorum",
        "a quorum needs an odd count",
        groups={"zookeeper": {}, "kafka": brokers(2)},
        settings={"rtm_kafka_kraft_enabled": True},
    ),
    Case(
        "duplicate_zookeeper_ids",
        "must be unique integers from 1 to 255",
        groups={
            "zookeeper": {
                name: {**hv, "zookeeper_id": 1 if name != "broker3" else 3}
                for name, hv in brokers(3).items()
            },
            "kafka": brokers(3),
        },
    ),
    Case(
        "zookeeper_id_out_of_range",
        "must be unique integers from 1 to 255",
        groups={"zookeeper": {"broker1": {"ansible_host": "192.0.2.11", "zookeeper_id": 256}}},
    ),
    Case(
        "duplicate_kafka_broker_ids",
        "must be unique integers >= 0",
        groups={
            "zookeeper": {"broker1": {"ansible_host": "192.0.2.11"}},
            "kafka": {name: {**hv, "kafka_broker_id": 7} for name, hv in brokers(3).items()},
        },
    ),
    Case(
        "broker_without_an_address",
        "need a distinct IPv4 address as ansible_host",
        groups={"zookeeper": {"broker1": {}}},
    ),
    Case(
        "two_brokers_on_one_address",
        "need a distinct IPv4 address as ansible_host",
        groups={
            "zookeeper": {"broker1": {"ansible_host": "192.0.2.11"}},
            "kafka": {"broker1": {}, "broker2": {"ansible_host": "192.0.2.11"}},
        },
    ),
    Case(
        "producer_and_consumer_on_one_address",
        "one machine under two names",
        groups={"producers": {"producer1": {"ansible_host": "192.0.2.21"}}},
    ),
    Case(
        "kafka_port_equals_zookeeper_port",
        "must be distinct numbers from 1 to 65535",
        settings={"rtm_kafka_port": 2181},
    ),
    Case(
        "port_out_of_range",
        "must be distinct numbers from 1 to 65535",
        settings={"rtm_zookeeper_peer_port": 70000},
    ),
    Case(
        "unknown_topic_role",
        "the pipeline's topics are cpu, mem, net, disk, load, alerts, dead_letter",
        settings={"rtm_topics": topics(gpu={"name": "topic-gpu"})},
    ),
    Case(
        "unknown_threshold_metric",
        "give a number >= 0 for some of the catalogue's rules cpu_pct, mem_pct, load1_per_cpu",
        settings={"rtm_app_thresholds": {"gpu_pct": 80.0}},
    ),
    Case(
        "threshold_not_a_number",
        "rtm_app_thresholds is {'cpu_pct': 'high'}",
        settings={"rtm_app_thresholds": {"cpu_pct": "high"}},
    ),
    Case(
        "topic_entry_not_a_mapping",
        "are not mappings: write each one as {name: topic-cpu}",
        settings={"rtm_topics": {"cpu": "topic-cpu"}},
    ),
    Case(
        "invalid_topic_name",
        "a Kafka topic name is 1 to 249 letters",
        settings={"rtm_topics": topics(cpu={"name": "cpu metrics"})},
    ),
    Case(
        "duplicate_topic_names",
        "share a Kafka topic name",
        settings={"rtm_topics": topics(mem={"name": "topic-cpu"})},
    ),
    Case("zero_partitions", "has 0 partitions", settings={"rtm_topic_partitions": 0}),
    Case(
        "replication_above_broker_count",
        "asks for replication_factor 3",
        settings={"rtm_topics": topics(alerts={"replication_factor": 3})},
    ),
    Case(
        "zero_retention",
        "has retention_ms 0: Kafka takes a whole number",
        settings={"rtm_topic_retention_ms": 0},
    ),
    Case(
        "negative_retention",
        "has retention_ms -5: Kafka takes a whole number",
        settings={"rtm_topics": topics(dead_letter={"retention_ms": -5})},
    ),
)


def write_inventory(case: Case, root: Path) -> Path:
    groups = {**copy.deepcopy(BASE_GROUPS), **copy.deepcopy(case.groups)}
    hosts = {"all": {"children": {g: {"hosts": members} for g, members in groups.items()}}}
    (root / "group_vars" / "all").mkdir(parents=True)
    (root / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    settings = {**BASE_SETTINGS, **case.settings}
    (root / "group_vars" / "all" / "rtm.yml").write_text(yaml.safe_dump(settings))
    return root


def _task_results(report: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            for result in task.get("hosts", {}).values():
                yield task["task"]["name"], result


def _failure_message(result: dict[str, Any]) -> str:
    """A failed task's message; a failed loop reports its failed items' messages."""
    items = [r for r in result.get("results", []) if r.get("failed")]
    return " ".join(str(r.get("msg", "")) for r in [*items, result])


def run_layout(inventory: Path) -> Outcome:
    # The json callback gives each task's message whole; the default one wraps long lines.
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible" / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
    }
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(PLAYBOOK)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    output = result.stdout + result.stderr
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        return Outcome(result.returncode, "", None, output)
    failure, layout = "", None
    for name, task_result in _task_results(report):
        if task_result.get("failed"):
            failure = _failure_message(task_result)
        if name == "Print the layout":
            layout = task_result.get("_rtm_layout")
    return Outcome(result.returncode, failure, layout, output)


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Outcome]:
    """Run every selected case once, side by side: each run is seconds of Ansible start-up."""
    selected = {
        item.callspec.params["case"].name: item.callspec.params["case"]
        for item in request.session.items
        if getattr(item, "module", None) is request.module and hasattr(item, "callspec")
    }
    inventories = {
        name: write_inventory(case, tmp_path_factory.mktemp(name))
        for name, case in selected.items()
    }
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        runs = dict(zip(inventories, pool.map(run_layout, inventories.values()), strict=True))
    return runs


def dig(data: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        data = data[key]
    return data


@pytest.mark.parametrize("case", VALID, ids=[c.name for c in VALID])
def test_consistent_inventory_gives_its_layout(case: Case, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case.name]
    assert outcome.returncode == 0, outcome.output[-3000:]
    assert outcome.failure == ""
    assert outcome.layout is not None
    assert case.layout, "a valid case must say what layout it expects"
    got = {path: dig(outcome.layout, path) for path in case.layout}
    assert got == case.layout


@pytest.mark.parametrize("case", REFUSED, ids=[c.name for c in REFUSED])
def test_contradictory_inventory_is_refused(case: Case, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case.name]
    assert outcome.returncode != 0, outcome.output[-3000:]
    assert outcome.layout is None, "the layout was computed despite the contradiction"
    assert case.refusal is not None
    assert case.refusal in " ".join(outcome.failure.split()), outcome.output[-3000:]


def test_fab_status_reports_the_refusal_and_caches_nothing(tmp_path: Path) -> None:
    case = next(c for c in REFUSED if c.name == "even_zookeeper_ensemble")
    assert case.refusal is not None
    inventory = write_inventory(case, tmp_path / "inventory")
    with pytest.raises(LayoutError) as info:
        load_layout(inventory, cache_dir=tmp_path / "cache")
    assert case.refusal in " ".join(str(info.value).split())
    assert list((tmp_path / "cache").iterdir()) == []
