"""`pulumi up` killed (SIGKILL) after its POST reached the API and before the answer came back; and a create whose
answer is lost while the API's clock disagrees with ours.

What the engine leaves after a kill: the stack locked by the dead CLI, a *pending create* for the resource in the
state (it checkpoints before calling the provider) and no resource holding the agent, which the API has made. The
unattended recovery (docs/reliability.md): `oppie-pulumi recover --stack <stack>`, then `pulumi up`: every agent
is then held by exactly one resource, and no second one is made. The manual one (docs/phone-agent.md) still
works: `pulumi cancel`, `pulumi refresh --clear-pending-creates`, then adopt the agent with ``adopt_id``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from oppie_pulumi.sandbox import SandboxServer

from .realcli import PHONE_AGENT, Project
from .support import TOKEN

pytestmark = pytest.mark.realcli

LINE = {"args": {"name": "Interrupted line", "first_message": "Hello."}}


def interrupted_up(project: Project, sandbox: SandboxServer) -> str:
    """Run `pulumi up`, kill it once the sandbox applied the POST (its answer held back); the agent's id."""
    # The sandbox applies the POST, then holds its answer far longer than this test waits.
    sandbox.set_faults(delay_after_apply_ms=120_000)
    process = project.start("up", "--yes", "--skip-preview")
    deadline = time.monotonic() + 120
    while not sandbox.agents():
        assert process.poll() is None, f"the CLI ended before its POST was applied:\n{project.kill(process)}"
        assert time.monotonic() < deadline, "the POST never reached the sandbox"
        time.sleep(0.05)
    project.kill(process)
    sandbox.reset_faults()
    [agent] = sandbox.agents()
    return str(agent["id"])


@pytest.fixture
def killed(sandbox: SandboxServer, tmp_path: Path) -> tuple[Project, str]:
    project = Project.program(tmp_path)
    project.configure(sandbox.url, TOKEN)
    project.declare({"line": LINE})
    return project, interrupted_up(project, sandbox)


def test_a_killed_up_leaves_a_pending_create_in_the_state_and_the_agent_in_the_api(
    killed: tuple[Project, str], sandbox: SandboxServer
) -> None:
    project, agent_id = killed
    locked = project.run("up", "--yes", expect=None)
    assert locked.returncode != 0 and "the stack is currently locked" in locked.stderr
    deployment = project.export()["deployment"]
    assert project.resources() == {}, "no resource holds the agent"
    [pending] = deployment["pending_operations"]
    assert pending["type"] == "creating" and pending["resource"]["urn"].endswith("::line")
    assert [a["id"] for a in sandbox.agents()] == [agent_id]


def test_the_documented_recovery_adopts_the_agent_the_killed_up_made(
    killed: tuple[Project, str], sandbox: SandboxServer
) -> None:
    project, agent_id = killed
    # 1. The killed CLI still holds the stack's lock: release it.
    project.run("cancel", "--yes")
    # 2. Drop the pending create from the state (the engine would otherwise keep asking about it).
    project.run("refresh", "--yes", "--clear-pending-creates")
    assert not project.export()["deployment"].get("pending_operations")
    # 3. Adopt the agent the killed run made (its id from the dashboard, here the sandbox) and deploy.
    sandbox.reset_stats()
    project.declare({"line": {"args": {**LINE["args"], "adopt_id": agent_id}}})
    project.up()
    assert [w["method"] for w in sandbox.writes()] == [], "adopted as it is: no POST, nothing to PATCH"
    assert [a["id"] for a in sandbox.agents()] == [agent_id]
    assert project.resources()["line"]["id"] == agent_id
    # 4. adopt_id has done its job; removing it changes nothing.
    project.declare({"line": LINE})
    project.run("preview", "--expect-no-changes")


def test_import_pending_creates_loses_the_create_in_this_engine_version(
    killed: tuple[Project, str], sandbox: SandboxServer
) -> None:
    """Why the recovery does not use `pulumi refresh --import-pending-creates URN ID`: pulumi 3.274.1 turns the
    pending create into a pending *import*, which its refresh neither imports nor keeps (only pending creates are
    carried over), so the agent ends up held by nothing, as with --clear-pending-creates."""
    project, agent_id = killed
    project.run("cancel", "--yes")
    [pending] = project.export()["deployment"]["pending_operations"]
    urn = pending["resource"]["urn"]
    # The flag takes the URN and the id as two values, one per occurrence.
    project.run("refresh", "--yes", "--import-pending-creates", urn, "--import-pending-creates", agent_id)
    assert project.resources() == {}
    assert not project.export()["deployment"].get("pending_operations")
    assert [a["id"] for a in sandbox.agents()] == [agent_id]


def test_a_plain_up_after_the_kill_makes_a_second_agent_which_the_docs_warn_of(
    killed: tuple[Project, str], sandbox: SandboxServer
) -> None:
    """Why the recovery matters: the engine drops the pending create and creates again, leaving an orphan."""
    project, agent_id = killed
    project.run("cancel", "--yes")
    up = project.up()
    assert "pending" in up.stdout + up.stderr
    ids = [a["id"] for a in sandbox.agents()]
    assert len(ids) == 2 and agent_id in ids
    assert project.resources()["line"]["id"] != agent_id, "the first agent is held by nothing"


def recover(project: Project) -> subprocess.CompletedProcess[str]:
    """``oppie-pulumi recover --stack <stack>`` in the project's folder, with its CLI, backend and PULUMI_HOME."""
    return project.oppie("recover", "--stack", project.stack)


def test_the_unattended_recovery_gives_the_resource_the_agent_the_killed_up_made(
    killed: tuple[Project, str], sandbox: SandboxServer
) -> None:
    """Issue 21, fault 2: what a pipeline runs after a killed `pulumi up`, with no one to look up an id. Every agent
    ends held exactly once: no second POST, nothing left that no resource holds."""
    project, agent_id = killed
    sandbox.reset_stats()

    recovered = recover(project)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert f"now holds {agent_id}" in recovered.stdout
    up = project.up()

    assert [w["method"] for w in sandbox.writes()] == [], f"nothing to create or change:\n{up.stdout}"
    assert [a["id"] for a in sandbox.agents()] == [agent_id]
    assert project.resources()["line"]["id"] == agent_id
    assert not project.export()["deployment"].get("pending_operations")
    project.run("preview", "--expect-no-changes", "--refresh")


def test_recover_mends_a_state_the_kill_left_unreadable_then_gives_the_resource_its_agent(
    killed: tuple[Project, str], sandbox: SandboxServer
) -> None:
    """Seen in CI's chaos trial: killed while Pulumi's file backend wrote a checkpoint, the attribute file beside it
    is left empty (gocloud's fileblob creates it, then writes it), and every command on the stack, `pulumi cancel`
    included, fails with "failed to load checkpoint: EOF". The state itself is whole (written aside, renamed)."""
    project, agent_id = killed
    backend = Path(project.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    [attrs] = (backend / ".pulumi" / "stacks").glob(f"*/{project.stack}.json.attrs")
    attrs.write_bytes(b"")  # what a SIGKILL between fileblob's os.Create and its write leaves
    unreadable = project.run("stack", "export", expect=None)
    assert unreadable.returncode != 0 and "failed to load checkpoint: EOF" in unreadable.stderr, unreadable.stderr

    recovered = recover(project)

    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert f"removed {attrs}, which the killed command left torn" in recovered.stdout, recovered.stdout
    assert f"now holds {agent_id}" in recovered.stdout
    project.up()
    assert [a["id"] for a in sandbox.agents()] == [agent_id], "no second agent"
    assert project.resources()["line"]["id"] == agent_id


def test_recover_drops_a_pending_create_whose_post_never_landed_and_up_creates_the_agent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Killed while the create waits to retry a POST the API refused unapplied: the state holds a pending create,
    and the API no agent, and the API works again. The provider host (left running by the kill) stops with its
    engine instead of retrying; the recovery drops the pending create, and the next `pulumi up` makes the one
    agent."""
    project = Project.program(tmp_path)
    project.configure(sandbox.url, TOKEN)
    project.declare({"line": LINE})
    sandbox.set_faults(fail_next=1000, writes_only=True)
    process = project.start("up", "--yes", "--skip-preview")
    deadline = time.monotonic() + 120
    while not (project.export()["deployment"].get("pending_operations") and sandbox.stats()["by_status"].get("503")):
        assert process.poll() is None and time.monotonic() < deadline, project.kill(process)
        time.sleep(0.1)
    project.kill(process)
    sandbox.reset_faults()
    # Pulumi runs the provider host in a process group of its own: the kill leaves it running. It must stop with
    # its engine, not go on retrying: a POST of its landing now would be an agent no resource holds.
    time.sleep(5)
    assert sandbox.agents() == [], "the provider went on creating after its engine was killed"

    recovered = recover(project)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "made no agent" in recovered.stdout, recovered.stdout
    assert not project.export()["deployment"].get("pending_operations")
    project.up()

    [agent] = sandbox.agents()
    assert project.resources()["line"]["id"] == agent["id"]


def test_recover_on_a_stack_with_nothing_pending_changes_nothing(sandbox: SandboxServer, tmp_path: Path) -> None:
    project = Project.program(tmp_path)
    project.configure(sandbox.url, TOKEN)
    project.declare({"line": LINE})
    project.up()
    before = project.export()["deployment"]["resources"]

    recovered = recover(project)

    assert recovered.returncode == 0 and "no interrupted create to settle" in recovered.stdout, recovered.stderr
    assert project.export()["deployment"]["resources"] == before


@pytest.mark.parametrize(
    ("offset_ms", "whole_seconds"), [(-1000, True), (-3000, False)], ids=["1 s behind, cut", "3 s behind"]
)
def test_a_create_whose_answer_is_lost_against_a_lagging_api_clock_holds_the_agent_it_made(
    sandbox: SandboxServer, tmp_path: Path, offset_ms: int, whole_seconds: bool
) -> None:
    """Issue 21, fault 1, under the real CLI: the API applies the POST and the connection drops before its answer,
    while it stamps `created_at` a second or more behind our clock (cut to whole seconds, written `.000Z`). The
    create finds the agent it made and `pulumi up` succeeds holding it; no second agent, no orphan."""
    project = Project.program(tmp_path)
    project.configure(sandbox.url, TOKEN)
    project.declare({"line": LINE})
    sandbox.set_faults(drop_after_apply=1, clock_offset_ms=offset_ms, whole_second_stamps=whole_seconds)

    up = project.up(expect=None)

    assert up.returncode == 0, up.stdout + up.stderr
    [agent] = sandbox.agents()
    assert project.resources(PHONE_AGENT)["line"]["id"] == agent["id"]
    assert [w["method"] for w in sandbox.writes()] == ["POST"]
