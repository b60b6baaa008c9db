"""The shared API client, made to report its waits to the engine and to respect an operation's deadline.

``_client.PhoneApiClient`` waits in two places without telling anyone: for a place in the rate limiter's window,
and between retries. Under the plugin those waits become lines in the CLI ("waiting 12 s for the rate limit"),
and an operation with ``customTimeouts`` stops waiting (and fails, saying so) rather than overrun its deadline.
This module adds that from outside: a ``RateLimiter`` subclass that announces a wait before it blocks, and a
``PhoneApiClient`` subclass that announces each retry. It sends requests exactly as the client does; only the
client knows httpx.

It leans on two internals of ``_client`` (the limiter's window, the client's ``_backoff``/``_error`` steps);
a callback in ``PhoneApiClient`` would make this module a few lines (see docs/plugin.md, "Hooks").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .._client import PhoneApiClient, RateLimiter, Slot
from .._config import Settings
from .._exceptions import ApiError, OppieError, RateLimited
from .engine import Operation

__all__ = ["CallInfo", "DeadlineExceeded", "ReportingClient", "ReportingRateLimiter", "reporting_client_for"]

# A wait shorter than this is not worth a line in the CLI.
_MIN_REPORTED_WAIT = 0.5


class DeadlineExceeded(OppieError):
    """The operation would overrun its ``customTimeouts`` waiting for the rate limit or a retry."""


class CallInfo(threading.local):
    """The API call this thread is making, for the messages about its waits."""

    operation = ""
    failure: str | None = None  # why the last attempt failed, when the API answered


def _check_deadline(wait: float, what: str, call: CallInfo) -> None:
    operation = Operation.current()
    left = None if operation is None else operation.remaining()
    if operation is not None and left is not None and wait > left:
        raise DeadlineExceeded(
            f"{call.operation} failed: it would have to wait {wait:.1f} s for {what}, past its custom timeout of "
            f"{operation.timeout:g} s ({max(left, 0):.1f} s left). Fix: raise the resource's customTimeouts, or "
            "run again when fewer operations share the rate limit (e.g. `pulumi up --parallel 2`)"
        )


class ReportingRateLimiter(RateLimiter):
    """A ``RateLimiter`` that tells the engine, before it blocks, how long it is going to wait."""

    def __init__(self, per_minute: float, call: CallInfo, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(per_minute, clock)
        self._call = call
        self._per_minute = per_minute

    def acquire(self) -> Slot:
        wait = self.expected_wait()
        if wait >= _MIN_REPORTED_WAIT:
            what = f"the client-side rate limit ({self._per_minute:g} requests/min, oppie:maxRequestsPerMinute)"
            _check_deadline(wait, what, self._call)
            operation = Operation.current()
            if operation is not None:
                # A status, not a diagnostic: waiting for the limit is the limiter doing its job.
                operation.waiting(wait, f"{self._call.operation}: waiting {wait:.0f} s for {what}", ephemeral=True)
        return super().acquire()

    def expected_wait(self) -> float:
        """How long a request asking now would wait (other threads may take the place first)."""
        # Reads the window the way RateLimiter.acquire does, under its lock.
        limiter: Any = self
        with limiter._lock:
            limit = limiter._limit
            if limit <= 0:
                return 0.0
            now = limiter._clock()
            times = sorted(slot.at for slot in limiter._slots if slot.at > now - self.WINDOW_SECONDS)
            if len(times) < limit:
                return 0.0
            return float(times[len(times) - limit] + self.WINDOW_SECONDS - now)


class ReportingClient(PhoneApiClient):
    """``PhoneApiClient`` that reports rate-limit waits and retries to the engine and honours deadlines."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._this_call = CallInfo()
        self._limiter = ReportingRateLimiter(settings.max_requests_per_minute, self._this_call)

    def _call(self, method: str, path: str, operation: str, json: Any = None) -> tuple[int, Any]:
        self._this_call.operation, self._this_call.failure = operation, None
        return super()._call(method, path, operation, json=json)

    def _error(self, response: Any, method: str, path: str, operation: str, token: str) -> ApiError:
        error = super()._error(response, method, path, operation, token)
        self._this_call.failure = f"{method} {path} answered {error.status_code}"
        if isinstance(error, RateLimited):
            self._this_call.failure += " (rate limited by the API)"
        return error

    def pause(self, attempt: int) -> None:
        # Between whole-operation retries: a create found the API had not acted on its POST, and sends it again.
        self._this_call.operation = "create phone agent"
        self._this_call.failure = "the API did not act on the request (no agent was created)"
        super().pause(attempt)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = super()._backoff(attempt, retry_after)
        call = self._this_call
        why = call.failure or "no usable answer"
        call.failure = None
        _check_deadline(delay, f"retry {attempt + 1}", call)
        operation = Operation.current()
        if operation is not None:
            operation.waiting(delay, f"{call.operation}: {why}; retry {attempt + 1} in {delay:.1f} s")
        return delay


_CLIENTS: dict[Settings, ReportingClient] = {}
_CLIENTS_LOCK = threading.Lock()


def reporting_client_for(settings: Settings) -> ReportingClient:
    """The plugin process's client for ``settings``, built on first use and shared by every thread."""
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(settings)
        if client is None:
            client = _CLIENTS[settings] = ReportingClient(settings)
        return client
