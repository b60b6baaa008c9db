"""The root stack: an inbound support line and an outbound follow-up agent.

`make up` runs it against the local sandbox (`oppie:baseUrl` defaults to it in Pulumi.yaml); point
`oppie:baseUrl` and `oppie:apiToken` at the real API to run it for real.
"""

import pulumi

from oppie_pulumi import PhoneAgent

config = pulumi.Config()

support = PhoneAgent(
    "support-line",
    name="Acme support line",
    type="inbound",
    language="en",
    first_message="Thanks for calling Acme. How can I help?",
    instructions=[
        "Answer questions about orders, deliveries and returns.",
        "Hand off to a human when the caller asks for one or is upset.",
    ],
    handoff_phone_number=config.get("supportHandoff") or "+14155550123",
    interruptible=True,
)

follow_up = PhoneAgent(
    "follow-up",
    name="Acme delivery follow-up",
    type="outbound",
    language="en",
    first_message="Hi, this is Acme calling about your recent delivery.",
    instructions=["Ask whether the delivery arrived in good shape.", "Keep the call under two minutes."],
    data_collection_fields=["delivery_ok", "comments"],
    action_ids=[],  # no actions: this agent only talks
    # A cross-resource reference: unknown until the support line exists, so a first preview shows it as
    # "output<string>" and check lets it through unvalidated.
    handoff_phone_number=support.phone_number,
)

pulumi.export("support_line_id", support.id)
pulumi.export("support_line_number", support.phone_number)
pulumi.export("follow_up_id", follow_up.id)
pulumi.export("follow_up_number", follow_up.phone_number)
