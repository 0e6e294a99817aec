"""rtm_kafka_access: the cluster's SCRAM users and ACLs brought to the layout's spec.

    - name: Give every client its Kafka user and ACLs
      rtm_kafka_access:
        bootstrap_servers: "{{ _rtm_layout.kafka_internal_servers }}"
        ca_file: .../ca.pem
        cert_file: .../controller.pem
        key_file: .../controller.key
        passwords: {rtm-producer: ..., ...}
        acls: "{{ _rtm_layout.kafka_acls }}"
        rotate: [rtm-producer]
      no_log: true

Runs on the controller, in Ansible's own process, with app/rtm/kafka_access.py: one Kafka
connection for every user and ACL, where Kafka's tools on a broker start a JVM for each. The
controller's certificate is a super user on the brokers' own listener.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
name: rtm_kafka_access
short_description: SCRAM users and ACLs of the rtm cluster, from the controller
description:
  - Gives each user of O(passwords) a SCRAM-SHA-512 credential when it has none (or is in
    O(rotate)), creates the ACLs of O(acls) that are missing and deletes the ACLs of those
    users that O(acls) no longer asks for.
options:
  bootstrap_servers:
    description: the brokers' TLS listener, host:port comma-separated
    type: str
    required: true
  ca_file: {description: the cluster CA on the controller, type: path, required: true}
  cert_file: {description: the controller's certificate (a super user), type: path, required: true}
  key_file: {description: its key, type: path, required: true}
  passwords: {description: Kafka user to password, type: dict, required: true}
  acls: {description: the layout's kafka_acls, type: list, elements: dict, required: true}
  rotate:
    description: users whose credential is replaced even if they have one
    type: list
    elements: str
    default: []
"""

_APP = str(Path(__file__).resolve().parents[3] / "app")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(
            argument_spec={
                "bootstrap_servers": {"type": "str", "required": True},
                "ca_file": {"type": "path", "required": True},
                "cert_file": {"type": "path", "required": True},
                "key_file": {"type": "path", "required": True},
                "passwords": {"type": "dict", "required": True, "no_log": True},
                "acls": {"type": "list", "elements": "dict", "required": True},
                "rotate": {"type": "list", "elements": "str", "default": []},
            }
        )
        if _APP not in sys.path:
            sys.path.insert(0, _APP)
        from kafka.errors import KafkaError  # noqa: PLC0415 - the controller's venv has it

        from rtm.kafka_access import AccessError, apply  # noqa: PLC0415 - path set above
        from rtm.kafka_client import Connection, Tls  # noqa: PLC0415

        tls = Tls(args["ca_file"], args["cert_file"], args["key_file"])
        try:
            outcome = apply(
                Connection.of(args["bootstrap_servers"], tls=tls),
                args["passwords"],
                args["acls"],
                args["rotate"],
            )
        except (AccessError, KafkaError, OSError, ValueError) as exc:
            raise AnsibleActionFail(
                f"Kafka users and ACLs through {args['bootstrap_servers']}: {exc}"
            ) from exc
        result.update(
            changed=outcome.changed,
            users_set=outcome.users_set,
            acls_added=outcome.acls_added,
            acls_removed=outcome.acls_removed,
        )
        return result
