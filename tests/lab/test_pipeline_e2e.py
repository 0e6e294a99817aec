"""The whole pipeline on inventory/lab: site.yml, sample data through, alerts, fab status.

lab up (shared fixture) -> ansible/site.yml -> the producer replays the sample CSVs -> both
consumer jobs raise exactly the sample's expected alerts, in the alert files and on the alerts
topic -> fab status is healthy, and says so when it is not: a stopped broker, a stopped consumer
-> ``--tags configure`` with a changed threshold and broker setting restarts exactly the units
whose files changed; ``--tags service``, ``--tags health`` and the whole site.yml run again then
change nothing on any host.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from kafka.errors import KafkaTimeoutError
from labkit import (
    EXPECTED_ALERT_IDS,
    EXPECTED_ALERTS,
    FAB,
    REPO,
    closed_alert_ids,
    failing,
    wait_for,
)
from labkit import fab_status as labkit_fab_status

from reference_alerts import THRESHOLDS, WINDOW_SIZE, expected_alerts
from rtm import kafka_client

pytestmark = pytest.mark.lab

CONSUMERS = ("consumer1", "consumer2")


def fab_status(*args: str) -> tuple[int, dict]:
    return labkit_fab_status("inventory/lab", *args)


@pytest.fixture(scope="module")
def pipeline(lab, deploy):
    run = deploy(lab, "ansible/site.yml")
    assert run.returncode == 0, run.output[-6000:]
    return lab


def test_app_units_are_active(pipeline) -> None:
    units = {
        "producer1": "rtm-producer.service",
        "consumer1": "rtm-consumer@cpu_mem.service",
        "consumer2": "rtm-consumer@net_disk.service",
    }
    for host, unit in units.items():
        result = pipeline.ssh(host, f"systemctl is-active {unit}")
        assert result.stdout.strip() == "active", f"{host} {unit}: {result.stdout}{result.stderr}"


def test_alert_files_hold_exactly_the_expected_alerts(pipeline) -> None:
    found = wait_for(
        lambda: (
            (files := pipeline.alert_files(CONSUMERS))
            and set(files) >= EXPECTED_ALERT_IDS
            and files
        ),
        timeout=600,
        what="the sample's alerts in the alert files",
    )
    assert closed_alert_ids(found) == EXPECTED_ALERT_IDS
    for alert in EXPECTED_ALERTS:
        assert found[alert["alert_id"]]["value"] == pytest.approx(alert["value"])


def test_alerts_topic_carries_them_too(pipeline) -> None:
    consumer = kafka_client.consumer(
        pipeline.layout.connection(),
        "alerts",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=10000,
    )
    seen: set[str] = set()
    deadline = time.monotonic() + 300
    try:
        while not seen >= EXPECTED_ALERT_IDS and time.monotonic() < deadline:
            seen |= {json.loads(m.value)["alert_id"] for m in consumer}
    finally:
        consumer.close()
    assert seen >= EXPECTED_ALERT_IDS


def test_fab_status_is_healthy(pipeline) -> None:
    # Aggregates and checkpoints appear with the first windows; give the jobs that long.
    _, report = wait_for(
        lambda: (r := fab_status())[0] == 0 and r, timeout=300, what="a healthy fab status"
    )
    assert report["healthy"] is True
    assert set(report["hosts"]) >= set(pipeline.addresses)
    names = {c["name"] for checks in report["hosts"].values() for c in checks}
    assert {"kafka.service", "zookeeper.service", "rtm-producer.service"} <= names
    assert {"rtm-consumer@cpu_mem.service", "rtm-consumer@net_disk.service"} <= names
    assert {"cpu_mem lag", "net_disk lag", "producer publishing"} <= names


def test_fab_status_trusts_only_known_host_keys_unless_told_otherwise(pipeline, tmp_path) -> None:
    # The lab inventory turns checking off (its hosts get new keys on every boot); a copy turns
    # it on, for a user whose known_hosts is empty at first.
    inventory = tmp_path / "lab"
    shutil.copytree(pipeline.inventory, inventory)
    connection = inventory / "group_vars" / "all" / "connection.yml"
    settings = yaml.safe_load(connection.read_text())
    settings["ansible_host_key_checking"] = True
    connection.write_text(yaml.safe_dump(settings))
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(Path.home() / ".ssh" / "id_ed25519", home / ".ssh")  # the lab's login key

    def ssh_checks() -> dict[str, dict]:
        _, report = labkit_fab_status(str(inventory), home=home)
        return {h: c for h, checks in report["hosts"].items() for c in checks if c["name"] == "ssh"}

    refused = ssh_checks()
    assert set(refused) == set(pipeline.addresses)
    for host, check in refused.items():
        assert not check["ok"], f"{host}: an unknown host key was accepted"
        assert "is not in ~/.ssh/known_hosts" in check["detail"], check

    scanned = subprocess.run(
        ["ssh-keyscan", "-t", "ed25519,ecdsa,rsa", *pipeline.addresses.values()],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    (home / ".ssh" / "known_hosts").write_text(scanned.stdout)
    trusted = ssh_checks()
    assert {h for h, c in trusted.items() if c["ok"]} == set(pipeline.addresses), trusted


def test_fab_logs_passes_its_argument_to_journalctl_as_one_word(pipeline) -> None:
    marker = "/tmp/rtm-fab-logs-injected"
    unit = f"rtm-producer'; touch {marker}; echo '"
    shown = subprocess.run(
        [FAB, "logs", unit, "--inventory", str(pipeline.inventory)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    for host in pipeline.addresses:
        assert pipeline.ssh(host, f"test ! -e {marker}").returncode == 0, f"{host} ran it"


def test_fab_status_names_a_stopped_broker(pipeline) -> None:
    assert pipeline.ssh("broker1", "systemctl stop kafka.service").returncode == 0
    try:
        code, report = fab_status()
        assert code != 0
        assert ("broker1", "kafka.service") in failing(report)
        assert report["healthy"] is False
    finally:
        assert pipeline.ssh("broker1", "systemctl start kafka.service").returncode == 0
    wait_for(lambda: fab_status()[0] == 0, timeout=300, what="health after restarting Kafka")


def test_fab_status_sees_a_stopped_consumer_fall_behind(pipeline) -> None:
    unit = "rtm-consumer@cpu_mem.service"
    assert pipeline.ssh("consumer1", f"systemctl stop {unit}").returncode == 0
    try:
        report = wait_for(
            lambda: (
                (r := fab_status("--max-stall", "15")[1])
                and ("consumer1", "cpu_mem lag") in failing(r)
                and r
            ),
            timeout=180,
            what="cpu_mem lag to be reported",
        )
        assert ("consumer1", unit) in failing(report)
        lag = next(c for c in report["hosts"]["consumer1"] if c["name"] == "cpu_mem lag")
        assert "falling behind" in lag["detail"]
    finally:
        assert pipeline.ssh("consumer1", f"systemctl start {unit}").returncode == 0
    wait_for(lambda: fab_status()[0] == 0, timeout=400, what="health after restarting cpu_mem")


# Every unit of the lab, with the files it reads (a change to them may restart it).
UNITS = {
    ("broker1", "zookeeper.service"): ("/etc/zookeeper/zoo.cfg",),
    ("broker1", "kafka.service"): ("/etc/kafka/server.properties",),
    ("producer1", "rtm-producer.service"): ("/etc/rtm/rtm.yml",),
    ("consumer1", "rtm-consumer@cpu_mem.service"): ("/etc/rtm/rtm.yml",),
    ("consumer2", "rtm-consumer@net_disk.service"): ("/etc/rtm/rtm.yml",),
}
# A threshold and a broker setting, changed the way an inventory would change them.
CHANGES = json.dumps(
    {
        "rtm_app_thresholds": {"cpu_pct": 80.5},
        "kafka_custom_properties": {"num.recovery.threads.per.data.dir": 2},
    }
)


def _state(lab) -> dict[tuple[str, str], tuple[str, int, str]]:
    """Per unit: the systemd invocation id (new at every start), how many times systemd
    restarted it itself (Restart=, after the process failed), and its files' checksums."""
    state = {}
    for (host, unit), files in UNITS.items():
        out = lab.ssh(
            host,
            f"systemctl show -p InvocationID -p NRestarts {unit} && cat {' '.join(files)} | md5sum",
        )
        assert out.returncode == 0, out.stderr
        # systemctl prints the properties in its own order, one KEY=VALUE line each.
        *props, digest_line = out.stdout.strip().splitlines()
        shown = dict(line.split("=", 1) for line in props)
        digest = digest_line.split()[0]
        state[(host, unit)] = (shown["InvocationID"], int(shown["NRestarts"]), digest)
    return state


def _restarted(before: dict, after: dict) -> set[tuple[str, str]]:
    """Units the run restarted: started anew, and not by systemd after a failure."""
    return {u for u in before if before[u][0] != after[u][0] and before[u][1] == after[u][1]}


def _failed_over(before: dict, after: dict) -> set[tuple[str, str]]:
    return {u for u in before if before[u][1] != after[u][1]}


def _changed_files(before: dict, after: dict) -> set[tuple[str, str]]:
    return {u for u in before if before[u][2] != after[u][2]}


SAMPLE = REPO / "app" / "rtm" / "sample"
# The producer replays the sample in passes, each shifted by the sample's span (4 min, a whole
# number of window slides): a window inside one pass holds the same samples in every pass.
PASS_SECONDS = 240
PASS_ORIGIN = datetime(2025, 1, 1, tzinfo=UTC).timestamp()


def _in_pass(alert: dict) -> tuple[str, str, float] | None:
    """(rule, server, window start within its pass) for a window wholly inside one pass."""
    start = datetime.fromisoformat(alert["window_start"].replace("Z", "+00:00")).timestamp()
    offset = (start - PASS_ORIGIN) % PASS_SECONDS
    if offset + WINDOW_SIZE > PASS_SECONDS:
        return None
    return (alert["rule"], alert["server_id"], offset)


def _next_pass(into: Path) -> Path:
    """The sample as the producer's second pass sends it (timestamps one span later)."""
    into.mkdir()
    for source in SAMPLE.glob("*.csv"):
        with source.open(newline="") as src, (into / source.name).open("w", newline="") as dst:
            reader = csv.DictReader(src)
            writer = csv.DictWriter(dst, fieldnames=reader.fieldnames or [])
            writer.writeheader()
            for row in reader:
                with contextlib.suppress(ValueError, TypeError):
                    moment = datetime.fromisoformat(row["ts"]) + timedelta(seconds=PASS_SECONDS)
                    row["ts"] = moment.isoformat()
                writer.writerow(row)
    return into


def _reference(passes: list[Path], thresholds: dict[str, float]) -> dict[tuple, dict]:
    """The cpu_mem job's alerts for windows inside the first pass (the next one closes them)."""
    alerts = expected_alerts(passes, "cpu_mem", {**THRESHOLDS, **thresholds})
    first = [a for a in alerts if a["window_start"] < "2025-01-01T00:04:00Z"]
    return {key: a for a in first if (key := _in_pass(a))}


def test_one_threshold_changed_in_the_inventory_restarts_only_its_job(pipeline, tmp_path) -> None:
    # The documented way (docs/operations.md): edit the inventory, then
    #   ansible-playbook -i inventory/NAME ansible/site.yml --tags configure --limit consumers
    inventory = tmp_path / "lab"
    shutil.copytree(pipeline.inventory, inventory)
    settings = inventory / "group_vars" / "all" / "rtm.yml"
    edited = yaml.safe_load(settings.read_text())
    # Lower than srv-01's memory ever averages in some windows, never near any window's average
    # (the reference refuses a threshold within 1e-6 of an aggregate).
    threshold = 50.0
    edited["rtm_app_thresholds"] = {"mem_pct": threshold}
    settings.write_text(yaml.safe_dump(edited))
    copy = dataclasses.replace(pipeline, inventory=inventory)
    passes = [SAMPLE, _next_pass(tmp_path / "next-pass")]
    reference = _reference(passes, {"mem_pct": threshold})
    appearing = set(reference) - set(_reference(passes, {}))
    assert appearing, "the changed threshold must change the reference's alerts"

    before = _state(pipeline)
    run = copy.playbook("ansible/site.yml", "--tags", "configure", "--limit", "consumers")
    assert run.returncode == 0, run.output[-6000:]
    assert set(run.recap) == set(CONSUMERS), run.output[-3000:]
    after = _state(pipeline)
    assert _restarted(before, after) == {("consumer1", "rtm-consumer@cpu_mem.service")}
    assert _failed_over(before, after) == set()
    config = yaml.safe_load(pipeline.ssh("consumer1", "cat /etc/rtm/rtm.yml").stdout)
    assert config["consumer"]["thresholds"]["mem_pct"] == threshold

    # The new threshold is in effect: alerts the reference raises only against it appear, and
    # every alert raised against it is one the reference raises, with the reference's value.
    def new_alerts() -> dict[tuple[str, str, float], dict]:
        return {
            key: a
            for a in pipeline.alert_files(("consumer1",)).values()
            if a["rule"] == "mem_pct_avg" and a["threshold"] == threshold
            if (key := _in_pass(a))
        }

    found = wait_for(
        lambda: (alerts := new_alerts()) and set(alerts) & appearing and alerts,
        timeout=600, interval=10, what="an alert the lowered mem_pct threshold raises",
    )  # fmt: skip
    assert set(found) <= set(reference)
    for key, alert in found.items():
        assert alert["value"] == pytest.approx(reference[key]["value"]), key


# Last in this module: it leaves the lab with the changed settings.
def test_configure_restarts_what_changed_and_nothing_else_changes_after(pipeline) -> None:
    before = _state(pipeline)
    run = pipeline.playbook("ansible/site.yml", "--tags", "configure", "-e", CHANGES)
    assert run.returncode == 0, run.output[-6000:]
    after = _state(pipeline)
    # Every file changed but zoo.cfg: rtm.yml is one file for the whole app. Restarted were
    # Kafka and the job whose rule's threshold changed, not ZooKeeper, the producer or the
    # other job, whose settings are the same.
    assert _changed_files(before, after) == set(UNITS) - {("broker1", "zookeeper.service")}
    # With one broker, Kafka's restart is an outage: on a busy machine a job whose fetch timed
    # out during it exits and systemd starts it again (Restart=, docs/reliability.md). Such a
    # start is not the run's: the run restarted nothing but these two, and each of them was
    # restarted by the run or by systemd (then the alerts below show the new threshold in use).
    expected = {("broker1", "kafka.service"), ("consumer1", "rtm-consumer@cpu_mem.service")}
    restarted = _restarted(before, after)
    assert restarted <= expected
    assert restarted | _failed_over(before, after) >= expected
    config = pipeline.ssh("consumer1", "cat /etc/rtm/rtm.yml").stdout
    assert "cpu_pct: 80.5" in config
    for unit in UNITS:
        active = pipeline.ssh(unit[0], f"systemctl is-active {unit[1]}").stdout.strip()
        assert active == "active", unit
    # Nothing left to do, for the other steps on their own or for the whole playbook run again:
    # no change, no restart, on any host.
    for tags in (("--tags", "service"), ("--tags", "health"), ()):
        run = pipeline.playbook("ansible/site.yml", *tags, "-e", CHANGES)
        what = " ".join(tags) or "the whole site.yml"
        assert run.returncode == 0, f"{what}: " + run.output[-6000:]
        changed = {host: r["changed"] for host, r in run.recap.items()}
        assert set(changed) == set(pipeline.addresses), run.output[-3000:]
        assert all(n == 0 for n in changed.values()), f"{what}: {changed}"
    assert _restarted(after, _state(pipeline)) == set()
    # The new threshold is in effect: the restarted job's alerts of the replay's later passes
    # are raised against it.
    wait_for(
        lambda: any(
            a["rule"] == "cpu_pct_avg" and a["threshold"] == 80.5
            for a in pipeline.alert_files(CONSUMERS).values()
        ),
        timeout=600, interval=10, what="a cpu_pct alert against the new threshold",
    )  # fmt: skip


# Last on this lab's pipeline: it changes a password the later modules then read back.
def test_rotating_a_password_restarts_only_the_service_that_logs_in_with_it(pipeline) -> None:
    # The documented way (docs/operations.md): site.yml with
    #   -e '{"rtm_kafka_rotate": ["rtm-producer"]}'
    old = pipeline.layout.connection("producer")
    before = _state(pipeline)
    rotate = json.dumps(json.loads(CHANGES) | {"rtm_kafka_rotate": ["rtm-producer"]})
    run = pipeline.playbook("ansible/site.yml", "-e", rotate)
    assert run.returncode == 0, run.output[-6000:]
    after = _state(pipeline)
    assert _restarted(before, after) == {("producer1", "rtm-producer.service")}
    new = pipeline.layout.connection("producer")
    assert new.login != old.login
    kafka_client.admin(new).close()
    with pytest.raises(KafkaTimeoutError):
        kafka_client.admin(old, bootstrap_timeout_ms=8000).close()
    wait_for(lambda: fab_status()[0] == 0, timeout=300, what="health after the rotation")
