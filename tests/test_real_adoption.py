"""``adopt_id`` under the real engine: the paths where the engine re-runs Check without the old inputs.

The engine checks a resource with its new inputs only when it replaces it (to recompute defaults), when
``--replace`` targets it, and when it creates one whose agent vanished; ``adopt_id`` is then back in the
inputs of a create. Each path must end with every agent held by exactly one resource, and where the
engine says why it replaces (a model change, delete-before-replace, a vanished agent seen in this run),
with a new agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from oppie_pulumi.sandbox import SandboxServer

from .realcli import Project, summary
from .support import TOKEN, dashboard

pytestmark = pytest.mark.realcli

LIVE = {"name": "Legacy line", "language": "en", "first_message": "Hello."}


def adopted(project: Project, sandbox: SandboxServer, **opts: Any) -> tuple[str, dict[str, Any]]:
    """A live agent made "in the dashboard", adopted by the stack; returns its id and the declaration."""
    with dashboard(sandbox) as api:
        agent_id = api.post("/phone", json=LIVE).raise_for_status().json()["id"]
    entry: dict[str, Any] = {"args": {**LIVE, "first_message": "Hello from Acme.", "adopt_id": agent_id}}
    if opts:
        entry["opts"] = opts
    project.declare({"line": entry})
    project.up()
    assert project.outputs()["line.id"] == agent_id
    sandbox.reset_stats()
    return agent_id, entry


def held_once(project: Project, sandbox: SandboxServer) -> str:
    """The one agent the stack holds; fails unless the stack and the sandbox agree one-to-one."""
    ids = [res["id"] for res in project.resources().values()]
    assert len(ids) == len(set(ids)) == 1, ids
    assert [agent["id"] for agent in sandbox.agents()] == ids
    return ids[0]


@pytest.fixture
def project(sandbox: SandboxServer, tmp_path: Path) -> Project:
    project = Project.program(tmp_path)
    project.configure(sandbox.url, TOKEN)
    return project


def test_a_model_change_on_an_adopted_agent_replaces_it_with_a_new_agent(
    project: Project, sandbox: SandboxServer
) -> None:
    old_id, entry = adopted(project, sandbox)
    entry["args"]["model"] = "oppie-vox-2"
    project.declare({"line": entry})
    assert summary(project.run("preview").stdout).get("to replace") == 1
    project.up()
    new_id = held_once(project, sandbox)
    assert new_id != old_id
    assert [w["method"] for w in sandbox.writes()] == ["POST", "DELETE"]


def test_delete_before_replace_on_an_adopted_agent_makes_a_new_agent(project: Project, sandbox: SandboxServer) -> None:
    old_id, entry = adopted(project, sandbox, delete_before_replace=True)
    entry["args"]["model"] = "oppie-vox-2"
    project.declare({"line": entry})
    project.up()
    assert held_once(project, sandbox) != old_id
    assert [w["method"] for w in sandbox.writes()] == ["DELETE", "POST"]


def test_an_adopted_agent_deleted_elsewhere_is_recreated_by_up_with_refresh(
    project: Project, sandbox: SandboxServer
) -> None:
    old_id, _ = adopted(project, sandbox)
    with dashboard(sandbox) as api:
        api.delete(f"/phone/{old_id}").raise_for_status()
    project.up("--refresh")
    assert held_once(project, sandbox) != old_id


def test_an_adopted_agent_deleted_elsewhere_then_refreshed_away_fails_up_naming_the_fix(
    project: Project, sandbox: SandboxServer
) -> None:
    """A separate `pulumi refresh` forgets the agent; the next run cannot tell it from a mistyped adopt_id."""
    old_id, _ = adopted(project, sandbox)
    with dashboard(sandbox) as api:
        api.delete(f"/phone/{old_id}").raise_for_status()
    project.run("refresh", "--yes")
    failed = project.run("up", "--yes", expect=None)
    assert failed.returncode != 0
    assert old_id in failed.stdout and "remove adopt_id" in failed.stdout
    assert sandbox.agents() == [] and project.resources() == {}, "nothing made, nothing held"
    assert [w["method"] for w in sandbox.writes()] == ["DELETE"]  # the dashboard's delete, nothing of ours


def test_a_targeted_replace_of_an_adopted_agent_never_leaves_it_held_twice_or_deleted(
    project: Project, sandbox: SandboxServer
) -> None:
    """`--replace` gives the provider no sign of a replacement before its create (no Diff, no olds): the create
    adopts the same agent again, and the delete of the old resource then leaves that agent alone."""
    agent_id, _ = adopted(project, sandbox)
    urn = project.resources()["line"]["urn"]
    project.up("--replace", urn)
    assert held_once(project, sandbox) == agent_id
    assert [w["method"] for w in sandbox.writes()] == [], "no DELETE of the agent the new resource holds"
