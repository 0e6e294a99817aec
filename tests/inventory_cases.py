"""Inventories for the layout's tests: consistent ones with what they compute, and
contradictory ones with the words of their refusal.

``tests/unit/test_layout.py`` computes each in Python; ``tests/integration/test_bad_inventories.py``
writes some as inventory directories and runs them through Ansible and ``fab status``'s loader.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
        "kraft_dedicated_controllers_and_renamed_groups",
        None,
        groups={
            "zookeeper": {},
            "kafka": {},
            "brokers": brokers(3),
            "quorum": {f"controller{n}": {"ansible_host": f"192.0.2.{30 + n}"} for n in (1, 2, 3)},
            "senders": {"producer9": {"ansible_host": "192.0.2.9"}},
        },
        settings={
            "rtm_kafka_kraft_enabled": True,
            "rtm_kafka_group": "brokers",
            "rtm_kafka_controller_group": "quorum",
            "rtm_producer_group": "senders",
        },
        layout={
            "kafka_brokers": ["broker1", "broker2", "broker3"],
            "kafka_quorum_voters": "4@192.0.2.31:9093,5@192.0.2.32:9093,6@192.0.2.33:9093",
            "hosts.producers": ["producer9"],
            "kafka_min_insync_replicas": 2,
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
    Case(
        "unknown_security_mode",
        "rtm_security='open': set it to one of: tls (",
        settings={"rtm_security": "open"},
    ),
    Case(
        "own_ca_without_its_key",
        "only rtm_tls_ca_cert is set: a CA of your own needs both",
        settings={"rtm_security": "tls", "rtm_tls_ca_cert": "/etc/pki/team-ca.pem"},
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
        "internal_kafka_port_taken_under_tls",
        "must be distinct numbers from 1 to 65535",
        settings={"rtm_security": "tls", "rtm_kafka_internal_port": 9092},
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
        "computed_value_set_in_the_inventory",
        "rtm_kafka_bootstrap_servers is set in the inventory (for",
        settings={"rtm_kafka_bootstrap_servers": "192.0.2.99:9092"},
    ),
    Case(
        "port_set_for_one_group_only",
        "rtm_kafka_port differs between hosts (broker1: 9093; elsewhere 9092)",
        groups={"kafka": {"broker1": {"kafka_broker_id": 1, "rtm_kafka_port": 9093}}},
    ),
    Case(
        "negative_retention",
        "has retention_ms -5: Kafka takes a whole number",
        settings={"rtm_topics": topics(dead_letter={"retention_ms": -5})},
    ),
)


def inventory_groups(case: Case) -> dict[str, dict[str, dict[str, Any]]]:
    """Group -> host -> that host's vars under the group, the base with the case's changes."""
    return {**copy.deepcopy(BASE_GROUPS), **copy.deepcopy(case.groups)}


def settings(case: Case) -> dict[str, Any]:
    return {**BASE_SETTINGS, **case.settings}


def write_inventory(case: Case, root: Path) -> Path:
    hosts = {
        "all": {
            "children": {g: {"hosts": members} for g, members in inventory_groups(case).items()}
        }
    }
    (root / "group_vars" / "all").mkdir(parents=True)
    (root / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    (root / "group_vars" / "all" / "rtm.yml").write_text(yaml.safe_dump(settings(case)))
    return root


def dig(data: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        data = data[key]
    return data
