"""Failure drills on inventory/lab-ha in ZooKeeper mode: three ZooKeeper nodes, three brokers.

lab up (fixture) -> site.yml, consumers limited to a few records per micro-batch so that the sample
takes several batches -> a consumer's Spark job SIGKILLed mid-stream: the alert files still equal
the expected ones -> the ZooKeeper leader stopped: records still flow -> while ``rtm-drill
produce`` streams numbered records: a broker's JVM SIGKILLed, then a whole broker host killed and
booted again; then, with the controller resigned as after a ZooKeeper leader's restart,
ansible/rolling_restart.yml -> ``rtm-drill audit``: every acknowledged record is in the topic
exactly once -> every broker stopped for a minute and a half while the deployed producer replays
and a second one samples live: every record exactly once, no gap, and every unit healthy again by
itself -> lab down (fixture).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import TopicPartition
from labkit import (
    EXPECTED_ALERT_IDS,
    EXPECTED_ALERTS,
    closed_alert_ids,
    fab_status,
    failing,
    wait_for,
)

from rtm import kafka_client
from rtm.catalogue import catalogue
from rtm.health.cluster import zookeeper_mode
from rtm.lab import lab as rtm_lab

pytestmark = pytest.mark.lab

INVENTORY = "inventory/lab-ha"
BROKERS = ("ha-broker1", "ha-broker2", "ha-broker3")
CONSUMERS = ("ha-consumer1", "ha-consumer2")
DRILL = str(Path(sys.executable).with_name("rtm-drill"))
RTM_LAB = str(Path(sys.executable).with_name("rtm-lab"))
DRILL_TOPIC = "drill"
ALERTS_DIR = "/var/lib/rtm/output/cpu_mem/stream/alerts/"
# At most 500 records per micro-batch, about 55 s of the sample's events (9 partitions of the
# cpu_mem job's three topics): its alerts close in the second to the fourth batch, so a kill
# after the first alert file lands mid-pass (the replay sends them in real time, about 45
# records a second), and the job keeps up with the replay. At most 2000 records wait in the
# replaying producer, so the outage drill reaches its back-pressure within a minute.
DRILL_SETTINGS = (
    "-e",
    json.dumps(
        {
            "rtm_app_custom_config": {
                "consumer": {"max_offsets_per_trigger": 500},
                "producer": {"replay": {"buffer": 2000}},
            }
        }
    ),
)


@pytest.fixture(scope="module")
def cluster(lab_ha, deploy):
    run = deploy(lab_ha, "ansible/site.yml", *DRILL_SETTINGS)
    assert run.returncode == 0, run.output[-6000:]
    created = lab_ha.kafka_tool(
        BROKERS[0],
        f"kafka-topics --create --if-not-exists --topic {DRILL_TOPIC} --partitions 6"
        " --replication-factor 3 --config min.insync.replicas=2",
    )
    assert created.returncode == 0, created.stderr
    return lab_ha


class Stream:
    """``rtm-drill produce`` in the background: numbered records until stopped."""

    def __init__(self, lab, out: Path, rate: int = 200) -> None:
        self.lab, self.out = lab, out
        self.proc = subprocess.Popen(
            [DRILL, "--inventory", str(lab.inventory), "produce", "--topic", DRILL_TOPIC,
             "--rate", str(rate), "--duration", "1200", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def stop(self) -> dict:
        """Stop streaming; audit the topic; the report as a dict (lost, duplicated, ...)."""
        self.proc.send_signal(signal.SIGTERM)
        log, _ = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, log[-4000:]
        audit = subprocess.run(
            [DRILL, "--inventory", str(self.lab.inventory), "audit", "--produced",
             str(self.out), "--timeout", "180"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert audit.stdout, audit.stderr[-4000:]
        report = json.loads(audit.stdout)
        print(f"drill report: {report}")  # shown with -s or on failure: the figures of the drill
        return report


def healthy_partitions(lab) -> bool:
    """Every broker registered and no partition under-replicated, asked through broker1."""
    result = lab.kafka_tool(
        BROKERS[0], "kafka-topics --describe --under-replicated-partitions", timeout=60
    )
    return result.returncode == 0 and not result.stdout.strip()


def restart_count(lab, host: str, unit: str) -> int:
    return int(lab.ssh(host, f"systemctl show -P NRestarts {unit}").stdout.strip() or 0)


def started_at(lab, host: str, unit: str) -> int:
    out = lab.ssh(host, f"systemctl show -P ActiveEnterTimestampMonotonic {unit}")
    return int(out.stdout.strip() or 0)


def test_consumer_killed_mid_stream_leaves_the_same_alert_files(cluster) -> None:
    host, unit = CONSUMERS[0], "rtm-consumer@cpu_mem.service"

    def alert_files_listed() -> str:
        return cluster.ssh(host, f"ls {ALERTS_DIR}").stdout.strip()

    wait_for(alert_files_listed, timeout=600, interval=2, what="the cpu_mem job's first alert file")
    before_kill = closed_alert_ids(cluster.alert_files(CONSUMERS))
    restarts = restart_count(cluster, host, unit)
    # Every process of the job at once, as in a crash. systemctl may report a process that
    # exited while it was signalling the others; the restart count below is the proof.
    cluster.ssh(host, f"systemctl kill --signal=KILL {unit}")
    assert before_kill < EXPECTED_ALERT_IDS, "the job had finished the pass: nothing to drill"
    wait_for(
        lambda: restart_count(cluster, host, unit) > restarts
        and cluster.ssh(host, f"systemctl is-active {unit}").stdout.strip() == "active",
        timeout=120, interval=2, what="systemd to restart the killed job",
    )  # fmt: skip
    found = wait_for(
        lambda: (a := cluster.alert_files(CONSUMERS)) and closed_alert_ids(a) >= EXPECTED_ALERT_IDS
        and a,
        timeout=900, interval=10, what="every expected alert after the restart",
    )  # fmt: skip
    assert closed_alert_ids(found) == EXPECTED_ALERT_IDS
    for expected in EXPECTED_ALERTS:
        got = found[expected["alert_id"]]
        assert {k: got[k] for k in expected if k != "value"} == {
            k: v for k, v in expected.items() if k != "value"
        }
        assert got["value"] == pytest.approx(expected["value"], rel=1e-9)


def test_losing_the_zookeeper_leader_keeps_the_pipeline_flowing(cluster, tmp_path) -> None:
    port, tls = cluster.layout.port("zookeeper_client"), cluster.layout.controller_tls()
    modes = {h: zookeeper_mode(cluster.addresses[h], port, 5, tls) for h in BROKERS}
    leader = next(h for h, mode in modes.items() if mode == "leader")
    assert cluster.ssh(leader, "systemctl stop zookeeper.service").returncode == 0
    try:
        stream = Stream(cluster, tmp_path / "zk-loss.json")
        time.sleep(20)
        report = stream.stop()
        assert report["acknowledged"] > 0, report
        assert report["lost"] == 0, report
        assert report["duplicated"] == 0, report
        code, status = wait_for(
            lambda: (r := fab_status(INVENTORY)) and (leader, "zookeeper.service") in failing(r[1])
            and r,
            timeout=120, what="fab status to name the stopped ZooKeeper node",
        )  # fmt: skip
        assert code != 0
        # The ensemble lost one member of three: the others elected a leader and Kafka, the
        # producer and both jobs carry on.
        pipeline_checks = {"producer publishing", "cpu_mem lag", "net_disk lag"}
        broken = {name for _, name in failing(status)}
        assert not broken & pipeline_checks, failing(status)
    finally:
        assert cluster.ssh(leader, "systemctl start zookeeper.service").returncode == 0
    wait_for(lambda: fab_status(INVENTORY)[0] == 0, timeout=300, what="health after ZooKeeper")


def test_broker_loss_loses_no_acknowledged_record(cluster, tmp_path) -> None:
    stream = Stream(cluster, tmp_path / "broker-loss.json")
    try:
        _lose_a_broker_twice(cluster)
        report = stream.stop()
    finally:
        # Whatever failed, the next drills start with every broker up and no stream of this one.
        if stream.proc.poll() is None:
            stream.proc.kill()
            stream.proc.wait(timeout=60)
        subprocess.run([RTM_LAB, "up", "-i", str(cluster.inventory)], timeout=600, check=False)
    assert report["acknowledged"] > 0, report
    assert report["lost"] == 0, report
    assert report["duplicated"] == 0, report


def _lose_a_broker_twice(cluster) -> None:
    time.sleep(10)
    # The JVM dies as in a crash; systemd starts it again.
    victim = BROKERS[1]
    before = started_at(cluster, victim, "kafka.service")
    killed = cluster.ssh(victim, "kill -KILL $(systemctl show -P MainPID kafka.service)")
    assert killed.returncode == 0, killed.stderr
    wait_for(
        lambda: started_at(cluster, victim, "kafka.service") > before,
        timeout=120, interval=2, what=f"systemd to restart Kafka on {victim}",
    )  # fmt: skip
    wait_for(lambda: healthy_partitions(cluster), timeout=300, what="the ISR to recover")
    # Then a whole host goes, as on a power cut: its nspawn and every process in it.
    settings = rtm_lab.LabSettings()
    machine = next(
        m
        for m in rtm_lab.machines(rtm_lab.load_spec(cluster.inventory), settings)
        if m.host.name == BROKERS[2]
    )
    pid = machine.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    machine.reap()
    time.sleep(15)
    up = subprocess.run(
        [RTM_LAB, "up", "-i", str(cluster.inventory)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    assert f"booting {BROKERS[2]}" in up.stderr
    wait_for(
        lambda: healthy_partitions(cluster), timeout=600, what="the host's replicas to catch up"
    )
    time.sleep(5)


def resign_the_controller(lab) -> None:
    """Leave the cluster as a ZooKeeper leader's restart can (KAFKA-13407): /controller names a
    broker, and none acts as the controller."""
    shown = lab.zookeeper_shell(BROKERS[0], "get /controller")
    znode = json.loads(next(line for line in shown.stdout.splitlines() if line.startswith("{")))
    other = next(i for i in lab.layout.data["kafka_node_ids"].values() if i != znode["brokerid"])
    # Another name in /controller makes the active controller resign; only a deleted /controller
    # starts an election.
    named = json.dumps({**znode, "brokerid": other})
    changed = lab.zookeeper_shell(BROKERS[0], f"set /controller '{named}'")
    assert changed.returncode == 0, changed.stderr
    wait_for(
        lambda: "NotControllerException" in lab.kafka_tool(
            BROKERS[0], f"kafka-leader-election --election-type PREFERRED --topic {DRILL_TOPIC}"
            " --partition 0",
        ).stderr,
        timeout=60, interval=2, what="the controller to resign",
    )  # fmt: skip


def test_rolling_restart_loses_no_acknowledged_record(cluster, tmp_path) -> None:
    wait_for(lambda: healthy_partitions(cluster), timeout=300, what="a healthy cluster")
    before = {b: started_at(cluster, b, "kafka.service") for b in BROKERS}
    resign_the_controller(cluster)
    stream = Stream(cluster, tmp_path / "rolling-restart.json")
    time.sleep(5)
    run = cluster.playbook("ansible/rolling_restart.yml")
    report = stream.stop()
    assert run.returncode == 0, run.output[-6000:]
    # The playbook found no controller acting and had the brokers elect one, before it
    # restarted a broker (which would otherwise never learn which partitions it leads).
    forced = re.search(r"Make the brokers elect a controller[^\n]*\n(\w+):", run.output)
    assert forced, run.output[-6000:]
    assert forced.group(1) == "changed", run.output[-6000:]
    assert all(started_at(cluster, b, "kafka.service") > before[b] for b in BROKERS)
    assert report["acknowledged"] > 0, report
    assert report["lost"] == 0, report
    assert report["duplicated"] == 0, report


# -- every broker down: three request timeouts, and the replaying producer at its buffer -----

PRODUCER = "ha-producer1"
PRODUCER_STATE = "/var/lib/rtm/producer"  # producer.spool_dir as rtm_app renders it
LIVE_UNIT = "rtm-live-drill.service"
LIVE_STATE = "/var/lib/rtm/live-drill"
LIVE_SERVER = "live-drill"
METRIC_TOPICS = tuple(k.topic for k in catalogue().kinds)
OUTAGE = 90.0
# A live producer beside the deployed replaying one: the same config, sampling its host. Its
# stop waits up to a minute for acknowledgements before it spools: right after every broker
# came back, a loaded two-core lab has been seen to take longer than the 10 s default to
# acknowledge the last samples (nothing lost: they were spooled, but the drill checks that a
# stop after the recovery leaves nothing behind).
LIVE_CONFIG = f"""
import yaml
config = yaml.safe_load(open("/etc/rtm/rtm.yml"))
config["producer"].update(mode="live", spool_dir="{LIVE_STATE}", stats_interval="2 seconds",
                          stop_timeout="60 seconds")
config["producer"]["live"].update(server_id="{LIVE_SERVER}", interval="1 second")
open("{LIVE_STATE}.yml", "w").write(yaml.safe_dump(config))
"""


def producer_state(lab, directory: str) -> dict:
    out = lab.ssh(PRODUCER, f"cat {directory}/state.json")
    return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else {}


def caught_up(lab, directory: str) -> dict:
    """The producer's state once it has acknowledgements again and little is pending."""
    state = producer_state(lab, directory)
    return state if state and state["down_for"] is None and state["pending"] < 500 else {}


def metric_records(lab, since_ms: int) -> list[dict]:
    """Every record in the metric topics produced since ``since_ms``, with its topic."""
    consumer = kafka_client.consumer(lab.layout.admin_connection(), enable_auto_commit=False)
    try:
        parts = [
            TopicPartition(t, p) for t in METRIC_TOPICS for p in consumer.partitions_for_topic(t)
        ]
        consumer.assign(parts)
        starts = consumer.offsets_for_times(dict.fromkeys(parts, since_ms))
        ends = consumer.end_offsets(parts)
        for part in parts:
            start = starts[part].offset if starts[part] is not None else ends[part]
            consumer.seek(part, start)
        out, deadline = [], time.monotonic() + 300
        while any(consumer.position(p) < ends[p] for p in parts):
            assert time.monotonic() < deadline, "reading the metric topics took too long"
            for records in consumer.poll(timeout_ms=1000).values():
                out += [
                    {**json.loads(r.value), "topic": r.topic}
                    for r in records
                    if r.offset < ends[TopicPartition(r.topic, r.partition)]
                ]
        return out
    finally:
        consumer.close()


def gaps(times: list[str]) -> list[float]:
    """Seconds between consecutive event times."""
    moments = [datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in times]
    return [b - a for a, b in itertools.pairwise(moments)]


def test_every_broker_down_for_90_seconds_loses_and_duplicates_nothing(cluster) -> None:
    assert cluster.ssh(PRODUCER, f"install -d -o rtm -g rtm {LIVE_STATE}").returncode == 0
    made = cluster.ssh(PRODUCER, "/opt/rtm/venv/bin/python -", stdin=LIVE_CONFIG)
    assert made.returncode == 0, made.stderr
    since_ms = int(time.time() * 1000)
    started = cluster.ssh(
        PRODUCER,
        f"systemd-run --unit {LIVE_UNIT} -p User=rtm -p Restart=on-failure"
        f" /opt/rtm/venv/bin/rtm-producer --config {LIVE_STATE}.yml",
    )
    assert started.returncode == 0, started.stderr
    try:
        wait_for(lambda: producer_state(cluster, LIVE_STATE).get("sent"), timeout=120,
                 what="the live producer's first acknowledgements")  # fmt: skip
        for broker in BROKERS:
            assert cluster.ssh(broker, "systemctl stop kafka.service").returncode == 0
        outage_began = time.monotonic()
        outage = [datetime.now(UTC).isoformat()]
        try:
            # fab status says what the producer sees: nothing acknowledged, records waiting.
            wait_for(
                lambda: (PRODUCER, "producer delivery") in failing(fab_status(INVENTORY)[1]),
                timeout=OUTAGE - 15, interval=10, what="fab status to report the producer waiting",
            )  # fmt: skip
            time.sleep(max(0.0, OUTAGE - (time.monotonic() - outage_began)))
        finally:
            for broker in BROKERS:
                assert cluster.ssh(broker, "systemctl start kafka.service").returncode == 0
            outage.append(datetime.now(UTC).isoformat())
        wait_for(lambda: healthy_partitions(cluster), timeout=600, what="the brokers to return")
        deployed = wait_for(lambda: caught_up(cluster, PRODUCER_STATE), timeout=600,
                            what="the replaying producer to send its backlog")  # fmt: skip
        wait_for(lambda: caught_up(cluster, LIVE_STATE), timeout=600,
                 what="the live producer to send its backlog")  # fmt: skip
    finally:
        cluster.ssh(PRODUCER, f"systemctl stop {LIVE_UNIT}", timeout=120)
    live = producer_state(cluster, LIVE_STATE)
    print(f"outage drill: replaying producer {deployed}, live producer {live}")
    assert (live["failed"], live["dropped"], live["spooled"]) == (0, 0, 0), live
    assert live["submitted"] == live["sent"], live
    assert (deployed["failed"], deployed["dropped"]) == (0, 0), deployed

    records = metric_records(cluster, since_ms)
    print(f"outage drill: {len(records)} records in the metric topics since the drill began")
    keys = Counter((r["topic"], r["server_id"], r["ts"]) for r in records)
    assert [k for k, n in keys.items() if n > 1] == [], "records duplicated"
    live_records = [r for r in records if r["server_id"] == LIVE_SERVER]
    assert len(live_records) == live["sent"], "a live sample is missing"
    replayed: dict[tuple[str, str], list[str]] = {}
    for r in records:
        if r["server_id"] != LIVE_SERVER:
            replayed.setdefault((r["topic"], r["server_id"]), []).append(r["ts"])
    assert len(replayed) == len(METRIC_TOPICS) * 3, sorted(replayed)  # the sample has 3 servers
    for key, times in replayed.items():
        # One row a second per server in the sample, and loop passes follow on: no gap.
        assert set(gaps(sorted(times))) == {1.0}, (key, [g for g in gaps(sorted(times)) if g != 1])
    for topic in METRIC_TOPICS:
        times = sorted(r["ts"] for r in live_records if r["topic"] == topic)
        # A sample a second, taken all through the outage (and where a gap was, if one was).
        widest = max(zip(gaps(times), times, strict=False))
        assert widest[0] < 3.0, (topic, widest, "outage", outage)
    # Every unit came back by itself (no reset-failed): the whole report is healthy again.
    wait_for(lambda: fab_status(INVENTORY)[0] == 0, timeout=600, what="health after the outage")
