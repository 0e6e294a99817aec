"""The cluster layout computed in Python (app/rtm/layout.py) from inventory data: what each
consistent inventory gives, and the words each contradictory one is refused with. The same
cases run through Ansible's lookup and ansible-inventory in tests/integration."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from inventory_cases import REFUSED, VALID, Case, dig, inventory_groups, settings
from pki import Pki
from rtm import layout

REPO_DEFAULTS = layout.REPO / "roles"
PLAINTEXT = {"rtm_security": "plaintext"}


def compute(case: Case) -> layout.Layout:
    """The case as ansible-inventory gives it: group_vars/all on every host, host vars over it."""
    hosts: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {}
    for group, members in inventory_groups(case).items():
        groups[group] = list(members)
        for host, host_vars in members.items():
            hosts.setdefault(host, dict(settings(case))).update(host_vars or {})
    groups["all"] = list(hosts)
    return layout.compute(hosts, groups, layout.defaults())


@pytest.mark.parametrize("case", VALID, ids=[c.name for c in VALID])
def test_consistent_inventory_gives_its_layout(case: Case) -> None:
    computed = compute(case)
    assert computed.problems == ()
    assert case.layout, "a valid case must say what layout it expects"
    assert {path: dig(computed.data, path) for path in case.layout} == case.layout


@pytest.mark.parametrize("case", REFUSED, ids=[c.name for c in REFUSED])
def test_contradictory_inventory_is_refused(case: Case) -> None:
    assert case.refusal is not None
    problems = compute(case).problems
    assert any(case.refusal in problem for problem in problems), problems


def test_every_setting_is_a_documented_role_default() -> None:
    rtm = yaml.safe_load((REPO_DEFAULTS / "rtm" / "defaults" / "main.yml").read_text())
    app = yaml.safe_load((REPO_DEFAULTS / "rtm_app" / "defaults" / "main.yml").read_text())
    assert set(layout.defaults()) == {*layout.SETTINGS, "rtm_install_source"}
    assert "rtm_app_thresholds" in app
    assert not set(layout.RETIRED) & set(rtm), "a computed value is back among the defaults"


def test_computed_values_do_not_depend_on_the_host_order_of_ids() -> None:
    # Explicit ids win over positions; the rest keep their 1-based place in the group.
    case = next(c for c in VALID if c.name == "zookeeper_mode_lab_like")
    data = compute(case).data
    assert data["zookeeper_ids"] == {"broker1": 1}
    assert data["kafka_node_ids"] == {"broker1": 1}


def test_layout_of_a_missing_inventory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(layout.LayoutError, match=r"inventory .*nope does not exist"):
        layout.load_layout(tmp_path / "nope")


def test_per_host_settings_may_differ_and_each_value_is_checked() -> None:
    case = next(c for c in VALID if c.name == "zookeeper_mode_lab_like")
    hosts_groups = inventory_groups(case)
    hosts_groups["consumers"]["consumer1"]["rtm_app_thresholds"] = {"cpu_pct": 90}
    hosts_groups["producers"]["producer1"]["rtm_install_source"] = "online"
    mixed = Case("mixed", None, groups=hosts_groups)
    assert compute(mixed).problems == ()
    hosts_groups["consumers"]["consumer2"]["rtm_app_thresholds"] = {"cpu_pct": "hot"}
    (problem,) = compute(Case("bad", None, groups=hosts_groups)).problems
    assert problem.startswith("rtm_app_thresholds is {'cpu_pct': 'hot'}")
    assert problem.endswith("(on consumer2)")


def test_the_controller_speaks_tls_with_the_pki_beside_the_inventory(tmp_path: Path) -> None:
    pki = Pki(tmp_path / ".pki")
    pki.issue("controller", "rtm-controller")
    case = Case("tls", None, settings={"rtm_security": "tls"})
    secured = replace(compute(case), inventory_dir=tmp_path)
    context = secured.controller_tls()
    assert context is not None
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "ca"),),)]
    assert compute(Case("plain", None, settings=PLAINTEXT)).controller_tls() is None


def _sealed(directory: Path, passwords: dict[str, str]) -> None:
    """The secrets file and its vault password, as roles/tls/tasks/secrets.yml leaves them."""
    from ansible.parsing.vault import VaultLib, VaultSecret  # noqa: PLC0415

    (directory / ".vault-password").write_text("s3cret-vault\n")
    vault = VaultLib([("default", VaultSecret(b"s3cret-vault"))])
    text = yaml.safe_dump({"kafka_passwords": passwords})
    (directory / ".secrets.yml").write_bytes(vault.encrypt(text))


def test_under_tls_the_controller_logs_in_with_the_kept_password(tmp_path: Path) -> None:
    Pki(tmp_path / ".pki").issue("controller", "rtm-controller")
    _sealed(tmp_path, {"rtm-status": "kept-status", "rtm-producer": "kept-producer"})
    case = Case("tls", None, settings={"rtm_security": "tls"})
    secured = replace(compute(case), inventory_dir=tmp_path)
    status = secured.connection()
    assert status.login is not None
    assert (status.login.username, status.login.password) == ("rtm-status", "kept-status")
    assert status.tls is not None
    assert status.tls.ca_file == str(tmp_path / ".pki" / "ca.pem")
    assert secured.connection("producer").security_protocol == "SASL_SSL"
    given = replace(secured, controller={"rtm_kafka_passwords": {"rtm-status": "given"}})
    assert given.connection().login == replace(status.login, password="given")  # noqa: S106
    admin = secured.admin_connection()
    assert admin.security_protocol == "SSL"
    assert admin.bootstrap_servers == ("192.0.2.11:9094",)
    assert (
        compute(Case("plain", None, settings=PLAINTEXT)).connection().security_protocol
        == "PLAINTEXT"
    )


def test_a_missing_or_foreign_secrets_file_is_named(tmp_path: Path) -> None:
    case = Case("tls", None, settings={"rtm_security": "tls"})
    secured = replace(compute(case), inventory_dir=tmp_path)
    with pytest.raises(layout.LayoutError, match=r"\.vault-password: No such file"):
        secured.connection()
    _sealed(tmp_path, {"rtm-producer": "p"})
    with pytest.raises(layout.LayoutError, match="keeps no password for Kafka user rtm-status"):
        secured.connection()
    (tmp_path / ".vault-password").write_text("another\n")
    with pytest.raises(layout.LayoutError, match=r"cannot open it with .*\.vault-password"):
        secured.connection()
