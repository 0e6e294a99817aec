"""What the lab tests expect of the pipeline, shared by the ZooKeeper and KRaft modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FAB = str(Path(sys.executable).with_name("fab"))

# The sample's expected alerts of the windows one pass of it closes. Its last event is at
# 00:03:59 and the watermark is 10 s: a window ending after CUTOFF may be closed, or raise a
# MAX alert, only with samples of the next replay pass, which the sample alone does not have.
CUTOFF = "2025-01-01T00:03:49Z"
EXPECTED_ALERTS = [
    a
    for a in json.loads((REPO / "app/rtm/sample/expected_alerts.json").read_text())
    if a["window_end"] <= CUTOFF
]
EXPECTED_ALERT_IDS = frozenset(a["alert_id"] for a in EXPECTED_ALERTS)


def closed_alert_ids(alerts: dict[str, dict]) -> set[str]:
    """The ids of the alerts whose windows one pass of the sample closes."""
    return {i for i, a in alerts.items() if a["window_end"] <= CUTOFF}


def wait_for(predicate, timeout: float, interval: float = 5.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy, then return that; fail on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def fab_status(inventory: str, *args: str, home: Path | None = None) -> tuple[int, dict]:
    """``fab status --json`` on an inventory (as a user whose home is ``home``): exit code and
    report."""
    env = {**os.environ, "HOME": str(home)} if home else None
    result = subprocess.run(
        [FAB, "status", "--inventory", inventory, "--json", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    return result.returncode, json.loads(result.stdout)


def failing(report: dict) -> set[tuple[str, str]]:
    """(host, check) of every failed check in a fab status report."""
    return {(h, c["name"]) for h, checks in report["hosts"].items() for c in checks if not c["ok"]}
