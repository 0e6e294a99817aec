"""Operator tasks for an rtm deployment. Hosts, users and keys come from the Ansible inventory.

    fab status [--inventory inventory/NAME] [--json]   health of every host and service
    fab logs SERVICE [--lines N]                        recent journal lines, from every host
    fab topics                                          topics with end offsets and consumer lag

The inventory defaults to $RTM_INVENTORY, else inventory/lab.
"""

from __future__ import annotations

import shlex
import sys
from concurrent.futures import ThreadPoolExecutor

from fabric import task
from invoke.exceptions import Exit

from rtm.health import cluster
from rtm.health.status import Limits, connection, inventory_path, run
from rtm.inventory import Inventory
from rtm.layout import load_layout


@task(
    help={
        "inventory": "inventory directory or file (default: $RTM_INVENTORY or inventory/lab)",
        "json": "print the report as JSON for scripts",
        "timeout": "seconds each probe may take (default 5)",
        "max_stall": "seconds a consumer job with lag may go without a batch (default 90)",
        "max_record_age": "seconds without new records before the producer counts as silent "
        "(default 60)",
    }
)
# Invoke turns each parameter into a command-line flag, so they stay positional.
def status(c, inventory=None, json=False, timeout=5, max_stall=90, max_record_age=60):  # noqa: PLR0917
    """Health of every host and service in the inventory; exits 0 only when all are healthy.

    Per host: SSH, load, memory, free disk, and the systemd units its groups imply (active,
    uptime, restarts). ZooKeeper: every node serving, one leader. Kafka: every broker
    registered, topics as the inventory says, nothing under-replicated or offline. Pipeline:
    the producer publishing, each consumer job's lag, the age of the newest aggregate and alert.
    """
    limits = Limits(
        timeout=float(timeout), max_stall=float(max_stall), max_record_age=float(max_record_age)
    )
    report = run(inventory_path(inventory), limits)
    out = report.to_json() if json else report.to_table(color=sys.stdout.isatty())
    sys.stdout.write(out + "\n")
    if not report.healthy:
        raise Exit(report.verdict(), code=1)


@task(
    help={
        "service": "unit name or pattern, e.g. kafka or 'rtm-consumer@*'",
        "lines": "journal lines per host (default 20)",
        "inventory": "inventory directory or file (default: $RTM_INVENTORY or inventory/lab)",
    }
)
def logs(c, service, lines=20, inventory=None):
    """Recent journal lines of SERVICE from every host that has it."""
    inv = Inventory.load(inventory_path(inventory))
    unit = service if "." in service or "*" in service else f"{service}.service"

    def fetch(host):
        with connection(host, 5.0) as conn:
            cmd = f"journalctl --no-pager -o short-iso -n {int(lines)} -u {shlex.quote(unit)}"
            return host.name, conn.run(cmd, hide=True, warn=True, timeout=15).stdout

    with ThreadPoolExecutor(max_workers=len(inv.hosts)) as pool:
        for name, text in pool.map(fetch, inv.hosts.values()):
            shown = [line for line in text.splitlines() if "-- No entries --" not in line]
            if shown:
                sys.stdout.write(f"== {name}\n" + "\n".join(shown) + "\n")


@task(help={"inventory": "inventory directory or file (default: $RTM_INVENTORY or inventory/lab)"})
def topics(c, inventory=None):
    """The pipeline topics with their partitions, end offsets and the newest record's age."""
    layout = load_layout(inventory_path(inventory))
    checks, view = cluster.kafka_checks(layout, 5.0)
    for check in checks:
        sys.stdout.write(f"{'ok  ' if check.ok else 'FAIL'}  {check.name:<28} {check.detail}\n")
    if view is None:
        raise Exit("Kafka is not reachable", code=1)
    for name, ends in view.end_offsets.items():
        age = view.newest_age.get(name)
        newest = f"newest {age:.0f}s old" if age is not None else "empty"
        total = sum(ends.values())
        sys.stdout.write(f"{name:<20} {len(ends)} partitions  {total:>10} records  {newest}\n")
