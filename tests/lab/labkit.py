"""What the lab tests expect of the pipeline, shared by the ZooKeeper and KRaft modules."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The sample's expected alerts. Its last event is at 00:03:59 and the watermark is 10 s, so
# windows ending after CUTOFF close only when the next replay pass arrives: they are not in it.
EXPECTED_ALERTS = json.loads((REPO / "app/rtm/sample/expected_alerts.json").read_text())
EXPECTED_ALERT_IDS = frozenset(a["alert_id"] for a in EXPECTED_ALERTS)
CUTOFF = "2025-01-01T00:03:49Z"


def closed_alert_ids(alerts: dict[str, dict]) -> set[str]:
    """The ids of the alerts whose windows one pass of the sample closes."""
    return {i for i, a in alerts.items() if a["window_end"] <= CUTOFF}
