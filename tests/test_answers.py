"""``_answers`` (HTTP answers into errors): responses the sandbox never sends but a proxy, another server or a
newer API might: clear errors, never a KeyError, never the token.

A tiny real HTTP server on 127.0.0.1 answers each request from a script, so the provider's real client
talks real HTTP; the provider runs in-process. A scripted body may contain ``{auth}``, which the server
replaces with the request's Authorization header: a server that echoes the token back in its answers.
"""

from __future__ import annotations

import json
import pickle
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pulumi.dynamic import Config, ConfigureRequest

from oppie_pulumi import (
    AmbiguousCreate,
    ApiError,
    ConfigError,
    InvalidRequest,
    MalformedResponse,
    NotFound,
    OppieError,
    PhoneAgentProvider,
    ServerError,
    Settings,
    TransportError,
    Unauthorized,
)
from oppie_pulumi._answers import retry_after_seconds, snippet
from oppie_pulumi._client import PhoneApiClient
from oppie_pulumi._exceptions import WrongBaseUrl

SCRIPTED_TOKEN = "tok_scripted_123456"

Reply = tuple[int, dict[str, str], bytes]


class Scripted:
    """Answers `METHOD path` with the next scripted reply for it (the last one repeats)."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = {}
        self.seen: list[str] = []

    def on(self, route: str, *replies: Reply) -> None:
        self.replies[route] = list(replies)

    def next(self, route: str) -> Reply:
        self.seen.append(route)
        queue = self.replies.get(route) or [(404, {}, b'{"statusCode":404,"message":"no script"}')]
        return queue.pop(0) if len(queue) > 1 else queue[0]


def json_reply(status: int, body: Any, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(body).encode()


@pytest.fixture
def scripted() -> Iterator[tuple[Scripted, PhoneAgentProvider]]:
    script = Scripted()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            status, headers, body = script.next(f"{self.command} {self.path}")
            body = body.replace(b"{auth}", (self.headers.get("Authorization") or "").encode())
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    provider = PhoneAgentProvider()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    provider.configure(
        ConfigureRequest(Config({"oppie:apiToken": SCRIPTED_TOKEN, "oppie:baseUrl": url, "oppie:maxRetries": "1"}, "p"))
    )
    try:
        yield script, provider
    finally:
        server.shutdown()
        server.server_close()


def test_list_that_is_not_an_array_is_a_malformed_response(scripted: tuple[Scripted, PhoneAgentProvider]) -> None:
    script, provider = scripted
    script.on("GET /phone", json_reply(200, {"data": []}))
    with pytest.raises(MalformedResponse, match="expected a JSON array of agents") as caught:
        provider.read("a1", {})
    error = caught.value
    assert (error.operation, error.method, error.path) == ("read phone agent a1", "GET", "/phone")
    assert error.status_code == 200


def test_listed_agent_without_an_id_is_a_malformed_response(scripted: tuple[Scripted, PhoneAgentProvider]) -> None:
    script, provider = scripted
    script.on("GET /phone", json_reply(200, [{"name": "no id"}]))
    with pytest.raises(MalformedResponse):
        provider.read("a1", {})


def test_listed_agent_missing_fields_reads_them_as_null(scripted: tuple[Scripted, PhoneAgentProvider]) -> None:
    script, provider = scripted
    script.on("GET /phone", json_reply(200, [{"id": "a1", "name": "Sparse", "brand_new_field": {"x": 1}}]))
    result = provider.read("a1", {})
    assert result.id == "a1"
    assert result.outs is not None
    assert result.outs["name"] == "Sparse" and result.outs["phone_number"] is None
    assert "brand_new_field" not in result.outs


def test_truncated_json_names_the_call_and_shows_the_body(scripted: tuple[Scripted, PhoneAgentProvider]) -> None:
    script, provider = scripted
    script.on("GET /phone", (200, {"Content-Type": "application/json"}, b'[{"id": "a1", "na'))
    with pytest.raises(MalformedResponse) as info:
        provider.read("a1", {})
    assert "read phone agent a1 failed: GET /phone answered 200" in str(info.value)
    assert '[{"id": "a1", "na' in str(info.value)


def test_html_gateway_page_is_a_server_error_with_its_text(scripted: tuple[Scripted, PhoneAgentProvider]) -> None:
    script, provider = scripted
    page = b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
    script.on("GET /phone", (502, {"Content-Type": "text/html"}, page))
    with pytest.raises(ServerError) as info:
        provider.read("a1", {})
    assert info.value.status_code == 502
    assert "502 Bad Gateway nginx" in str(info.value)
    assert script.seen.count("GET /phone") == 2  # one retry (maxRetries=1)


def test_create_answered_without_an_id_is_reconciled_then_reported(
    scripted: tuple[Scripted, PhoneAgentProvider],
) -> None:
    script, provider = scripted
    script.on("POST /phone", json_reply(201, {"name": "Support"}))
    script.on("GET /phone", json_reply(200, []))
    with pytest.raises(MalformedResponse, match="expected a JSON agent with an id") as caught:
        provider.create(provider.check({}, {"name": "Support"}).inputs)
    assert (caught.value.method, caught.value.path, caught.value.status_code) == ("POST", "/phone", 201)
    # the baseline, then looked for the agent before trying once more, and never more than that
    assert script.seen == ["GET /phone", "POST /phone", "GET /phone", "POST /phone", "GET /phone"]


def test_error_message_as_a_list_is_joined(scripted: tuple[Scripted, PhoneAgentProvider]) -> None:
    script, provider = scripted
    body = {"statusCode": 400, "error": "Bad Request", "message": ["name must be a string", "type is bad"]}
    script.on("PATCH /phone/a1", json_reply(400, body))
    with pytest.raises(InvalidRequest) as caught:
        provider.update("a1", {"name": "A"}, provider.check({}, {"name": "B"}).inputs)
    assert caught.value.api_message == "name must be a string; type is bad"
    assert (caught.value.status_code, caught.value.method, caught.value.path) == (400, "PATCH", "/phone/a1")
    assert str(caught.value).startswith("update phone agent 'B' (a1) failed: PATCH /phone/a1 answered 400 Bad Request")
    assert script.seen == ["PATCH /phone/a1"]  # a 400 is never retried


def test_delete_with_empty_body_succeeds(scripted: tuple[Scripted, PhoneAgentProvider]) -> None:
    script, provider = scripted
    script.on("DELETE /phone/a1", (200, {}, b""))
    provider.delete("a1", {"name": "A"})
    # one DELETE, taken as done: no retry, and no list to check whether it landed
    assert script.seen == ["DELETE /phone/a1"]


# -- a server that echoes the token (issue 11, item 8: redact() had no test that could fail) ------------------


def chain(error: BaseException) -> list[BaseException]:
    links: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in links:
        links.append(current)
        current = current.__cause__ or current.__context__
    return links


ECHOES = [
    pytest.param(json_reply(401, {"statusCode": 401, "message": "bad credentials: {auth}"}), Unauthorized, id="401"),
    pytest.param(json_reply(400, {"message": ["rejected {auth}", "twice: {auth}"]}), InvalidRequest, id="400 list"),
    pytest.param((502, {"Content-Type": "text/html"}, b"<h1>502</h1><p>{auth}</p>"), ServerError, id="502 html"),
    pytest.param((200, {"Content-Type": "application/json"}, b'[{"id": "{auth}'), MalformedResponse, id="bad 200"),
    pytest.param(json_reply(200, {"rows": "{auth}"}), MalformedResponse, id="wrong shape"),
    pytest.param(json_reply(400, ["{auth}"]), InvalidRequest, id="400 json list"),
    # The message keeps the first 200 characters of a body: the cut falls inside the token.
    pytest.param((500, {}, b"x" * 185 + b" {auth} " + b"y" * 50), ServerError, id="token across the snippet cut"),
]


@pytest.mark.parametrize(("reply", "kind"), ECHOES)
def test_a_server_that_echoes_the_authorization_header_never_gets_the_token_into_an_error(
    scripted: tuple[Scripted, PhoneAgentProvider], reply: Reply, kind: type[ApiError]
) -> None:
    script, provider = scripted
    script.on("GET /phone", reply)
    with pytest.raises(kind) as caught:
        provider.read("a1", {"name": "A"})
    assert "Bearer" in caught.value.api_message or "[redacted]" in str(caught.value) or kind is MalformedResponse
    for link in chain(caught.value):
        assert isinstance(link, OppieError)
        for text in (str(link), repr(vars(link))):
            assert SCRIPTED_TOKEN not in text
            assert SCRIPTED_TOKEN[:6] not in text  # not even the part before a cut
        assert SCRIPTED_TOKEN.encode() not in pickle.dumps(link)


# -- a base URL that answers like some other server (issue 11, item 6) -----------------------------------------

OTHER_SERVERS = [
    pytest.param((200, {"Content-Type": "text/html"}, b"<!doctype html><title>Welcome</title>"), id="html 200"),
    pytest.param((404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>"), id="404 html"),
    pytest.param(json_reply(404, {"detail": "Not Found"}), id="404 json"),
    pytest.param((405, {"Allow": "GET"}, b"Method Not Allowed"), id="405"),
    pytest.param((501, {}, b"Unsupported method"), id="501"),
]


@pytest.mark.parametrize("reply", OTHER_SERVERS)
@pytest.mark.parametrize("answered", ["GET /phone", "POST /phone"], ids=["every call", "the POST only"])
def test_a_create_against_some_other_server_says_to_check_the_base_url(
    scripted: tuple[Scripted, PhoneAgentProvider], reply: Reply, answered: str
) -> None:
    """Regression: such answers ended in AmbiguousCreate, sending the user to the dashboard. A server that answers
    every call so fails the create's first call (its baseline list), before anything is sent to create; one
    whose list looks right fails the POST, never taken for a create that may have happened."""
    script, provider = scripted
    script.on("POST /phone", reply)
    script.on("GET /phone", reply if answered == "GET /phone" else json_reply(200, []))
    with pytest.raises(ConfigError) as caught:
        provider.create(provider.check({}, {"name": "Support"}).inputs)
    error = caught.value
    assert not isinstance(error, AmbiguousCreate)
    assert isinstance(error, ApiError) and error.status_code == reply[0]
    assert f"{error.method} {error.path}" == answered
    assert "check oppie:baseUrl" in str(error) and "does not look like the phone-agent API" in str(error)
    # nothing to reconcile: not the API
    assert script.seen == ["GET /phone"] if answered == "GET /phone" else ["GET /phone", "POST /phone"]


@pytest.mark.parametrize("reply", OTHER_SERVERS)
def test_a_read_against_some_other_server_says_to_check_the_base_url(
    scripted: tuple[Scripted, PhoneAgentProvider], reply: Reply
) -> None:
    script, provider = scripted
    script.on("GET /phone", reply)
    with pytest.raises(ConfigError, match="check oppie:baseUrl"):
        provider.read("a1", {"name": "A"})
    assert script.seen == ["GET /phone"]


def test_a_404_for_one_agent_is_still_an_unknown_agent(scripted: tuple[Scripted, PhoneAgentProvider]) -> None:
    script, provider = scripted
    script.on("DELETE /phone/a1", json_reply(404, {"statusCode": 404, "message": "Phone agent a1 not found"}))
    provider.delete("a1", {"name": "A"})  # already gone: what a delete wants
    assert script.seen == ["DELETE /phone/a1"]


# -- Retry-After is what the client waits (issue 11, item 8) ----------------------------------------------------


def test_the_client_waits_exactly_the_retry_after_the_api_asked_for(
    scripted: tuple[Scripted, PhoneAgentProvider],
) -> None:
    script, provider = scripted
    assert provider._settings is not None
    agent = {"id": "a1", "name": "A"}
    script.on("POST /phone", json_reply(429, {"message": "slow down"}, **{"Retry-After": "7"}), json_reply(201, agent))
    waits: list[float] = []
    client = PhoneApiClient(
        Settings(api_token=SCRIPTED_TOKEN, base_url=provider._settings.base_url), sleep=waits.append
    )

    assert client.create({"name": "A"}, label="'A'") == agent
    assert waits == [7.0]
    assert script.seen == ["POST /phone", "POST /phone"]


@pytest.mark.parametrize(("header", "seconds"), [("2", 2.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None), (None, None)])
def test_retry_after_accepts_seconds_and_ignores_garbage(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


def test_retry_after_accepts_an_http_date() -> None:
    value = retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT")
    assert value == 0.0  # in the past: no wait


# -- lost answers to writes: the look, and what is said when it fails too -----------------------------------------


@pytest.mark.parametrize("operation", ["update", "delete"])
def test_a_write_whose_answer_and_look_both_fail_reports_both(
    scripted: tuple[Scripted, PhoneAgentProvider], operation: str
) -> None:
    script, provider = scripted
    down = json_reply(503, {"statusCode": 503, "message": "down for maintenance"})
    script.on("PATCH /phone/a1", down)
    script.on("DELETE /phone/a1", down)
    script.on("GET /phone", (502, {"Content-Type": "text/html"}, b"<h1>502</h1>"))
    with pytest.raises(ServerError) as caught:
        if operation == "update":
            provider.update("a1", {"name": "A"}, provider.check({}, {"name": "A", "voice_id": "v2"}).inputs)
        else:
            provider.delete("a1", {"name": "A"})
    message = str(caught.value)
    method = "PATCH" if operation == "update" else "DELETE"
    assert message.startswith(f"{operation} phone agent 'A' (a1) failed: {method} /phone/a1 answered 503")
    assert "down for maintenance; checking whether it landed anyway failed too (check whether the" in message
    assert "GET /phone answered 502" in message
    assert (caught.value.status_code, caught.value.method) == (503, method)


def test_an_update_answered_with_an_empty_body_for_an_agent_gone_since_says_to_refresh(
    scripted: tuple[Scripted, PhoneAgentProvider],
) -> None:
    script, provider = scripted
    script.on("PATCH /phone/a1", (200, {}, b""))
    script.on("GET /phone", json_reply(200, []))
    with pytest.raises(NotFound) as caught:
        provider.update("a1", {"name": "A"}, provider.check({}, {"name": "A", "voice_id": "v2"}).inputs)
    assert "the agent disappeared right after the update" in str(caught.value)
    assert "`pulumi refresh`" in str(caught.value)
    assert script.seen == ["PATCH /phone/a1", "GET /phone"]


def test_an_error_envelope_without_a_message_is_explained_by_its_error(
    scripted: tuple[Scripted, PhoneAgentProvider],
) -> None:
    script, provider = scripted
    script.on("DELETE /phone/a1", json_reply(418, {"statusCode": 418, "error": "I'm a teapot"}))
    with pytest.raises(InvalidRequest) as caught:
        provider.delete("a1", {"name": "A"})
    assert caught.value.api_message == "I'm a teapot"
    assert "answered 418 I'm a Teapot: I'm a teapot" in str(caught.value)


def test_a_body_that_cannot_be_encoded_is_never_sent(scripted: tuple[Scripted, PhoneAgentProvider]) -> None:
    """Check refuses lone surrogates; a client used directly says what kept the request from leaving."""
    script, provider = scripted
    assert provider._settings is not None
    client = PhoneApiClient(provider._settings)
    with pytest.raises(TransportError) as caught:
        client.create({"name": "A\ud800"}, label="'A'")
    assert "could not be sent (its body holds text that cannot be encoded as UTF-8" in str(caught.value)
    assert caught.value.may_have_reached_api is False and script.seen == []


def test_a_patch_answered_with_something_not_an_agent_is_a_malformed_response_naming_the_update(
    scripted: tuple[Scripted, PhoneAgentProvider],
) -> None:
    script, provider = scripted
    script.on("PATCH /phone/a1", json_reply(200, {"rows": 1}))
    script.on("GET /phone", json_reply(200, []))  # the look for whether the update landed anyway
    with pytest.raises(MalformedResponse) as caught:
        provider.update("a1", {"name": "A"}, provider.check({}, {"name": "B"}).inputs)
    error = caught.value
    assert (error.method, error.path, error.status_code) == ("PATCH", "/phone/a1", 200)
    assert error.operation == "update phone agent 'B' (a1)"
    assert str(error).startswith("update phone agent 'B' (a1) failed: PATCH /phone/a1 answered 200 with a body")


def test_a_shown_body_is_cut_at_200_characters_with_an_ellipsis_and_loses_its_markup() -> None:
    assert snippet("a" * 200) == "a" * 200
    assert snippet("a" * 201) == "a" * 200 + "..."
    assert snippet("<h1>502</h1>\n  <p>nginx</p>") == "502 nginx"


def test_a_success_declared_as_html_is_another_server_even_without_markup(
    scripted: tuple[Scripted, PhoneAgentProvider],
) -> None:
    """The content type alone says it (any case), whatever the body starts with."""
    script, provider = scripted
    script.on("GET /phone", (200, {"Content-Type": "text/HTML; charset=utf-8"}, b"Welcome to nginx!"))
    with pytest.raises(WrongBaseUrl) as caught:
        provider.read("a1", {})
    assert "(it answered with an HTML page): check oppie:baseUrl / OPPIE_BASE_URL" in str(caught.value)


def test_create_with_no_answer_and_no_list_says_an_agent_may_exist_and_how_to_adopt_it(
    scripted: tuple[Scripted, PhoneAgentProvider],
) -> None:
    """The POST got a gateway's 504 (the API may still apply it), and the list that looks for the agent fails
    too (its retry included): the create cannot know, and says so, with what to look for and how to adopt it."""
    script, provider = scripted
    script.on("POST /phone", json_reply(504, {"message": "upstream timed out"}))
    script.on("GET /phone", json_reply(200, []), json_reply(504, {"message": "upstream timed out"}))
    with pytest.raises(AmbiguousCreate) as caught:
        provider.create(provider.check({}, {"name": "Support"}).inputs)
    message = str(caught.value)
    assert "create phone agent 'Support': the API did not answer" in message
    assert "listing the agents to see whether it created one failed too" in message
    assert "look for the agent a create of 'Support' may have made failed: GET /phone answered 504" in message
    assert "adopt_id" in message
    # the baseline, the POST, then the look and its one retry (maxRetries 1); no second POST
    assert script.seen == ["GET /phone", "POST /phone", "GET /phone", "GET /phone"]
