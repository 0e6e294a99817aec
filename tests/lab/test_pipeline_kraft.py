"""The whole pipeline in KRaft mode on inventory/lab-ha: three brokers, no ZooKeeper.

Deploys ansible/site.yml with KRaft on (the infra half was already converged by
test_infra_kraft_mode in the same session) and checks that the sample's expected alerts
arrive in the alert files of the consumer hosts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
EXPECTED = {
    a["alert_id"] for a in json.loads((REPO / "app/rtm/sample/expected_alerts.json").read_text())
}
CUTOFF = "2025-01-01T00:03:49Z"  # see test_pipeline_e2e: later windows close on the next pass
KRAFT = ("-e", "rtm_kafka_kraft_enabled=true")
CONSUMERS = ("ha-consumer1", "ha-consumer2")


def test_kraft_pipeline_raises_the_expected_alerts(lab_ha, deploy) -> None:
    run = deploy(lab_ha, "ansible/site.yml", *KRAFT)
    assert run.returncode == 0, run.output[-6000:]
    for host in ("ha-broker1", "ha-broker2", "ha-broker3"):
        assert lab_ha.ssh(host, "systemctl is-active zookeeper.service").stdout.strip() != "active"
    found: dict[str, dict] = {}
    deadline = time.monotonic() + 600
    while not set(found) >= EXPECTED and time.monotonic() < deadline:
        time.sleep(5)
        for host in CONSUMERS:
            out = lab_ha.ssh(
                host, "cat /var/lib/rtm/output/*/stream/alerts/part-*.jsonl 2>/dev/null"
            )
            found.update(
                {(a := json.loads(line))["alert_id"]: a for line in out.stdout.splitlines()}
            )
    assert set(found) >= EXPECTED, f"missing alerts: {sorted(EXPECTED - set(found))}"
    assert {i for i, a in found.items() if a["window_end"] <= CUTOFF} == EXPECTED
