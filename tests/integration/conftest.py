"""Integration fixtures: one real ZooKeeper + Kafka broker, started from the artifact cache
for the whole session, and a factory of isolated pipelines (own topics and directories) on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from itutil import Pipeline
from rtm_broker import Broker, artifacts_root


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    root = artifacts_root()
    if not (root / "manifest.json").is_file() or not list((root / "spark").glob("*.jar")):
        pytest.fail(f"the artifact cache {root} is missing or incomplete: run `make artifacts`")
    from rtm.artifacts.build import kafka_home  # noqa: PLC0415  (the foundation's module)

    with Broker(kafka_home(root), tmp_path_factory.mktemp("broker")).running() as running:
        yield running


@pytest.fixture
def pipeline_factory(broker: Broker, tmp_path: Path) -> Callable[[str], Pipeline]:
    def make(prefix: str) -> Pipeline:
        pipe = Pipeline(broker, tmp_path / prefix, prefix)
        pipe.workdir.mkdir(parents=True)
        pipe.create_topics()
        return pipe

    return make
