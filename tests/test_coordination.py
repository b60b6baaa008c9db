"""``agents.coordination``: identical creates one at a time, and the ids this machine's creates hold, so that
reconciling an unanswered create never takes another resource's agent.

Regressions of issue 11, item 1: after a failed POST the provider lists the agents and looks for the one it
made, so a second identical create running at the same time (in the same process, or in another stack's on this
machine) could take the first one's agent. Identical creates now wait for each other (a lock per spec in the
process, a lock file across the machine's processes), and the lock file records the ids they ended up holding.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pulumi.dynamic import CreateResult

from oppie_pulumi import OppieError, PhoneAgentProvider
from oppie_pulumi.agents import coordination
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


def test_an_agent_another_process_of_this_machine_holds_is_never_a_candidate(sandbox: SandboxServer) -> None:
    """The machine-wide record: another stack's create (another process) made this agent a moment ago and
    wrote its id down; this process never saw it, and must retry rather than take it or stop at it."""
    provider = configured(sandbox)
    inputs = provider.check({}, {"name": "Twin"}).inputs
    theirs = httpx.post(
        f"{sandbox.url}/phone", json={"name": "Twin"}, headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()
    folder = coordination.coordination_dir()
    assert folder is not None, "no coordination folder on this machine"
    key = coordination.spec_key(sandbox.url, provider.check({}, {"name": "Twin"}).inputs)
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
        held = coordination.MachineRecord(handle, threading.Condition())
        assert held.ids() == {"recent-1", "recent-2"}
        held.record("new-id")
        held.record("has space")  # cannot be one per line: left to the in-process record
        assert held.ids() == {"recent-1", "recent-2", "new-id"}
        handle.write(f"{now:.0f} {'x' * 70_000}\n")  # past 64 KiB: the next record rewrites the file
        handle.flush()
        held.record("after-prune")
        assert held.ids() == {"recent-1", "recent-2", "new-id", "x" * 70_000, "after-prune"}
    assert "too-old" not in path.read_text() and "torn" not in path.read_text()


@contextlib.contextmanager
def every_spec_lock_held_by_another_process() -> Iterator[None]:
    """flock is per open file: our own opening of each of the 256 bucket files stands in for another process."""
    folder = coordination.coordination_dir()
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
    monkeypatch.setattr(coordination, "CREATE_LOCK_WAIT_SECONDS", 0.3)
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
    folder = coordination.coordination_dir()
    assert folder is not None and folder.is_dir()
    assert folder.parent.parent == tmp_path / "fresh-tmp"
    assert folder.name == "creates" and folder.parent.name.startswith("oppie-pulumi-")
    assert folder.stat().st_mode & 0o777 == 0o700 and not folder.parent.stat().st_mode & 0o022, "only we write"
    assert coordination.coordination_dir() == folder, "looked up once per temporary folder"


def test_a_folder_others_can_write_is_not_trusted_for_the_held_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone who can write it could feed us ids to ignore: without it, only the in-process lock applies."""
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    (tmp_path / f"oppie-pulumi-{os.getuid()}").mkdir(mode=0o700)
    (tmp_path / f"oppie-pulumi-{os.getuid()}").chmod(0o777)
    assert coordination.coordination_dir() is None


def test_a_folder_that_cannot_be_made_means_no_machine_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "a-file"))
    assert coordination.coordination_dir() is None


def test_fresh_records_start_empty_and_remember_what_they_are_told() -> None:
    claims, run = coordination.Claims(), coordination.RunMemory()
    assert claims.ids() == set() and (run.held, run.vanished, run.adopted) == (set(), set(), set())
    claims.claim("ph_1")
    run.saw_held("ph_2")
    run.saw_held("")
    run.saw_held(None)
    run.saw_vanished("ph_3")
    run.saw_adopted("ph_4")
    assert claims.ids() == {"ph_1"}
    assert run.is_replacement("ph_2") and run.is_replacement("ph_3") and not run.is_replacement("ph_4")
    assert run.adopted_here("ph_4") and not run.adopted_here("ph_2")
    assert run.held == {"ph_2"}
