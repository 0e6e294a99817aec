"""The metric catalogue: what it refuses, the page that shows it, and a new metric kind that
reaches every part of the pipeline from the catalogue alone."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rtm import catalogue_docs
from rtm.catalogue import PATH, CatalogueError, catalogue, parse

ROOT = Path(__file__).resolve().parents[2]
# A sixth kind and a rule for it, as docs/metrics.md adds one.
TEMP_KIND = {
    "topic": "topic-temp",
    "csv": "temp_data.csv",
    "incident": "overheating",
    "metrics": {
        "temp_c": {
            "description": "hottest CPU sensor, degrees Celsius",
            "maximum": 150,
            "sample": {
                "base": [40, 55],
                "daily": 3,
                "noise": 1,
                "decimals": 1,
                "incident": {"ramp": 95, "steep": 2},
            },
        }
    },
}


def _shipped() -> dict[str, Any]:
    return yaml.safe_load(PATH.read_text(encoding="utf-8"))


def test_the_shipped_catalogue_is_valid() -> None:
    cat = parse(_shipped())
    assert cat == catalogue()
    assert [k.name for k in cat.kinds] == ["cpu", "mem", "net", "disk", "load"]


def test_the_metrics_page_shows_the_catalogue() -> None:
    page = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert catalogue_docs.updated(page, catalogue()) == page, (
        "docs/metrics.md is out of date: python -m rtm.catalogue_docs docs/metrics.md"
    )


def _with(path: str, value: object) -> dict[str, Any]:
    """The shipped catalogue with one entry (a dotted path) set; None removes it."""
    data = copy.deepcopy(_shipped())
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("kinds.cpu.colour", "red", "kinds.cpu.colour: unknown key"),
        ("kinds.cpu.topic", "topic mem", "kinds.cpu.topic"),
        ("kinds.cpu.topic", "topic-mem", "every topic needs its own name"),
        ("kinds.cpu.csv", "cpu.txt", "kinds.cpu.csv: expected a file name ending in .csv"),
        ("kinds.mem.csv", "cpu_data.csv", "every kind needs its own csv file"),
        ("kinds.cpu.metrics", {}, "kinds.cpu.metrics: a kind needs at least one metric"),
        (
            "kinds.mem.metrics.cpu_pct",
            {"description": "again", "sample": {"base": [1, 2]}},
            "every metric name must be unique across kinds",
        ),
        (
            "kinds.cpu.metrics.ts",
            {"description": "x", "sample": {"base": [1, 2]}},
            "are record fields",
        ),
        ("kinds.cpu.metrics.cpu_pct.maximum", -1, "cpu_pct.maximum: expected a number >= 0"),
        (
            "kinds.cpu.metrics.cpu_pct.sample.incident",
            {"melt": 3},
            "cpu_pct.sample.incident: expected exactly one of",
        ),
        ("kinds.CPU", copy.deepcopy(TEMP_KIND), "kinds.CPU: a name is a lower-case identifier"),
        ("jobs.cpu_mem.aggregation", "median", "jobs.cpu_mem.aggregation: expected one of"),
        ("jobs.cpu_mem.rules.gpu_pct", 80, "jobs.cpu_mem.rules.gpu_pct: no kind has this metric"),
        ("jobs.cpu_mem.rules.cpu_pct", "high", "jobs.cpu_mem.rules.cpu_pct: expected a number"),
        ("jobs.net_disk.rules.cpu_pct", 80, "a metric may be the rule of one job only"),
        ("jobs.cpu_mem.rules", {}, "jobs.cpu_mem.rules: a job needs at least one rule"),
        ("topics.alerts.retention_ms", 0, "topics.alerts.retention_ms: expected an integer >= 1"),
        ("topics.cpu", {"name": "more-cpu"}, "is also a kind"),
        ("kinds", {}, "the catalogue needs at least one kind"),
    ],
)
def test_a_contradictory_catalogue_is_refused_naming_the_entry(
    path: str, value: object, message: str
) -> None:
    with pytest.raises(CatalogueError) as refused:
        parse(_with(path, value))
    assert message in str(refused.value)


def _copy_with_temp(tmp_path: Path) -> Path:
    """The app, the rtm role and the reference, with a temp kind and rule in the catalogue."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "app", root / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "roles" / "rtm", root / "roles" / "rtm")
    (root / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "reference_alerts.py", root / "tests")
    data = _with("kinds.temp", TEMP_KIND)
    data["jobs"]["cpu_mem"]["rules"]["temp_c"] = 85.0
    text = yaml.safe_dump(data, sort_keys=False)
    (root / "app" / "rtm" / "catalogue.yml").write_text(text, encoding="utf-8")
    return root


def _python(root: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(root / "app")}
    done = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


PROBE = """
import json, sys
from pathlib import Path
from rtm.config import DEFAULT_THRESHOLDS, DEFAULT_TOPICS
from rtm.consumer.jobs import job
from rtm.producer.live import HostSampler
from rtm.producer.replay import check_files
from rtm.records import from_row, kind
check_files(Path(sys.argv[1]))
row = {"ts": "2025-01-01T00:00:00Z", "server_id": "srv-01", "temp_c": "71.5"}
record = from_row(kind("temp"), row, "prod-1")
print(json.dumps({
    "topics": dict(DEFAULT_TOPICS),
    "thresholds": dict(DEFAULT_THRESHOLDS),
    "cpu_mem_reads": [k.name for k in job("cpu_mem").kinds],
    "record": record,
    "live": [k.name for k in HostSampler((kind("temp"), kind("cpu")), "/").kinds],
}))
"""


def test_a_new_kind_in_the_catalogue_reaches_every_part(tmp_path: Path) -> None:
    root = _copy_with_temp(tmp_path)
    data = tmp_path / "data"
    # The generator writes its file, with an incident that the reference finds an alert in.
    _python(root, "-m", "rtm.generate", "--out", str(data), "--log-level", "WARNING")
    header = (data / "temp_data.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "ts,server_id,temp_c"
    alerts = json.loads(_python(root, str(root / "tests" / "reference_alerts.py"), str(data)))
    assert {a["rule"] for a in alerts if a["job"] == "cpu_mem"} >= {"temp_c_avg", "cpu_pct_avg"}
    # The config's topics and thresholds, the job's topics, the replay and the record schema.
    facts = json.loads(_python(root, "-c", PROBE, str(data)))
    assert facts["topics"]["temp"] == "topic-temp"
    assert facts["thresholds"]["temp_c"] == 85.0
    assert facts["cpu_mem_reads"] == ["cpu", "mem", "load", "temp"]
    assert facts["record"]["temp_c"] == 71.5
    assert facts["live"] == ["cpu"], "a kind without a live sampler is not sampled"
    # The command lines say what the job computes and which files the replay reads.
    assert "temp_c" in _python(root, "-m", "rtm.consumer.cli", "--help")
    assert "temp_data.csv" in _python(root, "-m", "rtm.producer.cli", "--help")
    # The roles read the same catalogue: the topic and the threshold reach Ansible.
    ansible = shutil.which("ansible", path=str(Path(sys.executable).parent)) or "ansible"
    env = {
        **os.environ,
        "ANSIBLE_LOOKUP_PLUGINS": str(root / "roles" / "rtm" / "lookup_plugins"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    out = tmp_path / "catalogue.json"
    done = subprocess.run(
        [
            ansible,
            "localhost",
            "-c",
            "local",
            "-m",
            "ansible.builtin.copy",
            "-a",
            f"content={{{{ lookup('rtm_catalogue') | to_json }}}} dest={out}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    seen = json.loads(out.read_text(encoding="utf-8"))
    assert seen["topics"]["temp"] == {"name": "topic-temp"}
    assert seen["jobs"]["cpu_mem"]["rules"]["temp_c"] == 85.0
