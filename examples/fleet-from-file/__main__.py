"""A fleet of phone agents declared in a data file (``agents.yaml``), one entry per agent.

Teammates who do not write Python edit the file; this program only reads it. The whole file is checked
before any agent is declared, so a typo fails the preview with the file, line, entry and field, and
changes nothing.
"""

import pulumi
from fleet import load_fleet

from oppie_pulumi import PhoneAgent

config = pulumi.Config()
# Relative to the project directory, where Pulumi runs the program.
fleet_file = config.get("fleetFile") or "agents.yaml"

phone_numbers = {}
for entry in load_fleet(fleet_file):
    agent = PhoneAgent(entry.resource, **entry.args, adopt_id=entry.adopt_id)
    phone_numbers[entry.resource] = agent.phone_number

pulumi.export("phone_numbers", phone_numbers)
