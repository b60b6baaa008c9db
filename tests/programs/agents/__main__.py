"""Declare what ``agents.json`` (written by the test) describes, the way users write stacks.

``agents.json``::

    {"agents": {"<logical name>": {"args": {...PhoneAgent args...},
                                   "refs": {"<arg>": "<other logical name>.<output>"},
                                   "opts": {"protect": true, "retain_on_delete": true, "ignore_changes": [...],
                                            "delete_before_replace": true, "replace_on_changes": [...],
                                            "custom_timeouts": {"create": "1s"}}}},
     "secret_args": {"<logical name>": ["<arg>", ...]},
     "gets": {"<logical name>": "<agent id>"}}

Every agent exports ``<name>.id``, ``<name>.provider_external_id`` and ``<name>.phone_number``; every looked-up
agent ``<name>.phone_number`` and ``<name>.name``.
"""

import json

import pulumi

from oppie_pulumi import PhoneAgent

with open("agents.json", encoding="utf-8") as file:
    spec = json.load(file)

made: dict[str, PhoneAgent] = {}
for name, entry in spec.get("agents", {}).items():
    args = dict(entry.get("args", {}))
    for arg in spec.get("secret_args", {}).get(name, []):
        args[arg] = pulumi.Output.secret(args[arg])
    for arg, ref in entry.get("refs", {}).items():
        other, output = ref.split(".")
        args[arg] = getattr(made[other], output)
    opts = dict(entry.get("opts", {}))
    if "custom_timeouts" in opts:
        opts["custom_timeouts"] = pulumi.CustomTimeouts(**opts["custom_timeouts"])
    made[name] = PhoneAgent(name, **args, opts=pulumi.ResourceOptions(**opts))
    for output in ("id", "provider_external_id", "phone_number"):
        pulumi.export(f"{name}.{output}", getattr(made[name], output))

for name, agent_id in spec.get("gets", {}).items():
    found = PhoneAgent.get(name, agent_id)
    pulumi.export(f"{name}.phone_number", found.phone_number)
    pulumi.export(f"{name}.name", found.name)
