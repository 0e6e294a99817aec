"""The services' command lines refuse bad input before touching Kafka or Spark: exit status 2
and one log line that names the offending option or key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rtm import logsetup
from rtm.consumer import cli as consumer_cli
from rtm.producer import cli as producer_cli

# A port nothing listens on: the refusals must come before any connection is tried.
KAFKA = {"bootstrap_servers": ["127.0.0.1:1"]}
CONSUMER = {"checkpoint_dir": "ck", "output_dir": "out"}


@pytest.fixture(autouse=True)
def _keep_caplog_attached(monkeypatch: pytest.MonkeyPatch) -> None:
    # configure() replaces the root logger's handlers, which would detach caplog's.
    monkeypatch.setattr(logsetup, "configure", lambda level="INFO": None)


def write_config(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "rtm.yml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize(
    ("data", "options", "message"),
    [
        ({"kafka": KAFKA}, ["--rate", "0"], "--rate: expected a positive number, got 0.0"),
        ({"kafka": KAFKA}, ["--speedup", "-2"], "--speedup: expected a positive number"),
        (
            {"kafka": KAFKA, "producer": {"replay": {"pace": "fast"}}},
            [],
            "producer.replay.pace: expected one of ['rows', 'event_time'], got 'fast'",
        ),
        ({"kafka": KAFKA}, ["--processes", "0"], "--processes: expected an integer from 1 to 32"),
    ],
    ids=["zero_rate", "negative_speedup", "unknown_pace_in_config", "no_process"],
)
def test_the_producer_refuses_bad_settings_with_status_2(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    data: dict,
    options: list[str],
    message: str,
) -> None:
    status = producer_cli.main(["--config", write_config(tmp_path, data), *options])
    assert status == producer_cli.EXIT_CONFIG == 2
    assert f"configuration error: {message}" in caplog.text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kafka": KAFKA}, "consumer: section missing; the consumers need it"),
        (
            {"kafka": KAFKA, "consumer": {**CONSUMER, "window": {"slide": "1 minute"}}},
            "consumer.window.slide: must not be longer than consumer.window.size",
        ),
    ],
    ids=["no_consumer_section", "slide_longer_than_window"],
)
def test_the_consumer_refuses_a_bad_config_with_status_2(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, data: dict, message: str
) -> None:
    status = consumer_cli.main(["--config", write_config(tmp_path, data), "--job", "cpu_mem"])
    assert status == consumer_cli.EXIT_CONFIG == 2
    assert f"configuration error: {message}" in caplog.text


def test_an_unknown_job_is_refused_by_the_argument_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, {"kafka": KAFKA, "consumer": CONSUMER})
    with pytest.raises(SystemExit) as info:
        consumer_cli.main(["--config", config, "--job", "gpu"])
    assert info.value.code == 2
    assert "--job: invalid choice: 'gpu'" in capsys.readouterr().err


def test_a_shared_replay_of_missing_files_is_refused_once_before_any_process_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path, {"kafka": KAFKA})
    status = producer_cli.main(
        ["--config", config, "--processes", "3", "--data-dir", str(tmp_path / "none")]
    )
    assert status == producer_cli.EXIT_CONFIG
    assert caplog.text.count("cannot read") == 1, caplog.text
