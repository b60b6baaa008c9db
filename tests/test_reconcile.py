"""``agents.reconcile``: a create whose answer was lost finds the agent it made, never takes another resource's
agent and never leaves an orphan.

Regressions of issue 11, items 1 and 2: after a failed POST the provider lists the agents and looks for the
one it made. It used to count any matching agent made since 5 s before the first attempt as its own, so a
second identical create (in the same process or in another stack's) could adopt the first one's agent; and
a POST that the API applied only after its retry had succeeded left a second agent nobody held. A create whose
request could not be sent at all has nothing to look for. (Identical creates one at a time, and the ids held
elsewhere on this machine: ``test_coordination``.)
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from oppie_pulumi import AmbiguousCreate, PhoneAgentProvider, Settings, TransportError
from oppie_pulumi.agents.reconcile import matching
from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN, configured_provider


def configured(sandbox: SandboxServer, **config: str) -> PhoneAgentProvider:
    return configured_provider(sandbox.url, **{"maxRetries": "3", **config})


def twin_made_elsewhere(sandbox: SandboxServer, name: str = "Twin") -> dict[str, Any]:
    """An agent of the same spec, made by another deployment (another machine: nothing shared with this one)."""
    answer = httpx.post(f"{sandbox.url}/phone", json={"name": name}, headers={"Authorization": f"Bearer {TOKEN}"})
    agent: dict[str, Any] = answer.json()
    return agent


@pytest.mark.parametrize("warm", [False, True], ids=["first create of the process", "after earlier creates"])
@pytest.mark.parametrize(
    "lost",
    [{"fail_next": 1, "writes_only": True}, {"drop_after_apply": 1}, {"fail_after_apply_next": 1}],
    ids=["POST failed unapplied", "answer dropped after apply", "5xx after apply"],
)
def test_a_matching_agent_made_elsewhere_just_before_the_create_is_never_taken(
    sandbox: SandboxServer, warm: bool, lost: dict[str, Any]
) -> None:
    """Across machines nothing is shared: an agent of the same spec that appeared just before this create began
    is another deployment's. Whatever became of this create's own POST, that agent is left alone: the create
    ends holding an agent of its own (made by the lost POST, or by its retry)."""
    provider = configured(sandbox)
    if warm:  # a provider whose client has listed and created before: nothing it saw then may excuse a twin
        provider.create(provider.check({}, {"name": "Warm-up"}).inputs)
    elsewhere = twin_made_elsewhere(sandbox)
    sandbox.set_faults(**lost)

    created = provider.create(provider.check({}, {"name": "Twin"}).inputs)

    assert created.id != elsewhere["id"]
    twins = [agent["id"] for agent in sandbox.agents() if agent["name"] == "Twin"]
    assert sorted(twins) == sorted([elsewhere["id"], created.id]), "one agent each, nothing taken or made twice"


@pytest.mark.parametrize(
    ("offset_ms", "whole_seconds"),
    [(-1000, False), (0, True), (-3000, True), (3000, True), (-60_000, True)],
    ids=["clock 1 s behind", "stamps cut to seconds", "3 s behind, cut", "3 s ahead, cut", "a minute behind, cut"],
)
@pytest.mark.parametrize("lost", [{"drop_after_apply": 1}, {"fail_after_apply_next": 1}], ids=["dropped", "5xx"])
def test_a_lost_answer_finds_the_agent_it_made_whatever_the_api_clock_and_its_stamps_say(
    sandbox: SandboxServer, offset_ms: int, whole_seconds: bool, lost: dict[str, Any]
) -> None:
    """Issue 21, fault 1: the API stamps `created_at` with a clock of its own (behind or ahead of ours) and may cut
    it to whole seconds while still writing milliseconds (`...:07.000Z`). A create whose answer was lost after the
    API applied it must still recognise the agent it made: no clock is compared."""
    provider = configured(sandbox)
    sandbox.set_faults(clock_offset_ms=offset_ms, whole_second_stamps=whole_seconds, **lost)

    created = provider.create(provider.check({}, {"name": "Clocked"}).inputs)

    assert [agent["id"] for agent in sandbox.agents()] == [created.id]
    assert [write["method"] for write in sandbox.writes()] == ["POST"], "found, not made again"


def test_a_post_the_api_applies_after_its_retry_succeeded_leaves_no_orphan(sandbox: SandboxServer) -> None:
    """The first POST times out, the look finds nothing yet, the retry succeeds, then the first POST lands:
    the provider looks again once it has settled and removes that second agent of its own."""
    provider = configured(sandbox, timeoutSeconds="0.3")
    sandbox.set_faults(late_apply_next=1, late_apply_ms=600)

    created = provider.create(provider.check({}, {"name": "Late"}).inputs)

    assert sandbox.faults_fired() == {"late apply POST /phone": 1}
    assert [agent["id"] for agent in sandbox.agents()] == [created.id]
    posts = [write for write in sandbox.writes() if write["method"] == "POST"]
    deletes = [write for write in sandbox.writes() if write["method"] == "DELETE"]
    assert len(posts) == 2 and len(deletes) == 1 and deletes[0]["path"] != f"/phone/{created.id}"


def test_a_create_answered_5xx_after_applying_adopts_the_agent_it_made(sandbox: SandboxServer) -> None:
    provider = configured(sandbox)
    sandbox.set_faults(fail_after_apply_next=1)

    created = provider.create(provider.check({}, {"name": "Applied"}).inputs)

    assert [agent["id"] for agent in sandbox.agents()] == [created.id]
    # The baseline before the POST, the look after it.
    assert sandbox.stats()["by_route"] == {"POST /phone": 1, "GET /phone": 2}


def agent_made(at: str, agent_id: str = "a1", name: str = "Twin") -> dict[str, Any]:
    """An agent as GET /phone lists it, made at ``at``, with the API's defaults (the spec of ``{"name": name}``)."""
    return {
        "id": agent_id,
        "name": name,
        "created_at": at,
        "type": "inbound",
        "interruptible": True,
        "model": "oppie-vox",
    }


@pytest.mark.parametrize(
    "created_at",
    ["2026-11-26T12:00:00.500Z", "2026-11-26T12:00:00.000Z", "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "?"],
)
def test_a_candidate_is_an_agent_absent_from_the_baseline_whatever_its_stamp_says(created_at: str) -> None:
    """Only the baseline decides, never a clock: an agent in it existed before the create began, one not in it
    appeared since, whether its stamp says long ago, in the future, or nothing readable."""
    spec = PhoneAgentProvider().check({}, {"name": "Twin"}).inputs
    agents = [agent_made(created_at, "before"), agent_made(created_at, "since")]
    assert [agent["id"] for agent in matching(agents, spec, frozenset({"before"}), set())] == ["since"]


def test_a_candidate_must_match_the_spec_and_be_held_by_nobody() -> None:
    spec = PhoneAgentProvider().check({}, {"name": "Twin"}).inputs
    agents = [
        agent_made("2026-11-26T12:00:01Z", "other-name", name="Other"),
        agent_made("2026-11-26T12:00:01Z", "held"),
        agent_made("2026-11-26T12:00:01Z", "free"),
    ]
    ours = matching(agents, spec, frozenset(), {"held"})
    assert [agent["id"] for agent in ours] == ["free"]


@pytest.mark.parametrize(("status", "looks"), [(502, 2), (504, 2), (503, 1), (500, 1)])
def test_only_a_post_that_may_still_land_earns_the_last_look(sandbox: SandboxServer, status: int, looks: int) -> None:
    """A gateway's 502/504 may come while the API behind it still works on the request: after the retry, look
    again once it had the time to land. A 503 or 500 the API sent itself means it is done with it."""
    provider = configured(sandbox, timeoutSeconds="1")
    sandbox.set_faults(fail_next=1, fail_status=status, writes_only=True)

    created = provider.create(provider.check({}, {"name": "Gateway"}).inputs)

    assert [agent["id"] for agent in sandbox.agents()] == [created.id]
    # The baseline, the look after the failed POST, and for a gateway's answer the last look.
    assert sandbox.stats()["by_route"] == {"POST /phone": 2, "GET /phone": 1 + looks}


def test_a_late_second_agent_that_cannot_be_removed_is_named_with_the_first(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The late POST made a second agent and the API refuses to delete it: the create fails naming both, so the
    user keeps one (adopt_id) and deletes the other; nothing is left that no one knows of."""
    provider = configured(sandbox, timeoutSeconds="0.3", maxRetries="1")
    sandbox.set_faults(late_apply_next=1, late_apply_ms=600)

    def refuse(agent_id: str) -> bool:
        raise RuntimeError("the API's store is read-only today")  # the sandbox answers 500

    monkeypatch.setattr(sandbox.state.store, "delete", refuse)

    with pytest.raises(AmbiguousCreate) as caught:
        provider.create(provider.check({}, {"name": "Late"}).inputs)

    ids = [agent["id"] for agent in sandbox.agents()]
    assert len(ids) == 2 and sorted(caught.value.candidate_ids) == sorted(ids)
    assert "after a retry the API made it twice" in str(caught.value)
    assert "Delete one of them in the dashboard, then run `pulumi up` again with adopt_id set to the other" in str(
        caught.value
    )


def test_a_create_whose_request_could_not_be_sent_fails_without_looking(sandbox: SandboxServer) -> None:
    provider = PhoneAgentProvider()
    provider._settings = Settings(api_token="tok_bad\nvalue_123456", base_url=sandbox.url)

    with pytest.raises(TransportError, match="could not be sent") as caught:
        provider.create(provider.check({}, {"name": "Support"}).inputs)

    assert not isinstance(caught.value, AmbiguousCreate)
    assert sandbox.stats()["requests"] == 0


def test_an_agent_this_process_holds_is_never_a_candidate_even_when_the_machine_record_lacks_it(
    sandbox: SandboxServer,
) -> None:
    """A refresh in this provider host read the agent for another resource (so this process knows it is held);
    the machine's record only lists what creates ended up holding. A create of the same spec whose answer is
    lost must not take it: it retries and makes its own."""
    provider = configured(sandbox)
    inputs = provider.check({}, {"name": "Twin"}).inputs
    theirs = httpx.post(
        f"{sandbox.url}/phone", json={"name": "Twin"}, headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()
    held = provider.read(theirs["id"], {"name": "Twin"})
    assert held.id == theirs["id"]
    sandbox.set_faults(fail_next=1, writes_only=True)  # the POST fails, unapplied: the look must not take it

    created = provider.create(inputs)

    assert created.id != theirs["id"]
    assert sorted(agent["id"] for agent in sandbox.agents()) == sorted([theirs["id"], created.id])
