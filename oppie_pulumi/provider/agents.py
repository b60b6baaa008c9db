"""The ``oppie:index:PhoneAgent`` operations the plugin serves, in ``_models``' Python names.

They are the dynamic ``PhoneAgentProvider``'s, not a copy of them: the same check, the same create with its
reconciliation of lost answers, the same minimal PATCH, the same read and delete, the same mapping of an agent to
outputs (``_models.outputs_from_agent``). What a plugin can do and a dynamic provider cannot is added here:

- a **detailed diff**: which property changes, and how (added, changed, removed; ``model`` as a replacement), so
  ``pulumi preview --diff`` shows per-property changes and the ``replaceOnChanges`` option works;
- **previews of create and update** that say which outputs stay known (an update keeps the id, the number and the
  organisation; only ``updatedAt`` becomes unknown);
- settings from the provider's own configuration (stack config ``oppie:*`` or an explicit provider), and the
  reporting client of ``provider.client`` (progress lines, deadlines).

``adopt_id`` is refused: the plugin supports Pulumi's own import, which does what adoption does without a
property that outlives its use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pulumi.dynamic import CheckFailure, CheckResult
from pulumi.runtime.rpc import UNKNOWN

from .._client import PhoneApiClient
from .._config import Settings
from .._models import COMPUTED_OUTPUTS, INPUT_FIELDS, REPLACE_ON_CHANGE
from ..phone_agent import ADOPT_ID, PhoneAgentProvider, _changed
from .client import reporting_client_for

__all__ = ["AgentOperations", "PropertyChange"]

# What the dynamic provider stores in every resource: its presence marks a resource moving to the plugin (an alias
# from the dynamic type), whose state is rewritten by an update that calls nothing.
DYNAMIC_STATE_KEY = "__provider"

# Outputs an update never changes: the API keeps an agent's id, organisation, number and creation time.
STABLE_ON_UPDATE = ("org_id", "phone_number", "provider_external_id", "created_at")


@dataclass(frozen=True)
class PropertyChange:
    """How one property changes: ``kind`` from the old outputs to the new inputs, and whether it replaces."""

    kind: Literal["add", "update", "delete"]
    replace: bool


class AgentOperations(PhoneAgentProvider):
    """``PhoneAgentProvider`` configured by the plugin, with the operations only a plugin can offer."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._settings = settings

    def _client(self) -> PhoneApiClient:
        assert self._settings is not None  # set in __init__; PhoneAgentProvider types it Optional
        return reporting_client_for(self._settings)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """The dynamic provider's check, minus ``adopt_id``: import an existing agent instead."""
        if ADOPT_ID in news:
            rest = {key: value for key, value in news.items() if key != ADOPT_ID}
            result = super().check(olds, rest)
            reason = (
                "is a property of the dynamic PhoneAgent only: to take over an existing agent, use the import "
                "resource option or `pulumi import oppie:index:PhoneAgent <name> <id>`"
            )
            return CheckResult(result.inputs, [*result.failures, CheckFailure(ADOPT_ID, reason)])
        return super().check(olds, news)

    def detailed_diff(
        self, olds: Mapping[str, Any], news: Mapping[str, Any], ignore: frozenset[str] = frozenset()
    ) -> dict[str, PropertyChange]:
        """Per-property changes from the old outputs to the new (checked) inputs, as ``diff`` decides them.

        A value not yet known counts as a change (and an unknown ``model`` as a replacement), as in ``diff``.
        Properties in ``ignore`` (``ignoreChanges``) never change.
        """
        changes: dict[str, PropertyChange] = {}
        for name in _changed(olds, news):
            if name in ignore:
                continue
            old, new = olds.get(name), news.get(name)
            kind: Literal["add", "update", "delete"] = "add" if old is None else "delete" if new is None else "update"
            changes[name] = PropertyChange(kind, name in REPLACE_ON_CHANGE)
        return changes

    @staticmethod
    def preview_create(props: Mapping[str, Any]) -> dict[str, Any]:
        """What a create will output, as far as a preview knows: the inputs, and unknown computed outputs."""
        outputs = {name: props.get(name) for name in INPUT_FIELDS}
        outputs.update(dict.fromkeys(COMPUTED_OUTPUTS, UNKNOWN))
        return outputs

    @staticmethod
    def preview_update(olds: Mapping[str, Any], news: Mapping[str, Any]) -> dict[str, Any]:
        """What an update will output, as far as a preview knows: the new inputs, and what an update keeps."""
        outputs = {name: news.get(name) for name in INPUT_FIELDS}
        outputs.update({name: olds.get(name) for name in STABLE_ON_UPDATE})
        outputs["updated_at"] = UNKNOWN
        return outputs
