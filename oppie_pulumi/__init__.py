"""oppie-pulumi: AI phone agents as Pulumi resources.

from oppie_pulumi import PhoneAgent

support = PhoneAgent("support", name="Support line", language="en")
pulumi.export("support_number", support.phone_number)

The resource (``PhoneAgent`` and its provider, which import the Pulumi SDK) and ``AgentSpec`` (pydantic) load on
first use: the plugin (``oppie_pulumi.provider``) is a subpackage, so whatever this module imports, every start of
the plugin imports too, and the plugin uses neither the SDK nor, before its first check, pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._config import Settings
from ._exceptions import (
    AmbiguousCreate,
    ApiError,
    ConfigError,
    DeadlineExceeded,
    InvalidRequest,
    MalformedResponse,
    NotFound,
    OppieError,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
)
from ._version import __version__

if TYPE_CHECKING:
    from ._models import AgentSpec
    from .phone_agent import PhoneAgent, PhoneAgentArgs, PhoneAgentProvider

__all__ = [
    "AgentSpec",
    "AmbiguousCreate",
    "ApiError",
    "ConfigError",
    "DeadlineExceeded",
    "InvalidRequest",
    "MalformedResponse",
    "NotFound",
    "OppieError",
    "PhoneAgent",
    "PhoneAgentArgs",
    "PhoneAgentProvider",
    "RateLimited",
    "ServerError",
    "Settings",
    "TransportError",
    "Unauthorized",
    "__version__",
]

# The public names that load on first use, and the module each comes from.
_LAZY = {
    "AgentSpec": "._models",
    "PhoneAgent": ".phone_agent",
    "PhoneAgentArgs": ".phone_agent",
    "PhoneAgentProvider": ".phone_agent",
}


def __getattr__(name: str) -> Any:
    """``oppie_pulumi.PhoneAgent`` and the other names of ``_LAZY``, imported when first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
