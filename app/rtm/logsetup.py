"""Logging for the command-line services: one line per event, UTC timestamps, to stderr."""

from __future__ import annotations

import logging
import time

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def configure(level: str = "INFO") -> None:
    """Configure the root logger once (journald adds its own timestamps, we keep ours)."""
    handler = logging.StreamHandler()
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries are chatty at INFO; keep their warnings.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("py4j").setLevel(max(logging.WARNING, root.level))
