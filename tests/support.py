"""What the tests share besides fixtures: the sandbox token and a program builder."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from oppie_pulumi_testing import Engine, ProviderHost, Registration, run_program
from pulumi.dynamic import Config, ConfigureRequest

from oppie_pulumi import PhoneAgent, PhoneAgentProvider
from oppie_pulumi.sandbox import SandboxServer

# Distinctive, so a scan for it in state, logs and messages cannot match anything by chance.
TOKEN = "tok_TEST_9f8e7d6c5b4a"


def examples(full: int) -> int:
    """How many generated inputs a property test tries: ``full`` in CI and ``make test``; a tenth under
    ``make mutation``, where the suite runs once per mutant (mutmut sets ``MUTANT_UNDER_TEST`` in its workers):
    the hand-picked cases beside each property test still run whole, and a tenth of the generated ones keeps
    the run within hours instead of a day."""
    return max(full // 10, 50) if os.environ.get("MUTANT_UNDER_TEST") else full


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


def configured_provider(base_url: str, **config: str) -> PhoneAgentProvider:
    """A provider in this process, configured as the engine configures it: stack config ``oppie:<key>`` (the
    sandbox token, ``base_url``, then ``config``)."""
    provider = PhoneAgentProvider()
    settings = {"oppie:apiToken": TOKEN, "oppie:baseUrl": base_url}
    settings.update({f"oppie:{key}": value for key, value in config.items()})
    provider.configure(ConfigureRequest(Config(settings, "p")))
    return provider


# Bound and never listening, for the rest of the run: a port given back could be taken at once by whatever binds
# next (seen in CI: the engine or a language host of the very `pulumi up` under test answered "illegal request
# line"), while a bound socket with no listen() keeps the port and refuses every connection.
_RESERVED: list[socket.socket] = []


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections to it are refused, until the test run ends."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _RESERVED.append(sock)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def created_agent(provider: PhoneAgentProvider, **spec: Any) -> tuple[str, dict[str, Any]]:
    """``(id, outputs)`` of an agent named "Support" (plus ``spec``) the provider created."""
    result = provider.create(provider.check({}, {"name": "Support", **spec}).inputs)
    assert result.outs is not None
    return str(result.id), result.outs


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module: the tests run the benchmarks' own scenarios (benchmarks is no package,
    and the benchmarks never import tests)."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module
