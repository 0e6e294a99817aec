"""``rtm-producer``: publish server metrics (CSV replay or live host sampling) to Kafka."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import socket
import sys
from pathlib import Path

from kafka.errors import KafkaError

from rtm import logsetup
from rtm.config import Config, ConfigError, load
from rtm.producer.publisher import Publisher, kafka_producer
from rtm.producer.replay import ReplayError
from rtm.producer.service import Stopper, live, replay

log = logging.getLogger(__name__)

EXIT_OK, EXIT_SEND_FAILED, EXIT_CONFIG = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rtm-producer",
        description=(
            "Publish server metrics as JSON records to the Kafka topics named in the config: "
            "replay the four CSV files (cpu_data.csv, mem_data.csv, net_data.csv, disk_data.csv) "
            "or sample this host live. Options given here override the config file."
        ),
        epilog=(
            "Exit status: 0 when every record was acknowledged, 1 when some sends failed, "
            "2 for a configuration or input error. SIGTERM/SIGINT flush and exit cleanly."
        ),
    )
    p.add_argument("--config", required=True, type=Path, help="the rtm YAML config file")
    p.add_argument(
        "--mode",
        choices=("replay", "live"),
        help="replay CSV files or sample this host (default: producer.mode)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="directory with the four CSV files (default: producer.replay.data_dir, "
        "else the sample data shipped with rtm)",
    )
    p.add_argument(
        "--pace",
        choices=("rows", "event_time"),
        help="rows: RATE rows per second per file; event_time: follow the timestamps "
        "(default: producer.replay.pace)",
    )
    p.add_argument(
        "--rate",
        type=float,
        help="rows per second per file with pace=rows (default: producer.replay.rate, 1)",
    )
    p.add_argument(
        "--speedup",
        type=float,
        help="multiply the replay speed, either pace (default: producer.replay.speedup, 1)",
    )
    p.add_argument(
        "--as-fast-as-possible",
        action="store_true",
        default=None,
        help="replay without pausing (benchmarks, tests)",
    )
    p.add_argument(
        "--loop",
        action="store_true",
        default=None,
        help="replay the files forever, shifting timestamps forward on each pass",
    )
    p.add_argument(
        "--samples",
        type=int,
        help="live mode: stop after this many samples (default: run until stopped)",
    )
    p.add_argument(
        "--host",
        help="the producer_host written into records (default: producer.host, else hostname)",
    )
    p.add_argument("--log-level", default="INFO", choices=logsetup.LEVELS, help="log verbosity")
    return p


def apply_overrides(config: Config, args: argparse.Namespace) -> Config:
    """The config with the command-line options that were given laid over it."""
    replay_cfg = config.producer.replay
    changes = {
        "data_dir": args.data_dir.resolve() if args.data_dir else None,
        "pace": args.pace,
        "rate": args.rate,
        "speedup": args.speedup,
        "as_fast_as_possible": args.as_fast_as_possible,
        "loop": args.loop,
    }
    for key in ("rate", "speedup"):
        if changes[key] is not None and changes[key] <= 0:
            raise ConfigError(f"--{key}: expected a positive number, got {changes[key]}")
    replay_cfg = dataclasses.replace(
        replay_cfg, **{k: v for k, v in changes.items() if v is not None}
    )
    producer = dataclasses.replace(
        config.producer,
        replay=replay_cfg,
        mode=args.mode or config.producer.mode,
        host=args.host or config.producer.host,
    )
    return dataclasses.replace(config, producer=producer)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logsetup.configure(args.log_level)
    try:
        config = apply_overrides(load(args.config), args)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return EXIT_CONFIG
    host = config.producer.host or socket.gethostname()
    stopper = Stopper()
    signal.signal(signal.SIGTERM, lambda *_: stopper.stop())
    signal.signal(signal.SIGINT, lambda *_: stopper.stop())
    try:
        producer = kafka_producer(config, client_id=f"rtm-producer-{host}")
    except KafkaError as exc:
        log.error("cannot connect to %s: %r", ",".join(config.kafka.bootstrap_servers), exc)
        return EXIT_SEND_FAILED
    publisher = Publisher(
        producer, config.kafka.topics.dead_letter, host, config.producer.stats_interval
    )
    status = EXIT_OK
    try:
        if config.producer.mode == "replay":
            replay(config, publisher, stopper, host)
        else:
            live(config, publisher, stopper, host, args.samples)
    except ReplayError as exc:
        log.error("%s", exc)
        status = EXIT_CONFIG
    finally:
        counts = publisher.close(timeout=config.producer.delivery.delivery_timeout_ms / 1000)
    if status == EXIT_OK and (counts.failed or counts.submitted != counts.sent):
        status = EXIT_SEND_FAILED
    return status


if __name__ == "__main__":
    sys.exit(main())
