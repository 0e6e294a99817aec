"""``python -m bench``: run the benchmark sections and write bench/results/.

    python -m bench [--inventory inventory/lab-ha] [--latency-inventories inventory/lab,...]
                    [--deploy-inventory inventory/lab]
                    [--only throughput,latency,deploy] [--runs 3] [--quick] [--keep]

Throughput runs against ``--inventory`` and latency against each of ``--latency-inventories``
in turn (each booted with rtm-lab and deployed with site.yml first, taken down afterwards
unless ``--keep``); the deployment benchmark boots ``--deploy-inventory`` fresh, as often as
``--runs`` says.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import RESULTS, deploy, latency, machine, report, throughput
from bench.lab import BenchError, Target, lab_down, lab_up
from bench.lab import deploy as deploy_site
from rtm import logsetup

log = logging.getLogger("bench")

SECTIONS = ("throughput", "latency", "deploy")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--inventory",
        type=Path,
        default=Path("inventory/lab-ha"),
        help="lab for throughput and latency (default: %(default)s)",
    )
    p.add_argument(
        "--latency-inventories",
        type=lambda text: [Path(t.strip()) for t in text.split(",") if t.strip()],
        default=[Path("inventory/lab"), Path("inventory/lab-ha")],
        help="comma-separated labs the latency runs on, one after the other"
        " (default: inventory/lab,inventory/lab-ha)",
    )
    p.add_argument(
        "--deploy-inventory",
        type=Path,
        default=Path("inventory/lab"),
        help="lab booted fresh for the deployment benchmark (default: %(default)s)",
    )
    p.add_argument(
        "--only", default=",".join(SECTIONS), help="comma-separated sections to run (default: all)"
    )
    p.add_argument("--runs", type=int, help="runs per figure (default 3, 1 with --quick)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smaller data and shorter runs, to check the benchmarks work",
    )
    p.add_argument("--keep", action="store_true", help="leave the labs running afterwards")
    p.add_argument(
        "--skip-deploy",
        action="store_true",
        help="the labs are up and deployed: no rtm-lab up, no site.yml, no down",
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="where to write the results")
    p.add_argument("--log-level", default="INFO", choices=logsetup.LEVELS)
    return p


def sections(text: str) -> list[str]:
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"--only: unknown section(s) {', '.join(unknown)}; known: {SECTIONS}")
    return [s for s in SECTIONS if s in wanted]


def _pipeline_sections(args: argparse.Namespace, wanted: list[str], runs: int) -> bool:
    """Throughput on --inventory, latency on each of --latency-inventories: one lab up at a
    time (the machine holds one at full load)."""
    labs = [args.inventory] if "throughput" in wanted else []
    if "latency" in wanted:
        labs += [i for i in args.latency_inventories if i not in labs]
    ok = True
    for inventory in labs:
        names = [n for n in ("throughput",) if n in wanted and inventory == args.inventory]
        names += (
            ["latency"] if "latency" in wanted and inventory in args.latency_inventories else []
        )
        ok = _on_lab(args, inventory, names, runs) and ok
    return ok


def _on_lab(args: argparse.Namespace, inventory: Path, names: list[str], runs: int) -> bool:
    ok = True
    try:
        if not args.skip_deploy:
            lab_up(inventory)
            deploy_site(inventory)
        target = Target.load(inventory)
        for name in names:
            ok = _run_section(args, name, runs, target, inventory) and ok
    except BenchError as exc:
        log.error("%s", exc)
        ok = False
    finally:
        if not args.keep and not args.skip_deploy:
            lab_down(inventory)
    return ok


def _run_section(
    args: argparse.Namespace,
    name: str,
    runs: int,
    target: Target | None,
    inventory: Path | None = None,
) -> bool:
    """Measure one section and write its results; False (logged) when it stopped early."""
    file_name = f"{name}-{inventory.name}" if name == "latency" and inventory else name
    section = report.Section(file_name, machine.describe())
    section.settings |= {"runs": runs, "quick": args.quick}
    started = time.monotonic()
    ok = True
    try:
        _measure(args, section, runs, target, inventory)
    except Exception as exc:
        # One section failing (a lab that will not boot) must not cost the others' figures.
        log.exception("%s benchmark stopped early", name)
        section.notes.append(f"INCOMPLETE: the run stopped early: {str(exc).splitlines()[0]}")
        ok = False
    section.settings["wall_minutes"] = round((time.monotonic() - started) / 60, 1)
    if section.figures:
        report.write_section(args.results, section)
        report.write_readme(args.results)
    return ok


def _measure(
    args: argparse.Namespace,
    section: report.Section,
    runs: int,
    target: Target | None,
    inventory: Path | None,
) -> None:
    if target is not None and inventory is not None:
        section.settings["inventory"] = str(inventory)
        section.settings["security"] = "tls" if target.layout.tls else "plaintext"
        module = throughput if section.name == "throughput" else latency
        module.measure(target, section, runs, args.quick)
    else:
        deploy.measure(args.deploy_inventory, section, runs, keep=args.keep)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logsetup.configure(args.log_level)
    wanted = sections(args.only)
    runs = args.runs or (1 if args.quick else 3)
    if runs < 1:
        raise SystemExit("--runs must be at least 1")
    ok = True
    if {"throughput", "latency"} & set(wanted):
        ok = _pipeline_sections(args, wanted, runs)
    if "deploy" in wanted:
        ok = _run_section(args, "deploy", runs, None) and ok
    summary = args.results / "README.md"
    if summary.is_file():
        sys.stdout.write(summary.read_text(encoding="utf-8"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
