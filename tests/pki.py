"""A throw-away CA and certificates signed by it, as the roles' tls tasks make them: a key in
PKCS#8 and its certificate, in separate files (the controller's) or in one (a broker's)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

_PEM = serialization.Encoding.PEM


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class Pki:
    """``ca.pem`` in ``directory``, and what :meth:`issue` signs with its key."""

    def __init__(self, directory: Path, common_name: str = "ca") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._name = _name(common_name)
        self.ca = directory / "ca.pem"
        self.ca.write_bytes(self._certificate(self._name, self._key, ca=True).public_bytes(_PEM))

    def _certificate(
        self, subject: x509.Name, key: rsa.RSAPrivateKey, *, ca: bool, address: str | None = None
    ) -> x509.Certificate:
        now = datetime.now(UTC)
        builder = x509.CertificateBuilder(
            issuer_name=self._name,
            subject_name=subject,
            public_key=key.public_key(),
            serial_number=x509.random_serial_number(),
            not_valid_before=now,
            not_valid_after=now + timedelta(days=1),
        ).add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        if address:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(self._key, hashes.SHA256())

    def issue(self, stem: str, common_name: str, address: str | None = None) -> tuple[Path, Path]:
        """``stem.pem`` (the certificate) and ``stem.key`` (its PKCS#8 key)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = self._certificate(_name(common_name), key, ca=False, address=address)
        pem, key_file = self.directory / f"{stem}.pem", self.directory / f"{stem}.key"
        pem.write_bytes(cert.public_bytes(_PEM))
        key_file.write_bytes(
            key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        return pem, key_file

    def node(self, stem: str, common_name: str, address: str) -> Path:
        """``stem-node.pem``: key and certificate in one file, as Kafka reads them."""
        pem, key = self.issue(stem, common_name, address)
        node = self.directory / f"{stem}-node.pem"
        node.write_bytes(key.read_bytes() + pem.read_bytes())
        return node
