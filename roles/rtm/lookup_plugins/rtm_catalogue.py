"""rtm_catalogue: the metric catalogue of the rtm app (app/rtm/catalogue.yml), validated.

    _rtm_catalogue: "{{ lookup('rtm_catalogue') }}"

Returns the catalogue as plain data: ``kinds`` (topic, csv, metrics), ``jobs`` (aggregation,
kinds, rules with their default thresholds), ``topics`` (every pipeline topic by role) and
``thresholds`` (default threshold by metric). The roles ship beside the app, so the module that
validates the catalogue for the app is loaded here by its path: one reader, one error message.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: rtm_catalogue
short_description: the rtm metric catalogue (kinds, topics, jobs, thresholds)
description:
  - Reads and validates C(app/rtm/catalogue.yml) of the repository the roles belong to.
options: {}
"""

RETURN = r"""
_raw:
  description: the catalogue as a mapping (kinds, jobs, topics, thresholds)
  type: dict
"""

_MODULE = Path(__file__).resolve().parents[3] / "app" / "rtm" / "catalogue.py"


def _catalogue_module():
    name = "_rtm_catalogue_for_ansible"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _MODULE)
        if spec is None or spec.loader is None:
            raise AnsibleLookupError(f"rtm_catalogue: cannot load {_MODULE}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return sys.modules[name]


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        module = _catalogue_module()
        try:
            return [module.catalogue().for_ansible()]
        except (OSError, module.CatalogueError) as exc:
            raise AnsibleLookupError(f"rtm_catalogue: {exc}") from exc
