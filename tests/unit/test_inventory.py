"""Reading inventories the way Ansible does."""

from pathlib import Path

import pytest

from rtm.inventory import Inventory, InventoryError

REPO = Path(__file__).resolve().parents[2]

ANSIBLE_JSON = {
    "_meta": {
        "hostvars": {
            "b1": {"ansible_host": "10.0.0.11", "ansible_user": "ops", "kafka_port": 9093},
            "b2": {"ansible_host": "10.0.0.12"},
            "p1": {},
        }
    },
    "all": {"children": ["ungrouped", "brokers", "producers"]},
    "brokers": {"children": ["kafka", "zookeeper"]},
    "kafka": {"hosts": ["b1", "b2"]},
    "zookeeper": {"hosts": ["b1"]},
    "producers": {"hosts": ["p1"]},
}


def test_children_groups_are_expanded_in_inventory_order():
    inv = Inventory.from_ansible_json(ANSIBLE_JSON)
    assert [h.name for h in inv.group("brokers")] == ["b1", "b2"]
    assert [h.name for h in inv.group("all")] == ["b1", "b2", "p1"]
    assert inv.hosts["b1"].groups == {"all", "brokers", "kafka", "zookeeper"}


def test_per_host_vars_and_address_fallback():
    inv = Inventory.from_ansible_json(ANSIBLE_JSON)
    assert inv.hosts["b1"].vars["ansible_user"] == "ops"
    assert inv.hosts["b1"].vars["kafka_port"] == 9093
    assert inv.hosts["b1"].address == "10.0.0.11"
    assert inv.hosts["p1"].address == "p1"


def test_unknown_group_is_empty():
    assert Inventory.from_ansible_json(ANSIBLE_JSON).group("spark_master") == []


def test_group_cycle_is_an_error():
    data = {"all": {"children": ["a"]}, "a": {"children": ["b"]}, "b": {"children": ["a"]}}
    with pytest.raises(InventoryError, match="cycle"):
        Inventory.from_ansible_json(data)


@pytest.mark.parametrize("name", ["lab", "lab-ha"])
def test_lab_inventories_load_through_ansible(name):
    inv = Inventory.load(REPO / "inventory" / name)
    for group in ("zookeeper", "kafka", "producers", "consumers"):
        assert inv.group(group), f"{name}: group {group} is empty"
    assert all(h.vars["ansible_user"] == "root" for h in inv.hosts.values())


def test_missing_inventory_is_a_clear_error(tmp_path):
    with pytest.raises(InventoryError, match="does not exist"):
        Inventory.load(tmp_path / "nope")
