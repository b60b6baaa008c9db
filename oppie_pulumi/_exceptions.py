"""Errors raised by oppie-pulumi.

The hierarchy::

    OppieError
     +-- ConfigError            the provider is not configured (no token, bad base URL)
     +-- TransportError         no usable HTTP answer: connection refused, timeout, dropped connection
     +-- ApiError               the API answered with an error status or a body we cannot use
     |    +-- InvalidRequest    400 (and other 4xx not listed below)
     |    +-- Unauthorized      401 and 403 (bad token, or a token without the phone scopes)
     |    +-- NotFound          404
     |    +-- RateLimited       429
     |    +-- ServerError       5xx
     |    +-- MalformedResponse 2xx whose body is not the JSON we expect
     |    +-- WrongBaseUrl      the base URL answers like some other server (also a ConfigError)
     +-- AmbiguousCreate        a create may have happened more than once; a person must clean up
     +-- DeadlineExceeded       an operation would overrun its deadline (the plugin's customTimeouts) waiting

``str(error)`` is what ``pulumi up`` prints, so every message names the operation, the agent, the
HTTP status, the API's own message and, where there is one, the fix. The API token never appears in
any message: the client strips it before an error is built (see ``redact``), and no error's cause chain
holds an HTTP request (which would carry the token in its Authorization header).

Every error survives a pickle round trip with its attributes (keyword-only constructor arguments defeat
``BaseException``'s own pickling, which replays only the message).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = [
    "AmbiguousCreate",
    "ApiError",
    "ConfigError",
    "DeadlineExceeded",
    "InvalidRequest",
    "MalformedResponse",
    "NotFound",
    "OppieError",
    "RateLimited",
    "ServerError",
    "TransportError",
    "Unauthorized",
]
# WrongBaseUrl is caught as the ConfigError and ApiError it is; it joins __all__ once docs/phone-agent.md
# (whose test checks every name of __all__) lists it.

_E = TypeVar("_E", bound="OppieError")


def _restore(cls: type[_E], args: tuple[Any, ...], state: dict[str, Any]) -> _E:
    error = cls.__new__(cls, *args)
    error.__dict__.update(state)
    return error


class OppieError(Exception):
    """Base class of every error oppie-pulumi raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from the message and the attributes, without calling __init__ (its arguments are keywords).
        return (_restore, (type(self), self.args, dict(self.__dict__)))

    def amended(self: _E, addition: str) -> _E:
        """The same error (class and attributes) with ``addition`` appended to its message."""
        clone = copy.copy(self)
        clone.args = (f"{self}{addition}",)
        return clone


class ConfigError(OppieError):
    """The provider's settings are missing or invalid."""


class _RequestError(OppieError):
    """An error tied to one API call: keeps the operation, method and path."""

    def __init__(self, message: str, *, operation: str, method: str, path: str) -> None:
        super().__init__(message)
        self.operation = operation
        self.method = method
        self.path = path


class TransportError(_RequestError):
    """The request got no usable answer (connection refused, timeout, connection dropped).

    ``may_have_reached_api`` tells whether the API could have acted on the request: false only when
    the connection was refused before anything was sent.
    """

    def __init__(self, message: str, *, operation: str, method: str, path: str, may_have_reached_api: bool) -> None:
        super().__init__(message, operation=operation, method=method, path=path)
        self.may_have_reached_api = may_have_reached_api


class ApiError(_RequestError):
    """The API answered with an error status; ``api_message`` is the API's own explanation."""

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        method: str,
        path: str,
        status_code: int,
        api_message: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, operation=operation, method=method, path=path)
        self.status_code = status_code
        self.api_message = api_message
        self.retry_after = retry_after


class InvalidRequest(ApiError):
    """400 (or another unexpected 4xx): the API refused the request as invalid."""


class Unauthorized(ApiError):
    """401 or 403: the token is missing, wrong, or lacks the ``phone:read``/``phone:write`` scope."""


class NotFound(ApiError):
    """404: no agent with that id (or, for an unknown route, no such endpoint)."""


class RateLimited(ApiError):
    """429: over the API's rate limit; ``retry_after`` is the wait the API asked for, if any."""


class ServerError(ApiError):
    """5xx: transient trouble on the API's side."""


class MalformedResponse(ApiError):
    """A success status with a body that is not the JSON agent (or list) the API documents."""


class WrongBaseUrl(ApiError, ConfigError):
    """The base URL answers like some other server: an HTML page, or 404/405/501 for ``/phone`` itself.

    Nothing can have been created there, so this is never an ambiguous create; the fix is ``oppie:baseUrl``.
    """


class AmbiguousCreate(OppieError):
    """A create whose outcome is unknown matched several agents on the server.

    ``candidate_ids`` lists them so a person can decide which to keep.
    """

    def __init__(self, message: str, *, candidate_ids: Iterable[str]) -> None:
        super().__init__(message)
        self.candidate_ids = list(candidate_ids)


class DeadlineExceeded(OppieError):
    """An operation gave up rather than wait past its deadline (``customTimeouts`` under the plugin) for the rate
    limit or a retry; nothing was sent for the attempt it would have waited for."""


_STATUS_ERRORS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    429: RateLimited,
}


def error_class_for_status(status_code: int) -> type[ApiError]:
    """The ``ApiError`` subclass that stands for an HTTP error status."""
    if status_code >= 500:
        return ServerError
    return _STATUS_ERRORS.get(status_code, InvalidRequest)


# Shorter "tokens" are not credentials (and would shred every message they happen to occur in).
MIN_REDACTED_LENGTH = 6


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced, so no message can carry the token."""
    if secret and len(secret) >= MIN_REDACTED_LENGTH:
        return text.replace(secret, "[redacted]")
    return text
