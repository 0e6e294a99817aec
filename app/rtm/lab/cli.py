"""``rtm-lab``: boot or destroy the container lab an inventory describes."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rtm.inventory import InventoryError
from rtm.lab import lab
from rtm.lab.spec import LabError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtm-lab",
        description=(
            "One systemd-nspawn container per inventory host, on a private bridge, at the "
            "inventory's addresses, reachable over SSH like any other machine."
        ),
    )
    parser.add_argument(
        "command", choices=("up", "down", "status"), help="boot, kill and remove, or list"
    )
    parser.add_argument(
        "-i", "--inventory", type=Path, default=Path("inventory/lab"),
        help="inventory directory or file (default: inventory/lab)",
    )  # fmt: skip
    parser.add_argument(
        "--state-dir", type=Path, default=lab.DEFAULT_STATE_DIR,
        help=f"where host roots live while the lab runs (default: {lab.DEFAULT_STATE_DIR})",
    )  # fmt: skip
    parser.add_argument(
        "--cache-dir", type=Path, default=lab.DEFAULT_CACHE_DIR,
        help=f"where the Debian image is cached (default: {lab.DEFAULT_CACHE_DIR})",
    )  # fmt: skip
    parser.add_argument(
        "--ssh-key", type=Path, default=lab.LabSettings.ssh_key,
        help="controller private key whose .pub is authorised on every host "
        "(default: ~/.ssh/id_ed25519, created if missing)",
    )  # fmt: skip
    parser.add_argument(
        "--mirror", help="Debian mirror for the image build (default: the one /etc/apt uses)"
    )
    parser.add_argument(
        "--timeout", type=float, default=180.0,
        help="seconds to wait for every host to answer SSH and finish booting (default: 180)",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="rtm-lab: %(message)s")
    settings = lab.LabSettings(
        state_dir=args.state_dir,
        cache_dir=args.cache_dir,
        ssh_key=args.ssh_key,
        mirror=args.mirror,
        boot_timeout=args.timeout,
    )
    try:
        spec = lab.load_spec(args.inventory)
        if args.command == "up":
            lab.up(spec, settings)
        elif args.command == "down":
            lab.down(spec, settings)
        else:
            for host, running in lab.status(spec, settings).items():
                sys.stdout.write(f"{host}\t{'running' if running else 'stopped'}\n")
    except (LabError, InventoryError) as exc:
        logging.getLogger("rtm-lab").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
