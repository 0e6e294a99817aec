"""The machine a benchmark ran on: CPU model, cores, memory, kernel, date."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path


def _cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in {"model name", "Hardware", "Model"} and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def _memory_mib(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def describe() -> dict[str, object]:
    return {
        "cpu": _cpu_model(_read("/proc/cpuinfo")),
        "cores": os.cpu_count() or 0,
        "memory_mib": _memory_mib(_read("/proc/meminfo")),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "date": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    }


def one_line(machine: dict[str, object]) -> str:
    return (
        f"{machine.get('cpu')}, {machine.get('cores')} cores, "
        f"{machine.get('memory_mib')} MiB, {machine.get('kernel')}, {machine.get('date')}"
    )
