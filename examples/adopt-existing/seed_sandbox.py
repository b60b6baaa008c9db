"""Make two "legacy" agents in the sandbox, as if built in the dashboard, and print how to adopt them.

    python seed_sandbox.py [--base-url http://127.0.0.1:8787] [--token sandbox-token]

The sandbox only: the token is the sandbox's well-known one, given on the command line.
"""

from __future__ import annotations

import argparse

import httpx

# What the dashboard made: close to the program's declarations, but not equal, so that adoption has a
# few fields to PATCH (the first message and instructions of the support line, the follow-up's fields).
LEGACY_AGENTS = {
    "supportAgentId": {
        "name": "Acme support line",
        "language": "en",
        "first_message": "Hello, Acme here.",
        "handoff_phone_number": "+14155550123",
    },
    "followUpAgentId": {
        "name": "Acme delivery follow-up",
        "type": "outbound",
        "language": "en",
        "first_message": "Hi, this is Acme calling about your recent delivery.",
        "data_collection_fields": ["delivery_ok"],
    },
}


def seed(base_url: str, token: str) -> dict[str, dict[str, str]]:
    """POST the legacy agents; returns, per config key, the agent as the API answered (id, phone_number)."""
    created = {}
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        for key, body in LEGACY_AGENTS.items():
            response = client.post("/phone", json=body)
            response.raise_for_status()
            created[key] = response.json()
    return created


def main() -> None:
    """Seed the sandbox and print the `pulumi config set` commands."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8787")
    parser.add_argument("--token", default="sandbox-token")
    args = parser.parse_args()
    for key, agent in seed(args.base_url, args.token).items():
        print(f"# {agent['name']}: {agent['phone_number']}")
        print(f"pulumi config set {key} {agent['id']}")


if __name__ == "__main__":
    main()
