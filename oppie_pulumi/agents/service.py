"""``AgentService``: every operation on a phone agent, the one implementation both providers call.

The dynamic ``PhoneAgentProvider`` (``phone_agent``) and the plugin's gRPC server (``provider.server``) are thin
adapters: they turn their engine's messages into plain dicts in ``_models``' Python names, call this service, and
turn its answers back. Nothing here knows Pulumi's types.

What each operation promises:

- ``check``, ``diff`` and the previews make no API call (a preview needs no token);
- ``create`` POSTs once, reconciling a lost answer (``reconcile``), or adopts an existing agent (``adopt_id``);
- ``read`` lists (the API has no GET by id; reads share one list for ``list_cache_seconds``); an agent gone from
  the list is gone from the stack, but for a lookup, where it is an error;
- ``update`` PATCHes only what changed, never ``model``; ``delete`` treats an agent already gone as deleted;
- after a write whose answer was lost, update and delete look whether it landed before they fail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigError, NotFound, OppieError, TransportError
from .._models import API_NAMES, REPLACE_ON_CHANGE, api_value, normalized, outputs_from_agent
from . import rules
from .coordination import CLAIMS, RUN, Claims, RunMemory
from .reconcile import AMBIGUOUS, create_reconciled
from .rules import ADOPT_ID, Checked, Diff, UnknownForm, label, spec_of

if TYPE_CHECKING:
    # Imported where the API is called: a program, a preview and a no-change up never call it, and httpx is a
    # third of what importing oppie_pulumi costs each process a command starts (docs/performance.md).
    from .._client import PhoneApiClient

__all__ = ["AgentService", "Created", "Refreshed", "not_listed"]

UPDATE_OF_DELETED_FIX = (
    ". Fix: the agent was deleted outside Pulumi; run `pulumi refresh` (or `pulumi up --refresh`) to drop it "
    "from the state, and the next `pulumi up` creates it again"
)


@dataclass(frozen=True)
class Created:
    """A create's result: the agent's id (the resource id) and the resource's outputs."""

    id: str
    outputs: dict[str, Any]


@dataclass(frozen=True)
class Refreshed:
    """A read's result: the live agent as outputs, and the inputs that follow it."""

    id: str
    outputs: dict[str, Any]
    inputs: dict[str, Any]


def not_listed(operation: str, detail: str) -> NotFound:
    """The agent is not in ``GET /phone``: a 404 in all but the status line the API never sent."""
    return NotFound(
        f"{operation} failed: {detail}",
        operation=operation,
        method="GET",
        path="/phone",
        status_code=404,
        api_message="not in GET /phone",
    )


class AgentService:
    """The phone agents of one API configuration.

    ``connect`` gives the API client when an operation first needs it (so that check and diff work without a
    token); ``unknown_form`` declares the adapter's form of a value the engine does not know yet. ``claims`` and
    ``run`` are the process's records (``coordination``); tests pass fresh ones.
    """

    def __init__(
        self,
        connect: Callable[[], PhoneApiClient],
        *,
        unknown_form: UnknownForm,
        claims: Claims = CLAIMS,
        run: RunMemory = RUN,
    ) -> None:
        self._connect = connect
        self._unknown_form = unknown_form
        self.claims = claims
        self.run = run

    # -- preview: no API calls ---------------------------------------------------------------------------------

    def check(self, olds: Mapping[str, Any], news: Mapping[Any, Any]) -> Checked:
        """Validate the declared agent and fill in the API's defaults (``rules.check``)."""
        if olds:
            self.run.saw_held(olds.get(ADOPT_ID))
        return rules.check(olds, news, self._unknown_form)

    def diff(
        self, agent_id: str, olds: Mapping[str, Any], news: Mapping[str, Any], ignore: frozenset[str] = frozenset()
    ) -> Diff:
        """Per-property changes from the old outputs to the new inputs (``rules.diff``)."""
        self.run.saw_held(agent_id)
        return rules.diff(olds, news, ignore)

    preview_create = staticmethod(rules.preview_create)
    preview_update = staticmethod(rules.preview_update)

    # -- apply -------------------------------------------------------------------------------------------------

    def create(self, props: Mapping[str, Any]) -> Created:
        """POST /phone once; or, with ``adopt_id``, take over that agent and bring it to the spec."""
        spec = spec_of(props)
        client = self._connect()
        adopt_id = props.get(ADOPT_ID)
        if adopt_id and not self.run.is_replacement(adopt_id):
            outputs = self._adopt(client, adopt_id, spec)
            agent_id = adopt_id
            self.run.saw_adopted(agent_id)
            self.claims.claim(agent_id)
        else:
            agent = create_reconciled(client, spec, self.claims)  # which claims the agent it made
            agent_id, outputs = agent["id"], outputs_from_agent(agent)
        return Created(agent_id, rules.with_adopt_id(outputs, props))

    def read(self, agent_id: str, props: Mapping[str, Any], *, lookup: bool = False) -> Refreshed | None:
        """The live agent from GET /phone; None when it is gone (an error instead for a ``lookup``)."""
        client = self._connect()
        operation = f"read phone agent {label(props, agent_id)}"
        agent = client.find(agent_id, operation=operation, max_age=client.settings.list_cache_seconds)
        if agent is None:
            if lookup:
                raise not_listed(
                    f"look up phone agent {agent_id!r} (PhoneAgent.get)",
                    f"no agent with id {agent_id!r} exists in this organisation",
                )
            # A refresh: the agent was deleted elsewhere, so it drops out of the state.
            self.run.saw_vanished(agent_id)
            return None
        self.run.saw_held(agent_id)
        self.claims.claim(agent_id)
        outputs, inputs = rules.refreshed(agent, props)
        return Refreshed(agent_id, outputs, inputs)

    def update(self, agent_id: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH /phone/{id} with only the changed fields; returns the full outputs."""
        self.run.saw_held(agent_id)
        try:
            outputs = self._patch(self._connect(), agent_id, olds, spec_of(news), label(news, agent_id))
        except NotFound as exc:
            gone = exc
        else:
            return rules.with_adopt_id(outputs, news)
        raise gone.amended(UPDATE_OF_DELETED_FIX)

    def delete(self, agent_id: str, props: Mapping[str, Any]) -> None:
        """DELETE /phone/{id}; an agent already gone is success."""
        self.run.saw_held(agent_id)
        if self.run.adopted_here(agent_id):
            # A create of this run adopted this agent for the resource that replaces this one (see RunMemory).
            return
        client = self._connect()
        name = label(props, agent_id)
        try:
            client.delete(agent_id, label=name)
        except NotFound:
            return  # 404 on delete: already gone, which is what delete wants.
        except AMBIGUOUS as exc:
            failure: OppieError = exc
        else:
            return
        # No answer, but the DELETE may have landed: gone from the list means deleted.
        still_there = _look_after(client, failure, agent_id, f"check whether the delete of phone agent {name} landed")
        if still_there:
            raise failure

    # -- the steps -----------------------------------------------------------------------------------------------

    def _adopt(self, client: PhoneApiClient, adopt_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        """The outputs of live agent ``adopt_id`` after bringing it to ``spec``."""
        name = label(spec, adopt_id)
        operation = f"adopt phone agent {name}"
        live = client.find(adopt_id, operation=operation)
        if live is None:
            raise not_listed(
                operation,
                f"no agent with id {adopt_id!r} exists in this organisation. If adopt_id is mistyped, correct it "
                "(`oppie-pulumi generate` lists the ids); if this stack adopted that agent before and it was "
                "deleted elsewhere since, remove adopt_id (it has done its job) and run `pulumi up` again to "
                "create a new agent (`pulumi up --refresh` does that by itself when it sees the agent gone)",
            )
        current = outputs_from_agent(live)
        if normalized("model", current["model"]) != normalized("model", spec["model"]):
            raise ConfigError(
                f"adopt phone agent {name} failed: the live agent uses model {current['model']!r} but "
                f"the program declares {spec['model']!r}; model cannot be changed after creation, so "
                f"declare model={current['model']!r} to adopt it (changing it later replaces the agent)"
            )
        return self._patch(client, adopt_id, current, spec, name)

    def _patch(
        self, client: PhoneApiClient, agent_id: str, olds: Mapping[str, Any], news: Mapping[str, Any], name: str
    ) -> dict[str, Any]:
        """The outputs after PATCHing the agent from ``olds`` (outputs) to ``news`` (inputs)."""
        # Only what changed, with nulls kept (null clears a field), and never the immutable model.
        fields = [field for field in rules.changed_fields(olds, news) if field not in REPLACE_ON_CHANGE]
        if not fields:
            if not rules.is_old_state(olds):
                return rules.unchanged_outputs(olds)
            # Nothing to send, but the state lacks fields every agent has: take them from the live agent.
            agent = client.find(agent_id, operation=f"read phone agent {name} to complete its state")
        else:
            body = {API_NAMES[field]: api_value(field, news.get(field)) for field in fields}
            agent = self._send_patch(client, agent_id, body, fields, news, name)
            if agent is None:
                # Older API versions answer PATCH with an empty body: read the agent back.
                agent = client.find(agent_id, operation=f"read back phone agent {name} after its update")
        if agent is None:
            raise not_listed(f"update phone agent {name}", "the agent disappeared right after the update")
        return outputs_from_agent(agent)

    @staticmethod
    def _send_patch(
        client: PhoneApiClient,
        agent_id: str,
        body: dict[str, Any],
        fields: list[str],
        news: Mapping[str, Any],
        name: str,
    ) -> dict[str, Any] | None:
        """The agent the PATCH answered with (None: an empty answer); after a lost answer, the live agent if it
        already has every value sent (the PATCH landed), else the PATCH's own failure."""
        try:
            return client.update(agent_id, body, label=name)
        except AMBIGUOUS as exc:
            failure: OppieError = exc
        # Retries ran out without an answer, but the PATCH may have landed.
        agent = _look_after(client, failure, agent_id, f"check whether the update of phone agent {name} landed")
        live = outputs_from_agent(agent) if agent else {}
        if agent is None or any(normalized(f, live[f]) != normalized(f, news.get(f)) for f in fields):
            raise failure
        return agent


def _look_after(client: PhoneApiClient, failure: OppieError, agent_id: str, operation: str) -> dict[str, Any] | None:
    """The live agent, looked up after ``failure`` left a write's outcome unknown; raises ``failure`` if the write
    never left (nothing changed, nothing to look for), and says so when the look fails too."""
    if isinstance(failure, TransportError) and not failure.may_have_reached_api:
        raise failure  # never sent (its message says so)
    try:
        return client.find(agent_id, operation=operation)
    except OppieError as look:
        raise failure.amended(f"; checking whether it landed anyway failed too ({look})") from None
