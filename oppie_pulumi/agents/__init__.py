"""The core: every rule about a phone agent, with no Pulumi types, under both providers.

- ``rules``: check, the per-property diff, the previews and the outputs of a read (pure, no API);
- ``service``: ``AgentService``, the operations (create, adopt, read, update, delete) over the API client;
- ``reconcile``: a create whose answer was lost finds the agent it made, and never makes two;
- ``coordination``: who holds which agent, and identical creates one at a time (locks, held ids, run memory).

The dynamic ``PhoneAgentProvider`` (``oppie_pulumi.phone_agent``) and the plugin (``oppie_pulumi.provider``) are
thin adapters over ``AgentService``; they never import each other.
"""

from .rules import (
    ADOPT_ID,
    IDENTITY_OUTPUTS,
    NOT_YET_KNOWN,
    REASSIGNED,
    STABLE_ON_UPDATE,
    Checked,
    CheckFailure,
    Diff,
    PropertyChange,
    UnknownForm,
    check_declared,
)
from .service import AgentService, Created, Refreshed

__all__ = [
    "ADOPT_ID",
    "IDENTITY_OUTPUTS",
    "NOT_YET_KNOWN",
    "REASSIGNED",
    "STABLE_ON_UPDATE",
    "AgentService",
    "CheckFailure",
    "Checked",
    "Created",
    "Diff",
    "PropertyChange",
    "Refreshed",
    "UnknownForm",
    "check_declared",
]
