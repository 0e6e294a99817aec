"""The cluster layout: computed once, here, from the inventory, and checked.

Bootstrap servers, the ZooKeeper ensemble and its ids, the KRaft quorum, replication and the
topic specs all follow from the inventory's groups, a few per-host vars (``ansible_host``,
``ansible_port``, ``zookeeper_id``, ``kafka_broker_id``) and the ``rtm_*`` settings documented in
``roles/rtm/defaults/main.yml``. Three readers share this one computation:

- the roles, through the ``rtm_layout`` lookup (``roles/rtm/vars/main.yml``: role vars, so no
  group var can override a computed value by accident);
- ``fab status``, the demo and the benchmarks, through :func:`load_layout`;
- the Vagrantfile, through ``python -m rtm.layout --inventory DIR`` (JSON on stdout).

An inventory that cannot work is described by :attr:`Layout.problems`, one sentence each that
names the fix; the roles' preflight refuses it, and :func:`load_layout` raises.
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rtm.catalogue import Catalogue, CatalogueError, catalogue
from rtm.inventory import Inventory, InventoryError

if TYPE_CHECKING:
    from rtm.kafka_client import Connection

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = REPO / "roles" / "rtm" / "defaults" / "main.yml"

# Inventory group of each part of the pipeline, by the setting that names it.
GROUP_SETTINGS = {
    "zookeeper": "rtm_zookeeper_group",
    "kafka": "rtm_kafka_group",
    "kafka_controller": "rtm_kafka_controller_group",
    "producers": "rtm_producer_group",
    "consumers": "rtm_consumer_group",
}
PORT_SETTINGS = {
    "zookeeper_client": "rtm_zookeeper_client_port",
    "zookeeper_peer": "rtm_zookeeper_peer_port",
    "zookeeper_election": "rtm_zookeeper_election_port",
    "kafka": "rtm_kafka_port",
    "kafka_controller": "rtm_kafka_controller_port",
    "kafka_internal": "rtm_kafka_internal_port",
}
# The settings the layout is computed from: one value for the whole cluster.
SETTINGS = (
    *GROUP_SETTINGS.values(),
    *PORT_SETTINGS.values(),
    "rtm_kafka_kraft_enabled",
    "rtm_security",
    "rtm_tls_ca_cert",
    "rtm_tls_ca_key",
    "rtm_topic_partitions",
    "rtm_topic_retention_ms",
    "rtm_topics",
)
# Settings of the controller's tools only (where its CA and the Kafka passwords are): read by
# fab status, the demo, the drills and the benchmarks, never by the hosts.
CONTROLLER_SETTINGS = (
    "rtm_tls_ca_dir",
    "rtm_secrets_file",
    "rtm_vault_password_file",
    "rtm_kafka_passwords",
)
# Settings a host may have of its own (one laptop offline, thresholds only where the jobs
# run), checked here for every host before anything is deployed.
HOST_SETTINGS = ("rtm_install_source", "rtm_app_thresholds")
# Per-host vars the layout reads.
HOST_VARS = ("ansible_host", "ansible_port", "zookeeper_id", "kafka_broker_id")
# Names the roles once computed in their defaults, where a group var could override them.
RETIRED = (
    "rtm_host_addresses",
    "rtm_zookeeper_hosts",
    "rtm_zookeeper_ids",
    "rtm_zookeeper_connect",
    "rtm_kafka_brokers",
    "rtm_kafka_dedicated_controllers",
    "rtm_kafka_controllers",
    "rtm_kafka_nodes",
    "rtm_kafka_node_ids",
    "rtm_kafka_bootstrap_servers",
    "rtm_kafka_quorum_voters",
    "rtm_kafka_replication_factor",
    "rtm_kafka_min_insync_replicas",
    "rtm_topic_specs",
)
INSTALL_SOURCES = ("online", "offline")
# How the cluster's links are protected (rtm_security), each with what it means.
SECURITY_MODES = {
    "tls": "TLS on every link, peers authenticated by certificates from the cluster CA",
    "plaintext": "no encryption and no authentication, for a closed network only",
}
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_IPV4 = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


class LayoutError(Exception):
    """The inventory cannot be read, or describes a cluster that cannot work."""


@dataclass(frozen=True)
class Layout:
    """The computed layout as plain data (what the roles get), and the problems found."""

    data: dict[str, Any]
    problems: tuple[str, ...] = field(default=())
    # Where the inventory's files are, and the controller's own settings (CONTROLLER_SETTINGS:
    # the CA directory, the secrets, often beside them), which the hosts' layout does without.
    inventory_dir: Path | None = None
    controller: Mapping[str, Any] = field(default_factory=dict)

    @property
    def bootstrap_servers(self) -> list[str]:
        return [s for s in str(self.data["kafka_bootstrap_servers"]).split(",") if s]

    def connection(self, client: str = "status") -> Connection:
        """How the controller's tools reach Kafka as one of the cluster's clients (``status``:
        fab status and the demo; ``producer``: the benchmarks' load); under tls, logged in as
        that client's Kafka user with the password kept on the controller."""
        from rtm.kafka_client import Connection, Login, Tls  # noqa: PLC0415 - no kafka in Ansible

        if not self.tls:
            return Connection.of(self.bootstrap_servers)
        user = str(self.data["kafka_users"][client])
        login = Login(user, self._password(user))
        return Connection.of(self.bootstrap_servers, tls=Tls(str(self.ca_cert())), login=login)

    def admin_connection(self) -> Connection:
        """The controller as a super user (under tls, its certificate on the brokers' own
        listener): the drills and the benchmarks, which make and delete their own topics."""
        from rtm.kafka_client import Connection, Tls  # noqa: PLC0415 - no kafka in Ansible

        if not self.tls:
            return Connection.of(self.bootstrap_servers)
        pki = self._ca_dir()
        tls = Tls(str(self.ca_cert()), str(pki / "controller.pem"), str(pki / "controller.key"))
        return Connection.of(str(self.data["kafka_internal_servers"]), tls=tls)

    def _password(self, user: str) -> str:
        given = self.controller.get("rtm_kafka_passwords") or {}
        if user in given:
            return str(given[user])
        from rtm.secrets import SecretsError, kafka_passwords  # noqa: PLC0415 - ansible-vault

        where = self._inventory_dir()
        secrets = Path(self.controller.get("rtm_secrets_file") or where / ".secrets.yml")
        vault = Path(self.controller.get("rtm_vault_password_file") or where / ".vault-password")
        try:
            kept = kafka_passwords(secrets, vault)
        except SecretsError as exc:
            raise LayoutError(f"the password of Kafka user {user}: {exc}") from exc
        if user not in kept:
            raise LayoutError(f"{secrets} keeps no password for Kafka user {user}: run site.yml")
        return kept[user]

    @property
    def host_addresses(self) -> dict[str, str]:
        return dict(self.data["host_addresses"])

    @property
    def topics(self) -> dict[str, dict[str, Any]]:
        """Topic specs keyed by pipeline role (cpu, mem, …): name, partitions, replication."""
        return dict(self.data["topics"])

    def topic(self, role: str) -> str:
        return str(self.topics[role]["name"])

    @property
    def zookeeper_hosts(self) -> list[str]:
        return list(self.data["zookeeper_hosts"])

    @property
    def kafka_brokers(self) -> list[str]:
        return list(self.data["kafka_brokers"])

    @property
    def kafka_nodes(self) -> list[str]:
        """Every host that runs a Kafka process: brokers and KRaft controllers."""
        return list(self.data["kafka_nodes"])

    @property
    def kraft(self) -> bool:
        return bool(self.data["kraft_enabled"])

    @property
    def tls(self) -> bool:
        return self.data["security"] == "tls"

    def controller_tls(self) -> ssl.SSLContext | None:
        """How the controller's tools speak TLS to the cluster: the cluster CA, and the
        controller's client certificate the roles made beside it; None in plaintext."""
        if not self.tls:
            return None
        ca_dir = self._ca_dir()
        context = ssl.create_default_context(cafile=self.ca_cert())
        context.load_cert_chain(ca_dir / "controller.pem", ca_dir / "controller.key")
        return context

    def ca_cert(self) -> Path:
        """The cluster CA's certificate on the controller."""
        return Path(self.data["tls_ca_cert"] or self._ca_dir() / "ca.pem")

    def _ca_dir(self) -> Path:
        ca_dir = self.controller.get("rtm_tls_ca_dir")
        return Path(ca_dir) if ca_dir else self._inventory_dir() / ".pki"

    def _inventory_dir(self) -> Path:
        if self.inventory_dir is None:
            raise LayoutError("the inventory's directory is unknown: set rtm_tls_ca_dir")
        return self.inventory_dir

    def group(self, part: str) -> str:
        """The inventory group of a part of the pipeline (``producers``, ``consumers``, …)."""
        return str(self.data["groups"][part])

    def hosts(self, part: str) -> list[str]:
        """The hosts of one part of the pipeline (``producers``, ``consumers``) in order."""
        return list(self.data["hosts"][part])

    def port(self, name: str) -> int:
        return int(self.data["ports"][name])


@dataclass(frozen=True)
class _Settings:
    values: dict[str, Any]
    problems: list[str]

    def group(self, part: str) -> str:
        return str(self.values[GROUP_SETTINGS[part]])


def defaults(path: Path = DEFAULTS) -> dict[str, Any]:
    """The rtm role's documented defaults of the settings the layout reads."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {key: data[key] for key in (*SETTINGS, *HOST_SETTINGS) if key in data}


def compute(
    hosts: Mapping[str, Mapping[str, Any]],
    groups: Mapping[str, Sequence[str]],
    base: Mapping[str, Any],
    cat: Catalogue | None = None,
) -> Layout:
    """The layout of an inventory.

    ``hosts`` maps every inventory host, in inventory order, to its inventory vars (only
    ``HOST_VARS``, ``SETTINGS`` and ``HOST_SETTINGS`` are read); ``groups`` maps a group to
    its hosts (children included); ``base`` gives each setting's value where no host sets it
    (the rtm role's defaults, for Ansible and for the tools alike). Never raises: what cannot
    work is in ``problems``, and the values are then as far as they could be computed.
    """
    cat = cat or catalogue()
    settings = _settings(hosts, base)
    problems = settings.problems
    values = settings.values
    kraft = values["rtm_kafka_kraft_enabled"]

    def members(part: str) -> list[str]:
        return [h for h in groups.get(settings.group(part), ()) if h in hosts]

    addresses = {h: str(hosts[h].get("ansible_host", h)) for h in hosts}
    ports = {name: values[key] for name, key in PORT_SETTINGS.items()}
    zookeeper = [] if kraft else members("zookeeper")
    brokers = members("kafka")
    controllers = (members("kafka_controller") or brokers) if kraft else []
    nodes = list(dict.fromkeys(brokers + controllers))
    zookeeper_ids = _ids(zookeeper, hosts, "zookeeper_id", first=1)
    node_ids = _ids(nodes, hosts, "kafka_broker_id", first=1)
    replication = min(len(brokers), 3)
    topics, topic_problems = _topics(cat, values, brokers, settings.group("kafka"))
    data = {
        "kraft_enabled": kraft,
        "security": values["rtm_security"],
        "tls_ca_cert": values["rtm_tls_ca_cert"],
        "groups": {part: settings.group(part) for part in GROUP_SETTINGS},
        "hosts": {"producers": members("producers"), "consumers": members("consumers")},
        "host_addresses": addresses,
        "zookeeper_hosts": zookeeper,
        "zookeeper_ids": zookeeper_ids,
        "zookeeper_connect": ",".join(
            f"{addresses[h]}:{ports['zookeeper_client']}" for h in zookeeper
        ),
        "kafka_brokers": brokers,
        "kafka_controllers": controllers,
        "kafka_nodes": nodes,
        "kafka_node_ids": node_ids,
        "kafka_bootstrap_servers": ",".join(f"{addresses[h]}:{ports['kafka']}" for h in brokers),
        # The brokers' own listener (rtm_security tls): replication, and the super users' tools.
        "kafka_internal_servers": ",".join(
            f"{addresses[h]}:{ports['kafka_internal']}" for h in brokers
        ),
        "kafka_quorum_voters": ",".join(
            f"{node_ids[h]}@{addresses[h]}:{ports['kafka_controller']}" for h in controllers
        ),
        "kafka_replication_factor": replication,
        "kafka_min_insync_replicas": 2 if len(brokers) >= 3 else 1,
        "ports": ports,
        "topics": topics,
        **_kafka_access(cat, topics),
    }
    if not problems:
        problems += _cluster_problems(data, settings, hosts, members)
        problems += topic_problems
        problems += _host_setting_problems(cat, hosts, base)
    return Layout(data, tuple(problems))


def _kafka_access(cat: Catalogue, topics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """With rtm_security tls: the Kafka user (SCRAM login) of each client of the cluster and
    the ACLs that give each the least it needs. The brokers and the controller's certificate
    are the super users; nothing else may do anything without an ACL here."""
    users = {"producer": "rtm-producer", "status": "rtm-status"}
    users |= {job.name: f"rtm-{job.name}" for job in cat.jobs}

    def topic(role: str) -> str:
        return str(topics[role]["name"])

    def allow(user: str, operations: list[str], **resource: Any) -> dict[str, Any]:
        return {"principal": f"User:{users[user]}", "operations": operations, **resource}

    cluster = {"cluster": True}
    acls = [
        allow(
            "producer",
            ["Write", "Describe"],
            topics=[topic(k.name) for k in cat.kinds] + [topic("dead_letter")],
        ),
        allow("producer", ["IdempotentWrite"], **cluster),
        # fab status: the cluster's brokers, and each topic's offsets and newest record.
        allow("status", ["Describe"], **cluster),
        allow("status", ["Read", "Describe"], topics=[topic(role) for role in topics]),
    ]
    for job in cat.jobs:
        acls += [
            allow(job.name, ["Read", "Describe"], topics=[topic(k.name) for k in job.kinds]),
            allow(job.name, ["Write", "Describe"], topics=[topic("alerts")]),
            allow(job.name, ["IdempotentWrite"], **cluster),
            # Spark's Kafka source names its consumer groups by this prefix.
            allow(job.name, ["Read"], group_prefix="spark-kafka-source"),
        ]
    return {"kafka_users": users, "kafka_acls": acls}


def _settings(hosts: Mapping[str, Mapping[str, Any]], base: Mapping[str, Any]) -> _Settings:
    problems: list[str] = []
    for name in RETIRED:
        setters = [h for h, hv in hosts.items() if name in hv]
        if setters:
            problems.append(
                f"{name} is set in the inventory (for {', '.join(setters)}),"
                " but it is computed from the groups and settings (rtm.layout, shown by"
                " `python -m rtm.layout --inventory DIR`): remove it and change the groups or"
                " the rtm_* settings it comes from."
            )
    values: dict[str, Any] = {}
    for key in SETTINGS:
        fallback = base.get(key, {} if key == "rtm_topics" else None)
        seen = {h: hv[key] for h, hv in hosts.items() if key in hv}
        distinct = {json.dumps(v, sort_keys=True, default=str) for v in seen.values()}
        if len(seen) not in (0, len(hosts)) and fallback is not None:
            distinct.add(json.dumps(fallback, sort_keys=True, default=str))
        if len(distinct) > 1:
            shown = ", ".join(f"{h}: {v!r}" for h, v in seen.items())
            problems.append(
                f"{key} differs between hosts ({shown}; elsewhere {fallback!r}): it is one"
                " setting of the whole cluster. Set it once, in group_vars/all."
            )
        values[key] = next(iter(seen.values())) if seen else fallback
    missing = [k for k in SETTINGS if values[k] is None]
    if missing:
        problems.append(f"settings without a value: {', '.join(missing)} (roles/rtm/defaults)")
        for key in missing:
            values[key] = 0 if key.endswith(("_port", "_partitions", "_ms")) else ""
    kraft = _flag(values["rtm_kafka_kraft_enabled"])
    if kraft is None:
        problems.append(
            f"rtm_kafka_kraft_enabled={values['rtm_kafka_kraft_enabled']!r}: set it to true"
            " (KRaft) or false (ZooKeeper)."
        )
    values["rtm_kafka_kraft_enabled"] = bool(kraft)
    if values["rtm_security"] not in SECURITY_MODES:
        modes = "; ".join(f"{mode} ({meaning})" for mode, meaning in SECURITY_MODES.items())
        problems.append(f"rtm_security={values['rtm_security']!r}: set it to one of: {modes}.")
    own_ca = [key for key in ("rtm_tls_ca_cert", "rtm_tls_ca_key") if values[key]]
    if len(own_ca) == 1:
        problems.append(
            f"only {own_ca[0]} is set: a CA of your own needs both rtm_tls_ca_cert and"
            " rtm_tls_ca_key (PEM files on the controller); set neither for the CA the roles make."
        )
    for key in (*PORT_SETTINGS.values(), "rtm_topic_partitions", "rtm_topic_retention_ms"):
        number = _integer(values[key])
        if number is None:
            problems.append(f"{key}={values[key]!r}: give a whole number.")
        values[key] = number if number is not None else 0
    return _Settings(values, problems)


def _cluster_problems(
    data: Mapping[str, Any],
    settings: _Settings,
    hosts: Mapping[str, Mapping[str, Any]],
    members: Callable[[str], list[str]],
) -> list[str]:
    problems = []
    kraft = data["kraft_enabled"]
    zookeeper, brokers = data["zookeeper_hosts"], data["kafka_brokers"]
    controllers, nodes = data["kafka_controllers"], data["kafka_nodes"]
    if not brokers:
        problems.append(
            f"The inventory group '{settings.group('kafka')}' has no hosts: add at least one"
            " broker host under it in hosts.yml (or point rtm_kafka_group at the right group)."
        )
    if not kraft and not zookeeper:
        problems.append(
            f"The inventory group '{settings.group('zookeeper')}' has no hosts: add 1, 3 or 5"
            " hosts under it, or set rtm_kafka_kraft_enabled: true to run Kafka without"
            " ZooKeeper."
        )
    elif not kraft and len(zookeeper) not in (1, 3, 5):
        problems.append(
            f"The ZooKeeper group '{settings.group('zookeeper')}' has {len(zookeeper)} hosts"
            f" ({', '.join(zookeeper)}): an even ensemble tolerates no more failures than the"
            " next smaller odd one. Use 1, 3 or 5 hosts."
        )
    if kraft and len(controllers) not in (1, 3, 5):
        problems.append(
            f"KRaft has {len(controllers)} controllers ({', '.join(controllers)}): a quorum"
            f" needs an odd count. Put 1, 3 or 5 hosts in '{settings.group('kafka_controller')}'"
            f" (or, in combined mode, in '{settings.group('kafka')}')."
        )
    zk_ids = data["zookeeper_ids"]
    if zk_ids and not _unique_ints(zk_ids.values(), 1, 255):
        problems.append(
            f"ZooKeeper ids {zk_ids} must be unique integers from 1 to 255: fix the zookeeper_id"
            " host vars (or remove them all to number hosts by their inventory position)."
        )
    node_ids = data["kafka_node_ids"]
    if node_ids and not _unique_ints(node_ids.values(), 0, None):
        problems.append(
            f"Kafka node ids {node_ids} must be unique integers >= 0: fix the kafka_broker_id"
            " host vars (or remove them all to number hosts by their inventory position)."
        )
    addresses = data["host_addresses"]
    service = list(dict.fromkeys(zookeeper + nodes))
    service_addresses = [addresses[h] for h in service]
    if len(set(service_addresses)) != len(service) or not all(
        _IPV4.match(a) for a in service_addresses
    ):
        shown = {h: addresses[h] for h in service}
        problems.append(
            "ZooKeeper/Kafka hosts need a distinct IPv4 address as ansible_host in hosts.yml"
            f" (listeners and advertised listeners are built from it); found {shown}."
        )
    pipeline = list(dict.fromkeys(zookeeper + nodes + members("producers") + members("consumers")))
    # The SSH port is part of the key: hosts behind one NAT address on different ports differ.
    machines: dict[str, list[str]] = {}
    for host in pipeline:
        key = f"{addresses[host]}:{hosts[host].get('ansible_port', 22)}"
        machines.setdefault(key, []).append(host)
    for key, names in machines.items():
        if len(names) > 1:
            problems.append(
                f"Hosts {', '.join(names)} have the same address and SSH port ({key}), so they"
                " are one machine under two names and its services would be deployed over each"
                " other: give each host its own ansible_host, or list the machine once under one"
                " name in every group it serves."
            )
    ports = data["ports"]
    used = (
        ("kafka", "kafka_controller")
        if kraft
        else ("zookeeper_client", "zookeeper_peer", "zookeeper_election", "kafka")
    ) + (("kafka_internal",) if data["security"] == "tls" else ())
    chosen = {PORT_SETTINGS[p]: ports[p] for p in used}
    if len(set(chosen.values())) != len(chosen) or not all(
        1 <= p <= 65535 for p in chosen.values()
    ):
        problems.append(
            f"Ports {chosen} must be distinct numbers from 1 to 65535: ZooKeeper and Kafka share"
            " hosts, and a second service cannot listen on a port already taken. Change the"
            " rtm_*_port settings in the inventory's group_vars."
        )
    return problems


def _topics(
    cat: Catalogue, values: Mapping[str, Any], brokers: list[str], kafka_group: str
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    replication = min(len(brokers), 3)
    changes = values["rtm_topics"]
    known = list(cat.topic_specs)
    if not isinstance(changes, Mapping) or set(changes) - set(known):
        listed = list(changes) if isinstance(changes, Mapping) else changes
        problem = (
            f"rtm_topics has the entries {listed}: the pipeline's topics are"
            f" {', '.join(known)} (app/rtm/catalogue.yml). Give only those keys, each with the"
            " name, partitions, replication_factor or retention_ms it changes; a new metric"
            " kind is added in the catalogue."
        )
        changes = {}
    else:
        problem = ""
    odd = {role: spec for role, spec in changes.items() if not isinstance(spec, Mapping)}
    fill = {
        "partitions": values["rtm_topic_partitions"],
        "replication_factor": replication,
        "retention_ms": values["rtm_topic_retention_ms"],
    }
    topics = {
        role: {**fill, **spec, **({} if role in odd else changes.get(role, {}))}
        for role, spec in cat.topic_specs.items()
    }
    problems = [problem] if problem else []
    if odd:
        problems.append(
            f"rtm_topics entries {odd} are not mappings: write each one as {{name: topic-cpu}},"
            " with partitions, replication_factor or retention_ms beside name when the topic"
            " needs its own."
        )
    for role, spec in topics.items():
        name = spec.get("name")
        label = f"Topic {name} ({role})"
        if not isinstance(name, str) or not _TOPIC_NAME.match(name):
            problems.append(
                f"Topic {role} in rtm_topics has the name '{name}': a Kafka topic name is 1 to"
                " 249 letters, digits, '.', '_' or '-'. Fix its name in rtm_topics."
            )
        retention = _integer(spec.get("retention_ms"))
        if retention is None or (retention < 1 and retention != -1):
            problems.append(
                f"{label} has retention_ms {spec.get('retention_ms')}: Kafka takes a whole"
                " number of milliseconds, and with 0 it deletes records as soon as they are"
                " written. Set rtm_topic_retention_ms (or the topic's retention_ms in"
                " rtm_topics) to a value above 0, or to -1 to keep records forever."
            )
        partitions = _integer(spec.get("partitions"))
        if partitions is None or partitions < 1:
            problems.append(
                f"{label} has {spec.get('partitions')} partitions: set rtm_topic_partitions"
                " (or the topic's partitions in rtm_topics) to 1 or more."
            )
        factor = _integer(spec.get("replication_factor"))
        # With no broker at all the layout already refuses the empty group.
        if brokers and (factor is None or not 1 <= factor <= len(brokers)):
            problems.append(
                f"{label} asks for replication_factor {spec.get('replication_factor')} with"
                f" {len(brokers)} broker(s): set it from 1 to the broker count in rtm_topics"
                f" (or add brokers to '{kafka_group}')."
            )
    names = [spec.get("name") for spec in topics.values()]
    if len(set(map(str, names))) != len(names):
        problems.append(f"Two entries of rtm_topics share a Kafka topic name: {names}")
    return topics, problems


def _host_setting_problems(
    cat: Catalogue, hosts: Mapping[str, Mapping[str, Any]], base: Mapping[str, Any]
) -> list[str]:
    """Each distinct bad value of a per-host setting, once, with the hosts that have it."""
    found: dict[str, list[str]] = {}
    for host, host_vars in hosts.items():
        source = host_vars.get("rtm_install_source", base.get("rtm_install_source"))
        thresholds = host_vars.get("rtm_app_thresholds", base.get("rtm_app_thresholds", {}))
        for problem in (_source_problem(source), _threshold_problem(cat, thresholds)):
            if problem:
                found.setdefault(problem, []).append(host)
    return [f"{problem} (on {', '.join(names)})" for problem, names in found.items()]


def _source_problem(source: Any) -> str:
    if source in INSTALL_SOURCES:
        return ""
    return (
        f"rtm_install_source must be one of: {', '.join(INSTALL_SOURCES)}, got: {source}. Set"
        ' it to "online" (Apache archive) or "offline" (controller artifact cache) in the'
        " inventory's group_vars."
    )


def _threshold_problem(cat: Catalogue, thresholds: Any) -> str:
    rules = dict(cat.thresholds)
    ok = isinstance(thresholds, Mapping) and not set(thresholds) - set(rules)
    if ok:
        numbers = [_number(v) for v in thresholds.values()]
        ok = all(n is not None and n >= 0 for n in numbers)
    if ok:
        return ""
    return (
        f"rtm_app_thresholds is {thresholds}: give a number >= 0 for some of the catalogue's"
        f" rules {', '.join(rules)} (app/rtm/catalogue.yml); an alert rule for another metric"
        " is added in the catalogue."
    )


def _ids(
    hosts_in_order: list[str], hosts: Mapping[str, Mapping[str, Any]], var: str, first: int
) -> dict[str, Any]:
    """Each host's explicit id (host var), else its 1-based position."""
    ids: dict[str, Any] = {}
    for position, host in enumerate(hosts_in_order, start=first):
        given = hosts[host].get(var, position)
        number = _integer(given)
        ids[host] = number if number is not None else given
    return ids


def _unique_ints(values: Any, low: int, high: int | None) -> bool:
    listed = list(values)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in listed):
        return False
    in_range = all(v >= low and (high is None or v <= high) for v in listed)
    return in_range and len(set(listed)) == len(listed)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def layout_of(inventory: Inventory) -> Layout:
    """The layout of a loaded inventory; LayoutError when it cannot work."""
    hosts = {h.name: h.vars for h in inventory.hosts.values()}
    groups = {g: list(names) for g, names in inventory.groups.items()}
    try:
        layout = compute(hosts, groups, defaults())
    except (CatalogueError, OSError) as exc:
        raise LayoutError(str(exc)) from exc
    if layout.problems:
        raise LayoutError(f"{inventory.source}: " + "\n".join(layout.problems))
    source = Path(inventory.source)
    controller = {}
    for key in CONTROLLER_SETTINGS:
        values = {
            json.dumps(h.vars[key], sort_keys=True, default=str)
            for h in inventory.hosts.values()
            if key in h.vars
        }
        if len(values) > 1:
            raise LayoutError(f"{inventory.source}: {key} differs between hosts: set it once")
        if values:
            controller[key] = json.loads(values.pop())
    return replace(
        layout, inventory_dir=source if source.is_dir() else source.parent, controller=controller
    )


def load_layout(inventory: Path | str) -> Layout:
    """The layout of an inventory directory or file; LayoutError when it cannot work."""
    path = Path(inventory)
    if not path.exists():
        raise LayoutError(f"inventory {path} does not exist")
    try:
        return layout_of(Inventory.load(path))
    except InventoryError as exc:
        raise LayoutError(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    """Print the layout (and each host's address, groups and vars) of an inventory as JSON."""
    parser = argparse.ArgumentParser(prog="python -m rtm.layout", description=main.__doc__)
    parser.add_argument("--inventory", "-i", required=True, help="inventory directory or file")
    args = parser.parse_args(argv)
    try:
        inventory = Inventory.load(args.inventory)
        layout = layout_of(inventory)
    except (InventoryError, LayoutError) as exc:
        print(f"rtm.layout: {exc}", file=sys.stderr)
        return 1
    machines = {
        h.name: {"address": h.address, "groups": sorted(h.groups), "vars": dict(h.vars)}
        for h in inventory.hosts.values()
    }
    json.dump({"layout": layout.data, "machines": machines}, sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
