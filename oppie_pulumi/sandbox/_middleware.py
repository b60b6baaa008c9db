"""The layer in front of the API routes: stats, faults, bearer auth and the rate limit.

It runs as plain ASGI (not Starlette's BaseHTTPMiddleware) because two faults need the raw response stream:
`drop_after_apply` declares a longer body than it sends and breaks the connection, and
`delay_after_apply_ms` holds back a response the handler has already committed.

Order for an API request, as in the real service: gateway-level faults first (latency, injected 429/5xx,
malformed bodies), then, for a known route only, auth and the rate limit (NestJS guards: an unknown route is
a 404 whoever asks), then the handler with its body validation.
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

        injected = state.fault_state.next_injection()
        if injected is not None:
            await self._injected_response(injected)(scope, receive, counted_send)
            return

        if route is not None:
            refusal = self._guard(scope)
            if refusal is not None:
                await refusal(scope, receive, counted_send)
                return

        if route is None or scope["method"] not in MUTATING_METHODS:
            await self.app(scope, receive, counted_send)
            return
        await self._apply_then_answer(scope, receive, counted_send)

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
            return error_envelope(429, "ThrottlerException: Too Many Requests", {"Retry-After": str(wait_s)})
        return None

    def _injected_response(self, injected: Injected) -> Response:
        faults = self.state.faults
        if injected is Injected.RATE_LIMITED:
            return error_envelope(
                429,
                "ThrottlerException: Too Many Requests",
                {"Retry-After": format_retry_after(faults.retry_after_s)},
            )
        if injected is Injected.MALFORMED:
            return Response(b'{"id": "abc', status_code=200, media_type="application/json")
        status = faults.fail_status
        if faults.html_errors:
            page = f"<html><body><h1>{status} {reason_phrase(status)}</h1></body></html>"
            return HTMLResponse(page, status_code=status)
        return error_envelope(status, f"Injected fault: {status} {reason_phrase(status)}")

    async def _apply_then_answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run a mutating request to completion, then answer late, or half and then drop, if asked to.

        The handler commits before its response exists, so buffering the response is enough to act after
        the apply: the client's view is then exactly a timeout or a broken connection after success.
        """
        start: Message | None = None
        chunks: list[bytes] = []
        request_body: list[bytes] = []

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
        # Journalled once applied, before any fault acts on the answer: what the API did, not what the client saw.
        self.state.stats.record_write(scope["method"], scope["path"], b"".join(request_body), start["status"])
        body = b"".join(chunks)
        faults = self.state.faults
        if faults.delay_after_apply_ms:
            await asyncio.sleep(faults.delay_after_apply_ms / 1000)
        if 200 <= start["status"] < 300 and self.state.fault_state.take_drop():
            await self._send_broken(start, body, send)
            raise DeliberateDrop(f"drop_after_apply: {scope['method']} {scope['path']}")
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


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None
