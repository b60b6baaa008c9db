"""An outbound agent that collects answers on each call and posts them to a webhook.

A webhook URL often carries a credential (a signed path, a query token), so it is secret all the way:
read from secret config, and listed in ``additional_secret_outputs`` so that the agent's output of the
same name is encrypted in the state and shown as ``[secret]``, whatever the engine infers.
"""

import pulumi

from oppie_pulumi import PhoneAgent

# Used when the stack sets no `webhookUrl`, so that the example runs as is against the sandbox. It is
# wrapped as a secret like the config value would be: the program treats both the same way.
PLACEHOLDER_WEBHOOK_URL = "https://hooks.example.com/oppie/renewals"

config = pulumi.Config()
webhook_url = config.get_secret("webhookUrl") or pulumi.Output.secret(PLACEHOLDER_WEBHOOK_URL)

renewals = PhoneAgent(
    "renewal-survey",
    name="Acme renewal survey",
    type="outbound",
    language="en",
    first_message="Hi, this is Acme calling about your subscription renewal. Do you have a minute?",
    instructions=[
        "Ask whether the customer plans to renew, and why or why not.",
        "Ask for a satisfaction score from 1 to 10.",
        "Keep the call under three minutes and thank the customer.",
    ],
    data_collection_fields=["will_renew", "reason", "satisfaction_score"],
    data_collection_webhook_url=webhook_url,
    # This agent only talks: no actions (None would allow all of them).
    action_ids=[],
    opts=pulumi.ResourceOptions(additional_secret_outputs=["data_collection_webhook_url"]),
)

pulumi.export("phone_number", renewals.phone_number)
# Shown as [secret]; `pulumi stack output webhook_url --show-secrets` reveals it.
pulumi.export("webhook_url", renewals.data_collection_webhook_url)
