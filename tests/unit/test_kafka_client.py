"""One Kafka client seam: every client of rtm is built by rtm.kafka_client from a Connection."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jinja2
import pytest
import yaml

from rtm.config import ConfigError, parse
from rtm.kafka_client import Connection, Login, Tls

ROOT = Path(__file__).resolve().parents[2]
SEAM = ROOT / "app" / "rtm" / "kafka_client.py"
CLIENTS = {"KafkaProducer", "KafkaConsumer", "KafkaAdminClient"}
CONNECTION_KEYS = {"bootstrap_servers", "kafka.bootstrap.servers", "bootstrap.servers"}


def test_a_connection_renders_the_same_brokers_for_every_kind_of_client() -> None:
    conn = Connection.of(" b1:9092, b2:9092 ,")
    assert conn.bootstrap_servers == ("b1:9092", "b2:9092")
    assert conn.python() == {
        "bootstrap_servers": ["b1:9092", "b2:9092"],
        "security_protocol": "PLAINTEXT",
    }
    assert conn.java() == {"bootstrap.servers": "b1:9092,b2:9092", "security.protocol": "PLAINTEXT"}
    assert conn.spark() == {f"kafka.{k}": v for k, v in conn.java().items()}
    assert Connection.of(["b1:9092"]) == Connection(("b1:9092",))
    with pytest.raises(ValueError, match="at least one bootstrap server"):
        Connection.of(" , ")


def test_the_app_config_gives_its_connection() -> None:
    config = parse({"kafka": {"bootstrap_servers": "b1:9092,b2:9092"}}, base=ROOT)
    assert config.kafka.connection("producer") == Connection(("b1:9092", "b2:9092"))


def test_under_security_each_client_of_the_config_logs_in_as_itself(tmp_path: Path) -> None:
    logins = {
        "producer": {"username": "rtm-producer", "password": "p1"},
        "net_disk": {"username": "rtm-net_disk", "password": "p2"},
    }
    kafka = {"bootstrap_servers": ["b1:9092"], "security": {"ca_file": "ca.pem", "logins": logins}}
    config = parse({"kafka": kafka}, base=tmp_path)
    with pytest.raises(ConfigError, match=r"kafka.security.ca_file: .*ca.pem is not a readable"):
        config.kafka.connection("producer")  # the client would wait for ever without its CA
    ca = str(tmp_path / "ca.pem")
    Path(ca).write_text("-----BEGIN CERTIFICATE-----\n")
    assert config.kafka.connection("producer") == Connection(
        ("b1:9092",), Tls(ca), Login("rtm-producer", "p1")
    )
    assert config.kafka.connection("net_disk").login == Login("rtm-net_disk", "p2")
    with pytest.raises(
        ConfigError, match=r"kafka.security.logins.cpu_mem: required key is missing"
    ):
        config.kafka.connection("cpu_mem")


@pytest.mark.parametrize(
    ("security", "refusal"),
    [
        ({"logins": {}}, "kafka.security.ca_file: required key is missing"),
        (
            {"ca_file": "ca.pem", "logins": {"spy": {"username": "x", "password": "y"}}},
            "kafka.security.logins.spy: unknown key",
        ),
        (
            {"ca_file": "ca.pem", "logins": {"producer": {"password": "y"}}},
            "kafka.security.logins.producer.username: required key is missing",
        ),
        (
            {"ca_file": "ca.pem", "logins": {"producer": {"username": "x", "password": ""}}},
            "kafka.security.logins.producer.password: expected a non-empty string",
        ),
    ],
    ids=["no_ca", "unknown_client", "no_username", "empty_password"],
)
def test_a_broken_security_section_is_refused_by_its_key(
    tmp_path: Path, security: dict[str, object], refusal: str
) -> None:
    kafka = {"bootstrap_servers": ["b1:9092"], "security": security}
    with pytest.raises(ConfigError, match=re.escape(refusal)):
        parse({"kafka": kafka}, base=tmp_path)


def _sources() -> list[Path]:
    files = [*(ROOT / "app" / "rtm").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    return sorted(p for p in [*files, ROOT / "fabfile.py"] if p != SEAM)


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_client_is_built_and_no_broker_list_passed_outside_the_seam(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name in CLIENTS:
                found.append(f"line {node.lineno}: {name}(...)")
            found += [
                f"line {node.lineno}: {k.arg}=" for k in node.keywords if k.arg in CONNECTION_KEYS
            ]
        elif isinstance(node, ast.Constant) and node.value in CONNECTION_KEYS - {
            "bootstrap_servers"
        }:
            found.append(f"line {node.lineno}: {node.value!r}")
    assert not found, f"build Kafka clients with rtm.kafka_client instead: {found}"


def _role_client_properties(security: str) -> dict[str, str]:
    role_vars = yaml.safe_load((ROOT / "roles" / "rtm" / "vars" / "main.yml").read_text())
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)  # noqa: S701 - no HTML here
    expression = role_vars["_rtm_kafka_client_properties"].strip()[2:-2]
    context = {**role_vars, "_rtm_layout": {"security": security}}
    return env.compile_expression(expression)(**context)


def test_the_roles_tools_and_the_app_set_the_same_client_properties() -> None:
    app = Connection(("b1:9092",)).java()
    del app["bootstrap.servers"]  # the tools take the brokers on their command line
    assert _role_client_properties("plaintext") == app
    # Under tls the tools on a Kafka node show its certificate, from one file the broker reads too.
    tools = _role_client_properties("tls")
    ca = tools["ssl.truststore.location"]
    node = Connection.of("b1:9094", tls=Tls(ca))
    assert tools["security.protocol"] == node.security_protocol == "SSL"
    assert {k: v for k, v in node.java().items() if k.startswith("ssl.truststore")} == {
        k: v for k, v in tools.items() if k.startswith("ssl.truststore")
    }


def test_a_login_speaks_scram_over_tls_to_every_kind_of_client(tmp_path: Path) -> None:
    login = Login("rtm-producer", 'pa"ss\\word')
    conn = Connection.of("b1:9092", tls=Tls("/etc/rtm/ca.pem"), login=login)
    assert conn.python() == {
        "bootstrap_servers": ["b1:9092"],
        "security_protocol": "SASL_SSL",
        "ssl_cafile": "/etc/rtm/ca.pem",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "rtm-producer",
        "sasl_plain_password": 'pa"ss\\word',
    }
    java = conn.java()
    assert java["sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required"
        ' username="rtm-producer" password="pa\\"ss\\\\word";'
    )
    assert java["ssl.truststore.location"] == "/etc/rtm/ca.pem"
    assert "pa" not in repr(login)
    with pytest.raises(ValueError, match="needs TLS"):
        Connection.of("b1:9092", login=login)


def test_a_certificate_reaches_java_inline(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    (tmp_path / "c.key").write_text("-----BEGIN PRIVATE KEY-----\ny\n-----END PRIVATE KEY-----\n")
    tls = Tls("ca.pem", str(tmp_path / "c.pem"), str(tmp_path / "c.key"))
    conn = Connection.of("b1:9094", tls=tls)
    assert conn.python()["ssl_certfile"] == str(tmp_path / "c.pem")
    java = conn.java()
    assert java["ssl.keystore.type"] == "PEM"
    assert java["ssl.keystore.key"].endswith("-----END PRIVATE KEY-----")
    assert java["ssl.keystore.certificate.chain"].startswith("-----BEGIN CERTIFICATE-----")
