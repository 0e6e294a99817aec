"""rtm_app_reads: the part of rtm.yml one service reads.

    {{ config | rtm_app_reads('producer', _rtm_catalogue.jobs) }}
    {{ config | rtm_app_reads('cpu_mem', _rtm_catalogue.jobs) }}

The producer and the consumer jobs share one config file. A change to it restarts only the
services whose part changed: the producer reads everything but the consumer section; a consumer
job everything but the producer section, and of the thresholds only its own rules'. A threshold
change restarts one job, not the producer and the other job. Of the logins (kafka.security,
rtm_security tls) each reads its own: a rotated password restarts the one service that uses it.

    {{ ['producer'] | rtm_app_logins(_rtm_layout.kafka_users, passwords) }}

gives the logins of kafka.security: client -> {username, password}.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

PRODUCER = "producer"


def rtm_app_reads(config: Any, service: str, jobs: dict[str, Any]) -> dict[str, Any]:
    if service != PRODUCER and service not in jobs:
        raise AnsibleFilterError(
            f"rtm_app_reads: {service!r} is neither {PRODUCER!r} nor a job ({', '.join(jobs)})"
        )
    config = _own_login(dict(config or {}), service)
    if service == PRODUCER:
        return {k: v for k, v in config.items() if k != "consumer"}
    consumer = dict(config.get("consumer") or {})
    rules = jobs[service]["rules"]
    consumer["thresholds"] = {
        metric: value
        for metric, value in (consumer.get("thresholds") or {}).items()
        if metric in rules
    }
    return {k: v for k, v in config.items() if k != PRODUCER} | {"consumer": consumer}


def _own_login(config: dict[str, Any], service: str) -> dict[str, Any]:
    kafka = dict(config.get("kafka") or {})
    if "security" not in kafka:
        return config
    security = dict(kafka["security"])
    logins = security.get("logins") or {}
    security["logins"] = {service: logins[service]} if service in logins else {}
    return config | {"kafka": kafka | {"security": security}}


def rtm_app_logins(
    clients: list[str], users: dict[str, str], passwords: dict[str, str]
) -> dict[str, dict[str, str]]:
    missing = [users[c] for c in clients if users[c] not in passwords]
    if missing:
        raise AnsibleFilterError(f"rtm_app_logins: no password for {', '.join(missing)}")
    return {c: {"username": users[c], "password": passwords[users[c]]} for c in clients}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"rtm_app_reads": rtm_app_reads, "rtm_app_logins": rtm_app_logins}
