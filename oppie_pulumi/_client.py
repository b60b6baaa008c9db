"""The phone-agent API client: one method per endpoint. The only module that knows httpx.

Everything here is shared by the (up to 4) threads of one provider host process, so every piece of
mutable state sits behind a lock:

- one pooled ``httpx.Client`` per settings, built lazily (``client_for``) and never pickled, so many
  operations reuse a few keep-alive connections;
- a sliding-window rate limiter, so a parallel ``pulumi up`` never sends more than the API allows;
- a short-lived snapshot of ``GET /phone``, because the API has no ``GET /phone/{id}`` and a refresh
  reads every agent: concurrent and back-to-back reads share one list, and the client's own writes
  invalidate it so a read after a write always sees the write.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from ._answers import api_error, malformed, not_the_api, why_retried
from ._config import Settings
from ._enginewatch import before_write
from ._exceptions import (
    ApiError,
    ConfigError,
    MalformedResponse,
    RateLimited,
    ServerError,
    TransportError,
    redact,
)
from ._lists import Agents, SharedLists
from ._ratelimit import RateLimiter
from ._version import __version__

__all__ = ["PhoneApiClient", "Wait", "client_for"]

USER_AGENT = f"oppie-pulumi/{__version__}"
MAX_BACKOFF_SECONDS = 8.0
MAX_RETRY_AFTER_SECONDS = 120.0
# Nothing answers at the base URL (the connection was refused, the host name does not resolve): most often a wrong
# oppie:baseUrl, now and then an API still starting. The request never left, so retrying is safe, but a long
# backoff only delays the message that names the setting: the retries of such a call wait this long in all, at most.
NOTHING_THERE_RETRY_SECONDS = 1.0
_IDEMPOTENT = frozenset({"GET", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Wait:
    """A wait the client is about to make, told to its ``on_wait`` hook before it sleeps.

    ``kind``: ``rate-limit`` (for a place in the client-side rate limit), ``retry`` (before retry ``attempt``,
    after ``reason``: "POST /phone answered 503", ...) or ``settle`` (letting a request that may land late land
    before a last look). A hook that raises gives up the wait, and the call with it: the error propagates.
    """

    kind: Literal["rate-limit", "retry", "settle"]
    seconds: float
    operation: str
    reason: str
    attempt: int = 0


class PhoneApiClient:
    """Calls the phone-agent API with retries, rate limiting and error translation.

    ``label`` arguments name the agent in error messages (its name or id).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        on_wait: Callable[[Wait], None] | None = None,
    ) -> None:
        self.settings = settings
        try:
            self._http = httpx.Client(
                base_url=settings.base_url,
                timeout=httpx.Timeout(settings.timeout_seconds),
                limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            )
        except httpx.InvalidURL:
            failed = True
        else:
            failed = False
        if failed:  # raised here, not in the except block, so that no httpx error rides along as the context
            raise ConfigError(
                "oppie:baseUrl / OPPIE_BASE_URL is not a URL the HTTP client can use: check it for stray characters"
            )
        # Every wait (between retries, for the rate window) goes through here: tests see exactly how long the
        # client would wait. ``on_wait`` hears of each before it starts (the plugin's progress lines, deadlines).
        self._sleep = sleep
        self._on_wait = on_wait
        self._limiter = RateLimiter(
            settings.max_requests_per_minute, sleep=sleep, window=settings.rate_limit_window_seconds
        )
        self._random = random.Random()
        self._lists = SharedLists()

    def close(self) -> None:
        """Close the pooled connections (a process-wide client from ``client_for`` lives as long as its process)."""
        self._http.close()

    def __enter__(self) -> PhoneApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoints ---------------------------------------------------------------------------------

    def create(self, body: dict[str, Any], *, label: str) -> dict[str, Any]:
        """POST /phone. Retries only when the API cannot have acted (429, connection refused).

        Any other failure may have created the agent: the caller must reconcile (see
        ``PhoneAgentProvider.create``), never blindly retry.
        """
        try:
            operation = f"create phone agent {label}"
            status, data = self._call("POST", "/phone", operation, json=body)
            return self._as_agent(data, status, "POST", "/phone", operation)
        finally:
            self._invalidate()

    def list(self, *, max_age: float = 0.0, operation: str = "list phone agents") -> list[dict[str, Any]]:
        """GET /phone: every agent of the organisation. ``operation`` names the why in error messages.

        A list taken within ``max_age`` seconds, after the client's last write, is reused, and
        concurrent callers share one call in flight.
        """

        return self._lists.fresh(max_age, lambda sent: self._get_agents(operation, sent))

    def list_since(self, moment: float, *, operation: str) -> Agents:
        """The agents as a list whose request went out at or after ``moment`` (``time.monotonic()``) shows them.

        A create's baseline (``agents.reconcile``): every agent that existed when the create began is in it. One
        already taken, or in flight and not sent before ``moment`` (still waiting for the rate limit, say), is
        shared, whatever this client wrote meanwhile; so creates that begin together share one list.
        """
        return self._lists.since(moment, lambda sent: self._get_agents(operation, sent))

    def _get_agents(self, operation: str, on_send: Callable[[], None]) -> Agents:
        status, data = self._call("GET", "/phone", operation, on_send=on_send)
        if not isinstance(data, list) or not all(isinstance(a, dict) and isinstance(a.get("id"), str) for a in data):
            raise malformed(
                "GET",
                "/phone",
                operation,
                "a JSON array of agents",
                status=status,
                body=json.dumps(data),
                token=self.settings.api_token,
            )
        return data

    def find(self, agent_id: str, *, operation: str, max_age: float = 0.0) -> dict[str, Any] | None:
        """The agent with ``agent_id``, or ``None``: the API has no ``GET /phone/{id}``, so list and pick."""
        return next(
            (agent for agent in self.list(max_age=max_age, operation=operation) if agent["id"] == agent_id), None
        )

    def update(self, agent_id: str, body: dict[str, Any], *, label: str) -> dict[str, Any] | None:
        """PATCH /phone/{id}. Returns the agent, or ``None`` when the API answers with an empty body."""
        path, operation = f"/phone/{agent_id}", f"update phone agent {label}"
        try:
            status, data = self._call("PATCH", path, operation, json=body)
        finally:
            self._invalidate()
        return None if data is None else self._as_agent(data, status, "PATCH", path, operation)

    def delete(self, agent_id: str, *, label: str) -> None:
        """DELETE /phone/{id}. A 404 propagates as ``NotFound``; the caller decides what it means."""
        try:
            self._call("DELETE", f"/phone/{agent_id}", f"delete phone agent {label}")
        finally:
            self._invalidate()

    # -- machinery ---------------------------------------------------------------------------------

    def _invalidate(self) -> None:
        self._lists.written()

    def _call(
        self, method: str, path: str, operation: str, json: Any = None, on_send: Callable[[], None] | None = None
    ) -> tuple[int, Any]:
        """One API call with retries; returns the status and the decoded JSON body (``None`` if empty).
        ``on_send`` is told just before each attempt goes out (after any wait for the rate limit).

        No error raised from here carries an httpx object (a request holds the token in its headers), nor
        has one as its cause or context: each is built from what it needs, and raised outside any handler.
        """
        token = self.settings.require_token()
        headers = {"Authorization": f"Bearer {token}"}
        attempt = 0
        nothing_there_left = NOTHING_THERE_RETRY_SECONDS
        announce = None if self._on_wait is None else _RateWaitAnnouncer(self._on_wait, operation, self.settings)
        while True:
            outcome = self._send_once(method, path, operation, json, (headers, token), announce, on_send)
            error: TransportError | ApiError
            nothing_there: _NothingThere | None = None
            if isinstance(outcome, _NothingThere):
                nothing_there, error, retryable = outcome, outcome.error, True
            elif isinstance(outcome, TransportError):
                error = outcome
                # Not sent at all: a connection refused may work next time; a request HTTP cannot carry never.
                retryable = (method in _IDEMPOTENT or not error.may_have_reached_api) and not isinstance(
                    error, _Unsendable
                )
            else:
                status, response = outcome
                not_api = not_the_api(response, method, path, operation, token, self.settings.base_url)
                if not_api is not None:
                    raise not_api
                if response.is_success:
                    try:
                        return status, self._decode(response, method, path, operation)
                    except MalformedResponse as unreadable:
                        error = unreadable
                    # An answer that cannot be read is a failed attempt like a 5xx: safe to repeat when idempotent.
                    retryable = method in _IDEMPOTENT
                else:
                    error = api_error(response, method, path, operation, token)
                    retryable = isinstance(error, RateLimited) or (
                        isinstance(error, ServerError) and method in _IDEMPOTENT
                    )
            # A 429 means the API did not act and will again: it gets a larger budget than faults do.
            budget = self.settings.max_retries * (4 if isinstance(error, RateLimited) else 1)
            if not retryable or attempt >= budget:
                raise error
            if nothing_there is not None:
                seconds = self._random.uniform(0, min(nothing_there_left, 0.05 * 2**attempt))
                nothing_there_left -= seconds
                self._wait("retry", seconds, operation, nothing_there.reason, attempt + 1)
            else:
                retry_after = error.retry_after if isinstance(error, ApiError) else None
                self._wait("retry", self._backoff(attempt, retry_after), operation, why_retried(error), attempt + 1)
            attempt += 1

    def _send_once(
        self,
        method: str,
        path: str,
        operation: str,
        body: Any,
        auth: tuple[dict[str, str], str],
        announce: _RateWaitAnnouncer | None,
        on_send: Callable[[], None] | None,
    ) -> tuple[int, httpx.Response] | TransportError | _NothingThere:
        """One attempt, within the rate limit: a 429 gives its place back (the API did not count it)."""
        slot = self._limiter.acquire(announce)
        if method != "GET":
            before_write()  # the engine that asked for it is still there (a killed `pulumi up`: exits)
        if on_send is not None:
            on_send()
        outcome = self._attempt(method, path, operation, body, *auth)
        if isinstance(outcome, tuple) and outcome[0] == 429:
            self._limiter.release(slot)
        else:
            self._limiter.settle(slot)
        return outcome

    def _attempt(
        self, method: str, path: str, operation: str, body: Any, headers: dict[str, str], token: str
    ) -> tuple[int, httpx.Response] | TransportError | _NothingThere:
        """Send once: the answer, or the TransportError that says why there is none (never raised here)."""
        unsendable: str | None = None
        try:
            response = self._http.request(method, path, json=body, headers=headers)
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL, UnicodeEncodeError) as exc:
            # Refused by the client itself: the message of these exceptions quotes the offending value (the
            # Authorization header, escaped), so only its kind is kept.
            unsendable = _why_unsendable(exc, headers, path)
        except httpx.TransportError as exc:
            return _transport_error(exc, method, path, operation, token, self.settings.base_url)
        else:
            return response.status_code, response
        return _Unsendable(
            f"{operation} failed: {method} {path} could not be sent ({unsendable}); it never reached the API, "
            "so nothing was changed",
            operation=operation,
            method=method,
            path=path,
            may_have_reached_api=False,
        )

    def pause(self, attempt: int, *, operation: str, reason: str) -> None:
        """Sleep the backoff before retry ``attempt + 1`` of a whole operation, after ``reason``."""
        self._wait("retry", self._backoff(attempt, None), operation, reason, attempt + 1)

    def wait(self, seconds: float, *, operation: str, reason: str) -> None:
        """Sleep ``seconds``, if more than none (callers that let the API settle before they look again)."""
        if seconds > 0:
            self._wait("settle", seconds, operation, reason)

    def _wait(
        self,
        kind: Literal["rate-limit", "retry", "settle"],
        seconds: float,
        operation: str,
        reason: str,
        attempt: int = 0,
    ) -> None:
        if self._on_wait is not None:
            self._on_wait(Wait(kind, seconds, operation, reason, attempt))
        self._sleep(seconds)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_SECONDS)
        # Full jitter: spreads the retries of parallel operations instead of synchronising them.
        return self._random.uniform(0, min(MAX_BACKOFF_SECONDS, 0.25 * 2**attempt))

    def _decode(self, response: httpx.Response, method: str, path: str, operation: str) -> Any:
        if not response.content.strip():
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
        # Raised outside the handler: the decode error holds the whole body, which may echo the token.
        raise malformed(
            method,
            path,
            operation,
            "JSON",
            status=response.status_code,
            body=response.text,
            token=self.settings.api_token,
        )

    def _as_agent(self, data: Any, status: int, method: str, path: str, operation: str) -> dict[str, Any]:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise malformed(
                method,
                path,
                operation,
                "a JSON agent with an id",
                status=status,
                body=json.dumps(data),
                token=self.settings.api_token,
            )
        return data


class _RateWaitAnnouncer:
    """Tells ``on_wait`` of a wait for a place in the rate limit, naming the operation and the setting."""

    __slots__ = ("_on_wait", "_operation", "_reason")

    def __init__(self, on_wait: Callable[[Wait], None], operation: str, settings: Settings) -> None:
        self._on_wait = on_wait
        self._operation = operation
        self._reason = (
            f"the client-side rate limit ({settings.max_requests_per_minute:g} requests/min, "
            "oppie:maxRequestsPerMinute)"
        )

    def __call__(self, seconds: float) -> None:
        self._on_wait(Wait("rate-limit", seconds, self._operation, self._reason))


class _Unsendable(TransportError):
    """The client could not send the request at all; repeating it would fail the same way."""


@dataclass(frozen=True)
class _NothingThere:
    """Nothing answered at the base URL (connection refused, unknown host): retried only briefly. ``error`` is
    raised if the call gives up (a plain ``TransportError``); ``reason``, in a few words, is ``Wait.reason``."""

    error: TransportError
    reason: str


def _transport_error(
    exc: httpx.TransportError, method: str, path: str, operation: str, token: str, base_url: str
) -> TransportError | _NothingThere:
    """The error for a request that got no answer, built from what it needs (never holding ``exc``)."""
    why = _why_nothing_there(exc)
    unsent = why is not None or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if why is not None:
        what = (
            f"failed ({type(exc).__name__}): could not connect to {base_url} ({why[0]}): {why[1]} Check "
            "oppie:baseUrl / OPPIE_BASE_URL. The request never reached the API, so nothing was changed"
        )
    else:
        kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
        what = f"{kind} ({type(exc).__name__}: {exc or 'no detail'}) talking to {base_url}" + (
            "; the request never reached the API, so nothing was changed" if unsent else ""
        )
    error = TransportError(
        redact(f"{operation} failed: {method} {path} {what}", token),
        operation=operation,
        method=method,
        path=path,
        may_have_reached_api=not unsent,
    )
    return error if why is None else _NothingThere(error, redact(f"could not connect to {base_url} ({why[0]})", token))


def _why_nothing_there(exc: httpx.TransportError) -> tuple[str, str] | None:
    """``(what happened, the question to ask)`` when ``exc`` says nothing answers at the address, else ``None``.

    httpx keeps the operating system's error as the cause of its own (through httpcore's).
    """
    if not isinstance(exc, httpx.ConnectError):
        return None
    cause: BaseException | None = exc
    for _ in range(4):  # httpx -> httpcore -> OSError; never a loop
        if cause is None:
            return None
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused", "is the API running there?"
        # EAI_NONAME: the name is known not to exist. EAI_AGAIN (no DNS answer yet, often offline) may pass: it is
        # retried as usual.
        if isinstance(cause, socket.gaierror) and cause.errno == socket.EAI_NONAME:
            return f"its host name does not resolve: {cause.strerror}", "is the host name right?"
        cause = cause.__cause__ or cause.__context__
    return None


def _why_unsendable(exc: Exception, headers: dict[str, str], path: str) -> str:
    """What kept a request from being sent, without quoting the value (it may be the token)."""
    # httpx's UnicodeEncodeError holds only the piece it could not encode: ask which input cannot be encoded.
    unencodable = isinstance(exc, UnicodeEncodeError) and exc.object not in headers.values()
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol) or (unencodable and not _encodable(path)):
        return "its URL holds a character HTTP cannot carry: check oppie:baseUrl and the agent id"
    if unencodable:
        return "its body holds text that cannot be encoded as UTF-8, such as a lone surrogate"
    return (
        "a header holds a character no HTTP header can carry (a control or non-ASCII character): check "
        "oppie:apiToken / OPPIE_API_TOKEN; the value is not shown"
    )


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_CLIENTS: dict[tuple[Settings, Callable[[Wait], None] | None], PhoneApiClient] = {}
_CLIENTS_LOCK = threading.Lock()


def client_for(settings: Settings, on_wait: Callable[[Wait], None] | None = None) -> PhoneApiClient:
    """The process-wide client for ``settings`` (and ``on_wait``), built on first use and shared by every thread."""
    key = (settings, on_wait)
    client = _CLIENTS.get(key)
    if client is None:
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                client = _CLIENTS[key] = PhoneApiClient(settings, on_wait=on_wait)
    return client
