"""The rules about an agent that need no API: check, the per-property diff, the previews, refreshed outputs.

Pure functions over plain dicts in ``_models``' Python names: no Pulumi types, no I/O. Both adapters (the dynamic
``PhoneAgentProvider`` and the plugin's gRPC server) reach them through ``AgentService``, so a rule is written
once and both providers answer the same.

Values the engine does not know yet (during a preview) arrive in each adapter's own form: the adapter declares
it (``UnknownForm``: a sentinel string, objects of some types), and these rules look inside lists and mappings for
it. Such values pass through ``check`` untouched and count as a possible change in ``diff``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .._models import (
    COMPUTED_OUTPUTS,
    INPUT_FIELDS,
    OUTPUT_FIELDS,
    REPLACE_ON_CHANGE,
    defaults,
    normalized,
    outputs_from_agent,
    validation_failures,
)

__all__ = [
    "ADOPT_ID",
    "IDENTITY_OUTPUTS",
    "NOT_YET_KNOWN",
    "REASSIGNED",
    "STABLE_ON_UPDATE",
    "CheckFailure",
    "Checked",
    "Diff",
    "PropertyChange",
    "UnknownForm",
    "changed_fields",
    "check",
    "check_declared",
    "diff",
    "is_old_state",
    "label",
    "preview_create",
    "preview_update",
    "refreshed",
    "spec_of",
    "with_adopt_id",
]


@dataclass(frozen=True)
class UnknownForm:
    """How an adapter's engine hands over a value it does not know yet: a ``sentinel`` string (the wire's), and
    objects of ``types`` (an SDK's own class). A declaration, not a callback: a preview checks every input of
    every resource, and comparing a string costs a fraction of a call."""

    sentinel: str | None = None
    types: tuple[type, ...] = ()


# Take over an existing agent on create instead of POSTing (the dynamic resource's stand-in for Pulumi's import).
ADOPT_ID = "adopt_id"
# Outputs users export and wire elsewhere that the API may change on its own (it can reassign a number).
IDENTITY_OUTPUTS = ("phone_number", "provider_external_id")
# Set by a read when one of IDENTITY_OUTPUTS changed since the last deployment: {output: value it had}. The engine
# decides a refresh's 'update' or 'same' by the provider's Diff of the refreshed outputs against the *inputs*,
# which hold no such output, so without this mark a new number would refresh as 'same'. The next update drops it.
REASSIGNED = "_oppie_reassigned"
# Outputs an update never changes: the API keeps an agent's id, organisation, number and creation time.
STABLE_ON_UPDATE = ("org_id", "phone_number", "provider_external_id", "created_at")
# Deeper than any input PhoneAgent takes (lists of strings): a value nested further is invalid anyway, and
# validation reports it; looking further would only let a hostile input exhaust the stack.
_UNKNOWN_DEPTH = 32
_DEFAULTS = tuple(defaults().items())
_INPUT_NAMES = frozenset(INPUT_FIELDS)


class _NotYetKnown:
    """An output a preview cannot know: the API computes it on create or update. Adapters map it to their own
    form of an unknown value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_YET_KNOWN"


NOT_YET_KNOWN: Final = _NotYetKnown()


@dataclass(frozen=True)
class CheckFailure:
    """One invalid property and why, by Python name (``adopt_id`` included)."""

    property: str
    reason: str


@dataclass
class Checked:
    """The inputs with the API's defaults filled in (unknown values untouched), and every failure."""

    inputs: dict[str, Any]
    failures: list[CheckFailure] = field(default_factory=list)


@dataclass(frozen=True)
class PropertyChange:
    """How one property changes from the old outputs to the new inputs, and whether it replaces the agent."""

    kind: Literal["add", "update", "delete"]
    replace: bool


_NO_CHANGES: Mapping[str, PropertyChange] = {}


@dataclass(frozen=True)
class Diff:
    """Every property that changes, in ``INPUT_FIELDS`` order then the reassigned identity outputs."""

    changes: Mapping[str, PropertyChange] = field(default_factory=lambda: _NO_CHANGES)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    @property
    def replaces(self) -> list[str]:
        return [name for name, change in self.changes.items() if change.replace]


def _unknown_within(value: Any, form: UnknownForm, depth: int = 0) -> bool:
    """Whether ``value`` is, or contains (in lists and mappings), a value the engine does not know yet."""
    if isinstance(value, str):
        return value == form.sentinel
    if isinstance(value, list):
        if form.sentinel is not None and form.sentinel in value:
            return True  # the common list, of strings, settled at C speed
        return depth < _UNKNOWN_DEPTH and any(
            _unknown_within(item, form, depth + 1) for item in value if not isinstance(item, str)
        )
    if isinstance(value, dict):
        return depth < _UNKNOWN_DEPTH and any(_unknown_within(item, form, depth + 1) for item in value.values())
    return bool(form.types) and isinstance(value, form.types)


def label(props: Mapping[str, Any], agent_id: str | None = None) -> str:
    """How messages name an agent: its name, with its id when there is one."""
    name = props.get("name")
    if agent_id and isinstance(name, str):
        return f"{name!r} ({agent_id})"
    return repr(name) if isinstance(name, str) else str(agent_id)


def spec_of(props: Mapping[str, Any]) -> dict[str, Any]:
    """The declared agent: every input field of ``props`` (None where absent), nothing else."""
    return {name: props.get(name) for name in INPUT_FIELDS}


def is_old_state(olds: Mapping[str, Any]) -> bool:
    """A state written before ``model`` was declared (an earlier version, or a dynamic state moved to the
    plugin): every agent has a model, so a state without one lacks fields rather than values."""
    return olds.get("model") is None


def check(olds: Mapping[str, Any], news: Mapping[Any, Any], unknown_form: UnknownForm) -> Checked:
    """Validate the declared agent and fill in the API's defaults; unknown values pass untouched.

    ``olds`` are the resource's prior inputs (empty for a new resource). ``adopt_id`` is a create-time
    instruction: it is checked for a new resource and dropped for an existing one, so that a replacement (a
    model change) creates a new agent instead of re-adopting the old one.

    Inputs exactly as the prior ones (same values, same types) are not judged again: they were judged when they
    were new, or came from the live agent (a refresh), and are what the API holds. A preview of an unchanged
    stack spends most of its time in check, and this is most of check; any changed input is judged, with all
    the others.
    """
    inputs, unknown = _declared(news, unknown_form)
    adopt_id = inputs.pop(ADOPT_ID, None)
    if olds:
        adopt_id = None
    # Only an agent that will be POSTed must use a model POST /phone accepts: a new one, or the replacement a model
    # change makes. An adopted or existing one may carry a newer model (oppie-vox-livekit) that the API reports but
    # refuses on create. A state without a model (written before it was declared) is never replaced over it.
    new_agent = (not olds and adopt_id is None) or olds.get("model") not in (None, inputs["model"])
    failures = (
        []
        if olds and not unknown and _as_before(inputs, olds)
        else [CheckFailure(prop, reason) for prop, reason in validation_failures(inputs, unknown, new_agent=new_agent)]
    )
    if adopt_id is not None:
        if not (_unknown_within(adopt_id, unknown_form) or (isinstance(adopt_id, str) and adopt_id.strip())):
            failures.append(CheckFailure(ADOPT_ID, "must be the id of an existing agent (a non-empty string)"))
        inputs[ADOPT_ID] = adopt_id
    return Checked(inputs, failures)


def check_declared(news: Mapping[Any, Any], unknown_form: UnknownForm) -> list[CheckFailure]:
    """What ``check`` refuses in ``news`` whatever the resource's state: for a program to fail as it declares the
    resource, before the engine knows whether it exists. Left to ``check``: ``adopt_id`` (an existing resource
    ignores it) and the models only an existing agent may keep (oppie-vox-livekit)."""
    inputs, unknown = _declared(news, unknown_form)
    inputs.pop(ADOPT_ID, None)
    return [CheckFailure(prop, reason) for prop, reason in validation_failures(inputs, unknown)]


def _declared(news: Mapping[Any, Any], unknown_form: UnknownForm) -> tuple[dict[Any, Any], frozenset[Any]]:
    """The declared inputs with the API's defaults filled in, and the keys of those not known yet."""
    inputs = dict(news)
    # Engine keys (``__provider``, ``__defaults``) and computed outputs declared as None are not inputs. A key
    # that is not a string is kept, so that validation reports it instead of check raising.
    for key in inputs.keys() - _INPUT_NAMES:
        if (isinstance(key, str) and key.startswith("__")) or (key in COMPUTED_OUTPUTS and inputs[key] is None):
            del inputs[key]
    for key, default in _DEFAULTS:
        if inputs.get(key) is None:
            inputs[key] = default
    sentinel = unknown_form.sentinel
    unknown = frozenset(
        key
        for key, value in inputs.items()
        if value is not None
        and value is not True
        and value is not False
        and (value == sentinel if value.__class__ is str else _unknown_within(value, unknown_form))
    )
    return inputs, unknown


def _as_before(inputs: Mapping[Any, Any], olds: Mapping[str, Any]) -> bool:
    """Whether ``inputs`` are the input fields of ``olds``, each the same value of the same type (``1`` is not
    ``True``), and nothing else."""
    if inputs.keys() != _INPUT_NAMES:
        return False
    for name in INPUT_FIELDS:
        new, old = inputs[name], olds.get(name)
        if new.__class__ is not old.__class__ or new != old:
            return False
    return True


def changed_fields(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
    """The input fields whose new value differs from the old one (equivalent spellings are equal).

    A value the engine does not know yet always differs: old values come from the state, which never holds one.
    """
    changed = []
    for name in INPUT_FIELDS:
        old, new = olds.get(name), news.get(name)
        if old == new:
            continue  # the common case of a preview, settled without normalising
        if normalized(name, old) != normalized(name, new):
            changed.append(name)
    return changed


def diff(olds: Mapping[str, Any], news: Mapping[str, Any], ignore: frozenset[str] = frozenset()) -> Diff:
    """Old outputs against new (checked) inputs, per property: ``model`` replaces, anything else updates in place.

    - Equivalent values (``"en"`` and ``["en"]``) are no change; ``adopt_id`` only matters at create time.
    - A value not known yet is a possible change (an unknown ``model`` a possible replacement): it never equals
      the old value, which the state holds known.
    - An identity output the API reassigned since the last deployment (the mark a read sets) is a change.
    - A state written before a field existed lacks it: that says nothing about a change, and for a field that
      cannot change on a live agent (``model``) a replacement on that ground would destroy a working agent.
    - Properties in ``ignore`` (``ignoreChanges``) never change.
    """
    names = changed_fields(olds, news)
    mark = olds.get(REASSIGNED)
    reassigned = [name for name in IDENTITY_OUTPUTS if name in mark] if isinstance(mark, dict) and mark else []
    if not names and not reassigned:
        return _NO_DIFF
    changes: dict[str, PropertyChange] = {}
    for name in names:
        replace = name in REPLACE_ON_CHANGE
        if name not in ignore and not (replace and name not in olds):
            changes[name] = PropertyChange(_kind(olds.get(name), news.get(name)), replace)
    for name in reassigned:
        # From the value the stack last deployed (kept in the mark) to the one the API gave it since.
        assert isinstance(mark, dict)
        if name not in ignore:
            changes[name] = PropertyChange(_kind(mark[name], olds.get(name)), False)
    return Diff(changes)


_NO_DIFF = Diff()


def _kind(old: Any, new: Any) -> Literal["add", "update", "delete"]:
    return "add" if old is None else "delete" if new is None else "update"


def preview_create(props: Mapping[str, Any]) -> dict[str, Any]:
    """What a create will output, as far as a preview knows: the inputs, and computed outputs not yet known."""
    outputs = spec_of(props)
    outputs.update(dict.fromkeys(COMPUTED_OUTPUTS, NOT_YET_KNOWN))
    return with_adopt_id(outputs, props)


def preview_update(olds: Mapping[str, Any], news: Mapping[str, Any]) -> dict[str, Any]:
    """What an update will output, as far as a preview knows: the new inputs, and what an update keeps."""
    outputs = spec_of(news)
    outputs.update({name: olds.get(name) for name in STABLE_ON_UPDATE})
    outputs["updated_at"] = NOT_YET_KNOWN
    return with_adopt_id(outputs, news)


def with_adopt_id(outputs: dict[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """``outputs`` keeping ``adopt_id`` of ``props``: in state, so that the next diff compares like with like
    (it has no effect after create)."""
    if props.get(ADOPT_ID) is not None:
        outputs[ADOPT_ID] = props[ADOPT_ID]
    return outputs


def refreshed(agent: Mapping[str, Any], props: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(outputs, inputs)`` of a resource whose state is ``props``, after a read found the live ``agent``.

    Inputs follow the live agent too, so `pulumi refresh` shows drift as a diff. An identity output that changed
    since the last deployment is marked (``REASSIGNED``) until the next update; a mark not yet cleared by an
    update keeps the values it holds.
    """
    outputs = with_adopt_id(outputs_from_agent(agent), props)
    mark = props.get(REASSIGNED)
    before = {name: props.get(name) for name in IDENTITY_OUTPUTS} | (mark if isinstance(mark, dict) else {})
    reassigned = {
        name: before[name]
        for name in IDENTITY_OUTPUTS
        if before.get(name) is not None and outputs.get(name) != before[name]
    }
    if reassigned:
        outputs[REASSIGNED] = reassigned
    inputs = {name: outputs[name] for name in INPUT_FIELDS}
    if ADOPT_ID in outputs:
        inputs[ADOPT_ID] = outputs[ADOPT_ID]
    return outputs, inputs


def unchanged_outputs(olds: Mapping[str, Any]) -> dict[str, Any]:
    """The outputs of an update that sent nothing: the old ones, without the marks an update clears."""
    return {name: olds.get(name) for name in OUTPUT_FIELDS}
