"""The floor of ``../agents``: one ``NoopAgent`` per entry of ``agents.json``, the same arguments and outputs.

Everything the engine, the language host and the dynamic-provider host do for a ``PhoneAgent`` happens here
too; only the provider's own work (validation, the API) is missing.
"""

import json

from noop_provider import NoopAgent

with open("agents.json", encoding="utf-8") as file:
    agents = json.load(file)

for name, args in agents.items():
    NoopAgent(name, **args)
