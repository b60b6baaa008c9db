"""One agent through the plugin, declared with the installed Python SDK (pulumi_oppie)."""

import pulumi
import pulumi_oppie as oppie

agent = oppie.PhoneAgent("line", name="Release line (Python SDK)", language="en")
pulumi.export("id", agent.id)
pulumi.export("phone_number", agent.phone_number)
