"""``rtm-drill``: prove that nothing acknowledged is lost or duplicated while machines fail.

``rtm-drill produce`` streams numbered records into a topic with the same delivery settings as
rtm-producer (acks=all, idempotence, retries until the delivery timeout) and writes which
sequence numbers the brokers acknowledged. ``rtm-drill audit`` reads the topic back from the
beginning and reports records sent, acknowledged, found, lost (acknowledged but not in the
topic) and duplicated.
Run a failure (kill a broker, restart the cluster) while ``produce`` runs, then ``audit``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from rtm import kafka_client
from rtm.config import parse
from rtm.kafka_client import Connection
from rtm.layout import LayoutError, load_layout
from rtm.logsetup import configure
from rtm.producer.publisher import kafka_producer

log = logging.getLogger(__name__)
FLUSH_TIMEOUT = 300.0


@dataclass
class ProduceResult:
    run: str
    topic: str
    sent: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    acked: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["acknowledged"] = len(self.acked)
        data["acked"] = sorted(self.acked)
        data["errors"] = dict(self.errors)
        return data


@dataclass(frozen=True)
class Audit:
    run: str
    topic: str
    sent: int
    acknowledged: int
    found: int
    lost: int
    duplicated: int
    lost_examples: tuple[int, ...]

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0


def record(run: str, seq: int, size: int) -> bytes:
    """One numbered record, padded to about ``size`` bytes like a metrics record."""
    body = {"run": run, "seq": seq, "ts": datetime.now(UTC).isoformat(), "pad": ""}
    raw = json.dumps(body, separators=(",", ":"))
    body["pad"] = "x" * max(0, size - len(raw))
    return json.dumps(body, separators=(",", ":")).encode()


def produce(
    connection: Connection,
    topic: str,
    *,
    rate: float,
    duration: float,
    size: int,
    stop: threading.Event,
) -> ProduceResult:
    """Send ``rate`` numbered records a second for ``duration`` seconds (or until ``stop``)."""
    servers = list(connection.bootstrap_servers)
    config = parse({"kafka": {"bootstrap_servers": servers}}, base=Path.cwd())
    producer = kafka_producer(config, client_id="rtm-drill", connection=connection)
    result = ProduceResult(run=uuid.uuid4().hex[:12], topic=topic)
    lock = threading.Lock()

    def acked(seq: int, _metadata: object) -> None:
        with lock:
            result.acked.append(seq)

    def failed(seq: int, exc: BaseException) -> None:
        with lock:
            result.failed += 1
            result.errors[type(exc).__name__] += 1
        log.warning("record %d not acknowledged: %s", seq, exc)

    start = time.monotonic()
    try:
        while not stop.is_set() and time.monotonic() - start < duration:
            due = start + result.sent / rate
            if (pause := due - time.monotonic()) > 0:
                stop.wait(pause)
                continue
            seq = result.sent
            try:
                future = producer.send(
                    topic, value=record(result.run, seq, size), key=str(seq).encode()
                )
            except KafkaError as exc:
                failed(seq, exc)
            else:
                future.add_callback(acked, seq).add_errback(lambda exc, s=seq: failed(s, exc))
            result.sent += 1
            if result.sent % max(1, int(rate * 10)) == 0:
                log.info(
                    "sent %d, acknowledged %d, failed %d",
                    result.sent,
                    len(result.acked),
                    result.failed,
                )
    finally:
        # The drill's brokers are back before it stops: five minutes is plenty.
        producer.flush(timeout=FLUSH_TIMEOUT)
        producer.close(timeout=10)
    return result


def audit(connection: Connection, produced: dict[str, Any], *, timeout: float = 120) -> Audit:
    """Read the whole topic and count this run's records against what was acknowledged."""
    topic, run = produced["topic"], produced["run"]
    consumer = kafka_client.consumer(
        connection,
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=2000,
    )
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            raise SystemExit(f"rtm-drill audit: topic {topic} does not exist")
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        counts: Counter[int] = Counter()
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"rtm-drill audit: could not read {topic} to its end in {timeout} s"
                )
            for message in consumer:
                body = json.loads(message.value)
                if body.get("run") == run:
                    counts[body["seq"]] += 1
    finally:
        consumer.close()
    acked = set(produced["acked"])
    lost = sorted(acked - set(counts))
    return Audit(
        run=run,
        topic=topic,
        sent=produced["sent"],
        acknowledged=len(acked),
        found=len(counts),
        lost=len(lost),
        duplicated=sum(n - 1 for n in counts.values()),
        lost_examples=tuple(lost[:20]),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtm-drill",
        description="Stream numbered records during a failure drill, then audit the topic.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--inventory",
        type=Path,
        help="the cluster's inventory: its brokers, and under rtm_security tls the controller's"
        " certificate (a super user: the drill's topic has no ACL for the pipeline's users)",
    )
    where.add_argument("--bootstrap-servers", help="comma-separated host:port of plaintext brokers")
    sub = parser.add_subparsers(dest="command", required=True)
    prod = sub.add_parser("produce", help="stream numbered records; write what was acknowledged")
    prod.add_argument("--topic", required=True)
    prod.add_argument("--rate", type=float, default=200.0, help="records per second")
    prod.add_argument("--duration", type=float, default=60.0, help="seconds (SIGTERM stops early)")
    prod.add_argument("--size", type=int, default=150, help="bytes per record")
    prod.add_argument("--out", type=Path, required=True, help="JSON file for the result")
    aud = sub.add_parser("audit", help="read the topic back; report lost and duplicated records")
    aud.add_argument("--produced", type=Path, required=True, help="the JSON file `produce` wrote")
    aud.add_argument("--timeout", type=float, default=120.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure("INFO")
    try:
        connection = (
            load_layout(args.inventory).admin_connection()
            if args.inventory
            else Connection.of(args.bootstrap_servers)
        )
    except (LayoutError, ValueError) as exc:
        raise SystemExit(f"rtm-drill: {exc}") from exc
    if args.command == "produce":
        if args.rate <= 0 or args.duration <= 0 or args.size <= 0:
            raise SystemExit("rtm-drill produce: --rate, --duration and --size must be positive")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        result = produce(
            connection,
            args.topic,
            rate=args.rate,
            duration=args.duration,
            size=args.size,
            stop=stop,
        )
        args.out.write_text(json.dumps(result.to_json()) + "\n")
        log.info(
            "run %s: sent %d, acknowledged %d, failed %d",
            result.run,
            result.sent,
            len(result.acked),
            result.failed,
        )
        return 0
    report = audit(connection, json.loads(args.produced.read_text()), timeout=args.timeout)
    json.dump(asdict(report) | {"ok": report.ok}, sys.stdout)
    sys.stdout.write("\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
