// Two phone agents through the oppie provider plugin, with the TypeScript SDK generated from its schema (`make sdk`).
import * as pulumi from "@pulumi/pulumi";
import * as oppie from "@oppie/pulumi-oppie";

const config = new pulumi.Config();
// Changing the model replaces the agent: try `pulumi config set supportModel oppie-vox-2` and `pulumi preview --diff`.
const supportModel = config.get("supportModel") ?? "oppie-vox";

const support = new oppie.PhoneAgent("support", {
    name: "Acme support line",
    language: "en",
    firstMessage: "Thanks for calling Acme. How can I help?",
    handoffPhoneNumber: "+14155550123",
    model: supportModel,
});

const followUp = new oppie.PhoneAgent(
    "followUp",
    {
        name: "Acme follow-up",
        type: "outbound",
        interruptible: false,
        actionIds: [],
        // Known only once the support line exists: a preview shows it as unknown.
        handoffPhoneNumber: support.phoneNumber,
        instructions: ["Ask whether the issue from the support call is solved."],
    },
    // The plugin honours custom timeouts: it stops waiting for the rate limit or a retry rather than overrun them.
    { customTimeouts: { create: "2m", update: "2m" } },
);

export const supportNumber = support.phoneNumber;
export const supportId = support.id;
export const followUpId = followUp.id;
export const followUpHandoff = followUp.handoffPhoneNumber;
