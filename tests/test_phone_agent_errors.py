"""Errors of ``phone_agent.PhoneAgentProvider``: one scripted case per failure mode, through the real provider
host against the sandbox's faults.

Each asserts what `pulumi up` would print (operation, agent, status, the API's message, the fix) and
what exists on the server afterwards: a failure never leaves an agent the state does not know.
"""

from __future__ import annotations

import socket
import traceback
from typing import Any

import httpx
import pytest
from oppie_pulumi_testing import Engine, HostError, ProviderHost, StateEntry

from oppie_pulumi._exceptions import ConfigError
from oppie_pulumi.phone_agent import _briefly
from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN, HostFactory, StateFactory, agents_program

SUPPORT = {"resource": "support", "name": "Support"}


def up_one(engine: Engine) -> str | None:
    """Run `up` for SUPPORT; the error message, if it failed."""
    summary = engine.up(agents_program(SUPPORT))
    return summary.failed.get("support")


def assert_state_matches_server(state: dict[str, StateEntry], sandbox: SandboxServer) -> None:
    assert sorted(e.id for e in state.values()) == sorted(a["id"] for a in sandbox.agents())


def test_wrong_token_is_unauthorized_with_the_fix_and_without_the_token(
    sandbox: SandboxServer, engine_for: StateFactory
) -> None:
    state: dict[str, StateEntry] = {}
    with engine_for(state, apiToken="wrong-token-31337") as engine:
        message = up_one(engine)
    assert message is not None
    # The create's first call, its baseline list, is refused: nothing was sent to create.
    assert "create phone agent 'Support' failed: GET /phone answered 401 Unauthorized" in message
    assert "POST /phone" not in sandbox.stats()["by_route"]
    assert "pulumi config set --secret oppie:apiToken" in message and "OPPIE_API_TOKEN" in message
    assert "wrong-token-31337" not in message
    assert sandbox.agents() == [] and state == {}


def test_missing_token_says_both_ways_to_set_it(sandbox: SandboxServer) -> None:
    with ProviderHost() as host:
        host.configure({"oppie:baseUrl": sandbox.url})
        message = up_one(Engine(host, {}))
    assert message is not None
    assert "no API token is configured" in message
    assert "pulumi config set --secret oppie:apiToken" in message and "OPPIE_API_TOKEN" in message


def test_token_from_environment_is_used_when_stack_config_has_none(sandbox: SandboxServer) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPPIE_")}
    env.update(OPPIE_API_TOKEN=TOKEN, OPPIE_BASE_URL=sandbox.url)
    with ProviderHost(env=env) as host:
        host.configure({})
        assert up_one(Engine(host, {})) is None
    assert len(sandbox.agents()) == 1


def test_stack_config_takes_precedence_over_environment(sandbox: SandboxServer) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPPIE_")}
    env.update(OPPIE_API_TOKEN="env-token-wrong", OPPIE_BASE_URL="http://127.0.0.1:9")
    with ProviderHost(env=env) as host:
        host.configure({"oppie:apiToken": TOKEN, "oppie:baseUrl": sandbox.url})
        assert up_one(Engine(host, {})) is None
    assert len(sandbox.agents()) == 1


def test_forbidden_names_the_missing_scope(sandbox: SandboxServer, engine_for: StateFactory) -> None:
    state: dict[str, StateEntry] = {}
    with engine_for(state) as engine:
        assert up_one(engine) is None
        sandbox.set_faults(fail_next=1, fail_status=403)
        summary = engine.refresh()
    message = summary.failed["support"]
    agent_id = next(iter(state.values())).id
    assert f"read phone agent 'Support' ({agent_id}) failed: GET /phone answered 403 Forbidden" in message
    assert "phone:read / phone:write scope" in message


def test_update_of_an_agent_deleted_elsewhere_is_not_found_naming_it(
    sandbox: SandboxServer, engine_for: StateFactory
) -> None:
    state: dict[str, StateEntry] = {}
    with engine_for(state) as engine:
        assert up_one(engine) is None
        agent_id = next(iter(state.values())).id
        httpx.delete(f"{sandbox.url}/phone/{agent_id}", headers={"Authorization": f"Bearer {TOKEN}"})
        summary = engine.up(agents_program({**SUPPORT, "voice_id": "v2"}))
    message = summary.failed["support"]
    assert f"update phone agent 'Support' ({agent_id}) failed: PATCH /phone/{agent_id} answered 404" in message
    assert agent_id in message
    assert "deleted outside Pulumi" in message and "pulumi refresh" in message


@pytest.mark.parametrize(
    ("faults", "config", "requests"),
    [
        # Each fault hits the POST only (writes_only), after the create's baseline list (one GET).
        # With enforce_retry_after the sandbox answers 429 again to a retry that comes before Retry-After has
        # passed: a client that ignored it (its first backoff is at most 0.25 s) would meet a third 429.
        pytest.param(
            {"rate_limit_next": 2, "retry_after_s": 0.5, "enforce_retry_after": True, "writes_only": True},
            {},
            {"GET /phone": 1, "POST /phone": 3},
            id="429 twice: waits Retry-After",
        ),
        # Two unapplied 503s for the POST: each is followed by a look (a list), which finds nothing, then one more
        # POST. A 503 the API sent itself means it is done with the request, so there is no last look for a POST
        # landing late. Without the looks: the baseline and three POSTs only.
        pytest.param(
            {"fail_next": 2, "writes_only": True},
            {},
            {"POST /phone": 3, "GET /phone": 3},
            id="503 twice: looks, then retries",
        ),
        pytest.param(
            {"fail_after_apply_next": 1}, {}, {"POST /phone": 1, "GET /phone": 2}, id="503 after apply: looks, adopts"
        ),
        pytest.param({"delay_after_apply_ms": 1500}, {"timeoutSeconds": "0.5"}, None, id="answer after the timeout"),
        pytest.param(
            {"drop_after_apply": 1}, {}, {"POST /phone": 1, "GET /phone": 2}, id="connection dropped after apply"
        ),
        pytest.param(
            {"malformed_json_next": 1, "writes_only": True},
            {},
            {"POST /phone": 2, "GET /phone": 2},
            id="truncated JSON",
        ),
    ],
)
def test_create_under_a_fault_makes_exactly_one_agent_and_records_it(
    sandbox: SandboxServer,
    engine_for: StateFactory,
    faults: dict[str, Any],
    config: dict[str, str],
    requests: dict[str, int] | None,
) -> None:
    sandbox.set_faults(**faults)
    state: dict[str, StateEntry] = {}
    with engine_for(state, **config) as engine:
        assert up_one(engine) is None
    assert len(sandbox.agents()) == 1
    assert_state_matches_server(state, sandbox)
    if requests is not None:
        assert sandbox.stats()["by_route"] == requests
    if "rate_limit_next" in faults:
        assert sandbox.stats()["by_status"] == {"200": 1, "429": 2, "201": 1}
        assert sandbox.faults_fired() == {}  # no retry came early


def test_server_errors_on_refresh_are_retried(sandbox: SandboxServer, engine_for: StateFactory) -> None:
    state: dict[str, StateEntry] = {}
    with engine_for(state) as engine:
        assert up_one(engine) is None
        sandbox.set_faults(fail_next=2, fail_status=500)
        summary = engine.refresh()
    assert summary.same == ["support"] and not summary.failed


def test_read_timeout_is_a_clear_transport_error(sandbox: SandboxServer, engine_for: StateFactory) -> None:
    state: dict[str, StateEntry] = {}
    with engine_for(state) as engine:
        assert up_one(engine) is None
    sandbox.set_faults(latency_ms=1000)
    with engine_for(state, timeoutSeconds="0.3", maxRetries="1") as engine:
        message = engine.refresh().failed["support"]
    agent_id = next(iter(state.values())).id
    assert f"read phone agent 'Support' ({agent_id}) failed: GET /phone timed out (ReadTimeout" in message
    assert sandbox.url in message


def test_malformed_json_on_read_is_a_clear_error(sandbox: SandboxServer, engine_for: StateFactory) -> None:
    state: dict[str, StateEntry] = {}
    with engine_for(state) as engine:
        assert up_one(engine) is None
        # More unreadable answers than the retries (maxRetries 3): a read retries them like a 5xx.
        sandbox.set_faults(malformed_json_next=4)
        message = engine.refresh().failed["support"]
    assert "failed: GET /phone answered 200 with a body that is not what the API documents" in message
    assert "MalformedResponse: read phone agent 'Support' (" in message
    assert "KeyError" not in message


def test_html_error_page_is_reported_by_status_and_text(sandbox: SandboxServer, engine_for: StateFactory) -> None:
    state: dict[str, StateEntry] = {}
    with engine_for(state) as engine:
        assert up_one(engine) is None
    sandbox.set_faults(fail_next=5, fail_status=502, html_errors=True)
    with engine_for(state, maxRetries="0") as engine:
        message = engine.refresh().failed["support"]
    assert "GET /phone answered 502 Bad Gateway" in message and "no JSON error body" in message


def test_connection_refused_names_the_base_url(sandbox: SandboxServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with ProviderHost() as host:
        host.configure({"oppie:apiToken": TOKEN, "oppie:baseUrl": closed, "oppie:maxRetries": "1"})
        message = up_one(Engine(host, {}))
    assert message is not None
    assert "create phone agent 'Support' failed: GET /phone failed (ConnectError" in message
    assert closed in message


def test_invalid_request_carries_the_api_message(sandbox: SandboxServer, host_for: HostFactory) -> None:
    [reg] = agents_program(SUPPORT)
    with host_for() as host:
        inputs, _ = host.check(reg.urn, {}, reg.inputs)
        inputs["model"] = "oppie-vox-9"  # past check, as a hand-edited state would be
        with pytest.raises(HostError) as caught:
            host.create(reg.urn, inputs)
    message = caught.value.message
    assert "InvalidRequest: create phone agent 'Support' failed: POST /phone answered 400 Bad Request" in message
    assert "model must be one of the following values" in message
    assert sandbox.agents() == []


def _deep(error: Exception) -> None:
    raise error


def test_our_errors_leave_the_adapter_without_the_frames_below_it_and_a_bug_keeps_them() -> None:
    """The dynamic host prints every error's traceback: ours stop at the adapter (the message says it all), a bug's
    go down to where it happened (the report needs them). The real-CLI side: tests/test_real_config.py."""
    with pytest.raises(ConfigError) as ours:
        _briefly(_deep)(ConfigError("oppie:apiToken is not set"))
    frames = [frame.name for frame in traceback.extract_tb(ours.value.__traceback__)]
    assert "reported" in frames and "_deep" not in frames, frames
    assert ours.value.__suppress_context__

    with pytest.raises(KeyError) as bug:
        _briefly(_deep)(KeyError("id"))
    assert [frame.name for frame in traceback.extract_tb(bug.value.__traceback__)][-1] == "_deep"
