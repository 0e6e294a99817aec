"""rtm-drill against a real broker: a clean run audits clean, and the audit catches what it must."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest
from kafka import KafkaProducer
from rtm_broker import Broker

from rtm import drill
from rtm.kafka_client import Connection


@pytest.fixture
def topic(broker: Broker) -> str:
    name = f"drill-{uuid.uuid4().hex[:8]}"
    broker.create_topics([name], partitions=3)
    return name


def _produce(broker: Broker, topic: str, tmp_path: Path, seconds: float = 3) -> dict:
    out = tmp_path / "produced.json"
    code = drill.main(
        ["--bootstrap-servers", broker.bootstrap, "produce", "--topic", topic,
         "--rate", "300", "--duration", str(seconds), "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    return json.loads(out.read_text())


def test_a_clean_run_finds_every_acknowledged_record_once(broker, topic, tmp_path) -> None:
    produced = _produce(broker, topic, tmp_path)
    assert produced["sent"] >= 600
    assert produced["acknowledged"] == produced["sent"]
    assert produced["failed"] == 0
    report = drill.audit(Connection.of(broker.bootstrap), produced)
    assert (report.found, report.lost, report.duplicated) == (produced["sent"], 0, 0)
    assert report.ok


def test_records_have_the_requested_size() -> None:
    assert len(drill.record("abc", 7, 150)) == 150
    assert json.loads(drill.record("abc", 7, 150))["seq"] == 7


def test_an_acknowledged_record_missing_from_the_topic_is_reported_lost(
    broker, topic, tmp_path
) -> None:
    produced = _produce(broker, topic, tmp_path, seconds=1)
    never_sent = produced["sent"] + 5
    produced["acked"].append(never_sent)
    report = drill.audit(Connection.of(broker.bootstrap), produced)
    assert report.lost == 1
    assert report.lost_examples == (never_sent,)
    assert not report.ok


def test_a_record_written_twice_is_reported_duplicated(broker, topic, tmp_path) -> None:
    produced = _produce(broker, topic, tmp_path, seconds=1)
    again = KafkaProducer(bootstrap_servers=[broker.bootstrap])
    again.send(topic, drill.record(produced["run"], 3, 150)).get(timeout=30)
    again.close()
    report = drill.audit(Connection.of(broker.bootstrap), produced)
    assert report.duplicated == 1
    assert report.lost == 0
    assert not report.ok


def test_stop_ends_a_stream_early_and_keeps_what_was_acknowledged(broker, topic) -> None:
    stop = threading.Event()
    threading.Timer(1.5, stop.set).start()
    result = drill.produce(
        Connection.of(broker.bootstrap), topic, rate=100, duration=600, size=150, stop=stop
    )
    assert 0 < result.sent < 600 * 100  # stopped long before the duration ran out
    assert len(result.acked) == result.sent
