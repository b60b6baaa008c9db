"""What the tests share besides fixtures: the sandbox token and a program builder."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx

from oppie_pulumi import PhoneAgent
from oppie_pulumi.sandbox import SandboxServer
from oppie_pulumi.testing import Engine, ProviderHost, Registration, run_program

# Distinctive, so a scan for it in state, logs and messages cannot match anything by chance.
TOKEN = "tok_TEST_9f8e7d6c5b4a"

HostFactory = Callable[..., AbstractContextManager[ProviderHost]]
StateFactory = Callable[..., AbstractContextManager[Engine]]


def agents_program(*specs: dict[str, Any]) -> list[Registration]:
    """Registrations of a program declaring one PhoneAgent per spec (``resource`` is its logical name)."""

    def program() -> None:
        for spec in specs:
            spec = dict(spec)
            PhoneAgent(spec.pop("resource"), **spec)

    return run_program(program)


def dashboard(sandbox: SandboxServer) -> httpx.Client:
    """What a person editing agents in the dashboard does: the API, behind the provider's back."""
    return httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
