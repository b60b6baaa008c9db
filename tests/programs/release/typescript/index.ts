// One agent through the plugin, declared with the installed npm SDK (@oppie/pulumi-oppie).
import * as oppie from "@oppie/pulumi-oppie";

const agent = new oppie.PhoneAgent("line", { name: "Release line (TypeScript)", language: "en" });

export const id = agent.id;
export const phone_number = agent.phoneNumber;
