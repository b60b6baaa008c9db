"""The verdicts of a drift review: each agent of the organisation against every stack that holds it.

A pure function of what the stacks hold (``stacks.read``) and what the API lists (one list per organisation,
shared by every stack of it). The comparison is the core's own: a held agent is refreshed with
``rules.refreshed`` and judged with ``rules.diff`` of the refreshed outputs against the deployed inputs, exactly
what the engine asks the provider on ``pulumi refresh``, so the review and a refresh never disagree.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .._config import _shown_url
from .._models import outputs_from_agent
from ..agents import IDENTITY_OUTPUTS, rules
from .stacks import Managed, Pending, StackState

__all__ = ["VERDICTS", "Agent", "FieldDrift", "Holder", "Organisation", "Review", "review"]

Verdict = Literal["in_sync", "drifted", "deleted", "held_twice", "unmanaged", "unreadable"]
# In the order reports list them: what needs a person first.
VERDICTS: tuple[Verdict, ...] = ("unreadable", "held_twice", "deleted", "drifted", "unmanaged", "in_sync")
FieldClass = Literal["configuration", "computed", "immutable", "secret"]
HIDDEN = "[secret]"


@dataclass(frozen=True)
class FieldDrift:
    """One field that differs: what the stack last deployed, what the API has now, and what kind of field it is.

    ``secret`` fields never carry their values (both are ``[secret]``)."""

    field: str
    kind: FieldClass
    deployed: Any
    live: Any


@dataclass(frozen=True)
class Holder:
    """A resource that holds an agent: its stack, URN and provider (``dynamic`` or ``plugin``)."""

    stack: str
    urn: str
    adapter: str


@dataclass
class Agent:
    """The verdict on one agent, with the fields that drifted and the commands that fix it."""

    id: str
    verdict: Verdict
    name: str | None = None
    holders: list[Holder] = field(default_factory=list)
    fields: list[FieldDrift] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    note: str | None = None

    @property
    def replaces(self) -> bool:
        """Whether fixing it replaces the agent (a new id and phone number)."""
        return any(drift.kind == "immutable" for drift in self.fields)


@dataclass
class Organisation:
    """One API organisation (base URL and token) the reviewed stacks point at (by ``StackRef.label``), and what
    its list held."""

    base_url: str
    stacks: list[str]
    agents: list[dict[str, Any]] | None = None  # None: the list failed
    error: str | None = None


@dataclass
class Review:
    """Everything a report shows."""

    stacks: list[StackState]
    organisations: list[Organisation]
    agents: list[Agent]

    def count(self, verdict: Verdict) -> int:
        return sum(agent.verdict == verdict for agent in self.agents)

    @property
    def total(self) -> int:
        """Agents the organisations listed."""
        return sum(len(org.agents or []) for org in self.organisations)

    @property
    def managed(self) -> int:
        """Listed agents that some reviewed resource holds (a deleted agent is no longer listed)."""
        return sum(agent.verdict in ("in_sync", "drifted", "held_twice") for agent in self.agents)

    @property
    def coverage(self) -> float | None:
        return self.managed / self.total if self.total else None


def _project_flag(stack: StackState) -> str:
    folder = str(stack.ref.dir)
    return "" if folder in (".", "") else f" -C {shlex.quote(folder)}"


def _command(stack: StackState, args: str) -> str:
    return f"pulumi{_project_flag(stack)} {args} --stack {shlex.quote(stack.ref.name)}"


def _drift(res: Managed, agent: Mapping[str, Any]) -> list[FieldDrift]:
    """The fields of ``res`` the live ``agent`` differs in, as the engine's refresh would find them.

    A field the deployed state lacks (an old state without ``model``) is drift a refresh records, never a
    replacement: ``pulumi up`` sees no change there (the core's rule for old states).
    """
    outputs, inputs = rules.refreshed(agent, res.outputs)
    changes = rules.diff(outputs, res.inputs).changes
    drifts = []
    for name, change in changes.items():
        if name in IDENTITY_OUTPUTS:
            mark = outputs.get(rules.REASSIGNED) or {}
            drifts.append(FieldDrift(name, "computed", mark.get(name, res.outputs.get(name)), outputs.get(name)))
        elif name in res.secret:
            drifts.append(FieldDrift(name, "secret", HIDDEN, HIDDEN))
        else:
            deployed = res.inputs.get(name)
            kind: FieldClass = "immutable" if change.replace and deployed is not None else "configuration"
            drifts.append(FieldDrift(name, kind, deployed, inputs.get(name)))
    return sorted(drifts, key=lambda drift: drift.field)


def _fixes_for_drift(res: Managed, stack: StackState, drifts: Sequence[FieldDrift]) -> list[str]:
    target = f"--target {shlex.quote(res.urn)}"
    kinds = {drift.kind for drift in drifts}
    fixes = []
    # --refresh: without it `pulumi up` compares the program with the state, which still holds the deployed
    # values, and finds nothing to do.
    if kinds & {"configuration", "secret"}:
        fixes.append(f"{_command(stack, f'up --refresh --yes {target}')}  # put the declared values back")
    if "immutable" in kinds:
        fixes.append(
            f"{_command(stack, f'up --refresh --yes {target}')}  # REPLACES the agent: a new id and phone number"
        )
    if kinds & {"computed", "configuration", "secret"}:
        fixes.append(f"{_command(stack, f'refresh --yes {target}')}  # or take the live values into the state")
    return fixes


def _pending_match(agent: Mapping[str, Any], pending: Sequence[Pending]) -> Pending | None:
    spec = outputs_from_agent(agent)
    for create in pending:
        if not rules.changed_fields(spec, rules.spec_of(create.inputs)):
            return create
    return None


def _unmanaged(agent: Mapping[str, Any], org: Organisation, states: Sequence[StackState]) -> Agent:
    agent_id = str(agent["id"])
    name = agent.get("name") if isinstance(agent.get("name"), str) else None
    logical = "".join(ch if ch.isalnum() else "-" for ch in (name or agent_id).lower()).strip("-") or "agent"
    fixes = [
        f"PhoneAgent({logical!r}, name={name!r}, adopt_id={agent_id!r})  # adopt it in a Python stack "
        "(declare its other settings too: `oppie-pulumi generate` writes them all)",
        f"pulumi import oppie:index:PhoneAgent {shlex.quote(logical)} {shlex.quote(agent_id)}  # or with the plugin",
        f'curl -X DELETE -H "Authorization: Bearer $OPPIE_API_TOKEN" '
        f"{shlex.quote(organisation_label(org.base_url) + '/phone/' + agent_id)}  # or delete it (and its number)",
    ]
    result = Agent(agent_id, "unmanaged", name=name, fixes=fixes)
    pending = [(state, create) for state in states if state.ref.label in org.stacks for create in state.pending]
    interrupted = _pending_match(agent, [create for _, create in pending])
    if interrupted is not None:
        state = next(state for state, create in pending if create is interrupted)
        result.note = (
            f"most likely made by the interrupted create of {interrupted.urn} (a pending create in stack "
            f"{interrupted.stack}): recover it rather than create a second agent"
        )
        result.fixes = [
            _command(state, "cancel --yes"),
            _command(state, "refresh --yes --clear-pending-creates"),
            f"then declare adopt_id={agent_id!r} on {interrupted.urn.rsplit('::', 1)[-1]} and run "
            + _command(state, "up --yes"),
        ]
    return result


def review(states: Sequence[StackState], organisations: Sequence[Organisation]) -> Review:
    """The verdict on every listed agent and on every held one (sorted by id)."""
    by_stack = {state.ref.label: state for state in states}
    # Which stack holds a resource: by the state it came from (two stacks may share a name, in two projects).
    owner = {id(res): state for state in states for res in state.resources}
    holders: dict[str, list[Managed]] = {}
    for state in states:
        for res in state.resources:
            holders.setdefault(res.id, []).append(res)
    verdicts: dict[str, Agent] = {}
    for org in organisations:
        held_here = [res for name in org.stacks for res in by_stack[name].resources]
        if org.agents is None:
            for res in held_here:
                verdicts[res.id] = Agent(
                    res.id,
                    "unreadable",
                    name=_name(res, res.outputs),
                    holders=_holders(holders[res.id], owner),
                    note=org.error,
                )
            continue
        listed = {str(agent["id"]): agent for agent in org.agents}
        for agent_id, agent in listed.items():
            if agent_id not in holders:
                verdicts[agent_id] = _unmanaged(agent, org, states)
        for res in held_here:
            verdicts[res.id] = _held(res, listed.get(res.id), holders[res.id], owner)
    return Review(list(states), list(organisations), [verdicts[key] for key in sorted(verdicts)])


def _holders(resources: Sequence[Managed], owner: Mapping[int, StackState]) -> list[Holder]:
    found = (Holder(owner[id(res)].ref.label, res.urn, res.adapter) for res in resources)
    return sorted(found, key=lambda h: (h.stack, h.urn))


def _name(res: Managed, agent: Mapping[str, Any]) -> str | None:
    """The agent's name as reports show it: never a name the stack keeps secret."""
    if "name" in res.secret:
        return HIDDEN
    name = agent.get("name")
    return name if isinstance(name, str) else None


def _held(
    res: Managed, live: Mapping[str, Any] | None, held_by: Sequence[Managed], owner: Mapping[int, StackState]
) -> Agent:
    result = Agent(res.id, "in_sync", name=_name(res, live or res.outputs), holders=_holders(held_by, owner))
    stack = owner[id(res)]
    if live is None:
        # Gone from the API: the fix is the same for every resource that held it.
        result.verdict = "deleted"
        drop = "  # drop it from the state"
        result.fixes = [
            _command(owner[id(other)], f"refresh --yes --target {shlex.quote(other.urn)}") + drop for other in held_by
        ]
        result.fixes += [
            f"{_command(owner[id(other)], 'up --yes')}  # then create it again (a new id and phone number)"
            for other in held_by
        ]
        return result
    if len(held_by) > 1:
        result.verdict = "held_twice"
        result.note = "destroying or replacing one of these resources deletes the agent the other holds"
        result.fixes = [
            f"{_command(owner[id(other)], f'state delete --yes {shlex.quote(other.urn)}')}  # forget it in "
            "all but one stack (the agent stays)"
            for other in held_by[1:]
        ]
        return result
    result.fields = _drift(res, live)
    if result.fields:
        result.verdict = "drifted"
        result.fixes = _fixes_for_drift(res, stack, result.fields)
    return result


def organisation_label(base_url: str) -> str:
    """A base URL fit to show: no credentials, query or fragment."""
    return _shown_url(base_url)
