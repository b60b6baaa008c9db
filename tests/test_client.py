"""``_client.PhoneApiClient``: what it retries (an unreadable answer to a read, an update or a delete, like a 5xx;
a refused connection, which never reached the API), a request that could not be sent at all (named, never
retried, its token unshown), one shared client per settings, and the rate limit as the client counts it
(issue 11, item 4). Real HTTP to the sandbox where an answer matters.
"""

from __future__ import annotations

import socket

import httpx
import pytest

from oppie_pulumi import ConfigError, PhoneAgentProvider, Settings, TransportError
from oppie_pulumi._client import PhoneApiClient, Wait, client_for
from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN, closed_port_url, configured_provider, created_agent


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


@pytest.mark.parametrize("call", ["create", "list"])
def test_a_refused_connection_gives_up_within_a_second_naming_the_url_and_the_setting(call: str) -> None:
    """Regression (issue "A new user's first hour", 4): with nothing listening at oppie:baseUrl, a call spent up
    to 7.75 s in backoff (about 4 s on average) before an error that did not say to check the setting."""
    url = closed_port_url()
    waits: list[float] = []
    client = PhoneApiClient(Settings(api_token=TOKEN, base_url=url), sleep=waits.append)  # the default 5 retries
    with pytest.raises(TransportError) as caught:
        if call == "create":
            client.create({"name": "Support"}, label="'Support'")
        else:
            client.list()
    method, path = ("POST", "/phone") if call == "create" else ("GET", "/phone")
    operation = "create phone agent 'Support'" if call == "create" else "list phone agents"
    assert str(caught.value) == (
        f"{operation} failed: {method} {path} failed (ConnectError): could not connect to {url} (connection "
        "refused): is the API running there? Check oppie:baseUrl / OPPIE_BASE_URL. The request never reached the "
        "API, so nothing was changed"
    )
    assert caught.value.may_have_reached_api is False
    assert len(waits) == 5, "still retried: the request never reached the API (an API may be starting)"
    assert sum(waits) <= 1.0


def test_a_host_name_that_does_not_resolve_gives_up_as_quickly_and_says_so() -> None:
    def no_such_host(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -2] Name or service not known") from socket.gaierror(
            socket.EAI_NONAME, "Name or service not known"
        )

    url = "https://api.opn.cx"
    waits: list[float] = []
    client = PhoneApiClient(Settings(api_token=TOKEN, base_url=url), sleep=waits.append)
    client._http = httpx.Client(base_url=url, transport=httpx.MockTransport(no_such_host))
    with pytest.raises(TransportError) as caught:
        client.list()
    assert str(caught.value) == (
        f"list phone agents failed: GET /phone failed (ConnectError): could not connect to {url} (its host name "
        "does not resolve: Name or service not known): is the host name right? Check oppie:baseUrl / "
        "OPPIE_BASE_URL. The request never reached the API, so nothing was changed"
    )
    assert sum(waits) <= 1.0


def test_waits_after_a_refused_connection_are_told_to_on_wait_with_the_reason() -> None:
    """The plugin shows these as progress lines beside the resource (provider/progress.py)."""
    url = closed_port_url()
    heard: list[Wait] = []
    client = PhoneApiClient(
        Settings(api_token=TOKEN, base_url=url, max_retries=2), sleep=lambda _: None, on_wait=heard.append
    )
    with pytest.raises(TransportError):
        client.list()
    assert [(w.kind, w.attempt, w.reason) for w in heard] == [
        ("retry", n, f"could not connect to {url} (connection refused)") for n in (1, 2)
    ]


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


def test_baselines_never_use_a_list_begun_before_them_and_those_begun_meanwhile_share_the_next(
    sandbox: SandboxServer,
) -> None:
    """A create's baseline (agents.reconcile) must show every agent that existed when the create began: a list
    begun earlier, even one still in flight, never serves it. Creates that begin while it is in flight wait for it
    and share the next list, instead of starting one each."""
    import threading
    import time

    sandbox.reset_stats()
    sandbox.set_faults(latency_ms=600)
    client = PhoneApiClient(Settings(api_token=TOKEN, base_url=sandbox.url, max_requests_per_minute=0))
    first = threading.Thread(target=client.list_since, args=(time.monotonic(),), kwargs={"operation": "first"})
    first.start()
    time.sleep(0.1)  # the first list is in flight (600 ms)
    # Made after the first list began (straight into the store: an API call would wait 600 ms too).
    agent = sandbox.state.store.create({"name": "Made meanwhile"})
    results: list[list[str]] = []

    def baseline() -> None:
        listed = client.list_since(time.monotonic(), operation="later")
        results.append([a["id"] for a in listed])

    later = [threading.Thread(target=baseline) for _ in range(3)]
    for thread in later:
        thread.start()
        time.sleep(0.05)  # each begins at a moment of its own, all while the first list is in flight
    for thread in [first, *later]:
        thread.join()
    client.close()

    assert results == [[agent["id"]]] * 3
    assert sandbox.stats()["by_route"]["GET /phone"] == 2, "the three later baselines shared one list"
