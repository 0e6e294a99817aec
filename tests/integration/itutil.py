"""Helpers of the integration tests: an isolated pipeline on the shared broker, topic and
file readers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from kafka import KafkaConsumer, TopicPartition
from rtm_broker import Broker, artifacts_root

from rtm.catalogue import catalogue

PROCESS_TIMEOUT = 300.0
READ_TIMEOUT = 60.0
TOPIC_KINDS = tuple(catalogue().topic_specs)  # every pipeline role: the kinds, alerts, dead_letter


@dataclass(frozen=True)
class Pipeline:
    """One isolated pipeline on the shared broker: its own topics, config, output, checkpoints."""

    broker: Broker
    workdir: Path
    prefix: str

    def topic(self, kind: str) -> str:
        return f"{self.prefix}-{kind.replace('_', '-')}"

    @property
    def output(self) -> Path:
        return self.workdir / "output"

    def create_topics(self) -> None:
        self.broker.create_topics([self.topic(kind) for kind in TOPIC_KINDS])

    def config(
        self, name: str = "rtm.yml", producer: dict | None = None, **consumer: object
    ) -> Path:
        """Write a config (documented defaults for windows and thresholds) and return its path."""
        data = {
            "kafka": {
                "bootstrap_servers": [self.broker.bootstrap],
                "topics": {kind: self.topic(kind) for kind in TOPIC_KINDS},
            },
            "producer": {"host": "it-producer", "stats_interval": "1 second", **(producer or {})},
            "consumer": {
                "spark": {
                    "master": "local[2]",
                    "jars": [str(artifacts_root() / "spark" / "*.jar")],
                    "shuffle_partitions": 2,
                },
                "trigger": {"interval": "1 second"},
                "checkpoint_dir": str(self.workdir / "checkpoints"),
                "output_dir": str(self.output),
                **consumer,
            },
        }
        path = self.workdir / name
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    def produce(self, data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        cmd = [
            sys.executable,
            "-m",
            "rtm.producer.cli",
            "--config",
            str(self.config()),
            "--data-dir",
            str(data_dir),
            "--as-fast-as-possible",
            *extra,
        ]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=PROCESS_TIMEOUT, check=False
        )

    def read(self, kind: str) -> list[tuple[str | None, dict | str]]:
        return read_topic(self.broker.bootstrap, self.topic(kind))

    def alerts(self, job: str, mode: str) -> list[dict]:
        return read_jsonl(self.output / job / mode / "alerts")


@contextmanager
def _partitions(bootstrap: str, topic: str) -> Iterator[tuple[KafkaConsumer, list[TopicPartition]]]:
    """A consumer that commits nothing, and every partition of ``topic``; closed afterwards."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        yield consumer, [TopicPartition(topic, p) for p in sorted(partitions)]
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[str, int]:
    """The end offset of each partition of ``topic``, partitions as strings."""
    with _partitions(bootstrap, topic) as (consumer, partitions):
        return {str(tp.partition): end for tp, end in consumer.end_offsets(partitions).items()}


def read_topic(bootstrap: str, topic: str) -> list[tuple[str | None, dict | str]]:
    """Everything in ``topic`` now (up to the end offsets), values parsed as JSON when they are."""
    with _partitions(bootstrap, topic) as (consumer, partitions):
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        out: list[tuple[str | None, dict | str]] = []
        deadline = time.monotonic() + READ_TIMEOUT
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {READ_TIMEOUT}s")
            for records in consumer.poll(timeout_ms=1000).values():
                for rec in records:
                    text = rec.value.decode("utf-8", "replace")
                    try:
                        value: dict | str = json.loads(text)
                    except ValueError:
                        value = text
                    out.append((rec.key.decode() if rec.key else None, value))
        return out


def read_jsonl(directory: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(directory.glob("part-*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
