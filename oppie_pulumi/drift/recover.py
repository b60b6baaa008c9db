"""``oppie-pulumi recover``: put a stack right after a killed ``pulumi up``, with no one watching.

A ``pulumi up`` killed after its POST (a cancelled CI job, a timeout, SIGKILL) leaves the stack locked by the dead
command, a *pending create* in the state (the engine checkpoints before it calls the provider) and, in the API, the
agent that create made, held by no resource. The next ``pulumi up`` would drop the pending create and make a
second agent. ``recover`` instead, for each stack:

1. on a file backend, removes the attribute file a kill left torn beside the checkpoint (``torn``: without that,
   every command fails with "failed to load checkpoint: EOF"); then releases the dead command's lock
   (``pulumi cancel --yes``; a stack that is not locked is fine);
2. reads the state (``pulumi stack export``): the pending creates of phone agents, and every agent it holds;
3. lists each organisation once, and for each pending create looks for the agents of its spec that no reviewed
   stack holds (the drift review's reading of stacks and the core's own spec rule):

   - one: the agent the killed create made. The resource gets it, as the provider's create would have written
     it (its id, its outputs); nothing is written to the API;
   - none: the POST never landed. A POST the killed command sent may still be on its way, so ``recover`` first
     gives it the time a request may take (the stack's ``oppie:timeoutSeconds``, between 2 and 10 s) and lists
     again; still none, and the pending create is dropped, and ``pulumi up`` creates the agent;
   - several: a person decides (``adopt_id``, or delete the extras). Nothing is changed for that resource, and
     ``recover`` exits 1 naming the ids. Identical pending creates share their candidates one each.

4. writes the amended state back (``pulumi stack import``), only if something changed.

Then ``pulumi up`` runs as usual. Pass every stack of the organisation (``--stack`` per stack, as for ``drift``)
so that an agent another stack holds is never taken. docs/reliability.md has the design.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._exceptions import OppieError
from .._models import outputs_from_agent
from ..agents import rules
from ..agents.reconcile import SETTLE_SECONDS
from . import torn
from .stacks import (
    DYNAMIC_TYPE,
    PLUGIN_TYPE,
    SECRET_SIG,
    Run,
    StackRef,
    StackState,
    failure,
    pulumi_cli,
    python_name,
    read,
)

__all__ = ["Outcome", "recover"]


@dataclass
class Outcome:
    """What ``recover`` did to one stack: resources given their agent, creates dropped, creates left to a person."""

    stack: str
    adopted: dict[str, str] = field(default_factory=dict)  # URN -> the agent's id
    dropped: list[str] = field(default_factory=list)  # URNs whose POST never landed
    undecided: dict[str, list[str]] = field(default_factory=dict)  # URN -> the candidates' ids
    mended: list[Path] = field(default_factory=list)  # torn attribute files removed from a file backend
    error: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.adopted or self.dropped)


def recover(
    refs: Sequence[StackRef],
    *,
    run: Run = pulumi_cli,
    lister: Callable[[StackState], list[dict[str, Any]]] | None = None,
    progress: Callable[[str], None] = lambda _line: None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Outcome]:
    """Recover every stack in ``refs`` (the others' agents counted as held); one ``Outcome`` per stack."""
    outcomes = []
    mended = {}
    for ref in refs:
        mended[ref] = torn.mend(ref, run)
        progress(f"releasing the lock of stack {ref.label}, if a killed command left one")
        _release(ref, run)
    states = [read(ref, run) for ref in refs]
    held = {resource.id for state in states for resource in state.resources}
    listed: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for state in states:
        outcome = Outcome(state.ref.label, mended=mended[state.ref])
        outcomes.append(outcome)
        if state.error is not None or state.settings is None:
            outcome.error = state.error or "no settings"
            continue
        if not state.pending:
            continue
        key = (state.settings.base_url, state.settings.api_token)
        try:
            if key not in listed:
                progress(f"listing the agents at {state.settings.base_url}")
                listed[key] = (lister or _list)(state)
            if _unfound(state, listed[key], held):
                # Never drop a create whose POST may still land: then `pulumi up` would make a second agent.
                settle = min(max(state.settings.timeout_seconds, SETTLE_SECONDS[0]), SETTLE_SECONDS[1])
                progress(f"waiting {settle:g} s for a POST the killed command may have sent, then listing again")
                sleep(settle)
                listed[key] = (lister or _list)(state)
        except OppieError as exc:
            outcome.error = str(exc)
            continue
        _decide(state, listed[key], held, outcome)
        if outcome.changed:
            progress(f"writing the recovered state of stack {state.ref.label}")
            outcome.error = _rewrite(state.ref, outcome, listed[key], run)
    return outcomes


def _release(ref: StackRef, run: Run) -> None:
    """``pulumi cancel --yes``: a lock left by a killed command goes; a stack with none is left as it is."""
    # Its exit status is not looked at: a stack with no lock is fine, and the export that follows says whether the
    # stack can be read at all, with a clearer error than cancel's.
    run(["cancel", "--yes", "--stack", ref.name], ref.dir)


def _list(state: StackState) -> list[dict[str, Any]]:
    from .._client import PhoneApiClient  # httpx, only when there is something to look for

    with PhoneApiClient(state.settings) as client:  # type: ignore[arg-type]
        return client.list(operation="list phone agents to recover a killed `pulumi up`")


def _groups(state: StackState, agents: Sequence[dict[str, Any]], held: set[str]) -> dict[str, list[str]]:
    """The pending creates (URNs) by the ids of the unheld agents of their spec (a JSON list, as the key)."""
    free = [agent for agent in agents if agent["id"] not in held]
    groups: dict[str, list[str]] = {}
    for create in state.pending:
        spec = rules.spec_of(create.inputs)
        mine = [a["id"] for a in free if not rules.changed_fields(outputs_from_agent(a), spec)]
        groups.setdefault(json.dumps(sorted(mine)), []).append(create.urn)
    return groups


def _unfound(state: StackState, agents: Sequence[dict[str, Any]], held: set[str]) -> bool:
    """Whether some pending creates have fewer candidates than they are (a POST never landed, or not yet)."""
    return any(len(json.loads(key)) < len(urns) for key, urns in _groups(state, agents, held).items())


def _decide(state: StackState, agents: Sequence[dict[str, Any]], held: set[str], outcome: Outcome) -> None:
    """For each group of pending creates of one spec: as many candidates as creates or fewer, each candidate goes
    to one create and the others are dropped; more candidates than creates, a person says which are theirs."""
    for candidates_key, urns in _groups(state, agents, held).items():
        candidates = json.loads(candidates_key)
        if len(candidates) > len(urns):
            outcome.undecided.update({urn: candidates for urn in urns})
            continue
        # Identical creates killed together: each that landed made one agent of the same spec, so any pairing is
        # right, and the creates left over made none (the listing came after the time a POST may take to land).
        ordered = sorted(urns)
        for urn, agent_id in zip(ordered, sorted(candidates), strict=False):
            outcome.adopted[urn] = agent_id
            held.add(agent_id)
        outcome.dropped.extend(ordered[len(candidates) :])


def _rewrite(ref: StackRef, outcome: Outcome, agents: Sequence[dict[str, Any]], run: Run) -> str | None:
    """Export the raw state, give each adopted resource its agent, drop the settled pending creates, import.

    A second export, not ``read``'s: that one has secrets decrypted (``--show-secrets``), and what is imported
    must keep them encrypted."""
    exported = run(["stack", "export", "--stack", ref.name], ref.dir)
    if exported.returncode != 0:
        return failure(f"stack export --stack {ref.name}", exported)
    document = json.loads(exported.stdout)
    deployment = document["deployment"]
    by_id = {agent["id"]: agent for agent in agents}
    kept = []
    for operation in deployment.get("pending_operations") or []:
        resource = operation.get("resource") or {}
        urn = resource.get("urn")
        if operation.get("type") == "creating" and urn in outcome.adopted:
            deployment.setdefault("resources", []).append(_held(resource, by_id[outcome.adopted[urn]]))
        elif not (operation.get("type") == "creating" and urn in outcome.dropped):
            kept.append(operation)
    deployment["pending_operations"] = kept
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.json"
        path.write_text(json.dumps(document))
        imported = run(["stack", "import", "--file", str(path), "--stack", ref.name], ref.dir)
    return None if imported.returncode == 0 else failure(f"stack import --stack {ref.name}", imported)


def _held(pending: Mapping[str, Any], agent: Mapping[str, Any]) -> dict[str, Any]:
    """The state entry the provider's create would have left: the pending resource with the agent's id and outputs.

    Outputs are the adapter's: ``_models``' names for the dynamic resource (with its pickled provider, as the
    dynamic host keeps it), the schema's camelCase for the plugin. A value the inputs keep secret stays secret.
    """
    inputs: Mapping[str, Any] = pending.get("inputs") or {}
    plugin = pending.get("type") == PLUGIN_TYPE
    plain = {(python_name(k) if plugin else k): v for k, v in inputs.items()}
    outputs = rules.with_adopt_id(outputs_from_agent(agent), plain)
    named: dict[str, Any] = {}
    for key, value in outputs.items():
        wire = _wire_name(key) if plugin else key
        if value is None and plugin:
            continue  # the plugin leaves nulls out of its outputs
        declared = inputs.get(wire)
        secret = isinstance(declared, dict) and declared.get(SECRET_SIG[0]) == SECRET_SIG[1]
        named[wire] = declared if secret else value
    if pending.get("type") == DYNAMIC_TYPE and "__provider" in inputs:
        named["__provider"] = inputs["__provider"]
    return {**pending, "id": agent["id"], "outputs": named}


def _wire_name(name: str) -> str:
    from ..provider.schema import wire_name  # the plugin's own naming, so outputs match what it writes

    return wire_name(name)
