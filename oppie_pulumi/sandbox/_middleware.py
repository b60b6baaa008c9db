"""The layer in front of the API routes: stats, faults, bearer auth and the rate limit.

It runs as plain ASGI (not Starlette's BaseHTTPMiddleware) because several faults need the raw request and
response streams: `drop_after_apply` declares a longer body than it sends and breaks the connection,
`delay_after_apply_ms` holds back a response the handler has already committed, `fail_after_apply_next` and
`truncate_*` replace or cut a committed answer, and `late_apply_next` reads a request whole and applies it later.

Order for an API request, as in the real service: gateway-level faults first (latency, an enforced Retry-After,
injected 429/5xx, malformed bodies), then, for a known route only, auth and the rate limit (NestJS guards: an
unknown route is a 404 whoever asks), then the handler with its body validation, then the faults that act on
the answer.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Collection, Sequence
from http import HTTPStatus

from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._faults import Injected, format_retry_after
from ._state import SandboxState

API_PREFIX = "/phone"
MUTATING_METHODS = frozenset({"POST", "PATCH", "DELETE"})


class DeliberateDrop(Exception):
    """Raised after a half-sent response so that the server closes the connection (`drop_after_apply`)."""


class _DropFilter(logging.Filter):
    """Silences uvicorn's traceback for deliberate drops: they are the fault working, not a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DeliberateDrop)


def install_drop_log_filter() -> None:
    """Add the filter to uvicorn's error logger once per process."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _DropFilter) for existing in logger.filters):
        logger.addFilter(_DropFilter())


def error_envelope(status: int, message: str | list[str], headers: dict[str, str] | None = None) -> JSONResponse:
    """The API's error body: `{"statusCode": ..., "error": <reason phrase>, "message": ...}`."""
    return JSONResponse(
        {"statusCode": status, "error": reason_phrase(status), "message": message},
        status_code=status,
        headers=headers,
    )


def reason_phrase(status: int) -> str:
    """The standard reason phrase of a status ("Bad Gateway"), or "Error" for an unassigned one."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class SandboxMiddleware:
    """ASGI middleware applying the sandbox's stats, faults, auth and rate limit to API requests."""

    def __init__(
        self, app: ASGIApp, state: SandboxState, routes: Sequence[BaseRoute], exempt_paths: Collection[str]
    ) -> None:
        self.app = app
        self.state = state
        self.routes = routes
        self.exempt_paths = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_exempt(scope["path"]):
            await self.app(scope, receive, send)
            return

        route, template = self._match(scope)
        route_key = f"{scope['method']} {template}"
        state = self.state
        state.stats.record_connection(scope.get("client"))

        async def counted_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state.stats.record_response(route_key, message["status"])
            await send(message)

        faults = state.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)

        if faults.enforce_retry_after:
            remaining = state.fault_state.retry_after_remaining()
            if remaining > 0:
                # A real limiter refuses a client that comes back before the wait it asked for.
                state.stats.record_fault("early retry refused", route_key)
                await self._too_many(remaining)(scope, receive, counted_send)
                return

        injected = state.fault_state.next_injection(write=scope["method"] in ("POST", "PATCH", "DELETE"))
        if injected is not None:
            await self._injected_response(injected)(scope, receive, counted_send)
            return

        if route is not None:
            refusal = self._guard(scope)
            if refusal is not None:
                await refusal(scope, receive, counted_send)
                return

        if route is None:
            await self.app(scope, receive, counted_send)
            return
        await self._apply_then_answer(scope, receive, counted_send, route_key)

    def _is_exempt(self, path: str) -> bool:
        return any(path == exempt or path.startswith(exempt + "/") for exempt in self.exempt_paths)

    def _match(self, scope: Scope) -> tuple[BaseRoute | None, str]:
        """The API route this request reaches (None if unknown) and the template it is counted under.

        A path that only misses on the method (GET /phone/{id}) is still counted under the template, so
        stats show a client calling the route that does not exist.
        """
        partial: str | None = None
        for route in self.routes:
            if not isinstance(route, Route) or not route.path.startswith(API_PREFIX):
                continue
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return route, route.path
            if match is Match.PARTIAL and partial is None:
                partial = route.path
        return None, partial or scope["path"]

    def _guard(self, scope: Scope) -> Response | None:
        """401 for a missing or wrong token, then 429 beyond the per-token limit; None lets it through."""
        token = _bearer_token(scope)
        if token is None or not secrets.compare_digest(token.encode(), self.state.config.token.encode()):
            return error_envelope(401, "Missing or invalid bearer token")
        wait_s = self.state.rate_limiter.acquire(token)
        if wait_s is not None:
            return self._too_many(wait_s)
        return None

    def _too_many(self, retry_after_s: float) -> Response:
        """429 with Retry-After; with `enforce_retry_after`, the sandbox then holds the client to it."""
        if self.state.faults.enforce_retry_after:
            self.state.fault_state.close_for(retry_after_s)
        return error_envelope(
            429, "ThrottlerException: Too Many Requests", {"Retry-After": format_retry_after(retry_after_s)}
        )

    def _injected_response(self, injected: Injected) -> Response:
        faults = self.state.faults
        if injected is Injected.RATE_LIMITED:
            return self._too_many(faults.retry_after_s)
        if injected is Injected.MALFORMED:
            return Response(b'{"id": "abc', status_code=200, media_type="application/json")
        return self._failure()

    def _failure(self) -> Response:
        """The `fail_status` answer: the JSON envelope, or a gateway's HTML page with `html_errors`."""
        faults = self.state.faults
        status = faults.fail_status
        if faults.html_errors:
            page = f"<html><body><h1>{status} {reason_phrase(status)}</h1></body></html>"
            return HTMLResponse(page, status_code=status)
        return error_envelope(status, f"Injected fault: {status} {reason_phrase(status)}")

    async def _apply_then_answer(self, scope: Scope, receive: Receive, send: Send, route_key: str) -> None:
        """Run an API request to completion, then let the faults that act on a committed answer act.

        The handler commits before its response exists, so buffering the response is enough to act after
        the apply: the client's view is then exactly a timeout, a 5xx, a cut-off body or a broken connection
        after success. With `late_apply_next` the request is read whole first and applied only after the wait,
        so it lands even if the client has given up (uvicorn keeps running a handler whose client left).
        """
        state = self.state
        mutating = scope["method"] in MUTATING_METHODS
        start: Message | None = None
        chunks: list[bytes] = []
        request_body: list[bytes] = []

        if mutating and state.fault_state.take_late_apply():
            state.stats.record_fault("late apply", route_key)
            whole = await _read_body(receive)
            await asyncio.sleep(state.faults.late_apply_ms / 1000)
            receive = _replay(whole)

        async def recording_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request_body.append(message.get("body", b""))
            return message

        async def buffer(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, recording_receive, buffer)
        if start is None:
            return
        status = start["status"]
        succeeded = 200 <= status < 300
        if mutating:
            # Journalled once applied, before any fault acts on the answer: what the API did, not what the client saw.
            state.stats.record_write(scope["method"], scope["path"], b"".join(request_body), status)
        body = b"".join(chunks)
        faults = state.faults
        if mutating and faults.delay_after_apply_ms:
            await asyncio.sleep(faults.delay_after_apply_ms / 1000)
        if mutating and succeeded and state.fault_state.take_fail_after_apply():
            state.stats.record_fault("failed after apply", route_key)
            await self._failure()(scope, receive, send)
            return
        if mutating and succeeded and state.fault_state.take_drop():
            await self._send_broken(start, body, send)
            raise DeliberateDrop(f"drop_after_apply: {scope['method']} {scope['path']}")
        if succeeded and state.fault_state.take_truncate():
            state.stats.record_fault("truncated", route_key)
            body = _cut(body)
            start = {**start, "headers": _with_content_length(start.get("headers", []), len(body))}
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    @staticmethod
    async def _send_broken(start: Message, body: bytes, send: Send) -> None:
        # Promise more bytes than will ever come, so the client sees the response cut off, not complete.
        headers: list[tuple[bytes, bytes]] = [
            (name, value) for name, value in start.get("headers", []) if name.lower() != b"content-length"
        ]
        headers.append((b"content-length", str(len(body) + 64).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})


def _cut(body: bytes) -> bytes:
    """Half of `body`; for an empty body, half of a JSON object, so that the client has something to misread."""
    body = body or b'{"statusCode": 200}'
    return body[: len(body) // 2]


def _with_content_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    kept = [(name, value) for name, value in headers if name.lower() != b"content-length"]
    return [*kept, (b"content-length", str(length).encode())]


async def _read_body(receive: Receive) -> bytes:
    """The whole request body (stops early if the client disconnects)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    """A `receive` that hands the handler `body` once, then reports the client gone (it may well be)."""
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None
