"""The Kafka users' passwords the roles keep on the controller (roles/tls/tasks/secrets.yml):
a YAML mapping ``kafka_passwords: {user: password}`` encrypted with ansible-vault."""

from __future__ import annotations

from pathlib import Path

import yaml


class SecretsError(Exception):
    """The secrets file or its vault password cannot be read."""


def kafka_passwords(secrets_file: Path, vault_password_file: Path) -> dict[str, str]:
    """Every kept password by Kafka user; SecretsError names the file that failed."""
    # Ansible is the controller's (rtm[controller]); the hosts' services never read this.
    from ansible.errors import AnsibleError  # noqa: PLC0415
    from ansible.parsing.vault import VaultLib, VaultSecret  # noqa: PLC0415

    try:
        secret = VaultSecret(vault_password_file.read_bytes().strip())
        sealed = secrets_file.read_bytes()
    except OSError as exc:
        raise SecretsError(
            f"{exc.filename}: {exc.strerror}; the first ansible/site.yml run makes it"
        ) from exc
    try:
        text = VaultLib([("default", secret)]).decrypt(sealed)
    except AnsibleError as exc:
        raise SecretsError(f"{secrets_file}: cannot open it with {vault_password_file}") from exc
    data = yaml.safe_load(text) or {}
    return {str(user): str(password) for user, password in data.get("kafka_passwords", {}).items()}
