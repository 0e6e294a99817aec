"""The lab's Debian image: built once with debootstrap, cached, shared read-only by all hosts."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
from pathlib import Path

from rtm.lab.spec import LabError

log = logging.getLogger(__name__)

SUITE = "bookworm"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-venv",
    # Ansible's apt and pip modules need these on the host; without them they try to
    # install them, which fails offline.
    "python3-apt",
    "python3-packaging",
    # community.crypto makes each Kafka and ZooKeeper host's own key and CSR with it.
    # debootstrap does not resolve virtual packages: cffi-backend provides the API it needs.
    "python3-cryptography",
    "python3-cffi-backend",
    # Ansible's become_user to an unprivileged user hands files over with setfacl.
    "acl",
    "iproute2",
    "procps",
    "sudo",
    "ca-certificates",
    "openjdk-17-jre-headless",
)
# Bump when the customisation below changes, so cached images are rebuilt.
_LAYOUT = "2"


def image_key() -> str:
    text = "\n".join((SUITE, _LAYOUT, *PACKAGES))
    return f"{SUITE}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def host_mirror(
    sources: tuple[Path, ...] = (
        Path("/etc/apt/sources.list.d/debian.sources"),
        Path("/etc/apt/sources.list"),
    ),
) -> str | None:
    """The Debian mirror this machine already uses, from deb822 or one-line sources."""
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"^URIs:\s*(\S+)", text, re.MULTILINE):
            if "security" not in match.group(1):
                return match.group(1)
        for match in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.MULTILINE):
            if "security" not in match.group(1) and "-" not in match.group(2):
                return match.group(1)
    return None


def ensure_image(cache_dir: Path, mirror: str | None) -> Path:
    """Return the root of the cached image, building it first if needed."""
    image = cache_dir / "images" / image_key()
    root = image / "root"
    if (image / "complete").exists():
        return root
    mirror = mirror or host_mirror()
    if mirror is None:
        raise LabError("no Debian mirror found in /etc/apt; pass --mirror URL")
    if shutil.which("debootstrap") is None:
        raise LabError("debootstrap not found; install it (apt-get install debootstrap)")
    tmp = image.with_name(image.name + ".tmp")
    if tmp.exists():
        log.info("removing an interrupted image build in %s", tmp)
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    log.info("building the lab image %s with debootstrap (about two minutes, once)", image.name)
    cmd = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(tmp / "root"),
        mirror,
    ]
    with (tmp / "debootstrap.log").open("w") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise LabError(
            f"debootstrap failed (exit {result.returncode}); see {tmp / 'debootstrap.log'}"
        )
    _customise(tmp / "root")
    (tmp / "complete").write_text(image_key() + "\n")
    tmp.replace(image)
    log.info("lab image ready: %s", root)
    return root


def _customise(root: Path) -> None:
    # networkd brings up host0 from the per-host .network file written at boot time.
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "systemd-networkd.service"
    if not link.is_symlink():
        link.symlink_to("/lib/systemd/system/systemd-networkd.service")
    (root / "etc/systemd/network").mkdir(parents=True, exist_ok=True)
    # Every host gets its own SSH host keys and machine id; none may come from the image.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    # The downloaded .debs are installed already; keep the image small.
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
