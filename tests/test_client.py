"""``_client.PhoneApiClient``: what it retries (an unreadable answer to a read, an update or a delete, like a 5xx;
a refused connection, which never reached the API), a request that could not be sent at all (named, never
retried, its token unshown), one shared client per settings, and the rate limit as the client counts it
(issue 11, item 4). Real HTTP to the sandbox where an answer matters.
"""

from __future__ import annotations

import socket

import pytest

from oppie_pulumi import ConfigError, PhoneAgentProvider, Settings, TransportError
from oppie_pulumi._client import PhoneApiClient, client_for
from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN, configured_provider, created_agent


def configured(base_url: str, **config: str) -> PhoneAgentProvider:
    return configured_provider(base_url, **{"maxRetries": "2", **config})


def test_the_client_for_one_settings_is_built_once_and_shared() -> None:
    """One pool of keep-alive connections per settings, whatever the number of operations (or threads)."""
    settings = Settings(api_token="tok_abcdef123456", base_url="http://127.0.0.1:9")
    other = Settings(api_token="tok_abcdef123456", base_url="http://127.0.0.1:10")
    assert client_for(settings) is client_for(settings)
    assert client_for(other) is not client_for(settings)


def test_a_create_whose_connection_was_refused_is_retried_because_it_never_reached_the_api() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: connections are refused
        waits: list[float] = []
        client = PhoneApiClient(Settings(api_token="tok_abcdef123456", base_url=url, max_retries=2), sleep=waits.append)
        with pytest.raises(TransportError, match="never reached the API") as caught:
            client.create({"name": "Support"}, label="'Support'")
    assert caught.value.may_have_reached_api is False
    assert len(waits) == 2


def test_answered_requests_count_against_the_limit_and_refused_ones_give_their_place_back(
    sandbox: SandboxServer,
) -> None:
    """With 2 requests a minute, a third request after two answers waits for the window; after a 429 (the API
    did not count it) it does not."""
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    client = PhoneApiClient(Settings(api_token=TOKEN, base_url=sandbox.url, max_requests_per_minute=2), sleep=sleep)
    client._limiter._clock = lambda: now[0]

    sandbox.set_faults(rate_limit_next=1, retry_after_s=0)
    try:
        client.list()  # a 429, then an answer: only the answer counts
        client.list()
        assert waits == [0.0]  # the Retry-After of the 429, and no wait for the window
        client.list()
        assert waits[1:] == [pytest.approx(60.0)]
    finally:
        client._http.close()


def test_a_base_url_the_http_client_cannot_use_is_a_config_error_naming_the_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        PhoneApiClient(Settings(api_token="tok_abcdef123456", base_url="http://\x00x"))
    assert str(caught.value) == (
        "oppie:baseUrl / OPPIE_BASE_URL is not a URL the HTTP client can use: check it for stray characters"
    )
    assert caught.value.__context__ is None  # raised outside the handler: no httpx error rides along


# -- an unreadable answer to GET, PATCH or DELETE is retried like a 5xx (issue 11, item 4) --------------------


@pytest.mark.parametrize("fault", ["malformed_json_next", "truncate_next"])
def test_an_unreadable_answer_to_a_read_is_retried(sandbox: SandboxServer, fault: str) -> None:
    provider = configured(sandbox.url)
    agent_id, outs = created_agent(provider)
    sandbox.set_faults(**{fault: 1})
    sandbox.reset_stats()

    result = provider.read(agent_id, outs)

    assert result.id == agent_id
    assert sandbox.stats()["by_route"] == {"GET /phone": 2}


def test_an_unreadable_answer_to_an_update_is_retried(sandbox: SandboxServer) -> None:
    """Regression: one truncated PATCH answer (not applied) failed the update."""
    provider = configured(sandbox.url)
    agent_id, outs = created_agent(provider)
    sandbox.set_faults(malformed_json_next=1)
    sandbox.reset_stats()

    updated = provider.update(agent_id, outs, provider.check(outs, {"name": "Support", "voice_id": "v2"}).inputs)

    assert updated.outs is not None and updated.outs["voice_id"] == "v2"
    assert sandbox.stats()["by_route"] == {"PATCH /phone/{id}": 2}
    assert sandbox.agents()[0]["voice_id"] == "v2"


def test_an_unreadable_answer_to_a_delete_is_retried(sandbox: SandboxServer) -> None:
    provider = configured(sandbox.url)
    agent_id, outs = created_agent(provider)
    sandbox.set_faults(malformed_json_next=1)
    sandbox.reset_stats()

    provider.delete(agent_id, outs)

    assert sandbox.agents() == []
    assert sandbox.stats()["by_route"] == {"DELETE /phone/{id}": 2}


# -- requests that could not be sent at all --------------------------------------------------------------------


def test_a_request_that_could_not_be_sent_is_not_an_ambiguous_create(sandbox: SandboxServer) -> None:
    """A value no HTTP header can carry (here a token built by hand, bypassing configure's check) means the
    request never left: no look for an agent it may have made, no AmbiguousCreate, and the token unshown."""
    token = "tok_bad\nvalue_123456"
    client = PhoneApiClient(Settings(api_token=token, base_url=sandbox.url))

    with pytest.raises(TransportError) as caught:
        client.create({"name": "Support"}, label="'Support'")

    assert caught.value.may_have_reached_api is False
    assert "could not be sent (a header holds a character no HTTP header can carry (a control or non-ASCII " in str(
        caught.value
    )
    assert "check oppie:apiToken / OPPIE_API_TOKEN; the value is not shown" in str(caught.value)
    assert token not in str(caught.value) and "tok_bad" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert sandbox.stats()["requests"] == 0


@pytest.mark.parametrize("agent_id", ["ph_1\nX", "ph_1 \x00", "ph_1\udc80"], ids=["newline", "nul", "surrogate"])
def test_an_agent_id_no_url_can_carry_is_named_as_the_reason_nothing_was_sent(
    sandbox: SandboxServer, agent_id: str
) -> None:
    """Regression: an id holding a lone surrogate was reported as a body that cannot be encoded."""
    client = PhoneApiClient(Settings(api_token=TOKEN, base_url=sandbox.url))

    with pytest.raises(TransportError) as caught:
        client.delete(agent_id, label="'Support'")

    assert "could not be sent (its URL holds a character HTTP cannot carry: check oppie:baseUrl and the agent id)" in (
        str(caught.value)
    )
    assert caught.value.may_have_reached_api is False
    assert sandbox.stats()["requests"] == 0
