"""Responses the sandbox never sends but a proxy or a newer API might: clear errors, never a KeyError.

A tiny real HTTP server on 127.0.0.1 answers each request from a script, so the provider's real client
talks real HTTP; the provider runs in-process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pulumi.dynamic import Config, ConfigureRequest

from oppie_pulumi import MalformedResponse, PhoneAgentProvider, ServerError

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
        ConfigureRequest(
            Config({"oppie:apiToken": "tok_scripted_123456", "oppie:baseUrl": url, "oppie:maxRetries": "1"}, "p")
        )
    )
    try:
        yield script, provider
    finally:
        server.shutdown()
        server.server_close()


def test_list_that_is_not_an_array_is_a_malformed_response(scripted: tuple[Scripted, PhoneAgentProvider]) -> None:
    script, provider = scripted
    script.on("GET /phone", json_reply(200, {"data": []}))
    with pytest.raises(MalformedResponse, match="expected a JSON array of agents"):
        provider.read("a1", {})


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
    with pytest.raises(MalformedResponse, match="expected a JSON agent with an id"):
        provider.create(provider.check({}, {"name": "Support"}).inputs)
    # looked for the agent before trying once more, and never more than that
    assert script.seen == ["POST /phone", "GET /phone", "POST /phone", "GET /phone"]


def test_error_message_as_a_list_is_joined(scripted: tuple[Scripted, PhoneAgentProvider]) -> None:
    script, provider = scripted
    body = {"statusCode": 400, "error": "Bad Request", "message": ["name must be a string", "type is bad"]}
    script.on("PATCH /phone/a1", json_reply(400, body))
    with pytest.raises(Exception, match="name must be a string; type is bad"):
        provider.update("a1", {"name": "A"}, provider.check({}, {"name": "B"}).inputs)


def test_delete_with_empty_body_succeeds(scripted: tuple[Scripted, PhoneAgentProvider]) -> None:
    script, provider = scripted
    script.on("DELETE /phone/a1", (200, {}, b""))
    provider.delete("a1", {"name": "A"})
