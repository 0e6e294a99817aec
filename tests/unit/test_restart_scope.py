"""Which service a change to rtm.yml restarts: the rtm_app role's rtm_app_reads filter."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from rtm.catalogue import catalogue

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "rtm_app_filters", REPO / "roles/rtm_app/filter_plugins/rtm_app.py"
)
assert _spec
assert _spec.loader
filters = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(filters)
reads = filters.rtm_app_reads

JOBS = catalogue().for_ansible()["jobs"]
CONFIG = yaml.safe_load((REPO / "app/config.example.yml").read_text())


def restarted(change) -> set[str]:
    """The services whose part of the config a change touches."""
    after = copy.deepcopy(CONFIG)
    change(after)
    return {s for s in ("producer", *JOBS) if reads(CONFIG, s, JOBS) != reads(after, s, JOBS)}


def test_a_threshold_restarts_only_the_job_of_its_rule() -> None:
    for job, spec in JOBS.items():
        metric = next(iter(spec["rules"]))

        def change(config, metric=metric) -> None:
            config["consumer"]["thresholds"][metric] = 1.5

        assert restarted(change) == {job}


def test_producer_settings_restart_only_the_producer() -> None:
    assert restarted(lambda c: c["producer"].update(max_future="1 minute")) == {"producer"}


def test_consumer_settings_restart_every_job_and_not_the_producer() -> None:
    def change(config) -> None:
        config["consumer"]["window"]["watermark"] = "20 seconds"

    assert restarted(change) == set(JOBS)


def test_kafka_settings_restart_everything() -> None:
    def change(config) -> None:
        config["kafka"]["bootstrap_servers"] = ["elsewhere:9092"]

    assert restarted(change) == {"producer", *JOBS}


def test_no_config_yet_and_an_unknown_service() -> None:
    assert reads(None, "producer", JOBS) == {}
    with pytest.raises(AnsibleFilterError, match="'nope' is neither 'producer' nor a job"):
        reads(CONFIG, "nope", JOBS)


def _secured(config: dict) -> None:
    logins = {c: {"username": f"rtm-{c}", "password": "old"} for c in ("producer", *JOBS)}
    config["kafka"]["security"] = {"ca_file": "/etc/rtm/kafka-ca.pem", "logins": logins}


def test_a_rotated_password_restarts_only_the_service_that_logs_in_with_it() -> None:
    secured = copy.deepcopy(CONFIG)
    _secured(secured)
    for service in ("producer", *JOBS):
        after = copy.deepcopy(secured)
        after["kafka"]["security"]["logins"][service]["password"] = "new"  # noqa: S105
        changed = {
            s for s in ("producer", *JOBS) if reads(secured, s, JOBS) != reads(after, s, JOBS)
        }
        assert changed == {service}


def test_a_new_ca_restarts_every_service() -> None:
    secured = copy.deepcopy(CONFIG)
    _secured(secured)
    after = copy.deepcopy(secured)
    after["kafka"]["security"]["ca_file"] = "/etc/rtm/other-ca.pem"
    assert {s for s in ("producer", *JOBS) if reads(secured, s, JOBS) != reads(after, s, JOBS)} == {
        "producer",
        *JOBS,
    }


def test_logins_name_each_client_user_and_password() -> None:
    users = {"producer": "rtm-producer", "cpu_mem": "rtm-cpu_mem"}
    logins = filters.rtm_app_logins(["producer"], users, {"rtm-producer": "pw"})
    assert logins == {"producer": {"username": "rtm-producer", "password": "pw"}}
    with pytest.raises(AnsibleFilterError, match="no password for rtm-cpu_mem"):
        filters.rtm_app_logins(["cpu_mem"], users, {})
