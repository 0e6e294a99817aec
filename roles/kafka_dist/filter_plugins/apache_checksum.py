"""Turn an Apache release checksum file into the bare hex digest get_url's `checksum:` needs.

Apache publishes ``.sha512`` files in ``gpg --print-md SHA512`` layout::

    kafka_2.13-3.9.1.tgz: 1A2B3C4D 5E6F7A8B ... (upper case, grouped, wrapped over lines)

while ``get_url`` expects ``sha512:<128 lower-case hex digits>``. Newer releases use the
``sha512sum`` layout (``<hex>  <file>``); both are accepted.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}


def apache_checksum(text, algorithm="sha512"):
    """Return the hex digest in ``text`` (gpg --print-md or sha512sum layout), lower case."""
    if algorithm not in _LENGTHS:
        raise AnsibleFilterError(f"apache_checksum: unknown algorithm {algorithm!r}")
    want = _LENGTHS[algorithm]
    body = str(text).strip()
    name, sep, rest = body.partition(":")
    if sep and not re.fullmatch(r"[0-9A-Fa-f]+", name.strip()):
        candidate = rest  # gpg layout: "<file>: <grouped hex over several lines>"
    else:
        candidate = body.split()[0] if body else ""  # sha512sum layout: "<hex>  <file>"
    digest = re.sub(r"\s+", "", candidate).lower()
    if not re.fullmatch(rf"[0-9a-f]{{{want}}}", digest):
        raise AnsibleFilterError(
            f"apache_checksum: no {algorithm} digest ({want} hex digits) in {body[:200]!r}"
        )
    return digest


class FilterModule:
    def filters(self):
        return {"apache_checksum": apache_checksum}
