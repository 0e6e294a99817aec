"""``rtm-producer``: publish server metrics (CSV replay or live host sampling) to Kafka."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from rtm import logsetup
from rtm.config import MAX_PROCESSES, PRODUCER, Config, ConfigError, load
from rtm.producer import workers
from rtm.producer.publisher import ProducerLike, Publisher, kafka_producer
from rtm.producer.replay import WHOLE, ReplayError, Share
from rtm.producer.service import Stopper, connect, live, replay
from rtm.producer.workers import EXIT_CONFIG, EXIT_OK, EXIT_SEND_FAILED
from rtm.records import KINDS

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rtm-producer",
        description=(
            "Publish server metrics as JSON records to the Kafka topics named in the config: "
            f"replay one CSV file per metric kind ({', '.join(k.csv_name for k in KINDS)}) "
            "or sample this host live. Options given here override the config file."
        ),
        epilog=(
            "Exit status: 0 when every record was acknowledged (or, stopped during an outage, "
            "spooled), 1 when some were refused for good or dropped, 2 for a configuration or "
            "input error. SIGTERM/SIGINT flush, spool what the brokers have not acknowledged "
            "and exit cleanly; the spool is sent first at the next start."
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
        help="directory with the CSV files (default: producer.replay.data_dir, "
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
        "--processes",
        type=int,
        help="replay: share the servers out among this many sending processes, for bulk"
        " replays faster than one process sends (default: producer.replay.processes, 1)",
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
        "processes": args.processes,
    }
    for key in ("rate", "speedup"):
        if changes[key] is not None and changes[key] <= 0:
            raise ConfigError(f"--{key}: expected a positive number, got {changes[key]}")
    if args.processes is not None and not 1 <= args.processes <= MAX_PROCESSES:
        raise ConfigError(
            f"--processes: expected an integer from 1 to {MAX_PROCESSES}, got {args.processes}"
        )
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
        config.kafka.connection(PRODUCER)  # its login, checked before the first connection
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return EXIT_CONFIG
    host = config.producer.host or socket.gethostname()
    if config.producer.mode == "replay" and config.producer.replay.processes > 1:
        return workers.run(config, host, args.log_level, produce)
    return produce(config, host, samples=args.samples)


def produce(
    config: Config,
    host: str,
    share: Share = WHOLE,
    *,
    samples: int | None = None,
    state_dir: Path | None = None,
) -> int:
    """Publish in this process (the servers of ``share`` only, in a shared replay, its counts
    in ``state_dir``); the exit status."""
    stopper = Stopper()
    signal.signal(signal.SIGTERM, lambda *_: stopper.stop())
    signal.signal(signal.SIGINT, lambda *_: stopper.stop())
    suffix = f"-{share.index}" if share.count > 1 else ""

    def new_client() -> ProducerLike:
        return kafka_producer(config, client_id=f"rtm-producer-{host}{suffix}")

    if share.count == 1:
        workers.send_leftovers(config, host, stopper, new_client, share.count)
    producer = connect(config, stopper, new_client)
    if producer is None:
        log.info("stopped before any broker answered")
        return EXIT_OK
    publisher = publisher_for(
        config, producer, host, stopper, new_client, share=share, state_dir=state_dir
    )
    status = EXIT_OK
    try:
        publisher.send_spooled()
        if config.producer.mode == "replay":
            replay(config, publisher, stopper, host, share)
        else:
            live(config, publisher, stopper, host, samples)
    except ReplayError as exc:
        log.error("%s", exc)
        status = EXIT_CONFIG
    finally:
        # Done: wait for every acknowledgement. Stopped: stop_timeout more, then spool.
        counts = publisher.close()
    if status == EXIT_OK and (counts.failed or publisher.unaccounted or counts.dropped):
        status = EXIT_SEND_FAILED
    return status


def publisher_for(
    config: Config,
    producer: ProducerLike,
    host: str,
    stopper: Stopper,
    client_factory: Callable[[], ProducerLike],
    *,
    share: Share = WHOLE,
    state_dir: Path | None = None,
) -> Publisher:
    """The publisher of a mode: the replay waits for room, live sampling drops when full."""
    settings = config.producer
    live_mode = settings.mode == "live"
    spool_dir = settings.spool_dir
    if spool_dir is not None and share.count > 1:
        spool_dir = workers.spool_dir_of(spool_dir, share.index)
    return Publisher(
        producer,
        config.kafka.topics.dead_letter,
        host,
        settings.stats_interval,
        max_pending=settings.live.buffer_records if live_mode else settings.replay.buffer,
        drop_when_full=live_mode,
        spool_dir=spool_dir,
        stopped=lambda: stopper.stopped,
        stop_timeout=settings.stop_timeout,
        client_factory=client_factory,
        name=f"servers {share.index + 1}/{share.count} " if share.count > 1 else "",
        state_dir=state_dir,
    )


if __name__ == "__main__":
    sys.exit(main())
