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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from ._answers import api_error, malformed, not_the_api, why_retried
from ._config import Settings
from ._exceptions import (
    ApiError,
    ConfigError,
    MalformedResponse,
    RateLimited,
    ServerError,
    TransportError,
    redact,
)
from ._ratelimit import RateLimiter
from ._version import __version__

__all__ = ["PhoneApiClient", "Wait", "client_for"]

USER_AGENT = f"oppie-pulumi/{__version__}"
MAX_BACKOFF_SECONDS = 8.0
MAX_RETRY_AFTER_SECONDS = 120.0
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


@dataclass
class _Snapshot:
    generation: int
    fetched_at: float
    agents: list[dict[str, Any]]


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
        self._lock = threading.Condition()
        self._generation = 0
        self._snapshot: _Snapshot | None = None
        self._listing: int | None = None  # generation of the list call in flight, if any

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
        with self._lock:
            while True:
                snap = self._snapshot
                if snap and snap.generation == self._generation and time.monotonic() - snap.fetched_at <= max_age:
                    return snap.agents
                if self._listing is not None and self._listing == self._generation and max_age > 0:
                    self._lock.wait()
                    continue
                generation = self._generation
                self._listing = generation
                break
        try:
            started = time.monotonic()
            status, data = self._call("GET", "/phone", operation)
            if not isinstance(data, list) or not all(
                isinstance(a, dict) and isinstance(a.get("id"), str) for a in data
            ):
                raise malformed(
                    "GET",
                    "/phone",
                    operation,
                    "a JSON array of agents",
                    status=status,
                    body=json.dumps(data),
                    token=self.settings.api_token,
                )
            with self._lock:
                if generation == self._generation:
                    self._snapshot = _Snapshot(generation, started, data)
            return data
        finally:
            with self._lock:
                if self._listing == generation:
                    self._listing = None
                self._lock.notify_all()

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
        with self._lock:
            self._generation += 1
            self._snapshot = None

    def _call(self, method: str, path: str, operation: str, json: Any = None) -> tuple[int, Any]:
        """One API call with retries; returns the status and the decoded JSON body (``None`` if empty).

        No error raised from here carries an httpx object (a request holds the token in its headers), nor
        has one as its cause or context: each is built from what it needs, and raised outside any handler.
        """
        token = self.settings.require_token()
        headers = {"Authorization": f"Bearer {token}"}
        attempt = 0
        announce = None if self._on_wait is None else _RateWaitAnnouncer(self._on_wait, operation, self.settings)
        while True:
            slot = self._limiter.acquire(announce)
            outcome = self._attempt(method, path, operation, json, headers, token)
            if isinstance(outcome, tuple) and outcome[0] == 429:
                self._limiter.release(slot)
            else:
                self._limiter.settle(slot)
            error: TransportError | ApiError
            if isinstance(outcome, TransportError):
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
            retry_after = error.retry_after if isinstance(error, ApiError) else None
            self._wait("retry", self._backoff(attempt, retry_after), operation, why_retried(error), attempt + 1)
            attempt += 1

    def _attempt(
        self, method: str, path: str, operation: str, body: Any, headers: dict[str, str], token: str
    ) -> tuple[int, httpx.Response] | TransportError:
        """Send once: the answer, or the TransportError that says why there is none (never raised here)."""
        unsendable: str | None = None
        try:
            response = self._http.request(method, path, json=body, headers=headers)
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL, UnicodeEncodeError) as exc:
            # Refused by the client itself: the message of these exceptions quotes the offending value (the
            # Authorization header, escaped), so only its kind is kept.
            unsendable = _why_unsendable(exc, headers, path)
        except httpx.TransportError as exc:
            unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
            kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
            outcome = ", so nothing was changed" if unsent else ""
            return TransportError(
                redact(
                    f"{operation} failed: {method} {path} {kind} "
                    f"({type(exc).__name__}: {exc or 'no detail'}) talking to {self.settings.base_url}"
                    + ("; the request never reached the API" + outcome if unsent else ""),
                    token,
                ),
                operation=operation,
                method=method,
                path=path,
                may_have_reached_api=not unsent,
            )
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
