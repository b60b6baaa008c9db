"""A create whose answer is lost: find the agent it made, never make two, never take another's.

``POST /phone`` is not idempotent: a retry after a lost answer (a timeout, a dropped connection, a 5xx, an
unreadable 2xx) can create a second agent and a second phone number, and a create that gives up can leave an
agent that no resource holds. So after such a failure the core lists the agents and looks for the one its POST
made: same spec, made since the request began, held by nobody it knows of (``coordination``). One: it is ours.
None: the API did not act, and one more POST cannot make a second agent. Several, or one made just before the
create began (most likely another deployment's): a person decides, and ``AmbiguousCreate`` names the ids.

A POST that failed unanswered may still land after a later one worked; once it had the time a request may take,
one last look removes such a second agent. docs/reliability.md has the design and its figures.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .._exceptions import (
    AmbiguousCreate,
    MalformedResponse,
    NotFound,
    OppieError,
    ServerError,
    TransportError,
    WrongBaseUrl,
)
from .._models import api_body, outputs_from_agent
from .coordination import Claims, MachineRecord, identical_creates_one_at_a_time
from .rules import changed_fields, label

if TYPE_CHECKING:
    from .._client import PhoneApiClient

__all__ = ["AMBIGUOUS", "CLOCK_SKEW", "SETTLE_SECONDS", "create_reconciled", "matching", "parse_time"]

# Failures after which the API may or may not have acted: a 5xx, a timeout, a dropped connection, or
# a 2xx whose body we could not read. After one of these the core looks before it leaps.
AMBIGUOUS = (TransportError, ServerError, MalformedResponse)
# How far the API's clock may lag ours when we look for the agent an unanswered create made.
CLOCK_SKEW = timedelta(seconds=5)
# After a create that needed a retry, how long to let an earlier POST the API may still apply land before the
# last look: the request timeout, within these bounds (the floor is for very short timeouts, where the time a
# busy API takes to apply a request it holds is not much shorter than the time it takes to answer at all).
SETTLE_SECONDS = (2.0, 10.0)
_NOT_ACTED = "the API did not act on the request (no agent was created)"


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 stamp as an aware datetime (UTC when it names no zone), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _created_at(agent: Mapping[str, Any]) -> tuple[datetime, timedelta] | None:
    """When the API says it made ``agent``, and the resolution of that stamp (it is cut, not rounded)."""
    value = agent.get("created_at")
    created = parse_time(value)
    if created is None or not isinstance(value, str):
        return None
    digits = len(value.partition(".")[2].rstrip("Zz").split("+")[0].split("-")[0]) if "." in value else 0
    return created, timedelta(seconds=10.0 ** -min(digits, 6))


def matching(
    agents: list[dict[str, Any]], spec: Mapping[str, Any], started: datetime, held: set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Agents of ``spec`` that nobody known holds: those made since ``started`` (``ours``, as far as this machine
    can tell), and those made in the few seconds before it (``earlier``: most likely someone else's)."""
    ours, earlier = [], []
    for agent in agents:
        stamp = _created_at(agent)
        if agent["id"] in held or stamp is None or changed_fields(outputs_from_agent(agent), spec):
            continue
        created, resolution = stamp
        if created + resolution > started:
            ours.append(agent)
        elif created >= started - CLOCK_SKEW:
            earlier.append(agent)
    return ours, earlier


def _may_land_later(failure: OppieError) -> bool:
    """Whether the request may still be on its way to being applied: no answer at all (a timeout, a dropped
    connection), or a gateway's 502/504 while the API behind it may still be working on it. An answer from the
    API itself (a 5xx it sent, a 2xx whose body was cut) means it is done with the request."""
    if isinstance(failure, TransportError):
        return failure.may_have_reached_api
    return isinstance(failure, ServerError) and failure.status_code in (502, 504)


@dataclass
class _Look:
    """Looking for the agent a create of ``spec`` may have made: what it knows is held, and since when."""

    client: PhoneApiClient
    spec: Mapping[str, Any]
    claims: Claims
    machine: MachineRecord | None
    started: datetime

    def find(self, keep: str | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``(ours, earlier)``: agents of the spec nobody known holds (nor ``keep``), made since / just before."""
        held = self.claims.ids()
        if self.machine is not None:
            held |= self.machine.ids()
        if keep is not None:
            held.add(keep)
        agents = self.client.list(operation=f"look for the agent a create of {label(self.spec)} may have made")
        return matching(agents, self.spec, self.started, held)

    def hold(self, agent_id: str) -> None:
        self.claims.claim(agent_id)
        if self.machine is not None:
            self.machine.record(agent_id)


def create_reconciled(client: PhoneApiClient, spec: Mapping[str, Any], claims: Claims) -> dict[str, Any]:
    """POST ``spec`` and return the agent the API made: exactly one, held from now on, whatever got lost."""
    with identical_creates_one_at_a_time(client.settings.base_url, spec, label(spec)) as machine:
        # Every look covers the time since the FIRST attempt (taken once no identical create runs): an earlier
        # POST the API applied late is found too.
        look = _Look(client, spec, claims, machine, datetime.now(timezone.utc))
        agent, unanswered_at = _post_until_answered(look)
        if unanswered_at:
            _remove_late_twin(look, agent, unanswered_at)
        look.hold(agent["id"])
        return agent


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
        ours, earlier = look.find()
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
    if earlier:
        # Made before this create began: another deployment's, creating the same agent at the same time
        # elsewhere (or ours, if the API's clock runs behind). Never taken without a person.
        first = min(parse_time(a["created_at"]) or look.started for a in earlier)
        raise AmbiguousCreate(
            f"create phone agent {name}: the API did not answer ({failure}), and the only agent(s) matching this "
            f"spec ({', '.join(a['id'] for a in earlier)}) appeared {(look.started - first).total_seconds():.1f} s "
            "before this create began: most likely another deployment's, creating the same agent at the same "
            f"time, so none was taken. If nothing else creates an agent named {name}, it is this create's own "
            f"(the API's clock runs behind): adopt it with adopt_id={earlier[0]['id']!r}; otherwise run `pulumi "
            "up` again.",
            candidate_ids=[a["id"] for a in earlier],
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
        extras, _ = look.find(keep=agent["id"])
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
