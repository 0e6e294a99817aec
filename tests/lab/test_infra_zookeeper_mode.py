"""End to end on inventory/lab in ZooKeeper mode: the infrastructure site.yml sets up, host by host.

lab up (fixture) -> ansible/site.yml (shared with test_pipeline_e2e) -> ZooKeeper serves ->
broker registered -> the six topics with the inventory's partitions/replication -> a message
round trip with the console tools -> every unit active and hardened -> lab down (fixture).
infra.yml on its own is run by the KRaft module; that a second run changes nothing is checked
once, for the whole of site.yml, at the end of test_pipeline_e2e on the same lab.
"""

from __future__ import annotations

import uuid

import pytest

from rtm.catalogue import catalogue
from rtm.health.cluster import four_letter_word, zookeeper_mode

pytestmark = pytest.mark.lab

BROKER = "broker1"
TOPICS = [spec["name"] for spec in catalogue().topic_specs.values()]


@pytest.fixture(scope="module")
def first_run(lab, deploy):
    run = deploy(lab, "ansible/site.yml")
    assert run.returncode == 0, run.output[-6000:]
    return run


def test_site_converges_on_every_host(lab, first_run) -> None:
    recap = first_run.recap
    assert set(recap) == set(lab.addresses), recap
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values()), recap


def test_zookeeper_serves(lab, first_run) -> None:
    # From the controller, as fab status asks (under tls with the controller's certificate).
    address, port = lab.addresses[BROKER], lab.layout.port("zookeeper_client")
    tls = lab.layout.controller_tls()
    assert four_letter_word("ruok", address, port, 10, tls) == "imok"
    assert zookeeper_mode(address, port, 10, tls) in {"standalone", "leader"}
    # Only the health checks' four-letter words are answered (zookeeper_4lw_whitelist).
    conf = four_letter_word("conf", address, port, 10, tls)
    assert "conf is not executed because it is not in the whitelist" in conf


def test_broker_registered_in_zookeeper(lab, first_run) -> None:
    result = lab.zookeeper_shell(BROKER, "ls /brokers/ids")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[1]", result.stdout


def test_topics_exist_with_inventory_shape(lab, first_run) -> None:
    rows = lab.topics(BROKER)
    assert set(TOPICS) <= set(rows), rows
    for name in TOPICS:
        # inventory/lab/group_vars/all/rtm.yml: 3 partitions; one broker -> replication 1
        assert rows[name]["PartitionCount"] == "3", rows[name]
        assert rows[name]["ReplicationFactor"] == "1", rows[name]
    assert "retention.ms=86400000" in rows["topic-cpu"]["Configs"]
    assert "retention.ms=1209600000" in rows["topic-dead-letter"]["Configs"]


# On a topic of its own: the pipeline's topics are busy with the producer's replay.
def test_console_producer_to_consumer_round_trip(lab, first_run) -> None:
    topic, marker = "round-trip", f"rtm-lab-test-{uuid.uuid4()}"
    created = lab.kafka_tool(
        BROKER,
        f"kafka-topics --create --if-not-exists --topic {topic} --partitions 1"
        " --replication-factor 1",
    )
    assert created.returncode == 0, created.stderr
    produced = lab.kafka_tool(
        BROKER, f"kafka-console-producer --topic {topic}", stdin=marker + "\n"
    )
    assert produced.returncode == 0, produced.stderr
    consumed = lab.kafka_tool(
        BROKER,
        f"kafka-console-consumer --topic {topic} --from-beginning --timeout-ms 30000"
        " --max-messages 1",
        timeout=120,
    )
    assert marker in consumed.stdout.splitlines(), consumed.stdout + consumed.stderr


@pytest.mark.parametrize(
    ("host", "unit"), [(BROKER, "zookeeper.service"), (BROKER, "kafka.service")]
)
def test_units_active_enabled_and_hardened(lab, first_run, host: str, unit: str) -> None:
    state = lab.ssh(host, f"systemctl is-active {unit}; systemctl is-enabled {unit}")
    assert state.stdout.split() == ["active", "enabled"], state.stdout
    props = lab.ssh(
        host,
        f"systemctl show {unit} -p User -p LimitNOFILE -p ProtectSystem"
        " -p NoNewPrivileges -p Restart",
    ).stdout
    shown = dict(line.split("=", 1) for line in props.split())
    assert shown["User"] in {"kafka", "zookeeper"}
    assert int(shown["LimitNOFILE"]) >= 100000
    assert shown["ProtectSystem"] == "strict"
    assert shown["NoNewPrivileges"] == "yes"
    assert shown["Restart"] == "on-failure"
    exposure = lab.ssh(host, f"systemd-analyze security --no-pager {unit} | tail -1").stdout
    level = float(exposure.split("level for")[1].split(":")[1].split()[0])
    assert level <= 1.5, exposure


def test_operator_tools_on_path(lab, first_run) -> None:
    tools = [
        "kafka-topics", "kafka-console-consumer", "kafka-console-producer",
        "kafka-consumer-groups", "kafka-storage", "zookeeper-shell",
    ]  # fmt: skip
    result = lab.ssh(BROKER, "command -v " + " ".join(tools))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == len(tools), result.stdout


def test_hosts_resolve_each_other_by_name(lab, first_run) -> None:
    result = lab.ssh("consumer1", f"getent hosts {BROKER}")
    assert result.stdout.split()[0] == lab.addresses[BROKER], result.stdout
