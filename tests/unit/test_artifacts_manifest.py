"""The artifact cache's manifest and its reproducible Kafka tarball."""

import json
import tarfile

import pytest

from rtm.artifacts.build import _write_tarball
from rtm.artifacts.manifest import Manifest, ManifestError, sha256_file


@pytest.fixture
def cache(tmp_path):
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "k.tgz").write_bytes(b"kafka")
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "a.whl").write_bytes(b"wheel")
    (tmp_path / ".build").mkdir()
    (tmp_path / ".build" / "pom.xml").write_text("scratch")
    return tmp_path


def test_scan_lists_every_file_but_scratch_and_itself(cache):
    manifest = Manifest.scan(cache, {"kafka": "3.9.1"})
    manifest.write(cache)
    again = Manifest.scan(cache, {"kafka": "3.9.1"})
    assert set(again.files) == {"kafka/k.tgz", "wheels/a.whl"}
    assert again.files["kafka/k.tgz"] == sha256_file(cache / "kafka" / "k.tgz")


def test_round_trip_and_sha256sums_format(cache):
    Manifest.scan(cache, {"kafka": "3.9.1"}).write(cache)
    loaded = Manifest.load(cache)
    assert loaded.versions == {"kafka": "3.9.1"}
    assert loaded.verify(cache) == []
    sums = (cache / "SHA256SUMS").read_text().splitlines()
    assert f"{loaded.files['wheels/a.whl']}  wheels/a.whl" in sums


def test_verify_reports_changed_missing_and_unlisted(cache):
    Manifest.scan(cache, {}).write(cache)
    (cache / "kafka" / "k.tgz").write_bytes(b"tampered")
    (cache / "wheels" / "a.whl").unlink()
    (cache / "wheels" / "b.whl").write_bytes(b"new")
    assert Manifest.load(cache).verify(cache) == [
        "checksum mismatch: kafka/k.tgz",
        "missing: wheels/a.whl",
        "not in manifest: wheels/b.whl",
    ]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ManifestError, match="make artifacts"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"files": []}))
    with pytest.raises(ManifestError, match="'files' mapping"):
        Manifest.load(tmp_path)


def test_kafka_tarball_is_reproducible_with_the_official_layout(tmp_path):
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "kafka_2.13-3.9.1.jar").write_bytes(b"jar")
    config = tmp_path / "config"
    config.mkdir()
    (config / "log4j.properties").write_text("x=1\n")
    first, second = tmp_path / "one.tgz", tmp_path / "two.tgz"
    _write_tarball(first, "kafka_2.13-3.9.1", sorted(libs.iterdir()), config)
    _write_tarball(second, "kafka_2.13-3.9.1", sorted(libs.iterdir()), config)
    assert sha256_file(first) == sha256_file(second)
    with tarfile.open(first) as tar:
        assert "kafka_2.13-3.9.1/libs/kafka_2.13-3.9.1.jar" in tar.getnames()
        assert "kafka_2.13-3.9.1/config/log4j.properties" in tar.getnames()
