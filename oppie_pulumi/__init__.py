"""oppie-pulumi: AI phone agents as Pulumi resources.

from oppie_pulumi import PhoneAgent

support = PhoneAgent("support", name="Support line", language="en")
pulumi.export("support_number", support.phone_number)
"""

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
from ._models import AgentSpec
from ._version import __version__
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
