"""Integration fixtures: one real ZooKeeper + Kafka broker from the artifact cache, running until
the lab tier starts, and a factory of isolated pipelines (own topics and directories) on it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
from itutil import Pipeline
from rtm_broker import Broker, artifacts_root


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory, until_lab: ExitStack) -> Broker:
    root = artifacts_root()
    if not (root / "manifest.json").is_file() or not list((root / "spark").glob("*.jar")):
        pytest.fail(f"the artifact cache {root} is missing or incomplete: run `make artifacts`")
    from rtm.artifacts.build import kafka_home  # noqa: PLC0415  (the foundation's module)

    return until_lab.enter_context(
        Broker(kafka_home(root), tmp_path_factory.mktemp("broker")).running()
    )


@pytest.fixture
def pipeline_factory(broker: Broker, tmp_path: Path) -> Callable[[str], Pipeline]:
    def make(prefix: str) -> Pipeline:
        pipe = Pipeline(broker, tmp_path / prefix, prefix)
        pipe.workdir.mkdir(parents=True)
        pipe.create_topics()
        return pipe

    return make
