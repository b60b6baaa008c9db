"""Fixtures: a real sandbox of the API on 127.0.0.1:0 and real provider hosts configured against it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from oppie_pulumi_testing import Engine, ProviderHost, StateEntry

from oppie_pulumi.sandbox import SandboxConfig, SandboxServer, serve

from .support import TOKEN, HostFactory, StateFactory


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A fresh sandbox with no rate limit (tests that want one set it) and no faults."""
    with serve(SandboxConfig(token=TOKEN, db_path=":memory:", rate_limit_per_minute=None)) as server:
        yield server


@pytest.fixture
def host_for(sandbox: SandboxServer) -> HostFactory:
    """Start a provider host configured for the sandbox, as one `pulumi` command would.

    Each `pulumi up/refresh/destroy` starts its own host process, so tests open one per step.
    """

    @contextmanager
    def open_host(**config: str) -> Iterator[ProviderHost]:
        settings = {"oppie:apiToken": TOKEN, "oppie:baseUrl": sandbox.url, "oppie:maxRetries": "3"}
        settings.update({f"oppie:{key}": value for key, value in config.items()})
        with ProviderHost() as host:
            host.configure(settings)
            yield host

    return open_host


@pytest.fixture
def engine_for(host_for: HostFactory) -> StateFactory:
    """`engine_for(state, **config)`: an Engine on a fresh host, sharing `state` across steps."""

    @contextmanager
    def open_engine(state: dict[str, StateEntry], parallel: int = 4, **config: str) -> Iterator[Engine]:
        with host_for(**config) as host:
            yield Engine(host, state, parallel=parallel)

    return open_engine


# The sandbox's own conformance tests share one server per module, reset before each test.
@pytest.fixture(scope="module")
def shared_server() -> Iterator[SandboxServer]:
    with serve(SandboxConfig(db_path=":memory:", rate_limit_per_minute=None)) as server:
        yield server


@pytest.fixture
def server(shared_server: SandboxServer) -> SandboxServer:
    shared_server.reset()
    return shared_server


@pytest.fixture
def client(server: SandboxServer) -> Iterator[httpx.Client]:
    """An httpx client with the sandbox's token, for tests of the sandbox itself."""
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=5) as client:
        yield client
