"""Take over two live agents (customers already call their numbers) instead of creating new ones.

With ``adopt_id``, the first ``pulumi up`` does not POST: it finds the agent with that id, PATCHes only
the fields that differ from what is declared here, and records it in the state, keeping its id and phone
number. From then on the agent is managed like any other: edits here update it, and removing it from the
program (or ``pulumi destroy``) deletes it.
"""

import pulumi

from oppie_pulumi import PhoneAgent

config = pulumi.Config()

support = PhoneAgent(
    "support-line",
    name="Acme support line",
    language="en",
    first_message="Thanks for calling Acme. How can I help?",
    instructions=[
        "Answer questions about orders, deliveries and returns.",
        "Offer a human when the caller asks for one.",
    ],
    handoff_phone_number="+14155550123",
    adopt_id=config.require("supportAgentId"),
    # A live line: refuse to delete it by accident (`pulumi destroy` and removals fail until unprotected).
    opts=pulumi.ResourceOptions(protect=True),
)

follow_up = PhoneAgent(
    "follow-up",
    name="Acme delivery follow-up",
    type="outbound",
    language="en",
    first_message="Hi, this is Acme calling about your recent delivery.",
    data_collection_fields=["delivery_ok", "comments"],
    action_ids=[],
    adopt_id=config.require("followUpAgentId"),
)

pulumi.export("support_line_id", support.id)
pulumi.export("support_line_number", support.phone_number)
pulumi.export("follow_up_id", follow_up.id)
pulumi.export("follow_up_number", follow_up.phone_number)
