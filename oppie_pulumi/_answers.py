"""What an answer from the API means: the error it stands for, and the API's own words in it.

The client (``_client``, the only module that knows httpx) hands each answer here; ``Answer`` is the little of an
HTTP response this needs, so nothing here imports httpx. Every message names the operation, the request, the
status and the API's message, and never the token: it is redacted before anything is cut short.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from ._config import DEFAULT_BASE_URL
from ._exceptions import (
    ApiError,
    MalformedResponse,
    OppieError,
    RateLimited,
    Unauthorized,
    WrongBaseUrl,
    error_class_for_status,
    redact,
)

__all__ = ["Answer", "api_error", "malformed", "not_the_api", "retry_after_seconds", "snippet", "why_retried"]


class Answer(Protocol):
    """The parts of an HTTP response (``httpx.Response``) that say what it means."""

    @property
    def status_code(self) -> int: ...
    @property
    def reason_phrase(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    @property
    def is_success(self) -> bool: ...
    def json(self) -> Any: ...


_FIX_AUTH = (
    "check the token: set it with `pulumi config set --secret oppie:apiToken <token>` or "
    "OPPIE_API_TOKEN; a 403 means the token lacks the phone:read / phone:write scope"
)


def why_retried(error: OppieError) -> str:
    """Why an attempt is repeated, for ``Wait.reason``: the status the API answered, if it answered one."""
    if isinstance(error, ApiError) and not isinstance(error, MalformedResponse):
        why = f"{error.method} {error.path} answered {error.status_code}"
        return why + " (rate limited by the API)" if isinstance(error, RateLimited) else why
    return "no usable answer"


def not_the_api(
    response: Answer, method: str, path: str, operation: str, token: str, base_url: str
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
            f"{base_url} does not look like the phone-agent API ({why}): check oppie:baseUrl / "
            f"OPPIE_BASE_URL (the API's own is {DEFAULT_BASE_URL}). Nothing was created or changed there",
            token,
        ),
        operation=operation,
        method=method,
        path=path,
        status_code=status,
        api_message=api_message,
    )


def malformed(
    method: str, path: str, operation: str, expected: str, *, status: int, body: str, token: str | None
) -> MalformedResponse:
    # Redacted before it is cut short: a token cut in half would no longer be found, and half would show.
    shown = snippet(redact(body, token))
    detail = f"expected {expected}, got {shown!r}" if body else f"expected {expected}"
    return MalformedResponse(
        redact(
            f"{operation} failed: {method} {path} answered {status} with a body that is not "
            f"what the API documents ({detail})",
            token,
        ),
        operation=operation,
        method=method,
        path=path,
        status_code=status,
        api_message=detail,
    )


def api_error(response: Answer, method: str, path: str, operation: str, token: str) -> ApiError:
    status = response.status_code
    api_message = _api_message(response, token)
    cls = error_class_for_status(status)
    message = f"{operation} failed: {method} {path} answered {status} {response.reason_phrase}: {api_message}"
    if cls is Unauthorized:
        message += f". Fix: {_FIX_AUTH}"
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
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


def retry_after_seconds(value: str | None) -> float | None:
    """The wait a ``Retry-After`` header asks for (seconds or an HTTP date), or ``None``."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(float(parsedate_to_datetime(value).timestamp()) - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def snippet(text: str, limit: int = 200) -> str:
    """``text`` fit to quote: markup dropped, whitespace folded, cut at ``limit`` characters."""
    text = re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _api_message(response: Answer, secret: str | None) -> str:
    """The API's own explanation from the ``{statusCode, error, message}`` envelope, or the body.

    ``secret`` is redacted before anything is cut short, so no part of it survives a cut.
    """
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = _UNREADABLE
    if body is _UNREADABLE:
        text = snippet(redact(response.text, secret))
        return f"(no JSON error body; the response said: {text!r})" if text else "(empty body)"
    if isinstance(body, dict):
        message = body.get("message", body.get("error"))
        if isinstance(message, list):
            return redact("; ".join(str(m) for m in message), secret)
        if message is not None:
            return redact(str(message), secret)
    return snippet(redact(json.dumps(body), secret))


_UNREADABLE = object()
