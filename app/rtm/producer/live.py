"""Live mode: sample the host this runs on with psutil, in the same record shapes as the CSVs."""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil


class HostSampler:
    """Measures CPU %, memory %, network and disk I/O rates (from counter deltas), disk usage %."""

    def __init__(self, disk_path: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._disk_path = disk_path
        self._clock = clock
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement
        self._last = self._counters()

    def _counters(self) -> tuple[float, float, float, float, float]:
        net = psutil.net_io_counters()
        disk = psutil.disk_io_counters()
        read = float(disk.read_bytes) if disk else 0.0
        written = float(disk.write_bytes) if disk else 0.0
        return self._clock(), float(net.bytes_recv), float(net.bytes_sent), read, written

    def sample(self) -> dict[str, dict[str, float]]:
        """Metric values by kind, rates averaged since the previous sample."""
        now = self._counters()
        elapsed = max(now[0] - self._last[0], 1e-6)
        recv, sent, read, written = (
            max(cur - prev, 0.0) / elapsed
            for cur, prev in zip(now[1:], self._last[1:], strict=True)
        )
        self._last = now
        return {
            "cpu": {"cpu_pct": min(psutil.cpu_percent(interval=None), 100.0)},
            "mem": {"mem_pct": min(psutil.virtual_memory().percent, 100.0)},
            "net": {"net_in_bytes_per_s": recv, "net_out_bytes_per_s": sent},
            "disk": {
                "disk_pct": min(psutil.disk_usage(self._disk_path).percent, 100.0),
                "disk_read_bytes_per_s": read,
                "disk_write_bytes_per_s": written,
            },
        }
