"""The one YAML configuration file shared by the producer and the consumers.

The file is a nested mapping (Ansible renders it from the inventory). Every value is validated
here, and every error names the key path, e.g. ``consumer.window.size: expected a duration like
'30 seconds', got 'soon'``. Relative paths are resolved against the directory of the file.
The full schema, with defaults, is documented in ``docs/app.md``.
"""

from __future__ import annotations

import glob
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from rtm.catalogue import catalogue
from rtm.kafka_client import Connection, Login, Tls

# Default topic names and alert thresholds: the catalogue's.
DEFAULT_TOPICS = tuple((role, str(spec["name"])) for role, spec in catalogue().topic_specs.items())
DEFAULT_THRESHOLDS = catalogue().thresholds
COMPRESSIONS = ("gzip", "lz4", "snappy", "zstd", "none")
_DURATION = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?)\s*$"
)
_UNIT_SECONDS = MappingProxyType(
    {"ms": 0.001, "millis": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
)
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class ConfigError(ValueError):
    """The configuration file is unreadable or invalid; the message names the key path."""


@dataclass(frozen=True)
class Topics:
    """The topic name of every pipeline role: each metric kind, alerts, dead_letter."""

    names: tuple[tuple[str, str], ...]

    def for_kind(self, kind: str) -> str:
        """The topic of one metric kind of the catalogue (or of alerts, dead_letter)."""
        return dict(self.names)[kind]

    @property
    def alerts(self) -> str:
        return self.for_kind("alerts")

    @property
    def dead_letter(self) -> str:
        return self.for_kind("dead_letter")


# The producer's batches, per partition, at most (make bench: with kafka-python's 16 KiB
# default a bulk replay sent 3-10 % fewer records a second).
BATCH_SIZE = 256 * 1024
# A bulk replay's sending processes, at most: past the cores and the brokers' pace more only wait.
MAX_PROCESSES = 32

# The client name of the producer's login (a consumer job logs in under its job's name).
PRODUCER = "producer"


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: tuple[str, ...]
    topics: Topics
    # kafka.security (rtm_security tls): the cluster CA, and each client's login by client name
    # (``producer``, or a consumer job's name); no CA: plaintext.
    ca_file: str = ""
    logins: tuple[tuple[str, Login], ...] = ()

    def connection(self, client: str) -> Connection:
        """How one client of this file (``producer`` or a job's name) reaches the brokers."""
        if not self.ca_file:
            return Connection(self.bootstrap_servers)
        login = dict(self.logins).get(client)
        if login is None:
            raise ConfigError(f"kafka.security.logins.{client}: required key is missing")
        # Checked here, not left to the client: kafka-python without its CA retries for ever.
        if not Path(self.ca_file).is_file():
            raise ConfigError(f"kafka.security.ca_file: {self.ca_file} is not a readable file")
        return Connection(self.bootstrap_servers, Tls(self.ca_file), login)


@dataclass(frozen=True)
class ReplayConfig:
    data_dir: Path | None  # None: the sample data shipped in the package
    pace: str  # "rows" or "event_time"
    rate: float
    speedup: float
    as_fast_as_possible: bool
    loop: bool
    buffer: int  # records read but not yet acknowledged, at most (back-pressure), per process
    processes: int = 1  # the servers are shared out among this many sending processes


@dataclass(frozen=True)
class LiveConfig:
    server_id: str | None
    interval: float
    disk_path: str
    buffer: float  # seconds of samples kept while the brokers do not acknowledge

    @property
    def buffer_records(self) -> int:
        """The buffer's bound in records: every kind's record of each sample it holds."""
        return math.ceil(self.buffer / self.interval) * len(catalogue().kinds)


@dataclass(frozen=True)
class DeliveryConfig:
    retries: int | None  # None: until the delivery timeout
    compression: str
    linger_ms: int
    batch_size: int  # bytes a partition's batch may hold
    request_timeout_ms: int
    delivery_timeout_ms: int


@dataclass(frozen=True)
class ProducerConfig:
    mode: str  # "replay" or "live"
    host: str | None
    stats_interval: float
    max_future: float  # seconds an event time may be ahead of this host's clock
    spool_dir: Path | None  # unacknowledged records are kept here over a stop; None: no spool
    stop_timeout: float  # on SIGTERM, seconds to wait for acknowledgements before spooling
    replay: ReplayConfig
    live: LiveConfig
    delivery: DeliveryConfig


@dataclass(frozen=True)
class SparkConfig:
    master: str
    jars: tuple[Path, ...]
    shuffle_partitions: int
    conf: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class WindowConfig:
    size: int  # seconds
    slide: int
    watermark: int
    # How far past a window's end a server's own clock must be before the window closes:
    # room for that server's samples of the window still in flight.
    grace: float = 1.0


@dataclass(frozen=True)
class TriggerConfig:
    interval: float
    available_now: bool


@dataclass(frozen=True)
class ConsumerConfig:
    spark: SparkConfig
    window: WindowConfig
    trigger: TriggerConfig
    starting_offsets: str
    max_offsets_per_trigger: int | None
    checkpoint_dir: Path
    output_dir: Path
    thresholds: tuple[tuple[str, float], ...]
    max_future: float  # seconds an event time may be ahead of the consumer's clock

    def threshold(self, metric: str) -> float:
        return dict(self.thresholds)[metric]


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig
    producer: ProducerConfig
    consumer: ConsumerConfig | None
    source: Path | None = None

    def require_consumer(self) -> ConsumerConfig:
        if self.consumer is None:
            raise ConfigError("consumer: section missing; the consumers need it")
        return self.consumer


class _Section:
    """A mapping being validated: typed getters that name the key path in every error."""

    def __init__(self, data: object, path: str, base: Path) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path or '<top>'}: expected a mapping, got {_show(data)}")
        self.data: Mapping[str, Any] = data
        self.path = path
        self.base = base
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def raw(self, name: str, default: object = None) -> Any:
        self.seen.add(name)
        return self.data.get(name, default)

    def section(self, name: str) -> _Section:
        return _Section(self.raw(name), self.key(name), self.base)

    def required(self, name: str) -> Any:
        value = self.raw(name)
        if value is None:
            raise ConfigError(f"{self.key(name)}: required key is missing")
        return value

    def string(self, name: str, default: str | None) -> str | None:
        value = self.raw(name, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{self.key(name)}: expected a non-empty string, got {_show(value)}")
        return value.strip()

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.raw(name, default)
        if value not in choices:
            raise ConfigError(
                f"{self.key(name)}: expected one of {list(choices)}, got {_show(value)}"
            )
        return str(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: expected true or false, got {_show(value)}")
        return value

    def number(self, name: str, default: float, *, positive: bool = True) -> float:
        value = self.raw(name, default)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (positive and value <= 0) or value < 0:
            kind = "a positive number" if positive else "a number >= 0"
            raise ConfigError(f"{self.key(name)}: expected {kind}, got {_show(value)}")
        return float(value)

    def integer(
        self, name: str, default: int | None, *, minimum: int = 0, maximum: int | None = None
    ) -> int | None:
        value = self.raw(name, default)
        if value is None:
            return None
        too_big = maximum is not None and isinstance(value, int) and value > maximum
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum or too_big:
            wanted = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            raise ConfigError(f"{self.key(name)}: expected an integer {wanted}, got {_show(value)}")
        return value

    def duration(self, name: str, default: str, *, whole: bool = False) -> float:
        value = self.raw(name, default)
        seconds = parse_duration(value)
        if seconds is None or seconds <= 0 or (whole and seconds != int(seconds)):
            what = "a whole number of seconds" if whole else "a duration"
            raise ConfigError(
                f"{self.key(name)}: expected {what} like '30 seconds', got {_show(value)}"
            )
        return seconds

    def path_value(self, name: str, *, required: bool) -> Path | None:
        value = self.required(name) if required else self.raw(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.key(name)}: expected a path, got {_show(value)}")
        return (self.base / Path(value).expanduser()).resolve()

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise ConfigError(
                f"{self.key(str(unknown[0]))}: unknown key (known keys here: {sorted(self.seen)})"
            )


def _show(value: object) -> str:
    return repr(value) if value is not None else "nothing"


def parse_duration(value: object) -> float | None:
    """Seconds from ``30``, ``'30 seconds'``, ``'10s'``, ``'500 ms'``, ``'2 min'``; else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value.lower())
    if not match:
        return None
    unit = match.group(2)
    if unit.startswith("millis"):
        unit = "millis"
    elif unit != "ms":
        unit = unit[0]
    return float(match.group(1)) * _UNIT_SECONDS[unit]


def load(path: Path) -> Config:
    """Read and validate the configuration file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse(data, base=path.resolve().parent, source=path)


def parse(data: object, *, base: Path, source: Path | None = None) -> Config:
    """Validate an already-loaded mapping; relative paths are resolved against ``base``."""
    top = _Section(data, "", base)
    kafka = _kafka(top.section("kafka"))
    producer = _producer(top.section("producer"))
    consumer = _consumer(top.section("consumer")) if top.raw("consumer") is not None else None
    top.done()
    return Config(kafka=kafka, producer=producer, consumer=consumer, source=source)


def _kafka(sec: _Section) -> KafkaConfig:
    servers = sec.required("bootstrap_servers")
    if isinstance(servers, str):
        servers = [s.strip() for s in servers.split(",") if s.strip()]
    ok = isinstance(servers, list) and servers
    if not ok or not all(isinstance(s, str) and re.match(r"^[^\s:]+:\d+$", s) for s in servers):
        raise ConfigError(
            f"{sec.key('bootstrap_servers')}: expected a list of 'host:port', got {_show(servers)}"
        )
    tsec = sec.section("topics")
    names = {}
    for kind, default in DEFAULT_TOPICS:
        name = tsec.string(kind, default)
        if name is None or not _TOPIC.match(name):
            raise ConfigError(f"{tsec.key(kind)}: not a valid Kafka topic name: {_show(name)}")
        names[kind] = name
    tsec.done()
    if len(set(names.values())) != len(names):
        raise ConfigError(f"{tsec.path}: every topic must have its own name, got {names}")
    ca_file, logins = _security(sec.section("security")) if sec.raw("security") else ("", ())
    sec.done()
    return KafkaConfig(tuple(servers), Topics(tuple(names.items())), ca_file, logins)


def _security(sec: _Section) -> tuple[str, tuple[tuple[str, Login], ...]]:
    """kafka.security: ``ca_file`` and ``logins: {CLIENT: {username, password}}``."""
    ca_file = sec.path_value("ca_file", required=True)
    lsec = sec.section("logins")
    clients = (PRODUCER, *(job.name for job in catalogue().jobs))
    logins = []
    for client in clients:
        if lsec.raw(client) is None:
            continue
        one = lsec.section(client)
        username, password = one.string("username", None), one.raw("password")
        if username is None:
            raise ConfigError(f"{one.key('username')}: required key is missing")
        if not isinstance(password, str) or not password:
            raise ConfigError(f"{one.key('password')}: expected a non-empty string")
        one.done()
        logins.append((client, Login(username, password)))
    lsec.done()
    sec.done()
    return str(ca_file), tuple(logins)


def _producer(sec: _Section) -> ProducerConfig:
    mode = sec.choice("mode", "replay", ("replay", "live"))
    host = sec.string("host", None)
    stats = sec.duration("stats_interval", "10 seconds")
    rsec = sec.section("replay")
    replay = ReplayConfig(
        data_dir=rsec.path_value("data_dir", required=False),
        pace=rsec.choice("pace", "rows", ("rows", "event_time")),
        rate=rsec.number("rate", 1.0),
        speedup=rsec.number("speedup", 1.0),
        as_fast_as_possible=rsec.boolean("as_fast_as_possible", False),
        loop=rsec.boolean("loop", False),
        buffer=rsec.integer("buffer", 10_000, minimum=1) or 10_000,
        processes=rsec.integer("processes", 1, minimum=1, maximum=MAX_PROCESSES) or 1,
    )
    rsec.done()
    lsec = sec.section("live")
    live = LiveConfig(
        server_id=lsec.string("server_id", None),
        interval=lsec.duration("interval", "1 second"),
        disk_path=lsec.string("disk_path", "/") or "/",
        buffer=lsec.duration("buffer", "15 minutes"),
    )
    if live.buffer < live.interval:
        raise ConfigError(f"{lsec.key('buffer')}: must be at least {lsec.key('interval')}")
    lsec.done()
    dsec = sec.section("delivery")
    delivery = DeliveryConfig(
        retries=dsec.integer("retries", None, minimum=1),
        compression=dsec.choice("compression", "lz4", COMPRESSIONS),
        linger_ms=dsec.integer("linger_ms", 20) or 0,
        batch_size=dsec.integer("batch_size", BATCH_SIZE, minimum=1024) or BATCH_SIZE,
        request_timeout_ms=int(dsec.duration("request_timeout", "30 seconds") * 1000),
        delivery_timeout_ms=int(dsec.duration("delivery_timeout", "1 day") * 1000),
    )
    dsec.done()
    if delivery.delivery_timeout_ms < delivery.request_timeout_ms + delivery.linger_ms:
        raise ConfigError(
            f"{dsec.key('delivery_timeout')}: must be at least request_timeout + linger_ms"
        )
    max_future = sec.duration("max_future", "5 minutes")
    spool_dir = sec.path_value("spool_dir", required=False)
    stop_timeout = sec.duration("stop_timeout", "10 seconds")
    sec.done()
    return ProducerConfig(
        mode=mode,
        host=host,
        stats_interval=stats,
        max_future=max_future,
        spool_dir=spool_dir,
        stop_timeout=stop_timeout,
        replay=replay,
        live=live,
        delivery=delivery,
    )


def _consumer(sec: _Section) -> ConsumerConfig:
    ssec = sec.section("spark")
    spark = SparkConfig(
        master=ssec.string("master", "local[2]") or "local[2]",
        jars=_jars(ssec),
        shuffle_partitions=ssec.integer("shuffle_partitions", 4, minimum=1) or 4,
        conf=_spark_conf(ssec),
    )
    ssec.done()
    wsec = sec.section("window")
    window = WindowConfig(
        size=int(wsec.duration("size", "30 seconds", whole=True)),
        slide=int(wsec.duration("slide", "10 seconds", whole=True)),
        watermark=int(wsec.duration("watermark", "10 seconds", whole=True)),
        grace=wsec.duration("grace", "1 second"),
    )
    if window.slide > window.size:
        raise ConfigError(f"{wsec.key('slide')}: must not be longer than {wsec.key('size')}")
    wsec.done()
    tsec = sec.section("trigger")
    trigger = TriggerConfig(
        interval=tsec.duration("interval", "1 second"),
        available_now=tsec.boolean("available_now", False),
    )
    tsec.done()
    hsec = sec.section("thresholds")
    thresholds = tuple(
        (metric, hsec.number(metric, default, positive=False))
        for metric, default in DEFAULT_THRESHOLDS
    )
    hsec.done()
    consumer = ConsumerConfig(
        spark=spark,
        window=window,
        trigger=trigger,
        starting_offsets=sec.choice("starting_offsets", "earliest", ("earliest", "latest")),
        max_offsets_per_trigger=sec.integer("max_offsets_per_trigger", None, minimum=1),
        checkpoint_dir=_required_path(sec, "checkpoint_dir"),
        output_dir=_required_path(sec, "output_dir"),
        thresholds=thresholds,
        max_future=sec.duration("max_future", "5 minutes"),
    )
    sec.done()
    return consumer


def _required_path(sec: _Section, name: str) -> Path:
    path = sec.path_value(name, required=True)
    if path is None:  # pragma: no cover - required=True raises instead
        raise ConfigError(f"{sec.key(name)}: required key is missing")
    return path


def _jars(sec: _Section) -> tuple[Path, ...]:
    value = sec.raw("jars", [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{sec.key('jars')}: expected a list of jar paths, got {_show(value)}")
    jars: list[Path] = []
    for item in value:
        pattern = str(sec.base / Path(item).expanduser())
        jars.extend(sorted(Path(p).resolve() for p in glob.glob(pattern)) or [Path(pattern)])
    return tuple(jars)


def _spark_conf(sec: _Section) -> tuple[tuple[str, str], ...]:
    value = sec.raw("conf", {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{sec.key('conf')}: expected a mapping of Spark settings")
    pairs = []
    for key, item in value.items():
        if not isinstance(key, str) or isinstance(item, Mapping | list) or item is None:
            raise ConfigError(f"{sec.key('conf')}.{key}: expected a scalar value, got {item!r}")
        text = str(item).lower() if isinstance(item, bool) else str(item)
        pairs.append((key, text))
    return tuple(pairs)
