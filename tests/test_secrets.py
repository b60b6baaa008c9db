"""The API token never lands in state, in the pickled provider, in an error message or in a log."""

from __future__ import annotations

import base64
import json
import pickle

from oppie_pulumi import PhoneAgentProvider
from oppie_pulumi.sandbox import SandboxServer
from oppie_pulumi.testing import Engine, ProviderHost, StateEntry

from .support import TOKEN, agents_program

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
