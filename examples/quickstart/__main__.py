"""Quickstart: one inbound phone agent, and the phone number the API provisions for it."""

import pulumi

from oppie_pulumi import PhoneAgent

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
)

pulumi.export("agent_id", support.id)
pulumi.export("phone_number", support.phone_number)
