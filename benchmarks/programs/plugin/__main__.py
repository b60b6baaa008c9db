"""One ``oppie:index:PhoneAgent`` per entry of ``agents.json``, through the plugin and its generated Python SDK.

The program of ``../agents`` (the dynamic ``PhoneAgent``) with the SDK's resource: the same names and arguments (the
SDK takes the same Python names), so the two measure the same stack through the two providers. Keep them in step.
"""

import json

from pulumi_oppie import PhoneAgent

with open("agents.json", encoding="utf-8") as file:
    agents = json.load(file)

for name, args in agents.items():
    PhoneAgent(name, **args)
