"""One lab host: an overlay over the image, a systemd-nspawn process, and its SSH endpoint."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rtm.lab.network import link_exists
from rtm.lab.spec import LabError, LabHost, LabSpec

log = logging.getLogger(__name__)

NSPAWN_LOCKS = Path("/run/systemd/nspawn/locks")
NSPAWN_PROPAGATE = Path("/run/systemd/nspawn/propagate")
# How the controller's own tools (rtm-lab, the lab tests, the benchmarks) reach lab hosts:
# throw-away containers whose host keys change at every boot, never a prompt.
SSH_OPTIONS = (
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10",
)  # fmt: skip


@dataclass(frozen=True)
class Machine:
    spec: LabSpec
    host: LabHost
    state_dir: Path

    @property
    def home(self) -> Path:
        return self.state_dir / self.spec.name / self.host.name

    @property
    def root(self) -> Path:
        return self.home / "root"

    def pid(self) -> int | None:
        """The running systemd-nspawn process of this host, found by its command line."""
        wanted = {f"--machine={self.host.name}", f"--directory={self.root}"}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"systemd-nspawn"):
                args = {a.decode(errors="replace") for a in argv}
                if wanted <= args:
                    return int(entry.name)
        return None

    @property
    def veth(self) -> str:
        return f"vb-{self.host.name}"

    def orphans(self) -> list[int]:
        """Container init processes that outlived their killed nspawn (they keep running).

        They are found by their root mount, the overlay whose upper layer is this host's.
        """
        marker = f"upperdir={self.home / 'upper'},".encode()
        own_ns = os.readlink("/proc/self/ns/pid")
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "ns/pid") == own_ns:
                    continue
                if (entry / "comm").read_text().strip() != "systemd":
                    continue
                if marker not in (entry / "mountinfo").read_bytes():
                    continue
                ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                if Path(f"/proc/{ppid}/comm").read_text().strip() != "systemd-nspawn":
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    # A container whose JVMs hold gigabytes can take the kernel a while to tear down on a busy
    # machine: the wait polls, so a generous bound costs nothing when it is quick.
    def reap(self, timeout: float = 120) -> None:
        """Clear what a killed nspawn left: the orphaned container, its veth, its mounts."""
        deadline = time.monotonic() + timeout
        # A SIGKILL is delivered asynchronously: until the killed nspawn is gone its container
        # is not an orphan yet, and one looked for too early would be missed and left running.
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.pid() is not None:
            raise LabError(f"{self.host.name}: systemd-nspawn is still running after {timeout}s")
        killed: set[int] = set()
        while orphans := self.orphans():
            if time.monotonic() >= deadline:
                raise LabError(f"{self.host.name}: an orphaned container survived SIGKILL")
            for pid in set(orphans) - killed:
                log.warning(
                    "%s: killing the container a killed nspawn left (pid %d)", self.host.name, pid
                )
                # Killing a PID namespace's init ends every process in it.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.2)
        # The kernel deletes the veth itself once the container's network namespace is gone,
        # at a moment of its own: it may vanish between the check and the delete.
        if link_exists(self.veth):
            try:
                _run("ip", "link", "del", self.veth)
            except LabError:
                if link_exists(self.veth):
                    raise
        with contextlib.suppress(OSError):
            (NSPAWN_PROPAGATE / self.host.name).rmdir()
        if os.path.ismount(self.root):
            _run("umount", str(self.root))

    def prepare(self, image_root: Path, ssh_public_key: str) -> None:
        for sub in ("upper", "work", "root"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        if not os.path.ismount(self.root):
            options = (
                f"lowerdir={image_root},upperdir={self.home / 'upper'},workdir={self.home / 'work'}"
            )
            _run("mount", "-t", "overlay", "overlay", "-o", options, str(self.root))
        self._write_identity(ssh_public_key)

    def _write_identity(self, ssh_public_key: str) -> None:
        root = self.root
        (root / "etc/hostname").write_text(f"{self.host.name}\n")
        (root / "etc/hosts").write_text(
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{self.host.name}\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
        )
        (root / "etc/systemd/network/10-host0.network").write_text(
            "[Match]\nName=host0\n\n[Network]\n"
            f"Address={self.host.address}/{self.spec.prefixlen}\n"
            # No gateway: the lab network is the whole world for lab hosts.
            "LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
        )
        ssh_dir = root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        keys = ssh_dir / "authorized_keys"
        keys.write_text(ssh_public_key.strip() + "\n")
        keys.chmod(0o600)
        if not any((root / "etc/ssh").glob("ssh_host_*_key")):
            _run("ssh-keygen", "-q", "-A", "-f", str(root))

    def boot(self) -> None:
        console = (self.home / "console.log").open("ab")
        cmd = [
            "systemd-nspawn",
            # The controller may have no systemd of its own to register machines with.
            "--register=no",
            "--keep-unit",
            "--quiet",
            "--boot",
            f"--directory={self.root}",
            f"--machine={self.host.name}",
            f"--network-bridge={self.spec.bridge}",
            "--console=read-only",
        ]
        with console:
            subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, deadline: float) -> None:
        """Wait until sshd answers and systemd reports the boot finished and healthy."""
        address = str(self.host.address)
        while not _port_open(address, 22):
            if self.pid() is None:
                raise LabError(f"{self.host.name}: nspawn exited; see {self.home / 'console.log'}")
            if time.monotonic() > deadline:
                raise LabError(f"{self.host.name}: no SSH on {address}:22 in time")
            time.sleep(0.5)
        state = ""
        while time.monotonic() < deadline:
            result = self.ssh("systemctl", "is-system-running", "--wait", timeout=60)
            state = result.stdout.strip()
            if state == "running":
                return
            if state == "degraded":
                failed = self.ssh("systemctl", "--failed", "--no-legend", "--plain").stdout
                raise LabError(f"{self.host.name}: systemd is degraded; failed units:\n{failed}")
            time.sleep(1)
        raise LabError(f"{self.host.name}: systemd did not reach 'running' (last: {state!r})")

    def ssh(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", *SSH_OPTIONS, f"root@{self.host.address}", *command],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    # A lab host is thrown away with everything on it, so a clean shutdown would only cost
    # time: brokers whose peers stop at the same moment wait out their controlled shutdown.
    def discard(self) -> None:
        """Kill the host at once, clear what it leaves, delete its disk."""
        if (pid := self.pid()) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.reap()  # waits for the killed nspawn to be gone, then kills its container
        shutil.rmtree(self.home, ignore_errors=True)


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def clear_stale_nspawn_locks() -> None:
    """Remove lock files that no live process holds (left by a killed nspawn)."""
    if not NSPAWN_LOCKS.is_dir():
        return
    for lock in NSPAWN_LOCKS.iterdir():
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: a live container owns it
        else:
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)


def _run(*cmd: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
