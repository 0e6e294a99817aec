"""Health findings, the verdict, and their two renderings (a table for people, JSON for scripts)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

CLUSTER = "(cluster)"


@dataclass(frozen=True)
class Check:
    """One finding: where, what, whether it is healthy, and the evidence. A finding that is
    not ``counted`` is information (no state of it is unhealthy): shown, never in the verdict."""

    host: str
    name: str
    ok: bool
    detail: str
    counted: bool = True


@dataclass
class Report:
    inventory: str
    checks: list[Check] = field(default_factory=list)

    def add(self, host: str, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(host=host, name=name, ok=ok, detail=detail))

    def extend(self, checks: Iterable[Check]) -> None:
        self.checks.extend(checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def healthy(self) -> bool:
        return bool(self.checks) and not self.failures

    def verdict(self) -> str:
        counted = [c for c in self.checks if c.counted]
        if self.healthy:
            return f"HEALTHY: {len(counted)} checks passed on {self._host_count()} hosts"
        names = ", ".join(f"{c.host} {c.name}" for c in self.failures)
        return f"UNHEALTHY: {len(self.failures)} of {len(counted)} checks failed: {names}"

    def _host_count(self) -> int:
        return len({c.host for c in self.checks if c.host != CLUSTER})

    def to_json(self) -> str:
        body = {
            "inventory": self.inventory,
            "healthy": self.healthy,
            "verdict": self.verdict(),
            "hosts": _grouped(self.checks),
        }
        return json.dumps(body, indent=2, sort_keys=True)

    def to_table(self, color: bool = False) -> str:
        hosts = _grouped(self.checks)
        width = max((len(c.name) for c in self.checks), default=10)
        lines = []
        for host, checks in hosts.items():
            lines.append(host)
            for check in checks:
                mark = "info" if not check["counted"] else "ok  " if check["ok"] else "FAIL"
                line = f"  {mark}  {check['name']:<{width}}  {check['detail']}"
                if color and not check["ok"]:
                    line = f"\033[1;31m{line}\033[0m"
                lines.append(line)
        verdict = self.verdict()
        if color:
            verdict = f"\033[1;{32 if self.healthy else 31}m{verdict}\033[0m"
        lines.append(verdict)
        return "\n".join(lines)


def _grouped(checks: Iterable[Check]) -> dict[str, list[dict[str, object]]]:
    grouped: dict[str, list[dict[str, object]]] = {}
    for check in checks:
        entry = asdict(check)
        grouped.setdefault(entry.pop("host"), []).append(entry)
    return grouped
