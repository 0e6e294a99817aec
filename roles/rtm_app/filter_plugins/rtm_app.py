"""rtm_app_reads: the part of rtm.yml one service reads.

    {{ config | rtm_app_reads('producer', _rtm_catalogue.jobs) }}
    {{ config | rtm_app_reads('cpu_mem', _rtm_catalogue.jobs) }}

The producer and the consumer jobs share one config file. A change to it restarts only the
services whose part changed: the producer reads everything but the consumer section; a consumer
job everything but the producer section, and of the thresholds only its own rules'. A threshold
change restarts one job, not the producer and the other job.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

PRODUCER = "producer"


def rtm_app_reads(config: Any, service: str, jobs: dict[str, Any]) -> dict[str, Any]:
    config = dict(config or {})
    if service == PRODUCER:
        return {k: v for k, v in config.items() if k != "consumer"}
    if service not in jobs:
        raise AnsibleFilterError(
            f"rtm_app_reads: {service!r} is neither {PRODUCER!r} nor a job ({', '.join(jobs)})"
        )
    consumer = dict(config.get("consumer") or {})
    rules = jobs[service]["rules"]
    consumer["thresholds"] = {
        metric: value
        for metric, value in (consumer.get("thresholds") or {}).items()
        if metric in rules
    }
    return {k: v for k, v in config.items() if k != PRODUCER} | {"consumer": consumer}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"rtm_app_reads": rtm_app_reads}
