"""Bring a whole lab up or down: preflight, image, bridge, machines, readiness."""

from __future__ import annotations

import fcntl
import logging
import os
import platform
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rtm.inventory import Inventory
from rtm.lab import network
from rtm.lab.image import ensure_image
from rtm.lab.machine import Machine, clear_stale_nspawn_locks
from rtm.lab.spec import LabError, LabSpec, lab_name, spec_from_inventory

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("/var/lib/rtm/lab")
DEFAULT_CACHE_DIR = Path("/var/cache/rtm/lab")
REQUIRED_TOOLS = {
    "systemd-nspawn": "systemd-container",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "mount": "mount",
}


@dataclass(frozen=True)
class LabSettings:
    state_dir: Path = DEFAULT_STATE_DIR
    cache_dir: Path = DEFAULT_CACHE_DIR
    ssh_key: Path = Path.home() / ".ssh" / "id_ed25519"
    mirror: str | None = None
    boot_timeout: float = 180.0


def preflight() -> None:
    """Fail early, naming the fix, on a controller that cannot run the lab."""
    if platform.system() != "Linux":
        raise LabError(f"the lab needs Linux (systemd-nspawn); this is {platform.system()}")
    if os.geteuid() != 0:
        raise LabError("the lab needs root (containers, bridges, mounts); run it with sudo")
    missing = sorted({pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise LabError(f"missing tools; install: apt-get install {' '.join(missing)}")


def load_spec(inventory_path: Path) -> LabSpec:
    return spec_from_inventory(Inventory.load(inventory_path), lab_name(inventory_path))


def machines(spec: LabSpec, settings: LabSettings) -> list[Machine]:
    return [Machine(spec=spec, host=h, state_dir=settings.state_dir) for h in spec.hosts]


def up(spec: LabSpec, settings: LabSettings) -> None:
    preflight()
    all_machines = machines(spec, settings)
    to_boot = [m for m in all_machines if m.pid() is None]
    if to_boot:
        # Only a lab that is not (fully) running yet may meet a conflicting address.
        network.check_addresses(spec, network.local_addresses())
        image_root, public_key = controller_setup(settings)
        network.ensure_bridge(spec)
        clear_stale_nspawn_locks()
        for machine in to_boot:
            log.info("booting %s at %s", machine.host.name, machine.host.address)
            machine.reap()
            machine.prepare(image_root, public_key)
            machine.boot()
    deadline = time.monotonic() + settings.boot_timeout
    with ThreadPoolExecutor(max_workers=len(all_machines)) as pool:
        for machine, _ in zip(
            all_machines, pool.map(lambda m: m.wait_ready(deadline), all_machines), strict=True
        ):
            log.info("%s is up (%s)", machine.host.name, machine.host.address)
    log.info("lab %r is running: %d hosts on %s", spec.name, len(all_machines), spec.bridge)


def down(spec: LabSpec, settings: LabSettings) -> None:
    preflight()
    with ThreadPoolExecutor(max_workers=max(1, len(spec.hosts))) as pool:
        list(pool.map(lambda m: m.discard(), machines(spec, settings)))
    network.remove_bridge(spec)
    clear_stale_nspawn_locks()
    lab_dir = settings.state_dir / spec.name
    if lab_dir.is_dir() and not any(lab_dir.iterdir()):
        lab_dir.rmdir()
    log.info("lab %r is down", spec.name)


def status(spec: LabSpec, settings: LabSettings) -> dict[str, bool]:
    return {m.host.name: m.pid() is not None for m in machines(spec, settings)}


def controller_setup(settings: LabSettings) -> tuple[Path, str]:
    """The image's root and the controller's public key, each made on first use.

    Labs booted side by side (Molecule scenarios) on a fresh controller would each run
    debootstrap into the same directory and ssh-keygen on the same file: one makes them, the
    others wait for it and then find them made."""
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    with (settings.cache_dir / "setup.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return ensure_image(settings.cache_dir, settings.mirror), _controller_key(settings.ssh_key)


def _controller_key(private_key: Path) -> str:
    """The controller's SSH public key, created on first use like ssh-keygen would."""
    public = private_key.with_name(private_key.name + ".pub")
    if not private_key.exists():
        log.info("creating the controller SSH key %s", private_key)
        private_key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(private_key)]
        subprocess.run(keygen, check=True)
    if not public.exists():
        raise LabError(f"{public} is missing; recreate it with ssh-keygen -y -f {private_key}")
    return public.read_text()
