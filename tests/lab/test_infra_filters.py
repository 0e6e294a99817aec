"""The online install path cannot run here (no internet): test the piece of it that parses
Apache's checksum file, so the sha512 get_url verifies against is the real one. Not a lab test."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

PLUGIN = (
    Path(__file__).resolve().parents[2]
    / "roles" / "kafka_dist" / "filter_plugins" / "apache_checksum.py"
)  # fmt: skip


def _filter():
    pytest.importorskip("ansible")
    spec = importlib.util.spec_from_file_location("apache_checksum", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.apache_checksum


DIGEST = hashlib.sha512(b"kafka").hexdigest()


def _gpg_layout(name: str, digest: str) -> str:
    """What `gpg --print-md SHA512 FILE` prints: upper case, 8-digit groups, wrapped lines."""
    groups = [digest[i : i + 8].upper() for i in range(0, len(digest), 8)]
    first, rest = " ".join(groups[:6]), " ".join(groups[6:])
    return f"{name}: {first}\n{' ' * (len(name) + 2)}{rest}\n"


def test_gpg_print_md_layout_is_normalised() -> None:
    text = _gpg_layout("kafka_2.13-3.9.1.tgz", DIGEST)
    assert _filter()(text) == DIGEST


def test_sha512sum_layout_is_accepted() -> None:
    assert _filter()(f"{DIGEST}  kafka_2.13-3.9.1.tgz\n") == DIGEST


def test_garbage_is_refused() -> None:
    from ansible.errors import AnsibleFilterError  # noqa: PLC0415

    with pytest.raises(AnsibleFilterError):
        _filter()("<html>404 Not Found</html>")
    with pytest.raises(AnsibleFilterError):
        _filter()(_gpg_layout("x.tgz", DIGEST)[:-20])
