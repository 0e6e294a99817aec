"""fab status logic that needs no hosts: parsing the probe, judging units, lag and the verdict."""

import json
import shlex
import subprocess
from pathlib import Path

import paramiko
import pytest

from rtm.health import hostprobe
from rtm.health.cluster import KafkaView
from rtm.health.report import CLUSTER, Check, Report
from rtm.health.status import (
    Limits,
    checks_host_key,
    connection,
    expected_units,
    pipeline_checks,
    producer_check,
)
from rtm.inventory import Host
from rtm.layout import Layout, compute, defaults

PROBE_OUTPUT = "\n".join(
    [
        "load\t0.50 0.40 0.30",
        "mem\tMemTotal\t2048000",
        "mem\tMemAvailable\t1024000",
        "disk\t/var/lib/rtm\t512000\t42",
        "unit\tkafka.service\tActiveState=active\tSubState=running\tNRestarts=2"
        "\tActiveEnterTimestampMonotonic=100000000",
        "unit\trtm-consumer@cpu_mem.service\tActiveState=failed\tSubState=failed\tNRestarts=5"
        "\tActiveEnterTimestampMonotonic=0",
        "now\t400.5",
        'progress\tcpu_mem\t12\t{"job": "cpu_mem", "batch_id": 7, "input_rows": 35,'
        ' "offsets": {"topic-cpu": {"0": 10, "1": 20}, "topic-mem": {"0": 5}}}',
        'progress\tnet_disk\t3\t{"batch_id": 2}',
        "output\tcpu_mem\taggregates\t30",
        'producer\t{"sent": 7, "pending": 2, "dropped": 0, "failed": 0, "down_for": null}',
        "garbage line without tabs",
        "disk\t/broken\tnot-a-number\t1",
    ]
)


def layout(**settings: object) -> Layout:
    """The layout of a two-host inventory, computed as the roles compute it."""
    hosts = {
        "b1": {"ansible_host": "10.0.0.11", "rtm_topic_partitions": 2, **settings},
        "p1": {"ansible_host": "10.0.0.10", "rtm_topic_partitions": 2, **settings},
    }
    groups = {"all": ["b1", "p1"], "zookeeper": ["b1"], "kafka": ["b1"], "producers": ["p1"]}
    computed = compute(hosts, groups, defaults())
    assert computed.problems == ()
    return computed


LAYOUT = layout()


def test_probe_output_is_parsed_and_bad_lines_are_reported():
    facts = hostprobe.parse(PROBE_OUTPUT)
    assert facts.load == (0.5, 0.4, 0.3)
    assert (facts.mem_total_kb, facts.mem_available_kb) == (2048000, 1024000)
    assert facts.disks == {"/var/lib/rtm": (512000, 42)}
    kafka = facts.units["kafka.service"]
    assert (kafka.active, kafka.restarts, kafka.uptime) == ("active", 2, 300.5)
    assert facts.units["rtm-consumer@cpu_mem.service"].uptime is None
    assert facts.progress["cpu_mem"] == hostprobe.Progress(
        "cpu_mem", 7, 12.0, {"topic-cpu": {"0": 10, "1": 20}, "topic-mem": {"0": 5}}
    )
    assert "net_disk" not in facts.progress
    assert facts.output_age == {("cpu_mem", "aggregates"): 30.0}
    assert facts.producer == {"sent": 7, "pending": 2, "dropped": 0, "failed": 0, "down_for": None}
    assert len(facts.problems) == 2
    assert "/broken" in facts.problems[1]
    assert "not a JSON object with offsets" in facts.problems[0]


def test_the_probe_script_asks_for_each_unit_and_path():
    plain = shlex.split(hostprobe.command(["kafka.service", "a b"], sudo=False))
    assert plain[:2] == ["sh", "-c"]
    assert plain[3:] == ["rtm-probe", "kafka.service", "a b"]
    assert shlex.split(hostprobe.command([], sudo=True))[:3] == ["sudo", "-n", "sh"]
    result = subprocess.run(
        ["sh", "-n", "-c", plain[2]], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_units_follow_the_groups():
    broker = Host("b1", {}, frozenset({"all", "kafka", "zookeeper"}))
    producer = Host("p1", {}, frozenset({"all", "producers"}))
    assert expected_units(broker, LAYOUT) == ["zookeeper.service", "kafka.service"]
    assert expected_units(producer, LAYOUT) == ["rtm-producer.service"]
    assert expected_units(broker, layout(rtm_kafka_kraft_enabled=True)) == ["kafka.service"]


def view(ends, age=1.0):
    return KafkaView(
        end_offsets=ends,
        newest_age={t: age for t in ("topic-cpu", "topic-mem", "topic-net", "topic-disk")},
    )


def facts_with(job, batch_age, offsets, output_age=5.0):
    facts = hostprobe.HostFacts()
    facts.progress[job] = hostprobe.Progress(job, 3, batch_age, offsets)
    facts.output_age[(job, "aggregates")] = output_age
    return facts


def by_name(checks):
    return {c.name: c for c in checks}


def test_a_job_that_is_caught_up_is_healthy():
    ends = {"topic-cpu": {0: 10}, "topic-mem": {0: 5}}
    facts = {"c1": facts_with("cpu_mem", 500.0, {"topic-cpu": {"0": 10}, "topic-mem": {"0": 5}})}
    check = by_name(pipeline_checks(LAYOUT, view(ends), facts, Limits()))["cpu_mem lag"]
    assert check.ok
    assert "0 records behind" in check.detail


def test_a_stalled_job_with_lag_is_falling_behind():
    ends = {"topic-cpu": {0: 110, 1: 50}, "topic-mem": {0: 5}}
    facts = {
        "c1": facts_with("cpu_mem", 500.0, {"topic-cpu": {"0": 10, "1": 20}, "topic-mem": {"0": 5}})
    }
    check = by_name(pipeline_checks(LAYOUT, view(ends), facts, Limits()))["cpu_mem lag"]
    assert not check.ok
    assert "falling behind: 130 records behind" in check.detail
    assert check.host == "c1"


def test_lag_within_a_recent_batch_is_keeping_up():
    ends = {"topic-cpu": {0: 110}}
    facts = {"c1": facts_with("cpu_mem", 3.0, {"topic-cpu": {"0": 10}})}
    assert by_name(pipeline_checks(LAYOUT, view(ends), facts, Limits()))["cpu_mem lag"].ok


def test_missing_checkpoints_and_silent_producer_fail():
    checks = by_name(pipeline_checks(LAYOUT, view({}, age=900.0), {}, Limits()))
    assert not checks["producer publishing"].ok
    assert not checks["net_disk lag"].ok
    assert checks["net_disk lag"].detail == "no progress report on any consumer host"


def test_verdict_table_and_json_name_the_failures():
    report = Report(inventory="inventory/lab")
    report.add("b1", "kafka.service", True, "up 5m, 0 restarts")
    report.add("b1", "zookeeper.service", False, "failed (failed), 3 restarts")
    report.add(CLUSTER, "topic alerts", True, "ok")
    assert not report.healthy
    assert report.verdict() == "UNHEALTHY: 1 of 3 checks failed: b1 zookeeper.service"
    table = report.to_table()
    assert "FAIL  zookeeper.service" in table
    assert table.splitlines()[-1].startswith("UNHEALTHY")
    body = json.loads(report.to_json())
    assert body["healthy"] is False
    assert body["hosts"]["b1"][1] == {
        "name": "zookeeper.service",
        "ok": False,
        "detail": "failed (failed), 3 restarts",
        "counted": True,
    }


def test_information_is_shown_but_not_counted_in_the_verdict():
    report = Report(inventory="inventory/lab")
    report.add("b1", "kafka.service", True, "up 5m, 0 restarts")
    report.checks.append(Check(CLUSTER, "cpu_mem alerts", True, "none yet", counted=False))
    assert report.verdict() == "HEALTHY: 1 checks passed on 1 hosts"
    assert "info  cpu_mem alerts" in report.to_table()
    checks = by_name(pipeline_checks(LAYOUT, view({}, age=900.0), {}, Limits()))
    assert not checks["cpu_mem alerts"].counted
    assert checks["cpu_mem aggregates"].counted


def test_an_empty_report_is_not_healthy():
    assert not Report(inventory="x").healthy
    assert Report(inventory="x", checks=[Check("h", "ssh", True, "")]).healthy


def test_connections_use_the_inventorys_user_port_and_key():
    host = Host(
        "laptop-bob",
        {
            "ansible_host": "192.0.2.11",
            "ansible_user": "bob",
            "ansible_port": 2222,
            "ansible_ssh_private_key_file": "~/.ssh/team_ed25519",
        },
        frozenset({"all", "kafka"}),
    )
    conn = connection(host, timeout=3)
    assert (conn.host, conn.user, conn.port) == ("192.0.2.11", "bob", 2222)
    assert conn.connect_kwargs["key_filename"] == [str(Path.home() / ".ssh" / "team_ed25519")]
    assert conn.connect_timeout == 3
    bare = connection(Host("p1", {}, frozenset({"all"})), timeout=3)
    assert (bare.host, bare.user, bare.port) == ("p1", "root", 22)
    assert "key_filename" not in bare.connect_kwargs


@pytest.mark.parametrize(
    ("value", "checked"),
    [(None, True), (True, True), ("yes", True), (False, False), ("False", False), ("no", False)],
)
def test_host_keys_are_checked_unless_the_inventory_turns_it_off(value, checked):
    host_vars = {} if value is None else {"ansible_host_key_checking": value}
    assert checks_host_key(Host("b1", host_vars, frozenset({"all"}))) is checked


def test_an_unknown_host_key_is_refused_with_the_way_to_trust_it():
    conn = connection(Host("b1", {"ansible_host": "192.0.2.21"}, frozenset({"all"})), timeout=3)
    key = paramiko.ECDSAKey.generate()
    with pytest.raises(paramiko.SSHException) as refused:
        conn.client._policy.missing_host_key(conn.client, "192.0.2.21", key)
    message = str(refused.value)
    assert "host key of 192.0.2.21 is not in ~/.ssh/known_hosts" in message
    assert "ssh-keyscan 192.0.2.21" in message
    assert "ansible_host_key_checking: false" in message
    off = {"ansible_host": "192.0.2.21", "ansible_host_key_checking": False}
    unchecked = connection(Host("b1", off, frozenset({"all"})), timeout=3)
    assert isinstance(unchecked.client._policy, paramiko.AutoAddPolicy)


def test_the_producer_check_shows_drops_refusals_and_an_outage():
    ok = producer_check("p1", {"sent": 7, "pending": 2, "dropped": 0, "failed": 0})
    assert (ok.ok, ok.detail) == (True, "7 sent, 2 pending")
    dropped = producer_check(
        "p1",
        {
            "dropped": 40,
            "first_dropped": "2026-03-14T09:00:00Z",
            "last_dropped": "2026-03-14T09:00:10Z",
        },
    )
    assert not dropped.ok
    assert dropped.detail == (
        "dropped 40 record(s), event times 2026-03-14T09:00:00Z to 2026-03-14T09:00:10Z"
        " (live buffer full)"
    )
    refused = producer_check("p1", {"failed": 3})
    assert (refused.ok, refused.detail) == (False, "3 record(s) refused by Kafka")
    waiting = producer_check("p1", {"pending": 900, "down_for": 125.0})
    assert not waiting.ok
    assert waiting.detail.startswith("brokers not acknowledging for 2m")
    assert waiting.detail.endswith(": 900 record(s) wait")
