"""SHA-256 manifest of the artifact cache."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
SUMS_NAME = "SHA256SUMS"
_CHUNK = 1 << 20


class ManifestError(Exception):
    """The manifest is missing, unreadable, or disagrees with the files."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Manifest:
    """Versions plus ``relative path -> sha256`` for every cached file."""

    versions: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @classmethod
    def scan(cls, root: Path, versions: dict[str, str]) -> Manifest:
        files = {}
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if not path.is_file() or rel in (MANIFEST_NAME, SUMS_NAME) or _is_scratch(rel):
                continue
            files[rel] = sha256_file(path)
        return cls(versions=dict(versions), files=files)

    @classmethod
    def load(cls, root: Path) -> Manifest:
        path = root / MANIFEST_NAME
        try:
            data: Any = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ManifestError(f"{path}: no manifest; run `make artifacts` first") from exc
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            raise ManifestError(f"{path}: expected an object with a 'files' mapping")
        return cls(versions=dict(data.get("versions", {})), files=dict(data["files"]))

    def write(self, root: Path) -> None:
        body = {"versions": self.versions, "files": self.files}
        _atomic_write(root / MANIFEST_NAME, json.dumps(body, indent=2, sort_keys=True) + "\n")
        sums = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(self.files.items()))
        _atomic_write(root / SUMS_NAME, sums)

    def verify(self, root: Path) -> list[str]:
        """Return one line per problem: missing, changed or unlisted files."""
        problems = []
        for rel, digest in sorted(self.files.items()):
            path = root / rel
            if not path.is_file():
                problems.append(f"missing: {rel}")
            elif sha256_file(path) != digest:
                problems.append(f"checksum mismatch: {rel}")
        actual = Manifest.scan(root, self.versions).files
        problems.extend(f"not in manifest: {rel}" for rel in sorted(set(actual) - set(self.files)))
        return problems


def _is_scratch(rel: str) -> bool:
    # Build trees (Maven poms, unpacked jars) live beside the cache but are not part of it.
    return rel.startswith(".build/")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
