"""A create whose answer is lost: find the agent it made, never make two, never take another's.

``POST /phone`` is not idempotent: a retry after a lost answer (a timeout, a dropped connection, a 5xx, an
unreadable 2xx) can create a second agent and a second phone number, and a create that gives up can leave an
agent that no resource holds. So a create first takes a **baseline**, a list of the agents begun after the create
began (creates that begin together share one), and then POSTs. After a failure that may have created the agent,
it lists again and looks for the one its POST made: same spec, absent from the baseline, held by nobody it knows
of (``coordination``). One: it is ours. None: the API did not act, and one more POST cannot make a second agent.
Several: a person decides, and ``AmbiguousCreate`` names the ids. No clock is compared: the API's stamps may come
from a clock behind or ahead of ours, cut to whole seconds while claiming milliseconds (issue 21).

A POST that failed unanswered may still land after a later one worked; once it had the time a request may take,
one last look removes such a second agent. docs/reliability.md has the design and its figures.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import (
    AmbiguousCreate,
    MalformedResponse,
    NotFound,
    OppieError,
    RateLimited,
    ServerError,
    TransportError,
    WrongBaseUrl,
)
from .._models import api_body, outputs_from_agent
from .coordination import Claims, MachineRecord, identical_creates_one_at_a_time
from .rules import changed_fields, label

if TYPE_CHECKING:
    from .._client import PhoneApiClient

__all__ = ["AMBIGUOUS", "SETTLE_SECONDS", "create_reconciled", "matching"]

# Failures after which the API may or may not have acted: a 5xx, a timeout, a dropped connection, or
# a 2xx whose body we could not read. After one of these the core looks before it leaps.
AMBIGUOUS = (TransportError, ServerError, MalformedResponse)
# After a create that needed a retry, how long to let an earlier POST the API may still apply land before the
# last look: the request timeout, within these bounds (the floor is for very short timeouts, where the time a
# busy API takes to apply a request it holds is not much shorter than the time it takes to answer at all).
SETTLE_SECONDS = (2.0, 10.0)
_NOT_ACTED = "the API did not act on the request (no agent was created)"


def matching(
    agents: list[dict[str, Any]], spec: Mapping[str, Any], baseline: frozenset[str], held: set[str]
) -> list[dict[str, Any]]:
    """Agents of ``spec`` that were not in the ``baseline`` (so made since the create began) and that nobody
    known holds: the agent a lost POST made, as far as this machine can tell. Stamps are not read."""
    return [
        agent
        for agent in agents
        if agent["id"] not in baseline
        and agent["id"] not in held
        and not changed_fields(outputs_from_agent(agent), spec)
    ]


def _may_land_later(failure: OppieError) -> bool:
    """Whether the request may still be on its way to being applied: no answer at all (a timeout, a dropped
    connection), or a gateway's 502/504 while the API behind it may still be working on it. An answer from the
    API itself (a 5xx it sent, a 2xx whose body was cut) means it is done with the request."""
    if isinstance(failure, TransportError):
        return failure.may_have_reached_api
    return isinstance(failure, ServerError) and failure.status_code in (502, 504)


@dataclass
class _Look:
    """Looking for the agent a create of ``spec`` may have made: what it knows is held, and what existed before."""

    client: PhoneApiClient
    spec: Mapping[str, Any]
    claims: Claims
    machine: MachineRecord | None
    baseline: frozenset[str]  # the ids of every agent that existed when the create began

    def find(self, keep: str | None = None) -> list[dict[str, Any]]:
        """Agents of the spec made since the create began that nobody known holds (nor ``keep``)."""
        held = self.claims.ids()
        if self.machine is not None:
            held |= self.machine.ids()
        if keep is not None:
            held.add(keep)
        agents = self.client.list(operation=f"look for the agent a create of {label(self.spec)} may have made")
        return matching(agents, self.spec, self.baseline, held)

    def hold(self, agent_id: str) -> None:
        self.claims.claim(agent_id)
        if self.machine is not None:
            self.machine.record(agent_id)


def create_reconciled(client: PhoneApiClient, spec: Mapping[str, Any], claims: Claims) -> dict[str, Any]:
    """POST ``spec`` and return the agent the API made: exactly one, held from now on, whatever got lost."""
    with identical_creates_one_at_a_time(client.settings.base_url, spec, label(spec)) as machine:
        # The baseline is taken once no identical create runs here, and before the FIRST attempt: every look then
        # covers all the create's POSTs, an earlier one the API applied late included.
        look = _Look(client, spec, claims, machine, _baseline(client, spec))
        agent, unanswered_at = _post_until_answered(look)
        if unanswered_at:
            _remove_late_twin(look, agent, unanswered_at)
        look.hold(agent["id"])
        return agent


def _baseline(client: PhoneApiClient, spec: Mapping[str, Any]) -> frozenset[str]:
    """The ids of every agent that exists as the create begins: a list sent after this moment.

    It is the create's own first call, named as the create: a wrong token or base URL fails it as it would fail
    the POST, and nothing was sent. Creates that begin together wait for one list, so a burst of 429s falls on
    that one call instead of being shared among many: a list that used up its budget of 429s is tried again, as
    a whole, up to ``max_retries`` times (listing is always safe to repeat).
    """
    began, attempt = time.monotonic(), 0
    while True:
        try:
            listed = client.list_since(began, operation=f"create phone agent {label(spec)}")
        except RateLimited:
            if attempt >= client.settings.max_retries:
                raise
        else:
            return frozenset(agent["id"] for agent in listed)
        client.pause(attempt, operation=f"create phone agent {label(spec)}", reason="the API kept answering 429")
        attempt += 1


def _post_until_answered(look: _Look) -> tuple[dict[str, Any], float]:
    """The agent made, and when the last POST that may yet land failed (0.0: none)."""
    client, name = look.client, label(look.spec)
    attempt = 0
    unanswered_at = 0.0
    while True:
        try:
            return client.create(api_body(look.spec), label=name), unanswered_at
        except AMBIGUOUS as exc:
            failure: OppieError = exc
        if isinstance(failure, TransportError) and not failure.may_have_reached_api:
            raise failure  # never sent: the client already retried what it could
        # The API may have created the agent without telling us: look before retrying, so a create never leaves
        # an agent the state does not know, nor makes two.
        found = _found_after(failure, look)
        if found is not None:
            return found, unanswered_at
        # None: the API did not act, so one more POST cannot make a second agent.
        if attempt >= client.settings.max_retries:
            raise failure
        if _may_land_later(failure):
            unanswered_at = time.monotonic()
        client.pause(attempt, operation=f"create phone agent {name}", reason=_NOT_ACTED)
        attempt += 1


def _found_after(failure: OppieError, look: _Look) -> dict[str, Any] | None:
    """The one agent an unanswered POST made; None if it made none; ``AmbiguousCreate`` if a person must say."""
    name = label(look.spec)
    try:
        ours = look.find()
    except WrongBaseUrl:
        raise  # not the API: nothing was created there
    except OppieError as exc:
        raise AmbiguousCreate(
            f"create phone agent {name}: the API did not answer ({failure}), and listing the agents to see "
            f"whether it created one failed too ({exc}). An agent named {name} may exist or appear shortly: "
            "look for it in the dashboard and either delete it or adopt it by setting adopt_id to its id, then "
            "run `pulumi up` again.",
            candidate_ids=[],
        ) from failure
    if len(ours) == 1:
        return ours[0]
    if ours:
        raise AmbiguousCreate(
            f"create phone agent {name}: the API did not answer ({failure}), and {len(ours)} agents matching "
            f"this spec appeared since the request began: {', '.join(a['id'] for a in ours)}. Delete all but one "
            "in the dashboard, then run `pulumi up` again with adopt_id set to the one kept.",
            candidate_ids=[a["id"] for a in ours],
        ) from failure
    return None


def _remove_late_twin(look: _Look, agent: Mapping[str, Any], unanswered_at: float) -> None:
    """A POST that failed unanswered may still land after the one that worked: once it had the time a request may
    take, look again and remove such a second agent (ours: made since we began)."""
    client, name = look.client, label(look.spec)
    low, high = SETTLE_SECONDS
    client.wait(
        unanswered_at + min(max(client.settings.timeout_seconds, low), high) - time.monotonic(),
        operation=f"create phone agent {name}",
        reason="letting a POST that got no answer land before a last look",
    )
    try:
        extras = look.find(keep=agent["id"])
    except OppieError:
        return  # the look is a precaution: the agent we hold is sound either way
    for extra in extras:
        try:
            client.delete(extra["id"], label=label(look.spec, extra["id"]) + " (made twice by a late POST)")
        except NotFound:
            pass  # already gone
        except OppieError as exc:
            raise AmbiguousCreate(
                f"create phone agent {name}: after a retry the API made it twice ({agent['id']} and, late, "
                f"{extra['id']}), and removing the second failed ({exc}). Delete one of them in the dashboard, "
                "then run `pulumi up` again with adopt_id set to the other.",
                candidate_ids=[agent["id"], extra["id"]],
            ) from None
