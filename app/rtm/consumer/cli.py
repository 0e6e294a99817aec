"""``rtm-consumer``: run one Spark job (cpu_mem or net_disk) in streaming or batch mode."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from rtm import logsetup
from rtm.config import ConfigError, load
from rtm.consumer.jobs import JOBS, job

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _jobs_text() -> str:
    """What each job computes, from the catalogue: 'cpu_mem takes the avg of cpu_pct, …'."""
    return "; ".join(
        f"{j.name} takes the {j.aggregation} of {', '.join(m for _k, m in j.metrics)} "
        f"(topics {', '.join(k.name for k in j.kinds)})"
        for j in JOBS
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rtm-consumer",
        description=(
            "Run one monitoring job with Spark Structured Streaming: per server and sliding "
            f"event-time window, {_jobs_text()}; an alert is raised when a value is above its "
            "threshold. Alerts go to files and the alerts topic, aggregates and quarantined "
            "records to files (see consumer.output_dir)."
        ),
        epilog=(
            "Exit status: 0 on a clean stop (SIGTERM/SIGINT, or the end of a batch or "
            "--available-now run), 1 when a query failed, 2 for a configuration error."
        ),
    )
    p.add_argument("--config", required=True, type=Path, help="the rtm YAML config file")
    p.add_argument("--job", required=True, choices=[j.name for j in JOBS], help="which job")
    p.add_argument(
        "--mode",
        choices=("stream", "batch"),
        default="stream",
        help="stream: follow the topics from the checkpoint (default); batch: process "
        "everything retained in the topics once and replace the previous batch output",
    )
    p.add_argument(
        "--available-now",
        action="store_true",
        default=None,
        help="stream mode: process what is in the topics now, then stop "
        "(default: consumer.trigger.available_now)",
    )
    p.add_argument("--log-level", default="INFO", choices=logsetup.LEVELS, help="log verbosity")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logsetup.configure(args.log_level)
    # Spark is imported only now: --help and configuration errors work on hosts without it.
    try:
        from pyspark.errors import PySparkException  # noqa: PLC0415

        from rtm.consumer.runner import (  # noqa: PLC0415
            JobContext,
            StreamError,
            build_session,
            quiet_back_to_back_batches,
            run_batch,
            run_stream,
        )
    except ModuleNotFoundError as exc:
        log.error(
            "rtm-consumer needs Spark, which is not installed here (%s): install rtm[consumer], "
            "as the rtm_app role does on the hosts of the consumers group",
            exc,
        )
        return EXIT_CONFIG
    try:
        config = load(args.config)
        consumer = config.require_consumer()
        ctx = JobContext(config, consumer, job(args.job), args.mode)
        ctx.connection  # noqa: B018 - its login is checked before Spark starts
        spark = build_session(consumer, f"rtm-{args.job}-{args.mode}")
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return EXIT_CONFIG
    spark.sparkContext.setLogLevel("WARN")
    quiet_back_to_back_batches(spark)
    try:
        if args.mode == "batch":
            run_batch(spark, ctx)
            return EXIT_OK
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        run_stream(spark, ctx, args.available_now or consumer.trigger.available_now, stop)
        log.info("stopped")
        return EXIT_OK
    except (PySparkException, StreamError) as exc:
        log.error("%s failed: %s", args.job, exc)
        return EXIT_FAILED
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
