"""rtm_layout: the cluster layout computed from the inventory (app/rtm/layout.py), checked.

    _rtm_layout: "{{ lookup('rtm_layout') }}"

Returns the layout as plain data (addresses, ZooKeeper hosts and ids, Kafka brokers,
controllers and node ids, bootstrap servers, quorum voters, replication, ports, topic specs)
with ``problems``: what makes the inventory unworkable, one sentence each, empty when it can
work. The roles ship beside the app, and ``fab status`` and the Vagrantfile compute the same
layout with the same Python, so all three always agree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: rtm_layout
short_description: the rtm cluster layout computed from the inventory
description:
  - Computes the layout with C(app/rtm/layout.py) of the repository the roles belong to, from
    the inventory's groups and host vars and the rtm role's defaults.
  - Settings come from the inventory (where they must be one value for every host) or from
    above it (role or include vars, play vars, extra vars), which then hold for every host.
  - The rtm role keeps the layout of each play in the fact C(__rtm_layout_memo); a call whose
    groups and settings in force match it returns it instead of computing the layout again.
options:
  memo:
    description: Return the layout with the fingerprint of what it was computed from, the
      value of C(__rtm_layout_memo).
    type: bool
    default: false
"""

RETURN = r"""
_raw:
  description: the layout as a mapping, with C(problems) (a list of sentences)
  type: dict
"""

_APP = str(Path(__file__).resolve().parents[3] / "app")
# One computation per process, inventory shape and settings.
_CACHE: dict[object, dict] = {}
# The fact the rtm role keeps the play's layout in (roles/rtm/tasks/main.yml).
_MEMO = "__rtm_layout_memo"


def _layout_module():
    if _APP not in sys.path:
        sys.path.insert(0, _APP)
    from rtm import layout  # noqa: PLC0415 - importable only once the path is set

    return layout


class LookupModule(LookupBase):
    def run(self, terms, variables=None, memo=False, **kwargs):
        """The layout; with ``memo=true`` the layout and what it was computed from, to keep
        as the ``__rtm_layout_memo`` fact that later calls read back."""
        variables = variables or {}
        # Every task that reads the layout calls this lookup again, in a worker process of
        # its own that no in-process cache outlives (nor the import of the layout module).
        # The memo computed once for the play holds wherever the groups and the settings in
        # force are the ones it was computed from.
        remembered = variables.get(_MEMO)
        if not memo and isinstance(remembered, dict):
            _, _, fingerprint = self._in_force(variables, remembered.get("settings", []))
            if fingerprint == remembered.get("fingerprint"):
                return [remembered["layout"]]
        layout = _layout_module()
        names = [*layout.SETTINGS, *layout.HOST_SETTINGS]
        in_force, groups, fingerprint = self._in_force(variables, names)
        computed = self._compute(layout, variables, groups, in_force)
        if memo:
            return [{"settings": names, "fingerprint": fingerprint, "layout": computed}]
        return [computed]

    def _in_force(self, variables, names):
        """The settings in force for this host, the groups, and a fingerprint of both."""
        template = self._templar.template
        in_force = {key: template(variables[key]) for key in names if key in variables}
        groups = {name: list(hosts) for name, hosts in variables["groups"].items()}
        return in_force, groups, _json({"groups": groups, "settings": in_force})

    def _compute(self, layout, variables, groups, in_force):
        hostvars = variables["hostvars"]
        base, overridden = self._settings(layout, variables, hostvars, in_force)
        key = (
            id(hostvars),
            tuple((g, tuple(h)) for g, h in sorted(groups.items())),
            json.dumps(base, sort_keys=True, default=str),
        )
        if key not in _CACHE:
            wanted = (*layout.HOST_VARS, *layout.SETTINGS, *layout.HOST_SETTINGS, *layout.RETIRED)
            hosts = {}
            for name in groups.get("all", []):
                host = hostvars[name]
                hosts[name] = {k: host[k] for k in wanted if k in host and k not in overridden}
            try:
                computed = layout.compute(hosts, groups, base)
            except (OSError, ValueError) as exc:
                raise AnsibleLookupError(f"rtm_layout: {exc}") from exc
            _CACHE[key] = {**computed.data, "problems": list(computed.problems)}
        return _CACHE[key]

    def _settings(self, layout, variables, hostvars, in_force):
        """The role defaults, with the settings given above the inventory (role or include
        vars, play vars) for every host, as Ansible itself applies them."""
        base = layout.defaults()
        own = hostvars.get(variables.get("inventory_hostname"), {})
        overridden = set()
        for key, value in in_force.items():
            inventory = own[key] if key in own else base.get(key, {})
            if _json(value) != _json(inventory):
                base[key] = value
                overridden.add(key)
        return base, overridden


def _json(value):
    return json.dumps(value, sort_keys=True, default=str)
