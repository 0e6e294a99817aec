"""Fill the artifact cache from Maven Central and PyPI (through the ordinary clients).

Every step is skipped when its output is already in the cache and matches the manifest,
so a second run costs a checksum pass and nothing else.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import logging
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

from rtm.artifacts import hostwheel
from rtm.artifacts.manifest import Manifest, ManifestError, sha256_file

log = logging.getLogger(__name__)

KAFKA_VERSION = "3.9.1"
SCALA_VERSION = "2.13"
# The logging backend Apache's 3.9 archive ships in libs/ (reload4j behind slf4j 1.7).
RELOAD4J_VERSION = "1.2.25"
SLF4J_VERSION = "1.7.36"
# The connector jars Spark needs at run time besides what the pyspark wheel already carries.
SPARK_CONNECTOR_ARTIFACTS = (
    "spark-sql-kafka-0-10_2.13",
    "spark-token-provider-kafka-0-10_2.13",
    "kafka-clients",
    "commons-pool2",
)
_DIST = Path(__file__).with_name("dist")
# What the hosts pip-install besides rtm, pinned with hashes (`make lock`, from pyproject.toml).
LOCKS = Path(__file__).with_name("locks")
# A fixed mtime makes the tarball byte-for-byte reproducible from the same jars.
_EPOCH = 946684800


class BuildError(Exception):
    """A step of the artifact build failed; the message says which and why."""


@dataclass(frozen=True)
class Versions:
    kafka: str = KAFKA_VERSION
    scala: str = SCALA_VERSION
    spark: str = ""

    @property
    def kafka_dist(self) -> str:
        return f"kafka_{self.scala}-{self.kafka}"

    def as_dict(self) -> dict[str, str]:
        return {"kafka": self.kafka, "scala": self.scala, "spark": self.spark}


def installed_spark_version() -> str:
    try:
        return importlib.metadata.version("pyspark")
    except importlib.metadata.PackageNotFoundError as exc:
        raise BuildError("pyspark is not installed; install rtm with the 'consumer' extra") from exc


def kafka_tarball(root: Path, versions: Versions) -> Path:
    return root / "kafka" / f"{versions.kafka_dist}.tgz"


def kafka_home(root: Path) -> Path:
    """An unpacked copy of the cached Kafka distribution, for running it on the controller."""
    manifest = Manifest.load(root)
    versions = Versions(**manifest.versions)
    tarball = kafka_tarball(root, versions)
    rel = tarball.relative_to(root).as_posix()
    if rel not in manifest.files:
        raise ManifestError(f"{rel} is not in the manifest; run `make artifacts`")
    unpacked = root / ".build" / "unpacked" / manifest.files[rel][:12]
    home = unpacked / versions.kafka_dist
    if not home.is_dir():
        tmp = unpacked.with_name(unpacked.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        tmp.replace(unpacked)
    return home


def build(root: Path, versions: Versions, project_dir: Path) -> Manifest:
    root.mkdir(parents=True, exist_ok=True)
    try:
        previous = Manifest.load(root)
    except ManifestError:
        previous = Manifest()
    if previous.versions and previous.versions != versions.as_dict():
        log.info("versions changed (%s -> %s); rebuilding", previous.versions, versions.as_dict())
        previous = Manifest()

    _build_kafka(root, versions, previous)
    _build_spark_jars(root, versions, previous)
    _build_wheelhouse(root, versions, project_dir)

    manifest = Manifest.scan(root, versions.as_dict())
    manifest.write(root)
    log.info("artifact cache ready: %d files in %s", len(manifest.files), root)
    return manifest


def _reusable(root: Path, rel: str, previous: Manifest) -> bool:
    path = root / rel
    return rel in previous.files and path.is_file() and sha256_file(path) == previous.files[rel]


def _build_kafka(root: Path, versions: Versions, previous: Manifest) -> None:
    tarball = kafka_tarball(root, versions)
    if _reusable(root, tarball.relative_to(root).as_posix(), previous):
        log.info("kafka: reusing %s", tarball.name)
        return
    log.info("kafka: resolving %s and its runtime jars from Maven", versions.kafka_dist)
    work = root / ".build" / "kafka"
    libs = work / "libs"
    shutil.rmtree(libs, ignore_errors=True)
    _write_pom(work, "kafka-pom.xml", versions)
    _mvn_copy_dependencies(work, libs)
    jars = sorted(libs.glob("*.jar"))
    if not any(j.name == f"{versions.kafka_dist}.jar" for j in jars):
        raise BuildError(f"kafka: Maven did not deliver {versions.kafka_dist}.jar")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    _write_tarball(tarball, versions.kafka_dist, jars, _DIST / "config")
    log.info("kafka: wrote %s (%d jars)", tarball.name, len(jars))


def _build_spark_jars(root: Path, versions: Versions, previous: Manifest) -> None:
    out = root / "spark"
    cached = sorted(p.relative_to(root).as_posix() for p in out.glob("*.jar"))
    names = {Path(rel).name for rel in cached}
    wanted = {f"spark-sql-kafka-0-10_2.13-{versions.spark}.jar"}
    if cached and wanted <= names and all(_reusable(root, rel, previous) for rel in cached):
        log.info("spark: reusing %d connector jars", len(cached))
        return
    log.info("spark: resolving the Kafka connector for Spark %s from Maven", versions.spark)
    work = root / ".build" / "spark"
    staging = work / "jars"
    shutil.rmtree(staging, ignore_errors=True)
    _write_pom(work, "spark-pom.xml", versions)
    _mvn_copy_dependencies(work, staging, include=SPARK_CONNECTOR_ARTIFACTS)
    jars = sorted(staging.glob("*.jar"))
    found = {j.name.rsplit("-", 1)[0] for j in jars}
    missing = [a for a in SPARK_CONNECTOR_ARTIFACTS if a not in found]
    if missing:
        raise BuildError(f"spark: Maven did not deliver {', '.join(missing)}")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for jar in jars:
        shutil.copy2(jar, out / jar.name)
    log.info("spark: %s", ", ".join(j.name for j in jars))


def _build_wheelhouse(root: Path, versions: Versions, project_dir: Path) -> None:
    out = root / "wheels"
    out.mkdir(parents=True, exist_ok=True)
    # The hosts' pins travel with the cache: online hosts install from them, hash-checked.
    locks = root / "locks"
    locks.mkdir(exist_ok=True)
    for lock in LOCKS.glob("*.txt"):
        shutil.copy2(lock, locks / lock.name)
    # rtm itself is rebuilt every time (it is small and it is what changes); its stale
    # wheels go first so hosts never see two versions.
    for old in out.glob("rtm-*.whl"):
        old.unlink()
    host = hostwheel.stage(project_dir, root / ".build" / "host")
    base = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(out)]
    # Fixed zip timestamps: the same code gives the same wheel, so a deploy after a rebuild
    # copies nothing and restarts nothing.
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(_EPOCH)}
    log.info("wheels: building rtm's host part")
    _pip([*base, "--no-deps", "--no-index", "--no-build-isolation", str(host)], env)
    missing = _sync_with_lock(out, LOCKS / "consumer.txt")
    if not missing:
        return
    # Exactly the locked files, their hashes checked; an sdist (pyspark has no wheel) is
    # checked, then built. Nothing in the cache is offered to pip: a wheel built here earlier
    # has no hash in the lock.
    log.info("wheels: fetching %s (pyspark %s)", ", ".join(missing), versions.spark)
    _pip([*base, "--require-hashes", "--requirement", str(lock)], env)


def _sync_with_lock(out: Path, lock: Path) -> list[str]:
    """Remove the wheels ``lock`` no longer pins (rtm's aside): hosts install every wheel of the
    cache, so an older version would be installed beside the new one. Return the pins
    (name==version) that still have no wheel."""
    pins = {
        line.split()[0].lower().replace("-", "_"): line.split()[0]
        for line in lock.read_text(encoding="utf-8").splitlines()
        if line and not line[0].isspace() and not line.startswith("#")
    }
    built = set()
    for wheel in out.glob("*.whl"):
        pin = _wheel_pin(wheel.name)
        if pin in pins:
            built.add(pin)
        elif not wheel.name.startswith("rtm-"):
            log.info("wheels: removing %s, which the lock does not pin", wheel.name)
            wheel.unlink()
    return [pins[pin] for pin in pins if pin not in built]


def _wheel_pin(filename: str) -> str:
    name, version = filename.split("-")[:2]
    return f"{name.lower()}=={version}"


def _pip(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        detail = done.stderr[-3000:]
        raise BuildError(f"wheels: pip wheel failed (exit {done.returncode}):\n{detail}")


def _write_pom(work: Path, template: str, versions: Versions) -> None:
    work.mkdir(parents=True, exist_ok=True)
    text = Template((Path(__file__).with_name(template)).read_text()).substitute(
        kafka_version=versions.kafka,
        scala_version=versions.scala,
        spark_version=versions.spark,
        reload4j_version=RELOAD4J_VERSION,
        slf4j_version=SLF4J_VERSION,
    )
    (work / "pom.xml").write_text(text)


def _mvn_copy_dependencies(work: Path, out: Path, include: tuple[str, ...] = ()) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BuildError("mvn not found; install Maven (Debian: apt-get install maven)")
    cmd = [
        mvn,
        "--batch-mode",
        "--no-transfer-progress",
        "--file",
        str(work / "pom.xml"),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={out}",
        "-DincludeScope=runtime",
    ]
    if include:
        cmd.append(f"-DincludeArtifactIds={','.join(include)}")
    result = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-25:])
        raise BuildError(f"mvn failed in {work} (exit {result.returncode}):\n{tail}")


def _write_tarball(tarball: Path, top: str, jars: list[Path], config_dir: Path) -> None:
    members: list[tuple[str, Path]] = [(f"{top}/libs/{j.name}", j) for j in jars]
    members += [(f"{top}/config/{c.name}", c) for c in sorted(config_dir.iterdir())]
    tmp = tarball.with_suffix(".tgz.tmp")
    with (
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for directory in (top, f"{top}/libs", f"{top}/config"):
            tar.addfile(_tarinfo(directory, tarfile.DIRTYPE, 0o755, 0))
        for name, path in members:
            info = _tarinfo(name, tarfile.REGTYPE, 0o644, path.stat().st_size)
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    tmp.replace(tarball)


def _tarinfo(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = _EPOCH
    info.uname = info.gname = "root"
    return info


__all__ = ["BuildError", "Versions", "build", "installed_spark_version", "kafka_home"]
