"""The API token never lands in state, in the pickled provider, in an error message or in a log, and no error's
cause chain carries the request (and its Authorization header) (issue 11, item 5).
"""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Iterator
from typing import Any

import pytest
from oppie_pulumi_testing import Engine, ProviderHost, StateEntry
from pulumi.dynamic import Config, ConfigureRequest

from oppie_pulumi import OppieError, PhoneAgentProvider
from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN, agents_program, closed_port_url

SPEC = {"resource": "support", "name": "Support", "data_collection_webhook_url": "https://hooks.example.com/x"}


def test_token_appears_in_no_state_message_pickle_or_log_over_a_lifecycle(sandbox: SandboxServer) -> None:
    state: dict[str, StateEntry] = {}
    seen: list[str] = []
    config = {"oppie:apiToken": TOKEN, "oppie:baseUrl": sandbox.url, "oppie:maxRetries": "0"}
    hosts: list[ProviderHost] = []
    for step in ("up", "update", "faults", "refresh", "destroy"):
        with ProviderHost() as host:
            hosts.append(host)
            host.configure(config)
            engine = Engine(host, state)
            if step == "up":
                summary = engine.up(agents_program(SPEC))
            elif step == "update":
                summary = engine.up(agents_program({**SPEC, "first_message": "hello"}))
            elif step == "faults":
                sandbox.set_faults(fail_next=3, fail_status=401)
                summary = engine.up(agents_program({**SPEC, "first_message": "bye"}))
                assert summary.failed, "the injected 401 should have failed the update"
                sandbox.reset_faults()
            elif step == "refresh":
                summary = engine.refresh()
            else:
                summary = engine.destroy()
            seen += list(summary.failed.values())
            seen.append(json.dumps([vars(e) for e in state.values()], default=str))
    seen += [host.stderr for host in hosts]
    # a wrong token must not leak either
    with ProviderHost() as host:
        host.configure({**config, "oppie:apiToken": "wrong-" + TOKEN})
        seen += list(Engine(host, {}).up(agents_program(SPEC)).failed.values())
    seen.append(host.stderr)

    assert any("401" in text for text in seen), "the failure cases did not run"
    for text in seen:
        assert TOKEN not in text


def test_pickled_provider_is_a_few_bytes_of_plain_settings_without_token(sandbox: SandboxServer) -> None:
    [registration] = agents_program(SPEC)
    serialized = registration.inputs["__provider"]
    raw = base64.b64decode(serialized)
    assert len(serialized) <= 512
    assert TOKEN.encode() not in raw
    provider = pickle.loads(raw)
    assert isinstance(provider, PhoneAgentProvider)


def test_configured_provider_pickles_without_its_settings() -> None:
    from pulumi.dynamic import Config, ConfigureRequest

    provider = PhoneAgentProvider()
    provider.configure(ConfigureRequest(Config({"oppie:apiToken": TOKEN}, "proj")))
    assert TOKEN.encode() not in pickle.dumps(provider)
    assert TOKEN not in repr(provider._settings)


def chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


@pytest.mark.parametrize(
    ("faults", "config"),
    [
        pytest.param({"latency_ms": 600}, {"timeoutSeconds": "0.2"}, id="timeout"),
        pytest.param({"drop_after_apply": 10}, {}, id="dropped connection"),
        pytest.param({"fail_next": 10}, {}, id="5xx"),
        pytest.param({"malformed_json_next": 10}, {}, id="unreadable answer"),
        pytest.param({}, {"baseUrl": "closed"}, id="connection refused"),
        pytest.param({}, {"apiToken": "wrong-" + TOKEN}, id="401"),
    ],
)
def test_no_error_chain_carries_the_request_or_its_token(
    sandbox: SandboxServer, faults: dict[str, Any], config: dict[str, str]
) -> None:
    settings = {"oppie:apiToken": TOKEN, "oppie:baseUrl": sandbox.url, "oppie:maxRetries": "0"}
    settings.update({f"oppie:{key}": value for key, value in config.items()})
    if settings["oppie:baseUrl"] == "closed":
        settings["oppie:baseUrl"] = closed_port_url()
    provider = PhoneAgentProvider()
    provider.configure(ConfigureRequest(Config(settings, "p")))
    inputs = provider.check({}, {"name": "Support"}).inputs
    sandbox.set_faults(**faults)
    errors: list[BaseException] = []
    for operation in (
        lambda: provider.create(inputs),
        lambda: provider.read("agt_1", {"name": "Support"}),
        lambda: provider.update("agt_1", {"name": "Support"}, {**inputs, "voice_id": "v2"}),
        lambda: provider.delete("agt_1", {"name": "Support"}),
    ):
        try:
            operation()
        except OppieError as exc:
            errors.append(exc)
    assert errors, "no operation failed: the fault did not fire"
    for error in errors:
        for link in chain(error):
            # Only the project's own errors: an httpx error would carry the request, headers and all.
            assert isinstance(link, OppieError), f"{type(link).__module__}.{type(link).__name__} in the chain"
            assert TOKEN not in repr(link) and TOKEN not in repr(vars(link))
            assert TOKEN.encode() not in pickle.dumps(link)
