"""The provider's settings: stack config first, then environment variables, then defaults.

| setting             | stack config                   | environment                     | default     |
|---------------------|--------------------------------|---------------------------------|-------------|
| API token (secret)  | ``oppie:apiToken``             | ``OPPIE_API_TOKEN``             | none: error |
| base URL            | ``oppie:baseUrl``              | ``OPPIE_BASE_URL``              | api.open.cx |
| request timeout (s) | ``oppie:timeoutSeconds``       | ``OPPIE_TIMEOUT_SECONDS``       | 30          |
| client rate limit   | ``oppie:maxRequestsPerMinute`` | ``OPPIE_MAX_REQUESTS_PER_MINUTE`` | 100, 0: off |
| retries per call    | ``oppie:maxRetries``           | ``OPPIE_MAX_RETRIES``           | 5           |
| list sharing (s)    | ``oppie:listCacheSeconds``     | ``OPPIE_LIST_CACHE_SECONDS``    | 2, 0: off   |
| rate window (s)     | ``oppie:rateLimitWindowSeconds`` | ``OPPIE_RATE_LIMIT_WINDOW_SECONDS`` | 60      |

The last two exist for benchmarks and tests (a read measured with a fresh ``GET /phone`` each time; a rate-limited
run time-scaled to a shorter window): users keep the defaults. Every setting is declared once, in ``SOURCES``, with
its key, variable and description; the plugin's schema is generated from it.

A missing token is not an error until the first API call: ``check`` and ``diff`` (all a preview
needs) work without one. A token that no HTTP header can carry (a control character, or a non-ASCII
one, as a copy-paste can bring in) is refused here, at configure, without being shown.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from ._exceptions import ConfigError

__all__ = ["DEFAULT_BASE_URL", "SOURCES", "Settings", "Source"]

DEFAULT_BASE_URL = "https://api.open.cx"

MISSING_TOKEN_HELP = (
    "no API token is configured for oppie: set it with "
    "`pulumi config set --secret oppie:apiToken <token>` or the environment variable OPPIE_API_TOKEN"
)

BAD_TOKEN_HELP = (
    "oppie:apiToken / OPPIE_API_TOKEN holds a character no HTTP header can carry ({what}, character {position}): "
    "set the token again exactly as issued, with `pulumi config set --secret oppie:apiToken <token>` or "
    "OPPIE_API_TOKEN. The token is never shown."
)
# Settings values quoted in an error are cut to this many characters.
SHOWN_CHARACTERS = 60


@dataclass(frozen=True)
class Source:
    """Where one setting comes from (stack config key, environment variable) and what it means."""

    key: str
    variable: str
    description: str
    secret: bool = False


SOURCES: dict[str, Source] = {
    "api_token": Source("oppie:apiToken", "OPPIE_API_TOKEN", "The phone-agent API's bearer token.", secret=True),
    "base_url": Source("oppie:baseUrl", "OPPIE_BASE_URL", "Base URL of the phone-agent API, e.g. a local sandbox."),
    "timeout_seconds": Source(
        "oppie:timeoutSeconds", "OPPIE_TIMEOUT_SECONDS", "Timeout of one HTTP request, in seconds."
    ),
    "max_requests_per_minute": Source(
        "oppie:maxRequestsPerMinute",
        "OPPIE_MAX_REQUESTS_PER_MINUTE",
        "Client-side rate limit in requests per minute (0 turns it off); the API documents 100 per organisation.",
    ),
    "max_retries": Source(
        "oppie:maxRetries",
        "OPPIE_MAX_RETRIES",
        "How many times a failed call is retried (429 answers get four times as many).",
    ),
    "list_cache_seconds": Source(
        "oppie:listCacheSeconds",
        "OPPIE_LIST_CACHE_SECONDS",
        "Reads within this many seconds share one GET /phone (0: every read lists); the provider's own writes "
        "always start a fresh list.",
    ),
    "rate_limit_window_seconds": Source(
        "oppie:rateLimitWindowSeconds",
        "OPPIE_RATE_LIMIT_WINDOW_SECONDS",
        "The window maxRequestsPerMinute is counted over, in seconds (60). Benchmarks shorten it to time-scale a "
        "rate-limited run; leave it alone against the real API.",
    ),
}


@dataclass(frozen=True)
class Settings:
    """Resolved provider settings. ``api_token`` is hidden from ``repr`` so it cannot leak in logs."""

    api_token: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout_seconds: float = 30.0
    max_requests_per_minute: float = 100.0
    max_retries: int = 5
    list_cache_seconds: float = 2.0
    rate_limit_window_seconds: float = 60.0

    # A pickle of Settings can end up anywhere (a state file, a cache, a crash report): it never holds the
    # token. A copy is the same immutable object, token and all.
    def __getstate__(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_token"}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        for name, value in {**state, "api_token": None}.items():
            object.__setattr__(self, name, value)

    def __copy__(self) -> Settings:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Settings:
        return self

    @classmethod
    def resolve(
        cls,
        config_get: Callable[[str], object | None],
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Settings from stack config (``config_get("oppie:apiToken")``), then ``environ``, then defaults.

        Raises ``ConfigError`` naming the key for a value that cannot be used.
        """
        env = os.environ if environ is None else environ
        raw: dict[str, str] = {}
        for name, source in SOURCES.items():
            value = config_get(source.key)
            if value is None or value == "":
                value = env.get(source.variable) or None
            if value is not None:
                raw[name] = str(value).strip()

        base_url = raw.get("base_url", DEFAULT_BASE_URL).rstrip("/")
        try:
            parts = urlsplit(base_url)
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number in 0..65535)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            valid = valid and base_url.isprintable() and " " not in base_url
        except ValueError:  # an unclosed [IPv6 host], a bad port
            valid = False
        if not valid:
            raise ConfigError(
                f"oppie:baseUrl / OPPIE_BASE_URL must be an http(s) URL such as {DEFAULT_BASE_URL}, "
                f"got {_shown_url(base_url)!r}"
            )
        token = raw.get("api_token") or None
        if token is not None:
            _check_token(token)
        return cls(
            api_token=token,
            base_url=base_url,
            timeout_seconds=_number(raw, "timeout_seconds", 30.0, minimum=0.001),
            max_requests_per_minute=_number(raw, "max_requests_per_minute", 100.0, minimum=0.0),
            max_retries=int(_number(raw, "max_retries", 5, minimum=0)),
            list_cache_seconds=_number(raw, "list_cache_seconds", 2.0, minimum=0.0),
            rate_limit_window_seconds=_number(raw, "rate_limit_window_seconds", 60.0, minimum=0.001),
        )

    def require_token(self) -> str:
        """The token, or a ``ConfigError`` that says both ways to set it."""
        if not self.api_token:
            raise ConfigError(MISSING_TOKEN_HELP)
        return self.api_token


def _check_token(token: str) -> None:
    """Refuse a token that cannot go into an Authorization header, never showing it (not even escaped)."""
    for position, ch in enumerate(token, start=1):
        if not (" " <= ch <= "~"):
            what = "a non-ASCII character" if ord(ch) > 0x7F else "a control character such as a line break"
            raise ConfigError(BAD_TOKEN_HELP.format(what=what, position=position))


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS] + "\u2026"


def _shown_url(url: str) -> str:
    """``url`` fit to quote in an error: without user:password@, query or fragment, and capped."""
    scheme, sep, rest = url.partition("://")
    if sep:
        host_part, slash, path = rest.partition("/")
        rest = host_part.rpartition("@")[2] + slash + path
        url = scheme + sep + rest
    return _shown(url.split("?", 1)[0].split("#", 1)[0])


def _number(raw: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    if name not in raw:
        return default
    key, var = SOURCES[name].key, SOURCES[name].variable
    try:
        value = float(raw[name])
    except ValueError:
        value = None
    if value is None or value != value:  # not a number, or NaN (which no comparison would catch)
        raise ConfigError(f"{key} / {var} must be a number, got {_shown(raw[name])!r}")
    if value < minimum:
        raise ConfigError(f"{key} / {var} must be at least {minimum:g}, got {_shown(raw[name])!r}")
    return value
