"""The provider's settings: stack config first, then environment variables, then defaults.

| setting             | stack config                   | environment                     | default     |
|---------------------|--------------------------------|---------------------------------|-------------|
| API token (secret)  | ``oppie:apiToken``             | ``OPPIE_API_TOKEN``             | none: error |
| base URL            | ``oppie:baseUrl``              | ``OPPIE_BASE_URL``              | api.open.cx |
| request timeout (s) | ``oppie:timeoutSeconds``       | ``OPPIE_TIMEOUT_SECONDS``       | 30          |
| client rate limit   | ``oppie:maxRequestsPerMinute`` | ``OPPIE_MAX_REQUESTS_PER_MINUTE`` | 100, 0: off |
| retries per call    | ``oppie:maxRetries``           | ``OPPIE_MAX_RETRIES``           | 5           |

A missing token is not an error until the first API call: ``check`` and ``diff`` (all a preview
needs) work without one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ._exceptions import ConfigError

__all__ = ["DEFAULT_BASE_URL", "Settings"]

DEFAULT_BASE_URL = "https://api.open.cx"

MISSING_TOKEN_HELP = (
    "no API token is configured for oppie: set it with "
    "`pulumi config set --secret oppie:apiToken <token>` or the environment variable OPPIE_API_TOKEN"
)

# (stack config key, environment variable)
_SOURCES = {
    "api_token": ("oppie:apiToken", "OPPIE_API_TOKEN"),
    "base_url": ("oppie:baseUrl", "OPPIE_BASE_URL"),
    "timeout_seconds": ("oppie:timeoutSeconds", "OPPIE_TIMEOUT_SECONDS"),
    "max_requests_per_minute": ("oppie:maxRequestsPerMinute", "OPPIE_MAX_REQUESTS_PER_MINUTE"),
    "max_retries": ("oppie:maxRetries", "OPPIE_MAX_RETRIES"),
}


@dataclass(frozen=True)
class Settings:
    """Resolved provider settings. ``api_token`` is hidden from ``repr`` so it cannot leak in logs."""

    api_token: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout_seconds: float = 30.0
    max_requests_per_minute: float = 100.0
    max_retries: int = 5

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
        for name, (key, var) in _SOURCES.items():
            value = config_get(key)
            if value is None or value == "":
                value = env.get(var) or None
            if value is not None:
                raw[name] = str(value).strip()

        base_url = raw.get("base_url", DEFAULT_BASE_URL).rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"oppie:baseUrl / OPPIE_BASE_URL must be an http(s) URL such as {DEFAULT_BASE_URL}, got {base_url!r}"
            )
        return cls(
            api_token=raw.get("api_token") or None,
            base_url=base_url,
            timeout_seconds=_number(raw, "timeout_seconds", 30.0, minimum=0.001),
            max_requests_per_minute=_number(raw, "max_requests_per_minute", 100.0, minimum=0.0),
            max_retries=int(_number(raw, "max_retries", 5, minimum=0)),
        )

    def require_token(self) -> str:
        """The token, or a ``ConfigError`` that says both ways to set it."""
        if not self.api_token:
            raise ConfigError(MISSING_TOKEN_HELP)
        return self.api_token


def _number(raw: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    if name not in raw:
        return default
    key, var = _SOURCES[name]
    try:
        value = float(raw[name])
    except ValueError:
        raise ConfigError(f"{key} / {var} must be a number, got {raw[name]!r}") from None
    if value < minimum:
        raise ConfigError(f"{key} / {var} must be at least {minimum:g}, got {raw[name]!r}")
    return value
