"""End to end on inventory/lab-ha in KRaft mode: three brokers as a combined controller quorum.

lab up (fixture) -> ansible/infra.yml -e rtm_kafka_kraft_enabled=true -> quorum has a leader and
three voters -> the six topics with replication 3 -> a message round trip with acks=all -> no
ZooKeeper running -> site.yml: its infra plays change nothing, its app plays deploy the
pipeline, and the sample's expected alerts arrive in the alert files -> lab down (fixture).
"""

from __future__ import annotations

import time
import uuid

import pytest
import yaml
from labkit import EXPECTED_ALERT_IDS, REPO, closed_alert_ids

from rtm.catalogue import catalogue

pytestmark = pytest.mark.lab

KRAFT = ("-e", "rtm_kafka_kraft_enabled=true")
BROKERS = ["ha-broker1", "ha-broker2", "ha-broker3"]
CONSUMERS = ("ha-consumer1", "ha-consumer2")
TOPICS = [spec["name"] for spec in catalogue().topic_specs.values()]


@pytest.fixture(scope="module")
def first_run(lab_ha, deploy):
    run = deploy(lab_ha, "ansible/infra.yml", *KRAFT)
    assert run.returncode == 0, run.output[-6000:]
    return run


def test_every_node_runs_kafka_and_no_zookeeper(lab_ha, first_run) -> None:
    for host in BROKERS:
        state = lab_ha.ssh(host, "systemctl is-active kafka.service zookeeper.service")
        assert state.stdout.split()[0] == "active", (host, state.stdout)
        assert state.stdout.split()[1] != "active", (host, state.stdout)
        props = lab_ha.ssh(host, "grep -E '^(process.roles|node.id)=' /etc/kafka/server.properties")
        assert "process.roles=broker,controller" in props.stdout, props.stdout


def test_quorum_has_a_leader_and_three_voters(lab_ha, first_run) -> None:
    result = lab_ha.kafka_tool(BROKERS[0], "kafka-metadata-quorum describe --status")
    assert result.returncode == 0, result.stderr
    status = dict(
        (k.strip(), v.strip()) for k, v in (ln.split(":", 1) for ln in result.stdout.splitlines())
    )
    assert int(status["LeaderId"]) in {1, 2, 3}, status
    assert status["CurrentVoters"].count('"id"') == 3, status


def test_topics_replicated_three_times(lab_ha, first_run) -> None:
    rows = lab_ha.topics(BROKERS[0])
    assert set(TOPICS) <= set(rows), rows
    for name in TOPICS:
        # inventory/lab-ha/group_vars/all/rtm.yml: 6 partitions; three brokers -> replication 3
        assert rows[name]["PartitionCount"] == "6", rows[name]
        assert rows[name]["ReplicationFactor"] == "3", rows[name]
        assert "min.insync.replicas=2" in rows[name]["Configs"], rows[name]


# Before site.yml: topic-cpu holds nothing but the marker, so the consumer stops at it instead
# of waiting out its timeout.
def test_round_trip_with_acks_all(lab_ha, first_run) -> None:
    marker = f"rtm-kraft-test-{uuid.uuid4()}"
    produced = lab_ha.kafka_tool(
        BROKERS[1],
        "kafka-console-producer --topic topic-cpu --producer-property acks=all",
        stdin=marker + "\n",
    )
    assert produced.returncode == 0, produced.stderr
    consumed = lab_ha.kafka_tool(
        BROKERS[2],
        "kafka-console-consumer --topic topic-cpu --from-beginning --timeout-ms 30000"
        " --max-messages 1",
        timeout=120,
    )
    assert marker in consumed.stdout.splitlines(), consumed.stdout + consumed.stderr


@pytest.fixture(scope="module")
def site_run(lab_ha, deploy, first_run):
    run = deploy(lab_ha, "ansible/site.yml", *KRAFT)
    assert run.returncode == 0, run.output[-6000:]
    return run


# site.yml starts with infra.yml's plays: on hosts infra.yml has just set up, they are its
# second run.
def test_second_run_changes_nothing(site_run) -> None:
    plays = [play["name"] for play in yaml.safe_load((REPO / "ansible" / "infra.yml").read_text())]
    results = site_run.results_in(plays)
    assert results, f"no task results found under the plays {plays}"
    changes = [f"{task}: {line}" for task, line in results if line.startswith("changed:")]
    assert not changes, "second run changed something:\n" + "\n".join(changes)


def test_kraft_pipeline_raises_the_expected_alerts(lab_ha, site_run) -> None:
    for host in ("ha-broker1", "ha-broker2", "ha-broker3"):
        assert lab_ha.ssh(host, "systemctl is-active zookeeper.service").stdout.strip() != "active"
    found: dict[str, dict] = {}
    deadline = time.monotonic() + 600
    while not set(found) >= EXPECTED_ALERT_IDS and time.monotonic() < deadline:
        time.sleep(5)
        found = lab_ha.alert_files(CONSUMERS)
    missing = sorted(EXPECTED_ALERT_IDS - set(found))
    assert not missing, f"missing alerts: {missing}"
    assert closed_alert_ids(found) == EXPECTED_ALERT_IDS
