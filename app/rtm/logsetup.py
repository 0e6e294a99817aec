"""Logging for the command-line services: one line per event, UTC timestamps, to stderr."""

from __future__ import annotations

import logging
import time

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# kafka-python logs an error on every reconnect attempt (about ten a second while the brokers
# are down); one line of each kind a minute is enough, the producer logs the outage itself.
LIBRARY_REPEAT_SECONDS = 60.0


class Throttle(logging.Filter):
    """Lets each message of a library's loggers through at most once per ``every`` seconds."""

    def __init__(self, prefix: str, every: float) -> None:
        super().__init__()
        self._prefix = prefix
        self._every = every
        self._last: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != self._prefix and not record.name.startswith(self._prefix + "."):
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        if now - self._last.get(key, -self._every) < self._every:
            return False
        self._last[key] = now
        return True


def configure(level: str = "INFO") -> None:
    """Configure the root logger once (journald adds its own timestamps, we keep ours)."""
    handler = logging.StreamHandler()
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(Throttle("kafka", LIBRARY_REPEAT_SECONDS))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries are chatty at INFO; keep their warnings.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("py4j").setLevel(max(logging.WARNING, root.level))
