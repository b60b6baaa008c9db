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
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from ._config import DEFAULT_BASE_URL, Settings
from ._exceptions import (
    ApiError,
    ConfigError,
    MalformedResponse,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    WrongBaseUrl,
    error_class_for_status,
    redact,
)

__all__ = ["PhoneApiClient", "RateLimiter", "Slot", "client_for"]

_T = TypeVar("_T")

USER_AGENT = "oppie-pulumi/0.1.0"
MAX_BACKOFF_SECONDS = 8.0
MAX_RETRY_AFTER_SECONDS = 120.0
_IDEMPOTENT = frozenset({"GET", "PATCH", "DELETE"})

_FIX_AUTH = (
    "check the token: set it with `pulumi config set --secret oppie:apiToken <token>` or "
    "OPPIE_API_TOKEN; a 403 means the token lacks the phone:read / phone:write scope"
)


class Slot:
    """One request's place in the rate limiter's window: when it counts from, and how long it waited."""

    __slots__ = ("at", "waited")

    def __init__(self, at: float, waited: float) -> None:
        self.at = at
        self.waited = waited


class RateLimiter:
    """At most ``per_minute`` requests in any 60-second window, across all threads.

    A sliding window rather than a token bucket with a burst: it never exceeds the API's limit
    whichever of the two the API enforces, and still sends the first ``per_minute`` at once.

    The API counts a request from when it arrives, which we cannot see; we count it from when its
    answer came back (``settle``), which is never earlier. A request the API refused with a 429 was not
    counted by the API, so it gives its place back (``release``).
    """

    WINDOW_SECONDS = 60.0

    def __init__(
        self,
        per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._limit = int(per_minute)
        self._clock = clock
        self._sleep = sleep
        self._slots: list[Slot] = []
        self._lock = threading.Lock()

    def acquire(self) -> Slot:
        """Block until a request may be sent, and hold a place for it in the window."""
        started = self._clock()
        while True:
            with self._lock:
                now = self._clock()
                if self._limit <= 0:
                    return Slot(now, 0.0)
                window = self.WINDOW_SECONDS
                self._slots = [slot for slot in self._slots if slot.at > now - window]
                if len(self._slots) < self._limit:
                    slot = Slot(now, now - started)
                    self._slots.append(slot)
                    return slot
                # The place frees when enough of the oldest requests leave the window.
                times = sorted(slot.at for slot in self._slots)
                wait = times[len(times) - self._limit] + window - now
            self._sleep(max(wait, 0.001))

    def settle(self, slot: Slot) -> None:
        """The request got its answer: it counts from now."""
        with self._lock:
            slot.at = self._clock()

    def release(self, slot: Slot) -> None:
        """The API refused the request without counting it (429): give its place back."""
        with self._lock:
            if slot in self._slots:
                self._slots.remove(slot)


@dataclass
class _Snapshot:
    generation: int
    fetched_at: float
    agents: list[dict[str, Any]]


class PhoneApiClient:
    """Calls the phone-agent API with retries, rate limiting and error translation.

    ``label`` arguments name the agent in error messages (its name or id).
    """

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep) -> None:
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
        # client would wait.
        self._sleep = sleep
        self._limiter = RateLimiter(settings.max_requests_per_minute, sleep=sleep)
        self._random = random.Random()
        self._lock = threading.Condition()
        self._generation = 0
        self._snapshot: _Snapshot | None = None
        self._listing: int | None = None  # generation of the list call in flight, if any

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
                raise self._malformed(
                    "GET", "/phone", operation, "a JSON array of agents", status=status, body=json.dumps(data)
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
        while True:
            slot = self._limiter.acquire()
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
                not_api = self._not_the_api(response, method, path, operation, token)
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
                    error = self._error(response, method, path, operation, token)
                    retryable = isinstance(error, RateLimited) or (
                        isinstance(error, ServerError) and method in _IDEMPOTENT
                    )
            # A 429 means the API did not act and will again: it gets a larger budget than faults do.
            budget = self.settings.max_retries * (4 if isinstance(error, RateLimited) else 1)
            if not retryable or attempt >= budget:
                raise error
            retry_after = error.retry_after if isinstance(error, ApiError) else None
            self._sleep(self._backoff(attempt, retry_after))
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

    def pause(self, attempt: int) -> None:
        """Sleep the backoff for retry number ``attempt`` (callers that retry a whole operation)."""
        self._sleep(self._backoff(attempt, None))

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, if more than none (callers that let the API settle before they look again)."""
        if seconds > 0:
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
        raise self._malformed(method, path, operation, "JSON", status=response.status_code, body=response.text)

    def _not_the_api(
        self, response: httpx.Response, method: str, path: str, operation: str, token: str
    ) -> WrongBaseUrl | None:
        """A ``WrongBaseUrl`` when the answer cannot come from the phone-agent API, else ``None``.

        The API always has ``/phone`` (404 there is some other server; 404 on ``/phone/{id}`` is an unknown
        agent), answers no method with 405 or 501, and never answers a success with an HTML page. A gateway in
        front of the API may send HTML with a 5xx: that stays a ServerError, as the API may be behind it.
        """
        status = response.status_code
        html = "html" in response.headers.get("content-type", "").lower() or response.content.lstrip()[:1] == b"<"
        if status in (405, 501) or (status == 404 and path == "/phone"):
            why = f"it has no {method} {path}"
        elif response.is_success and html:
            why = "it answered with an HTML page"
        else:
            return None
        api_message = _api_message(response, token)
        return WrongBaseUrl(
            redact(
                f"{operation} failed: {method} {path} answered {status} {response.reason_phrase}: {api_message}. "
                f"{self.settings.base_url} does not look like the phone-agent API ({why}): check oppie:baseUrl / "
                f"OPPIE_BASE_URL (the API's own is {DEFAULT_BASE_URL}). Nothing was created or changed there",
                token,
            ),
            operation=operation,
            method=method,
            path=path,
            status_code=status,
            api_message=api_message,
        )

    def _as_agent(self, data: Any, status: int, method: str, path: str, operation: str) -> dict[str, Any]:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise self._malformed(
                method, path, operation, "a JSON agent with an id", status=status, body=json.dumps(data)
            )
        return data

    def _malformed(
        self, method: str, path: str, operation: str, expected: str, *, status: int, body: str
    ) -> MalformedResponse:
        # Redacted before it is cut short: a token cut in half would no longer be found, and half would show.
        shown = _snippet(redact(body, self.settings.api_token))
        detail = f"expected {expected}, got {shown!r}" if body else f"expected {expected}"
        return MalformedResponse(
            redact(
                f"{operation} failed: {method} {path} answered {status} with a body that is not "
                f"what the API documents ({detail})",
                self.settings.api_token,
            ),
            operation=operation,
            method=method,
            path=path,
            status_code=status,
            api_message=detail,
        )

    def _error(self, response: httpx.Response, method: str, path: str, operation: str, token: str) -> ApiError:
        status = response.status_code
        api_message = _api_message(response, token)
        cls = error_class_for_status(status)
        message = f"{operation} failed: {method} {path} answered {status} {response.reason_phrase}: {api_message}"
        if cls is Unauthorized:
            message += f". Fix: {_FIX_AUTH}"
        retry_after = _retry_after(response.headers.get("Retry-After"))
        if cls is RateLimited:
            wait = f"{retry_after:g} s" if retry_after is not None else "a moment"
            message += f" (the API asked to wait {wait}; lower oppie:maxRequestsPerMinute if this persists)"
        return cls(
            redact(message, token),
            operation=operation,
            method=method,
            path=path,
            status_code=status,
            api_message=api_message,
            retry_after=retry_after,
        )


def _snippet(text: str, limit: int = 200) -> str:
    text = re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _api_message(response: httpx.Response, secret: str | None) -> str:
    """The API's own explanation from the ``{statusCode, error, message}`` envelope, or the body.

    ``secret`` is redacted before anything is cut short, so no part of it survives a cut.
    """
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = _UNREADABLE
    if body is _UNREADABLE:
        text = _snippet(redact(response.text, secret))
        return f"(no JSON error body; the response said: {text!r})" if text else "(empty body)"
    if isinstance(body, dict):
        message = body.get("message", body.get("error"))
        if isinstance(message, list):
            return redact("; ".join(str(m) for m in message), secret)
        if message is not None:
            return redact(str(message), secret)
    return _snippet(redact(json.dumps(body), secret))


_UNREADABLE = object()


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


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


_CLIENTS: dict[Settings, PhoneApiClient] = {}
_CLIENTS_LOCK = threading.Lock()


def client_for(settings: Settings) -> PhoneApiClient:
    """The process-wide client for ``settings``, built on first use and shared by every thread."""
    client = _CLIENTS.get(settings)
    if client is None:
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(settings)
            if client is None:
                client = _CLIENTS[settings] = PhoneApiClient(settings)
    return client
