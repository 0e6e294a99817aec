"""CSV parsing and validation, record shapes, replay scheduling and dead letters."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from kafka.errors import MessageSizeTooLargeError

from rtm.config import ReplayConfig, parse
from rtm.producer.publisher import Publisher, compression_type
from rtm.producer.replay import (
    MAX_LINE_BYTES,
    ReplayError,
    Share,
    check_files,
    data_span,
    read_rows,
    schedule,
)
from rtm.producer.service import Stopper, replay
from rtm.records import KINDS, RowError, describe_ahead, format_ts, from_row, kind, parse_ts

HEADERS = {k.name: ",".join(k.columns) for k in KINDS}
# A good row of every kind: each metric at the low end of its sample model's baseline.
GOOD = {
    k.name: ",".join(
        ["2025-01-01T00:00:0{s}Z", "srv-01", *(f"{m.sample.base[0]:g}" for m in k.metrics)]
    )
    for k in KINDS
}


def write_set(directory: Path, extra: dict[str, list[str]] | None = None, rows: int = 3) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for k in KINDS:
        lines = [HEADERS[k.name], *(GOOD[k.name].format(s=s) for s in range(rows))]
        lines += (extra or {}).get(k.name, [])
        (directory / k.csv_name).write_text("\n".join(lines) + "\n")
    return directory


def test_a_good_row_becomes_the_documented_record() -> None:
    row = {"ts": "2025-01-01T02:00:00+02:00", "server_id": " srv-01 ", "cpu_pct": "42.5"}
    record = from_row(kind("cpu"), row, "prod-1")
    assert record == {
        "server_id": "srv-01",
        "ts": "2025-01-01T00:00:00Z",
        "cpu_pct": 42.5,
        "producer_host": "prod-1",
    }
    assert list(record) == ["server_id", "ts", "cpu_pct", "producer_host"]


def test_naive_timestamps_are_utc_and_milliseconds_are_kept() -> None:
    assert format_ts(parse_ts("2025-01-01 00:00:00")) == "2025-01-01T00:00:00Z"
    assert format_ts(parse_ts("2025-01-01T00:00:00.250Z")) == "2025-01-01T00:00:00.250Z"


def test_loop_shift_moves_event_time() -> None:
    row = {"ts": "2025-01-01T00:00:00Z", "server_id": "a", "mem_pct": "1"}
    record = from_row(kind("mem"), row, "p", timedelta(minutes=5))
    assert record["ts"] == "2025-01-01T00:05:00Z"


@pytest.mark.parametrize(
    ("kind_name", "row", "reason"),
    [
        ("cpu", {"ts": "2025-01-01T00:00:00Z", "server_id": "a"}, "missing field(s): cpu_pct"),
        ("cpu", {"ts": "", "server_id": "a", "cpu_pct": "1"}, "missing field(s): ts"),
        ("cpu", {"ts": "2025-01-01T00:00:00Z", "server_id": " ", "cpu_pct": "1"}, "server_id"),
        (
            "cpu",
            {"ts": "2025-01-01T00:00:00Z", "server_id": "s" * 129, "cpu_pct": "1"},
            "server_id: longer than 128 characters",
        ),
        ("cpu", {"ts": "2025-01-01T00:00:00Z", "server_id": "a", "cpu_pct": "inf"}, "not a finite"),
        ("cpu", {"ts": "2025-01-01T00:00:00Z", "server_id": "a", "cpu_pct": "abc"}, "not a number"),
        ("cpu", {"ts": "2025-01-01T00:00:00Z", "server_id": "a", "cpu_pct": "nan"}, "not a finite"),
        (
            "cpu",
            {"ts": "2025-01-01T00:00:00Z", "server_id": "a", "cpu_pct": "101"},
            "above the max",
        ),
        ("mem", {"ts": "2025-01-01T00:00:00Z", "server_id": "a", "mem_pct": "-1"}, "negative"),
        ("cpu", {"ts": "yesterday", "server_id": "a", "cpu_pct": "1"}, "not an ISO-8601"),
        ("cpu", {"ts": "2025-13-01T00:00:00Z", "server_id": "a", "cpu_pct": "1"}, "not an ISO"),
        (
            "net",
            {"ts": "2025-01-01T00:00:00Z", "server_id": "a", "net_in_bytes_per_s": "1"},
            "missing field(s): net_out_bytes_per_s",
        ),
        (
            "disk",
            {
                "ts": "2025-01-01T00:00:00Z",
                "server_id": "a",
                "disk_pct": "50",
                "disk_read_bytes_per_s": "-5",
                "disk_write_bytes_per_s": "1",
            },
            "disk_read_bytes_per_s: negative",
        ),
    ],
)
def test_every_kind_of_bad_row_is_rejected_with_its_reason(
    kind_name: str, row: dict[str, str], reason: str
) -> None:
    with pytest.raises(RowError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        from_row(kind(kind_name), row, "p")


def test_read_rows_keeps_line_numbers_raw_text_and_field_count_problems(tmp_path: Path) -> None:
    path = tmp_path / "cpu_data.csv"
    path.write_text(
        "ts,server_id,cpu_pct\n"
        "2025-01-01T00:00:00Z,a,1\n"
        "\n"
        "2025-01-01T00:00:01Z,a\n"
        "2025-01-01T00:00:02Z,a,1,extra\n"
    )
    rows = list(read_rows(path, kind("cpu")))
    assert [r.line for r in rows] == [2, 4, 5]
    assert rows[0].fields == {"ts": "2025-01-01T00:00:00Z", "server_id": "a", "cpu_pct": "1"}
    assert rows[1].fields is None
    assert rows[1].problem == "expected 3 fields, got 2"
    assert rows[2].raw == "2025-01-01T00:00:02Z,a,1,extra"
    assert rows[2].problem == "expected 3 fields, got 4"


def test_a_line_longer_than_the_bound_is_a_row_problem_read_in_bounded_memory(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cpu_data.csv"
    huge = "x" * (4 * MAX_LINE_BYTES)
    path.write_text(
        f"ts,server_id,cpu_pct\n2025-01-01T00:00:00Z,{huge},1\n2025-01-01T00:00:01Z,a,2\n"
    )
    rows = list(read_rows(path, kind("cpu")))
    assert [r.line for r in rows] == [2, 3]
    assert rows[0].fields is None
    assert rows[0].problem == f"longer than {MAX_LINE_BYTES} bytes"
    assert rows[0].raw == ("2025-01-01T00:00:00Z," + huge)[:200] + "..."
    assert rows[1].fields == {"ts": "2025-01-01T00:00:01Z", "server_id": "a", "cpu_pct": "2"}


def test_a_line_that_is_not_utf8_is_a_row_problem_with_its_bytes_escaped(tmp_path: Path) -> None:
    path = tmp_path / "mem_data.csv"
    path.write_bytes(
        b"ts,server_id,mem_pct\n"
        b"2026-03-14T09:00:09Z,web-\xff,50.0\n"
        b"2026-03-14T09:00:10Z,web-1,50.0\n"
        b"2026-03-14T09:00:11Z,web-1,50.0"  # no line break at the end
    )
    rows = list(read_rows(path, kind("mem")))
    assert [r.line for r in rows] == [2, 3, 4]
    assert rows[0].fields is None
    assert rows[0].problem == "not UTF-8 text: byte 0xff at column 26"
    assert rows[0].raw == "2026-03-14T09:00:09Z,web-\\xff,50.0"
    assert rows[2].fields == {"ts": "2026-03-14T09:00:11Z", "server_id": "web-1", "mem_pct": "50.0"}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"ts,server_id,\xffcpu_pct\n", r"line 1 \(the header\) is not UTF-8 text: byte 0xff"),
        (b"ts," + b"x" * (MAX_LINE_BYTES + 5) + b"\n", r"line 1 \(the header\) is longer than"),
        (b"", r"header lacks column\(s\) ts, server_id, cpu_pct"),
    ],
)
def test_a_header_that_cannot_be_read_is_refused_up_front(
    tmp_path: Path, header: bytes, message: str
) -> None:
    write_set(tmp_path)
    (tmp_path / "cpu_data.csv").write_bytes(header)
    with pytest.raises(ReplayError, match=r"cpu_data\.csv: " + message):
        check_files(tmp_path)


def test_a_header_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    write_set(tmp_path)
    path = tmp_path / "cpu_data.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    check_files(tmp_path)
    assert next(read_rows(path, kind("cpu"))).fields is not None


def test_an_event_time_too_far_ahead_is_rejected_with_how_far() -> None:
    now = parse_ts("2026-03-14T09:00:00Z")
    rule = (now, timedelta(minutes=5))
    row = {"ts": "9999-12-31T00:00:00Z", "server_id": "a", "cpu_pct": "1"}
    with pytest.raises(RowError, match=r"^ts: 2912369 days in the future$"):
        from_row(kind("cpu"), row, "p", future=rule)
    row["ts"] = "2026-03-14T09:04:59Z"
    assert from_row(kind("cpu"), row, "p", future=rule)["ts"] == "2026-03-14T09:04:59Z"
    row["ts"] = "2026-03-14T11:00:00Z"
    with pytest.raises(RowError, match=r"^ts: 2 hours in the future$"):
        from_row(kind("cpu"), row, "p", future=rule)
    assert describe_ahead(timedelta(seconds=61)) == "1 minute"


def test_check_files_names_the_missing_file_or_column(tmp_path: Path) -> None:
    write_set(tmp_path)
    check_files(tmp_path)
    (tmp_path / "net_data.csv").write_text("ts,server_id,net_in_bytes_per_s\n")
    with pytest.raises(ReplayError, match=r"net_data.csv: header lacks column\(s\) net_out"):
        check_files(tmp_path)
    (tmp_path / "mem_data.csv").unlink()
    with pytest.raises(ReplayError, match=r"mem_data\.csv: cannot read"):
        check_files(tmp_path)


def _cfg(**changes: object) -> ReplayConfig:
    base = {
        "data_dir": None,
        "pace": "rows",
        "rate": 1.0,
        "speedup": 1.0,
        "as_fast_as_possible": False,
        "loop": False,
        "buffer": 10_000,
    }
    base.update(changes)
    return ReplayConfig(**base)  # type: ignore[arg-type]


def test_rows_pace_sends_one_row_per_second_per_file_side_by_side(tmp_path: Path) -> None:
    write_set(tmp_path)
    items = list(schedule(tmp_path, _cfg()))
    n = len(KINDS)
    assert [i.due for i in items] == [0.0] * n + [1.0] * n + [2.0] * n
    assert [i.row.kind.name for i in items[:n]] == [k.name for k in KINDS]
    faster = list(schedule(tmp_path, _cfg(rate=2.0, speedup=5.0)))
    assert faster[-1].due == pytest.approx(2 / 10)


def test_event_time_pace_follows_the_timestamps(tmp_path: Path) -> None:
    write_set(tmp_path, rows=5)
    items = list(schedule(tmp_path, _cfg(pace="event_time", speedup=2.0)))
    assert sorted({i.due for i in items}) == [0.0, 0.5, 1.0, 1.5, 2.0]


def _servers_set(directory: Path) -> Path:
    """Twelve servers, out of order in event time, and a line of each kind with too few fields."""
    extra = {
        k.name: [
            *(
                GOOD[k.name].format(s=9 - s % 10).replace("srv-01", f"srv-{s:02d}")
                for s in range(12)
            ),
            "no row at all",
        ]
        for k in KINDS
    }
    return write_set(directory, extra)


def _entries(items: list) -> list[tuple[float, str, int]]:
    return [(i.due, i.row.source, i.row.line) for i in items]


@pytest.mark.parametrize("pace", ["rows", "event_time"])
@pytest.mark.parametrize("count", [2, 3])
def test_a_shared_replay_sends_each_row_from_one_process_when_the_whole_would(
    tmp_path: Path, pace: str, count: int
) -> None:
    _servers_set(tmp_path)
    cfg = _cfg(pace=pace)
    whole = _entries(list(schedule(tmp_path, cfg)))
    shares = [list(schedule(tmp_path, cfg, Share(i, count))) for i in range(count)]
    assert sorted(e for share in shares for e in _entries(share)) == sorted(whole)
    servers = [{i.row.fields["server_id"] for i in share if i.row.fields} for share in shares]
    assert sum(len(s) for s in servers) == len(set().union(*servers)) == 12  # none in two
    assert [len(s) for s in servers] == [12 // count] * count
    # Rows that are no record (dead letters) come from the first process only.
    assert {i.row.problem is not None for i in shares[0]} == {False, True}
    assert not any(i.row.problem for share in shares[1:] for i in share)


def test_a_files_servers_are_dealt_out_in_the_order_they_first_appear() -> None:
    servers = ["a", "b", "a", "c", "", "d", "b", "e"]
    owned = [[s for s in servers if mine(s)] for mine in (Share(i, 3).dealer() for i in range(3))]
    assert owned == [["a", "a", "", "d"], ["b", "b", "e"], ["c"]]
    assert all(Share().dealer()(s) for s in servers)


def test_data_span_is_last_minus_first_plus_one_second(tmp_path: Path) -> None:
    write_set(tmp_path, rows=4)
    assert data_span(tmp_path) == timedelta(seconds=4)


class FakeFuture:
    """Answers at once, as a kafka-python future does: ``f(*args, value)``."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def add_callback(self, f: object, *args: object) -> FakeFuture:
        if self.error is None:
            f(*args, None)  # type: ignore[operator]
        return self

    def add_errback(self, f: object, *args: object) -> FakeFuture:
        if self.error is not None:
            f(*args, self.error)  # type: ignore[operator]
        return self


class RecordingProducer:
    """Stands in for KafkaProducer in unit tests: records sends, acknowledges or fails them."""

    def __init__(self, fail_topics: tuple[str, ...] = ()) -> None:
        self.sent: list[tuple[str, bytes | None, dict]] = []
        self.fail_topics = fail_topics
        self.flushed = self.closed = False

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> FakeFuture:
        self.sent.append((topic, key, json.loads(value)))
        return FakeFuture(MessageSizeTooLargeError() if topic in self.fail_topics else None)

    def flush(self, timeout: float | None = None) -> None:
        self.flushed = True

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def test_replay_publishes_good_rows_and_dead_letters_bad_ones(tmp_path: Path) -> None:
    data = write_set(
        tmp_path / "csv",
        {"cpu": ["2025-01-01T00:00:09Z,srv-01,150"], "disk": ["not,a,valid"]},
    )
    config = parse(
        {
            "kafka": {"bootstrap_servers": ["h:1"]},
            "producer": {"replay": {"data_dir": str(data), "as_fast_as_possible": True}},
        },
        base=tmp_path,
    )
    fake = RecordingProducer()
    publisher = Publisher(fake, "topic-dead-letter", "prod-1", 60)
    replay(config, publisher, Stopper(), "prod-1")
    counts = publisher.close()
    assert fake.closed
    # three good rows of every kind and two dead letters
    assert (counts.sent, counts.failed, counts.malformed) == (3 * len(KINDS) + 2, 0, 2)
    by_topic: dict[str, list[dict]] = {}
    for topic, _key, value in fake.sent:
        by_topic.setdefault(topic, []).append(value)
    assert len(by_topic["topic-cpu"]) == 3
    assert by_topic["topic-net"][0]["net_out_bytes_per_s"] == float(GOOD["net"].split(",")[3])
    letters = sorted(by_topic["topic-dead-letter"], key=lambda d: d["source"])
    assert letters[0]["source"] == "cpu_data.csv"
    assert letters[0]["line"] == 5
    assert letters[0]["raw"] == "2025-01-01T00:00:09Z,srv-01,150"
    assert "above the maximum" in letters[0]["reason"]
    assert letters[0]["topic"] == "topic-cpu"
    assert letters[1]["source"] == "disk_data.csv"
    assert letters[1]["reason"] == "expected 5 fields, got 3"


def test_sends_refused_for_good_are_counted_not_hidden(tmp_path: Path) -> None:
    fake = RecordingProducer(fail_topics=("topic-mem",))
    publisher = Publisher(fake, "dlq", "p", 60)
    publisher.publish("topic-cpu", "a", {"x": 1})
    publisher.publish("topic-mem", "a", {"x": 1})
    counts = publisher.close()
    assert (counts.submitted, counts.sent, counts.failed) == (2, 1, 1)


def test_a_stopped_replay_sends_nothing_more(tmp_path: Path) -> None:
    data = write_set(tmp_path / "csv")
    config = parse(
        {"kafka": {"bootstrap_servers": ["h:1"]}, "producer": {"replay": {"data_dir": str(data)}}},
        base=tmp_path,
    )
    stopper = Stopper()
    stopper.stop()
    fake = RecordingProducer()
    replay(config, Publisher(fake, "dlq", "p", 60), stopper, "p")
    assert fake.sent == []


def test_compression_falls_back_to_gzip_without_the_codec_library() -> None:
    from kafka import codec  # noqa: PLC0415

    assert compression_type("gzip") == "gzip"
    assert compression_type("none") is None
    assert compression_type("lz4") == ("lz4" if codec.has_lz4() else "gzip")
