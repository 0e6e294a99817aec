"""A replay shared among processes: whose spool each start sends, and one state for all."""

from __future__ import annotations

from pathlib import Path

from rtm.producer.publisher import SPOOL_FILE
from rtm.producer.workers import combine, leftovers, spool_dir_of


def _spool(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SPOOL_FILE).write_text("{}\n")
    return directory


def test_each_start_sends_the_spools_none_of_its_processes_reads(tmp_path: Path) -> None:
    single = _spool(tmp_path)
    first, second, third = (_spool(spool_dir_of(tmp_path, i)) for i in range(3))
    spool_dir_of(tmp_path, 3).mkdir()  # no spool in it: nothing to send
    # One process reads the spool directory's own file; a shared replay's are left over.
    assert leftovers(tmp_path, 1) == [first, second, third]
    # Two processes read process-0 and process-1: the single process's and process-2's are not.
    assert leftovers(tmp_path, 2) == [single, third]
    assert leftovers(tmp_path, 3) == [single]
    (single / SPOOL_FILE).unlink()
    assert leftovers(tmp_path, 4) == []


def test_the_processes_counts_add_up_into_one_state() -> None:
    states = [
        {"sent": 10, "failed": 0, "pending": 3, "down_for": None, "written_at": "x"},
        {"sent": 5, "failed": 1, "pending": 0, "down_for": 20.5, "first_dropped": "2026-01-02"},
        {"sent": 1, "dropped": 2, "down_for": 3.0, "first_dropped": "2026-01-01",
         "last_dropped": "2026-01-03"},
    ]  # fmt: skip
    assert combine(states) == {
        "sent": 16,
        "failed": 1,
        "pending": 3,
        "dropped": 2,
        "down_for": 20.5,
        "first_dropped": "2026-01-01",
        "last_dropped": "2026-01-03",
    }
    assert combine([]) == {"down_for": None, "first_dropped": None, "last_dropped": None}
