"""A replay shared out among several processes (``producer.replay.processes``).

One process sends as fast as its one interpreter runs kafka-python's send path; a bulk replay
(a backfill, a benchmark) can use more cores. Each process has its own Kafka client, its share
of the servers (``replay.Share``) and its own spool directory; this one starts them, passes a
stop on, adds their counts up into the ``state.json`` that ``fab status`` reads, and exits with
the worst status of theirs.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from rtm import logsetup
from rtm.config import Config
from rtm.producer.publisher import (
    SPOOL_FILE,
    STATE_FILE,
    ProducerLike,
    Publisher,
    kafka_producer,
    write_atomically,
)
from rtm.producer.replay import ReplayError, Share, check_files
from rtm.producer.service import Stopper, connect, sample_dir
from rtm.records import format_ts

log = logging.getLogger(__name__)

EXIT_OK, EXIT_SEND_FAILED, EXIT_CONFIG = 0, 1, 2
_DIR_PREFIX = "process-"
# How often, at most, the processes' exits and a stop are looked for.
_POLL = 0.5

Produce = Callable[..., int]  # cli.produce(config, host, share, state_dir=...)


def spool_dir_of(spool_dir: Path, index: int) -> Path:
    """The spool directory of process ``index`` of a shared replay."""
    return spool_dir / f"{_DIR_PREFIX}{index}"


def leftovers(spool_dir: Path, count: int) -> list[Path]:
    """Spool directories holding records that no process of a run with ``count`` processes
    reads at its start: a shared replay's left by a run with more processes (or, with one
    process, by any shared replay), and with several processes the single process's own."""
    found = []
    if count > 1 and (spool_dir / SPOOL_FILE).exists():
        found.append(spool_dir)
    for path in sorted(spool_dir.glob(f"{_DIR_PREFIX}*")):
        index = path.name.removeprefix(_DIR_PREFIX)
        owned = count > 1 and index.isdigit() and int(index) < count
        if not owned and (path / SPOOL_FILE).exists():
            found.append(path)
    return found


def send_leftovers(
    config: Config,
    host: str,
    stopper: Stopper,
    new_client: Callable[[], ProducerLike],
    count: int,
) -> None:
    """Send what earlier runs spooled where no process of this run looks, before anything
    else; a directory whose spool is all acknowledged is removed."""
    spool_dir = config.producer.spool_dir
    if spool_dir is None:
        return
    for path in leftovers(spool_dir, count):
        producer = connect(config, stopper, new_client)
        if producer is None:
            return
        publisher = Publisher(
            producer,
            config.kafka.topics.dead_letter,
            host,
            config.producer.stats_interval,
            spool_dir=path,
            stopped=lambda: stopper.stopped,
            stop_timeout=config.producer.stop_timeout,
            client_factory=new_client,
            name=f"{path.name} ",
        )
        publisher.send_spooled()
        publisher.close()  # what is still not acknowledged goes back to that spool
        if path != spool_dir and not (path / SPOOL_FILE).exists():
            (path / STATE_FILE).unlink(missing_ok=True)
            try:
                path.rmdir()
            except OSError as exc:  # something else in it: left for whoever put it there
                log.warning("%s sent, the directory kept: %s", path, exc.strerror)


def combine(states: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One ``state.json`` for the processes' own: counts added up, the longest outage, the
    widest span of dropped event times."""
    combined: dict[str, Any] = {"down_for": None, "first_dropped": None, "last_dropped": None}
    for state in states:
        for key, value in state.items():
            if isinstance(value, int) and not isinstance(value, bool):
                combined[key] = combined.get(key, 0) + value
        for key, pick in (("down_for", max), ("first_dropped", min), ("last_dropped", max)):
            if state.get(key) is not None:
                mine = combined[key]
                combined[key] = state[key] if mine is None else pick(mine, state[key])
    return combined


def _states(spool_dir: Path, count: int) -> list[dict[str, Any]]:
    found = []
    for index in range(count):
        path = spool_dir_of(spool_dir, index) / STATE_FILE
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not written yet, or being replaced
        if isinstance(state, dict):
            found.append(state)
    return found


def _combined_state(states_dir: Path, count: int, spool_dir: Path | None) -> dict[str, Any]:
    """The processes' counts added up; written to ``spool_dir`` when there is one."""
    state = combine(_states(states_dir, count)) | {
        "processes": count,
        "written_at": format_ts(datetime.now(UTC)),
    }
    if spool_dir is not None:
        write_atomically(spool_dir / STATE_FILE, json.dumps(state, sort_keys=True) + "\n")
    return state


def _work(
    produce: Produce, config: Config, host: str, log_level: str, *, share: Share, states_dir: Path
) -> None:
    logsetup.configure(log_level)
    sys.exit(produce(config, host, share, state_dir=spool_dir_of(states_dir, share.index)))


def run(config: Config, host: str, log_level: str, produce: Produce) -> int:
    """Replay with ``producer.replay.processes`` processes; the worst of their statuses."""
    settings = config.producer
    count = settings.replay.processes
    try:
        check_files(settings.replay.data_dir or sample_dir())  # one message, not one each
    except ReplayError as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    stopper = Stopper()
    signal.signal(signal.SIGTERM, lambda *_: stopper.stop())
    signal.signal(signal.SIGINT, lambda *_: stopper.stop())
    send_leftovers(
        config, host, stopper, lambda: kafka_producer(config, f"rtm-producer-{host}"), count
    )
    if stopper.stopped:
        return EXIT_OK
    with tempfile.TemporaryDirectory(prefix="rtm-producer-") as scratch:
        # Without a spool directory the processes' counts still need a place to meet.
        states_dir = settings.spool_dir or Path(scratch)
        # spawn: a fresh interpreter each, nothing of this one's threads or client carried over.
        context = multiprocessing.get_context("spawn")
        processes = [
            context.Process(
                target=_work,
                args=(produce, config, host, log_level),
                kwargs={"share": Share(index, count), "states_dir": states_dir},
                name=f"rtm-producer-{index}",
            )
            for index in range(count)
        ]
        for process in processes:
            process.start()
        log.info("replaying with %d processes, each with its share of the servers", count)
        _watch(processes, stopper, settings.spool_dir, settings.stats_interval)
        return _status(processes, states_dir, settings.spool_dir)


def _watch(
    processes: list[multiprocessing.process.BaseProcess],
    stopper: Stopper,
    spool_dir: Path | None,
    interval: float,
) -> None:
    """Until every process has ended: pass a stop on once, keep ``state.json`` current."""
    passed_on = False
    next_state = time.monotonic() + interval
    alive = list(processes)
    while alive:
        wait([p.sentinel for p in alive], timeout=_POLL)
        alive = [p for p in alive if p.is_alive()]
        if stopper.stopped and not passed_on:
            # systemd signals every process of the unit; someone who signals this one only
            # means all of them.
            for process in alive:
                if process.pid is not None:
                    os.kill(process.pid, signal.SIGTERM)
            passed_on = True
        if spool_dir is not None and time.monotonic() >= next_state:
            _combined_state(spool_dir, len(processes), spool_dir)
            next_state = time.monotonic() + interval


def _status(
    processes: list[multiprocessing.process.BaseProcess],
    states_dir: Path,
    spool_dir: Path | None,
) -> int:
    codes = []
    for index, process in enumerate(processes):
        process.join()
        code = process.exitcode if process.exitcode is not None else EXIT_SEND_FAILED
        if code < 0:
            log.error(
                "process %d of %d was killed by signal %d: what it had read and not spooled"
                " is lost; replay again to send it",
                index + 1,
                len(processes),
                -code,
            )
            code = EXIT_SEND_FAILED
        codes.append(code)
    state = _combined_state(states_dir, len(processes), spool_dir)
    log.info(
        "final: sent=%d failed=%d malformed=%d pending=%d resent=%d dropped=%d",
        *(state.get(k, 0) for k in ("sent", "failed", "malformed", "pending", "resent", "dropped")),
    )
    return EXIT_CONFIG if EXIT_CONFIG in codes else max(codes, default=EXIT_OK)
