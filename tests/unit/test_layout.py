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
from rtm import layout

REPO_DEFAULTS = layout.REPO / "roles"


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


def _pki(directory: Path) -> None:
    """A CA and the controller's client certificate, as the roles' tls tasks leave them."""
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject: str, key, issuer: str, signer, ca: bool) -> x509.Certificate:
        now = datetime.now(UTC)
        return (
            x509.CertificateBuilder(name(subject), name(issuer), key.public_key(),
                                    x509.random_serial_number(), now, now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(signer, hashes.SHA256())
        )  # fmt: skip

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    directory.mkdir()
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(cert("ca", ca_key, "ca", ca_key, True).public_bytes(pem))
    (directory / "controller.pem").write_bytes(
        cert("rtm-controller", key, "ca", ca_key, False).public_bytes(pem)
    )
    (directory / "controller.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def test_the_controller_speaks_tls_with_the_pki_beside_the_inventory(tmp_path: Path) -> None:
    _pki(tmp_path / ".pki")
    case = Case("tls", None, settings={"rtm_security": "tls"})
    secured = replace(compute(case), inventory_dir=tmp_path)
    context = secured.controller_tls()
    assert context is not None
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "ca"),),)]
    assert compute(Case("plain", None)).controller_tls() is None
