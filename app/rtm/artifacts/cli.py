"""``rtm-artifacts``: build or verify the controller-side artifact cache."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rtm.artifacts.build import KAFKA_VERSION, BuildError, Versions, build, installed_spark_version
from rtm.artifacts.manifest import Manifest, ManifestError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtm-artifacts",
        description="Fill or check the artifact cache that offline hosts install from.",
    )
    parser.add_argument(
        "--dir", type=Path, default=Path("artifacts"), help="cache directory (default: artifacts)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="download and assemble everything; reuses what is cached")
    b.add_argument(
        "--kafka-version", default=KAFKA_VERSION, help=f"Kafka release (default {KAFKA_VERSION})"
    )
    b.add_argument(
        "--project", type=Path, default=Path(), help="rtm source tree for the wheel (default: .)"
    )
    sub.add_parser("verify", help="check every file against the manifest")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="rtm-artifacts: %(message)s")
    log = logging.getLogger("rtm-artifacts")
    try:
        if args.command == "build":
            versions = Versions(kafka=args.kafka_version, spark=installed_spark_version())
            build(args.dir.resolve(), versions, args.project.resolve())
            return 0
        problems = Manifest.load(args.dir).verify(args.dir)
    except (BuildError, ManifestError) as exc:
        log.error("%s", exc)
        return 1
    for line in problems:
        log.error("%s", line)
    if not problems:
        log.info("all files match the manifest")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
