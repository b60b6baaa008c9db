"""One agent through the dynamic resource of the installed oppie-pulumi wheel."""

import pulumi

from oppie_pulumi import PhoneAgent

agent = PhoneAgent("line", name="Release line (dynamic)", language="en")
pulumi.export("id", agent.id)
pulumi.export("phone_number", agent.phone_number)
