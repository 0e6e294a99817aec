"""The sample-data generator, the committed sample set and its expected alerts."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reference_alerts import all_expected
from rtm.consumer.jobs import JOBS
from rtm.generate import main as generate_main
from rtm.producer.live import HostSampler
from rtm.producer.service import sample_dir
from rtm.records import KINDS, from_row, kind, measurement

SAMPLE = Path(__file__).resolve().parents[2] / "app" / "rtm" / "sample"


def _run(out: Path, *args: str) -> dict[str, bytes]:
    assert generate_main(["--out", str(out), "--log-level", "WARNING", *args]) == 0
    return {k.csv_name: (out / k.csv_name).read_bytes() for k in KINDS}


def test_same_arguments_give_identical_files(tmp_path: Path) -> None:
    args = ("--servers", "2", "--minutes", "2", "--seed", "7")
    assert _run(tmp_path / "a", *args) == _run(tmp_path / "b", *args)
    assert _run(tmp_path / "c", "--servers", "2", "--minutes", "2", "--seed", "8") != _run(
        tmp_path / "a", *args
    )


def test_one_valid_row_per_server_per_second_per_file(tmp_path: Path) -> None:
    _run(tmp_path, "--servers", "3", "--minutes", "1", "--start", "2025-06-01T12:00:00Z")
    for k in KINDS:
        with (tmp_path / k.csv_name).open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 3 * 60
        records = [from_row(k, row, "gen") for row in rows]  # raises on any invalid row
        assert records[0]["ts"] == "2025-06-01T12:00:00Z"
        assert records[-1]["ts"] == "2025-06-01T12:00:59Z"
        assert {r["server_id"] for r in records} == {"srv-01", "srv-02", "srv-03"}


def test_bad_arguments_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        generate_main(["--out", str(tmp_path), "--start", "noon"])
    assert info.value.code == 2
    assert "--start: ts: not an ISO-8601 timestamp: 'noon'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        generate_main(["--out", str(tmp_path), "--servers", "0"])
    assert info.value.code == 2
    assert "--servers must be >= 1" in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "a refused run must not write files"


def test_committed_sample_is_small_and_regenerable(tmp_path: Path) -> None:
    assert sample_dir() == SAMPLE
    assert sum(p.stat().st_size for p in SAMPLE.iterdir()) < 300_000
    regenerated = _run(tmp_path)  # the defaults made the committed set
    assert regenerated == {k.csv_name: (SAMPLE / k.csv_name).read_bytes() for k in KINDS}


def test_expected_alerts_match_an_independent_recomputation() -> None:
    committed = json.loads((SAMPLE / "expected_alerts.json").read_text())
    recomputed = all_expected([SAMPLE])
    assert committed == recomputed
    # the sample exercises every alert rule of the catalogue
    assert {a["rule"] for a in committed} == {j.rule(m) for j in JOBS for _, m in j.metrics}


def test_live_sampler_measures_every_metric_in_range() -> None:
    sampler = HostSampler(KINDS, "/")
    values = sampler.sample()
    assert sampler.kinds == KINDS, "every kind of the catalogue has a live sampler"
    for k in KINDS:
        record = measurement(k, "me", datetime.now(UTC), values[k.name], "me")
        assert from_row(kind(k.name), {key: str(v) for key, v in record.items()}, "me")
