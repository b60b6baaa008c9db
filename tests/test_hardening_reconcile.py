"""Reconciling an unanswered create never takes another resource's agent and never leaves an orphan.

Regressions of issue 11, items 1 and 2: after a failed POST the provider lists the agents and looks for the
one it made. It used to count any matching agent made since 5 s before the first attempt as its own, so a
second identical create (in the same process or in another stack's) could adopt the first one's agent; and
a POST that the API applied only after its retry had succeeded left a second agent nobody held.
"""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from pulumi.dynamic import CreateResult

from oppie_pulumi import AmbiguousCreate, OppieError, PhoneAgentProvider, phone_agent
from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN, HostFactory, agents_program, configured_provider


def configured(sandbox: SandboxServer, **config: str) -> PhoneAgentProvider:
    return configured_provider(sandbox.url, **{"maxRetries": "3", **config})


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll until ``condition`` holds: choreography between threads, not a measurement."""
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def in_thread(action: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = action()
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_identical_creates_in_one_process_never_share_an_agent(sandbox: SandboxServer) -> None:
    """The reproduced bug: create S answers slowly after applying; meanwhile a second create S gets a 503
    without applying, lists, and adopted the first one's agent: both returned the same id."""
    provider = configured(sandbox, timeoutSeconds="3")
    inputs = provider.check({}, {"name": "Twin"}).inputs
    sandbox.set_faults(delay_after_apply_ms=1000)
    thread, first = in_thread(lambda: provider.create(inputs))
    wait_for(lambda: len(sandbox.agents()) == 1, "the first create applied")
    sandbox.set_faults(delay_after_apply_ms=0, fail_next=1)

    second = provider.create(inputs)
    thread.join()

    assert "error" not in first, first.get("error")
    first_result: CreateResult = first["value"]
    assert second.id != first_result.id
    assert sorted(agent["id"] for agent in sandbox.agents()) == sorted([first_result.id, second.id])


def test_identical_creates_in_two_provider_processes_never_share_an_agent(
    sandbox: SandboxServer, host_for: HostFactory
) -> None:
    """The same race across two provider hosts (two stacks deploying at once from one machine)."""
    [registration] = agents_program({"resource": "twin", "name": "Twin"})
    with host_for(timeoutSeconds="3") as one, host_for(timeoutSeconds="3") as other:
        inputs, _ = one.check(registration.urn, {}, registration.inputs)
        sandbox.set_faults(delay_after_apply_ms=1000)
        thread, first = in_thread(lambda: one.create(registration.urn, inputs))
        wait_for(lambda: len(sandbox.agents()) == 1, "the first create applied")
        sandbox.set_faults(delay_after_apply_ms=0, fail_next=1)

        second_id, _ = other.create(registration.urn, inputs)
        thread.join()

    assert "error" not in first, first.get("error")
    first_id, _ = first["value"]
    assert second_id != first_id
    assert sorted(agent["id"] for agent in sandbox.agents()) == sorted([first_id, second_id])


def test_a_matching_agent_made_elsewhere_just_before_the_create_is_never_adopted_silently(
    sandbox: SandboxServer,
) -> None:
    """Across machines nothing is shared: an agent of the same spec that appeared just before this create
    began is most likely another deployment's. It is named in the error, never taken."""
    provider = configured(sandbox)
    elsewhere = httpx.post(
        f"{sandbox.url}/phone", json={"name": "Twin"}, headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()
    sandbox.set_faults(fail_next=1)

    with pytest.raises(AmbiguousCreate) as caught:
        provider.create(provider.check({}, {"name": "Twin"}).inputs)

    assert caught.value.candidate_ids == [elsewhere["id"]]
    message = str(caught.value)
    assert f"adopt_id={elsewhere['id']!r}" in message
    assert "another deployment" in message
    assert [agent["id"] for agent in sandbox.agents()] == [elsewhere["id"]]


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
    assert sandbox.stats()["by_route"] == {"POST /phone": 1, "GET /phone": 1}


def test_an_agent_another_process_of_this_machine_holds_is_never_a_candidate(sandbox: SandboxServer) -> None:
    """The machine-wide record: another stack's create (another process) made this agent a moment ago and
    wrote its id down; this process never saw it, and must retry rather than take it or stop at it."""
    provider = configured(sandbox)
    inputs = provider.check({}, {"name": "Twin"}).inputs
    theirs = httpx.post(
        f"{sandbox.url}/phone", json={"name": "Twin"}, headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()
    folder = phone_agent._coordination_dir()
    assert folder is not None, "no coordination folder on this machine"
    key = phone_agent._spec_key(sandbox.url, provider.check({}, {"name": "Twin"}).inputs)
    with open(folder / f"{key[:2]}.lock", "a", encoding="utf-8") as record:
        record.write(f"{time.time():.0f} {theirs['id']}\n")
    sandbox.set_faults(fail_next=1)

    created = provider.create(inputs)

    assert created.id != theirs["id"]
    assert sorted(agent["id"] for agent in sandbox.agents()) == sorted([theirs["id"], created.id])


def test_the_machine_record_keeps_recent_ids_and_survives_torn_lines_and_its_own_pruning(tmp_path: Any) -> None:
    path = tmp_path / "bucket.lock"
    now = time.time()
    path.write_text(
        f"{now - 10:.0f} recent-1\n{now - 7200:.0f} too-old\nnot-a-time torn\n{now:.0f} \n{now - 5:.0f} recent-2\n"
    )
    with open(path, "a+", encoding="utf-8") as handle:
        held = phone_agent._HeldElsewhere(handle, threading.Condition())
        assert held.ids() == {"recent-1", "recent-2"}
        held.record("new-id")
        held.record("has space")  # cannot be one per line: left to the in-process record
        assert held.ids() == {"recent-1", "recent-2", "new-id"}
        handle.write(f"{now:.0f} {'x' * 70_000}\n")  # past 64 KiB: the next record rewrites the file
        handle.flush()
        held.record("after-prune")
        assert held.ids() == {"recent-1", "recent-2", "new-id", "x" * 70_000, "after-prune"}
    assert "too-old" not in path.read_text() and "torn" not in path.read_text()


STARTED = datetime(2026, 11, 26, 12, 0, 0, 500_000, tzinfo=timezone.utc)


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
    ("created_at", "verdict"),
    [
        ("2026-11-26T12:00:00.500Z", "ours"),  # the millisecond the create began: may be after it
        ("2026-11-26T12:00:00.499Z", "earlier"),  # a whole millisecond before
        ("2026-11-26T12:00:00Z", "ours"),  # second resolution: anywhere in 12:00:00, maybe after .5
        ("2026-11-26T11:59:59Z", "earlier"),
        ("2026-11-26T11:59:55.500Z", "earlier"),  # exactly the allowed clock skew before
        ("2026-11-26T11:59:55.499Z", "ignored"),  # older: an agent of the past, not of this create
        ("2026-11-26T12:00:00.500001+00:00", "ours"),
        ("2026-11-26T12:00:00.499999+00:00", "earlier"),
        ("yesterday", "ignored"),
    ],
)
def test_candidates_are_sorted_by_when_they_were_made_at_the_stamps_resolution(created_at: str, verdict: str) -> None:
    spec = PhoneAgentProvider().check({}, {"name": "Twin"}).inputs
    ours, earlier = phone_agent._matching([agent_made(created_at)], spec, STARTED, set())
    found = "ours" if ours else "earlier" if earlier else "ignored"
    assert found == verdict


def test_a_candidate_must_match_the_spec_and_be_held_by_nobody() -> None:
    spec = PhoneAgentProvider().check({}, {"name": "Twin"}).inputs
    agents = [
        agent_made("2026-11-26T12:00:01Z", "other-name", name="Other"),
        agent_made("2026-11-26T12:00:01Z", "held"),
        agent_made("2026-11-26T12:00:01Z", "free"),
    ]
    ours, earlier = phone_agent._matching(agents, spec, STARTED, {"held"})
    assert [agent["id"] for agent in ours] == ["free"] and earlier == []


@pytest.mark.parametrize(("status", "looks"), [(502, 2), (504, 2), (503, 1), (500, 1)])
def test_only_a_post_that_may_still_land_earns_the_last_look(sandbox: SandboxServer, status: int, looks: int) -> None:
    """A gateway's 502/504 may come while the API behind it still works on the request: after the retry, look
    again once it had the time to land. A 503 or 500 the API sent itself means it is done with it."""
    provider = configured(sandbox, timeoutSeconds="1")
    sandbox.set_faults(fail_next=1, fail_status=status)

    created = provider.create(provider.check({}, {"name": "Gateway"}).inputs)

    assert [agent["id"] for agent in sandbox.agents()] == [created.id]
    assert sandbox.stats()["by_route"] == {"POST /phone": 2, "GET /phone": looks}


@contextlib.contextmanager
def every_spec_lock_held_by_another_process() -> Iterator[None]:
    """flock is per open file: our own opening of each of the 256 bucket files stands in for another process."""
    folder = phone_agent._coordination_dir()
    assert folder is not None
    handles = [open(folder / f"{i:02x}.lock", "a+", encoding="utf-8") for i in range(256)]  # noqa: SIM115
    try:
        for handle in handles:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        for handle in handles:
            handle.close()


def test_a_create_waits_while_another_process_creates_an_identical_agent_then_goes_ahead(
    sandbox: SandboxServer,
) -> None:
    provider = configured(sandbox)
    inputs = provider.check({}, {"name": "Support"}).inputs
    with every_spec_lock_held_by_another_process():
        result: list[CreateResult] = []
        create = threading.Thread(target=lambda: result.append(provider.create(inputs)))
        create.start()
        time.sleep(0.3)
        assert create.is_alive() and sandbox.agents() == []  # waiting, nothing sent
    create.join(timeout=30)
    assert [agent["id"] for agent in sandbox.agents()] == [result[0].id]


def test_a_create_that_waited_too_long_for_another_process_names_the_lock_file(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(phone_agent, "CREATE_LOCK_WAIT_SECONDS", 0.3)
    provider = configured(sandbox)
    with every_spec_lock_held_by_another_process(), pytest.raises(OppieError) as caught:
        provider.create(provider.check({}, {"name": "Support"}).inputs)
    assert "another process on this machine has been creating an identical agent for 0 s (it holds " in str(
        caught.value
    )
    assert "If no `pulumi` command is running, delete that file and run `pulumi up` again." in str(caught.value)
    assert sandbox.agents() == []


def test_the_lock_folder_is_made_on_a_machine_that_never_had_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without it the cross-process lock of identical creates would be off, silently, on every fresh machine."""
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "fresh-tmp"))
    folder = phone_agent._coordination_dir()
    assert folder is not None and folder.is_dir()
    assert folder.parent.parent == tmp_path / "fresh-tmp"


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
