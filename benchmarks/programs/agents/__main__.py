"""One ``PhoneAgent`` per entry of ``agents.json`` (written by ``benchmarks/engine.py``): ``{"<name>": {args}}``.

Its floor, ``../noop``, is the same program with a no-op dynamic provider: keep the two in step.
"""

import json

from oppie_pulumi import PhoneAgent

with open("agents.json", encoding="utf-8") as file:
    agents = json.load(file)

for name, args in agents.items():
    PhoneAgent(name, **args)
