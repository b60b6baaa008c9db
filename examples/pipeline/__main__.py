"""The agents this repository deploys through CI (see phone-agents.yml): change them by pull request."""

import pulumi

from oppie_pulumi import PhoneAgent

support = PhoneAgent(
    "support-line",
    name="Acme support line",
    language="en",
    first_message="Thanks for calling Acme. How can I help?",
    instructions=["Answer questions about orders, deliveries and returns."],
    handoff_phone_number="+14155550123",
)

appointments = PhoneAgent(
    "appointment-reminders",
    name="Acme appointment reminders",
    type="outbound",
    language="en",
    first_message="Hi, this is Acme calling to confirm your appointment.",
    data_collection_fields=["confirmed", "new_time"],
    action_ids=[],
)

pulumi.export("support_line_id", support.id)
pulumi.export("support_line_number", support.phone_number)
pulumi.export("appointment_reminders_number", appointments.phone_number)
