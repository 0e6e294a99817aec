"""``fab status``: every host and service the inventory implies, checked in parallel."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import paramiko
from fabric import Connection

from rtm.catalogue import catalogue
from rtm.consumer.jobs import JOBS
from rtm.health import cluster, hostprobe
from rtm.health.report import CLUSTER, Check, Report
from rtm.inventory import Host, Inventory
from rtm.layout import Layout, layout_of

DEFAULT_INVENTORY = "inventory/lab"
INVENTORY_ENV = "RTM_INVENTORY"
# Where OpenSSH, and so Ansible, looks up the keys of the hosts it knows.
KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")


@dataclass(frozen=True)
class Limits:
    """When a reading counts as unhealthy."""

    timeout: float = 5.0
    max_disk_pct: int = 90
    min_mem_available_pct: float = 5.0
    # The producer counts as publishing while the newest record is younger than this.
    max_record_age: float = 60.0
    # A job with lag is falling behind once its last finished batch is older than this.
    max_stall: float = 90.0
    # Window aggregates must keep coming while records do.
    max_output_age: float = 300.0


def inventory_path(option: str | None) -> Path:
    return Path(option or os.environ.get(INVENTORY_ENV) or DEFAULT_INVENTORY)


class _UnknownHostKey(paramiko.MissingHostKeyPolicy):
    """Refuse a host whose key is in no known_hosts file, saying how to trust it."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise paramiko.SSHException(
            f"the {key.get_name()} host key of {hostname} is not in {' or '.join(KNOWN_HOSTS)}:"
            f" check it and add it (ssh-keyscan {hostname}, or one ssh login), or set"
            " ansible_host_key_checking: false for hosts that are rebuilt with new keys"
        )


def checks_host_key(host: Host) -> bool:
    """Whether the inventory has the host's key checked, as Ansible does (on unless turned off)."""
    value = host.vars.get("ansible_host_key_checking", True)
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in ("false", "no", "off", "0", "n", "f")


def connection(host: Host, timeout: float) -> Connection:
    """A Fabric connection with the host, user, port and key the inventory gives Ansible.

    The host's key must be in known_hosts unless the inventory turns checking off (Fabric alone
    would take any key).
    """
    kwargs: dict[str, object] = {
        "banner_timeout": timeout,
        "auth_timeout": timeout,
    }
    key = host.vars.get("ansible_ssh_private_key_file") or host.vars.get("ansible_private_key_file")
    if key:
        kwargs["key_filename"] = os.path.expanduser(str(key))
    conn = Connection(
        host=host.address,
        user=str(host.vars.get("ansible_user") or host.vars.get("ansible_ssh_user") or "root"),
        port=int(host.vars.get("ansible_port", 22)),
        connect_timeout=timeout,
        connect_kwargs=kwargs,
    )
    if checks_host_key(host):
        for known in map(os.path.expanduser, KNOWN_HOSTS):
            if os.path.isfile(known):
                conn.client.load_system_host_keys(known)
        conn.client.set_missing_host_key_policy(_UnknownHostKey())
    return conn


def expected_units(host: Host, layout: Layout) -> list[str]:
    units = []
    if host.name in layout.zookeeper_hosts and not layout.kraft:
        units.append("zookeeper.service")
    if host.name in layout.kafka_nodes:
        units.append("kafka.service")
    if host.name in layout.hosts("producers"):
        units.append("rtm-producer.service")
    return units


def probe_host(
    host: Host, layout: Layout, limits: Limits
) -> tuple[list[Check], hostprobe.HostFacts]:
    units = expected_units(host, layout)
    sudo = host.vars.get("ansible_user", "root") != "root"
    try:
        with connection(host, limits.timeout) as conn:
            result = conn.run(
                hostprobe.command(units, sudo),
                hide=True,
                warn=True,
                timeout=limits.timeout * 2,
            )
    except Exception as exc:  # any paramiko or socket error means unreachable
        return [Check(host.name, "ssh", False, f"{host.address}: {exc or type(exc).__name__}")], (
            hostprobe.HostFacts()
        )
    facts = hostprobe.parse(result.stdout)
    checks = [Check(host.name, "ssh", True, f"{host.address} reachable")]
    checks += _host_checks(host.name, facts, limits)
    checks += _unit_checks(host, facts, units, layout)
    if facts.producer is not None:
        checks.append(producer_check(host.name, facts.producer))
    return checks, facts


def producer_check(name: str, state: dict[str, object]) -> Check:
    """The producer's own account: nothing dropped or refused, the brokers acknowledging."""
    dropped, failed = int(str(state.get("dropped") or 0)), int(str(state.get("failed") or 0))
    pending, down_for = state.get("pending", 0), state.get("down_for")
    if dropped:
        detail = (
            f"dropped {dropped} record(s), event times {state.get('first_dropped')}"
            f" to {state.get('last_dropped')} (live buffer full)"
        )
        return Check(name, "producer delivery", False, detail)
    if failed:
        return Check(name, "producer delivery", False, f"{failed} record(s) refused by Kafka")
    if down_for is not None:
        detail = f"brokers not acknowledging for {_duration(float(str(down_for)))}"
        return Check(name, "producer delivery", False, f"{detail}: {pending} record(s) wait")
    return Check(name, "producer delivery", True, f"{state.get('sent', 0)} sent, {pending} pending")


def _host_checks(name: str, facts: hostprobe.HostFacts, limits: Limits) -> list[Check]:
    checks = []
    if facts.load:
        checks.append(
            Check(name, "load", True, "1/5/15 min: {:.2f} {:.2f} {:.2f}".format(*facts.load))
        )
    if facts.mem_total_kb and facts.mem_available_kb is not None:
        pct = 100 * facts.mem_available_kb / facts.mem_total_kb
        detail = (
            f"{facts.mem_available_kb // 1024} MiB available of {facts.mem_total_kb // 1024} MiB"
        )
        checks.append(Check(name, "memory", pct >= limits.min_mem_available_pct, detail))
    for path, (avail_kb, used_pct) in sorted(facts.disks.items()):
        detail = f"{used_pct}% used, {avail_kb // 1024} MiB free"
        checks.append(Check(name, f"disk {path}", used_pct <= limits.max_disk_pct, detail))
    checks += [Check(name, "probe", False, p) for p in facts.problems]
    return checks


def _unit_checks(
    host: Host, facts: hostprobe.HostFacts, units: list[str], layout: Layout
) -> list[Check]:
    names = list(units)
    if host.name in layout.hosts("consumers"):
        consumer_units = sorted(u for u in facts.units if u.startswith("rtm-consumer@"))
        if not consumer_units:
            return [
                *_describe(host.name, facts, names),
                Check(host.name, "rtm-consumer@*", False, "no consumer job unit"),
            ]
        names += consumer_units
    return _describe(host.name, facts, names)


def _describe(host: str, facts: hostprobe.HostFacts, names: list[str]) -> list[Check]:
    checks = []
    for name in names:
        unit = facts.units.get(name)
        if unit is None:
            checks.append(Check(host, name, False, "not reported"))
            continue
        ok = unit.active == "active"
        up = (
            f"up {_duration(unit.uptime)}"
            if ok and unit.uptime is not None
            else f"{unit.active} ({unit.sub})"
        )
        checks.append(Check(host, name, ok, f"{up}, {unit.restarts} restarts"))
    return checks


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def pipeline_checks(
    layout: Layout, view: cluster.KafkaView, facts: dict[str, hostprobe.HostFacts], limits: Limits
) -> list[Check]:
    checks = []
    metric_topics = [layout.topic(k.name) for k in catalogue().kinds]
    ages = [view.newest_age.get(t) for t in metric_topics]
    known = [a for a in ages if a is not None]
    publishing = bool(known) and min(known) <= limits.max_record_age
    detail = f"newest record {min(known):.0f}s old" if known else "no records in the metric topics"
    checks.append(Check(CLUSTER, "producer publishing", publishing, detail))
    for job in JOBS:
        checks.append(
            _job_check(job.name, [layout.topic(k.name) for k in job.kinds], view, facts, limits)
        )
    for job in JOBS:
        for kind in ("aggregates", "alerts"):
            age = min(
                (
                    f.output_age[(job.name, kind)]
                    for f in facts.values()
                    if (job.name, kind) in f.output_age
                ),
                default=None,
            )
            if kind == "aggregates":
                ok = age is not None and (age <= limits.max_output_age or not publishing)
                text = f"newest {age:.0f}s old" if age is not None else "none written yet"
                checks.append(Check(CLUSTER, f"{job.name} aggregates", ok, text))
            else:
                text = (
                    f"newest {age:.0f}s old"
                    if age is not None
                    else "none (no threshold crossed yet)"
                )
                # No alert is a healthy state (no server is hot): information, not a check.
                checks.append(Check(CLUSTER, f"{job.name} alerts", True, text, counted=False))
    return checks


def _job_check(
    job: str,
    topics: list[str],
    view: cluster.KafkaView,
    facts: dict[str, hostprobe.HostFacts],
    limits: Limits,
) -> Check:
    found = [(host, f.progress[job]) for host, f in facts.items() if job in f.progress]
    if not found:
        return Check(CLUSTER, f"{job} lag", False, "no progress report on any consumer host")
    host, point = min(found, key=lambda hc: hc[1].age)
    lag = 0
    for topic in topics:
        for partition, end in view.end_offsets.get(topic, {}).items():
            lag += max(0, end - point.offsets.get(topic, {}).get(str(partition), 0))
    ok = lag == 0 or point.age <= limits.max_stall
    state = "keeping up" if ok else "falling behind"
    return Check(
        host, f"{job} lag", ok, f"{state}: {lag} records behind, last batch {point.age:.0f}s ago"
    )


def run(inventory: Path, limits: Limits) -> Report:
    inv = Inventory.load(inventory)
    layout = layout_of(inv)
    report = Report(inventory=str(inventory))
    with ThreadPoolExecutor(max_workers=len(inv.hosts) + 2) as pool:
        hosts = {h.name: pool.submit(probe_host, h, layout, limits) for h in inv.hosts.values()}
        zk = pool.submit(cluster.zookeeper_checks, layout, limits.timeout)
        kafka = pool.submit(cluster.kafka_checks, layout, limits.timeout)
        facts = {}
        for name, future in hosts.items():
            checks, facts[name] = future.result()
            report.extend(checks)
        report.extend(zk.result())
        kafka_checks, view = kafka.result()
    report.extend(kafka_checks)
    if view is not None:
        report.extend(pipeline_checks(layout, view, facts, limits))
    report.checks.sort(
        key=lambda c: (
            c.host == CLUSTER,
            list(inv.hosts).index(c.host) if c.host in inv.hosts else 0,
        )
    )
    return report
