"""Live mode: sample the host this runs on, in the same record shapes as the CSVs.

There is one sampler per metric kind of the catalogue; a kind without one is not measured in
live mode (``HostSampler.kinds`` says which are). A new kind's sampler is one function here,
added to ``SAMPLERS``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psutil

from rtm.catalogue import Kind

Values = dict[str, float]


@dataclass
class Rates:
    """Byte counters of the host turned into rates since the previous sample."""

    clock: Callable[[], float]
    last: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        self.last = self.counters()

    def counters(self) -> tuple[float, ...]:
        net = psutil.net_io_counters()
        disk = psutil.disk_io_counters()
        read = float(disk.read_bytes) if disk else 0.0
        written = float(disk.write_bytes) if disk else 0.0
        return self.clock(), float(net.bytes_recv), float(net.bytes_sent), read, written

    def sample(self) -> tuple[float, float, float, float]:
        """(received, sent, read, written) bytes per second, averaged since the last call."""
        now = self.counters()
        elapsed = max(now[0] - self.last[0], 1e-6)
        recv, sent, read, written = (
            max(cur - prev, 0.0) / elapsed for cur, prev in zip(now[1:], self.last[1:], strict=True)
        )
        self.last = now
        return recv, sent, read, written


def _percent(value: float) -> float:
    return min(max(value, 0.0), 100.0)


def _cpu(_: HostSampler) -> Values:
    return {"cpu_pct": _percent(psutil.cpu_percent(interval=None))}


def _mem(_: HostSampler) -> Values:
    return {"mem_pct": _percent(psutil.virtual_memory().percent)}


def _net(host: HostSampler) -> Values:
    recv, sent, _, _ = host.rates
    return {"net_in_bytes_per_s": recv, "net_out_bytes_per_s": sent}


def _disk(host: HostSampler) -> Values:
    _, _, read, written = host.rates
    return {
        "disk_pct": _percent(psutil.disk_usage(host.disk_path).percent),
        "disk_read_bytes_per_s": read,
        "disk_write_bytes_per_s": written,
    }


def _load(_: HostSampler) -> Values:
    return {"load1_per_cpu": os.getloadavg()[0] / (os.cpu_count() or 1)}


# The live sampler of each kind, by kind name: it returns a value for every metric of the kind.
SAMPLERS: Mapping[str, Callable[[HostSampler], Values]] = {
    "cpu": _cpu,
    "mem": _mem,
    "net": _net,
    "disk": _disk,
    "load": _load,
}


class HostSampler:
    """Measures every kind that has a sampler; rates are averaged since the previous sample."""

    def __init__(
        self, kinds: tuple[Kind, ...], disk_path: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.kinds = tuple(k for k in kinds if k.name in SAMPLERS)
        self.disk_path = disk_path
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement
        self._rates = Rates(clock)
        self.rates = (0.0, 0.0, 0.0, 0.0)

    def sample(self) -> dict[str, Values]:
        """Metric values by kind."""
        self.rates = self._rates.sample()
        return {k.name: SAMPLERS[k.name](self) for k in self.kinds}
