"""The YAML config: defaults, path resolution, and error messages that name the key path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from rtm.config import (
    DEFAULT_THRESHOLDS,
    DEFAULT_TOPICS,
    ConfigError,
    load,
    parse,
    parse_duration,
)
from rtm.records import KINDS

REPO = Path(__file__).resolve().parents[2]
MINIMAL = {
    "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
    "consumer": {"checkpoint_dir": "ck", "output_dir": "out"},
}


def _with(path: str, value: object) -> dict:
    data = copy.deepcopy(MINIMAL)
    node = data
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return data


def test_minimal_config_gets_the_documented_defaults(tmp_path: Path) -> None:
    cfg = parse(MINIMAL, base=tmp_path)
    assert cfg.kafka.topics.for_kind("cpu") == "topic-cpu"
    assert cfg.kafka.topics.alerts == "alerts"
    assert cfg.kafka.topics.dead_letter == "topic-dead-letter"
    assert cfg.producer.mode == "replay"
    assert cfg.producer.replay.rate == 1.0
    assert not cfg.producer.replay.as_fast_as_possible
    assert cfg.producer.delivery.compression == "lz4"
    # Nothing is given up on while the brokers are away: unbounded retries for a day, then the
    # publisher sends again; five minutes of clock skew tolerated; a quarter hour of samples.
    assert cfg.producer.delivery.retries is None
    assert cfg.producer.delivery.delivery_timeout_ms == 86_400_000
    assert cfg.producer.max_future == 300
    assert cfg.producer.spool_dir is None
    assert cfg.producer.replay.buffer == 10_000
    assert cfg.producer.replay.processes == 1
    assert (cfg.producer.live.buffer, cfg.producer.live.buffer_records) == (900, 900 * len(KINDS))
    consumer = cfg.require_consumer()
    assert consumer.max_future == 300
    assert (consumer.window.size, consumer.window.slide, consumer.window.watermark) == (30, 10, 10)
    assert consumer.threshold("cpu_pct") == 85.0
    assert consumer.checkpoint_dir == tmp_path / "ck"
    assert consumer.output_dir == tmp_path / "out"


def test_the_example_config_is_valid_and_shows_the_catalogue_defaults() -> None:
    cfg = load(REPO / "app" / "config.example.yml")
    assert cfg.require_consumer().spark.jars
    example = yaml.safe_load((REPO / "app" / "config.example.yml").read_text())
    assert example["kafka"]["topics"] == dict(DEFAULT_TOPICS)
    assert example["consumer"]["thresholds"] == dict(DEFAULT_THRESHOLDS)


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "jars").mkdir()
    (tmp_path / "jars" / "a.jar").write_bytes(b"")
    data = _with("consumer.spark.jars", ["jars/*.jar"])
    data["producer"] = {"replay": {"data_dir": "csv"}}
    path = tmp_path / "rtm.yml"
    path.write_text(yaml.safe_dump(data))
    cfg = load(path)
    assert cfg.producer.replay.data_dir == tmp_path / "csv"
    assert cfg.require_consumer().spark.jars == (tmp_path / "jars" / "a.jar",)


def test_durations_accept_common_spellings() -> None:
    assert parse_duration("30 seconds") == 30
    assert parse_duration("10s") == 10
    assert parse_duration("2 minutes") == 120
    assert parse_duration("500 ms") == 0.5
    assert parse_duration("1 day") == parse_duration("24 hours") == 86_400
    assert parse_duration(5) == 5
    assert parse_duration("soon") is None


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "consumer.window.size",
            "soon",
            "consumer.window.size: expected a whole number of seconds like '30 seconds', got",
        ),
        ("consumer.window.slide", "1.5 seconds", "consumer.window.slide: expected a whole"),
        ("consumer.window.slide", "60 seconds", "consumer.window.slide: must not be longer"),
        ("consumer.thresholds.cpu_pct", "high", "consumer.thresholds.cpu_pct: expected a number"),
        ("consumer.thresholds.gpu_pct", 3, "consumer.thresholds.gpu_pct: unknown key"),
        ("consumer.windw", {}, "consumer.windw: unknown key"),
        ("kafka.bootstrap_servers", "localhost", "kafka.bootstrap_servers: expected a list"),
        ("kafka.bootstrap_servers", None, "kafka.bootstrap_servers: required key is missing"),
        ("kafka.topics.cpu", "bad topic!", "kafka.topics.cpu: not a valid Kafka topic name"),
        ("kafka.topics.mem", "topic-cpu", "kafka.topics: every topic must have its own name"),
        ("producer.mode", "stdin", "producer.mode: expected one of ['replay', 'live']"),
        ("producer.replay.rate", 0, "producer.replay.rate: expected a positive number"),
        ("producer.replay.loop", "yes", "producer.replay.loop: expected true or false"),
        ("producer.delivery.compression", "brotli", "producer.delivery.compression"),
        ("producer.delivery.retries", 0, "producer.delivery.retries: expected an integer >= 1"),
        ("producer.live.interval", "-1 s", "producer.live.interval: expected a duration"),
        ("producer.live.buffer", "100 ms", "producer.live.buffer: must be at least"),
        ("producer.replay.buffer", 0, "producer.replay.buffer: expected an integer >= 1"),
        ("producer.replay.processes", 0, "producer.replay.processes: expected an integer from 1"),
        ("producer.replay.processes", 33, "from 1 to 32, got 33"),
        ("producer.max_future", "never", "producer.max_future: expected a duration"),
        ("consumer.max_future", -5, "consumer.max_future: expected a duration"),
        ("consumer.output_dir", None, "consumer.output_dir: required key is missing"),
        ("consumer.spark.conf", ["a"], "consumer.spark.conf: expected a mapping"),
        ("consumer.starting_offsets", "middle", "consumer.starting_offsets: expected one of"),
    ],
)
def test_errors_name_the_key_path(path: str, value: object, message: str) -> None:
    data = _with(path, value)
    if value is None:  # remove the key instead
        node = data
        *parents, leaf = path.split(".")
        for key in parents:
            node = node[key]
        del node[leaf]
    with pytest.raises(ConfigError) as info:
        parse(data, base=Path("/tmp"))
    assert message in str(info.value)


def test_a_file_that_is_not_yaml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "rtm.yml"
    path.write_text("kafka: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(path)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load(tmp_path / "nope.yml")


def test_consumer_section_is_required_only_by_consumers(tmp_path: Path) -> None:
    cfg = parse({"kafka": MINIMAL["kafka"]}, base=tmp_path)
    with pytest.raises(ConfigError, match="consumer: section missing"):
        cfg.require_consumer()
