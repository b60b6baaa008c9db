"""The lifecycle as users drive it, judged by the real Pulumi CLI against a sandbox of its own.

Each test declares agents through tests/programs/agents (``Project.program``) and runs `pulumi preview`,
`up`, `refresh` as a user would; the sandbox's journal (``sandbox.writes()``) says what reached the API.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from oppie_pulumi.sandbox import SandboxServer

from .realcli import Project, summary
from .support import TOKEN, dashboard

pytestmark = pytest.mark.realcli

SUPPORT: dict[str, Any] = {
    "args": {
        "name": "Acme support line",
        "language": "en",
        "first_message": "Thanks for calling Acme.",
        "handoff_phone_number": "+14155550123",
    }
}
# Hands off to the support line's number: a reference that is unknown until the support line exists.
FOLLOW_UP: dict[str, Any] = {
    "args": {"name": "Acme follow-up", "type": "outbound", "action_ids": []},
    "refs": {"handoff_phone_number": "support.phone_number"},
}


def writes(sandbox: SandboxServer, method: str | None = None) -> list[dict[str, Any]]:
    return [w for w in sandbox.writes() if method is None or w["method"] == method]


@pytest.fixture
def project(sandbox: SandboxServer, tmp_path: Path) -> Project:
    project = Project.program(tmp_path)
    project.configure(sandbox.url, TOKEN)
    return project


@pytest.fixture
def deployed(project: Project, sandbox: SandboxServer) -> Project:
    """The support line and its follow-up, deployed; the journal starts empty."""
    project.declare({"support": SUPPORT, "follow-up": FOLLOW_UP})
    project.up()
    sandbox.reset_stats()
    return project


def by_id(sandbox: SandboxServer) -> dict[str, dict[str, Any]]:
    return {agent["id"]: agent for agent in sandbox.agents()}


def test_preview_with_an_unknown_reference_then_one_post_per_agent(project: Project, sandbox: SandboxServer) -> None:
    project.declare({"support": SUPPORT, "follow-up": FOLLOW_UP})
    preview = project.run("preview", "--diff")
    assert summary(preview.stdout) == {"to create": 3}
    assert re.search(r"handoff_phone_number: \[unknown\]", preview.stdout), "unknown until the support line exists"
    assert writes(sandbox) == []

    project.up()
    assert [w["path"] for w in writes(sandbox)] == ["/phone", "/phone"]
    outputs = project.outputs()
    agents = by_id(sandbox)
    for name in ("support", "follow-up"):
        agent = agents[outputs[f"{name}.id"]]
        assert outputs[f"{name}.provider_external_id"] == agent["provider_external_id"]
        assert outputs[f"{name}.phone_number"] == agent["phone_number"]
    assert agents[outputs["follow-up.id"]]["handoff_phone_number"] == outputs["support.phone_number"]


def test_an_in_place_change_is_one_patch_carrying_only_the_changed_field(
    deployed: Project, sandbox: SandboxServer
) -> None:
    before = deployed.outputs()
    changed = {"args": {**SUPPORT["args"], "first_message": "Hello from Acme."}}
    deployed.declare({"support": changed, "follow-up": FOLLOW_UP})

    # The engine does not know the support line's outputs until its update ran (the dynamic host cannot say
    # which outputs are stable), so the preview also shows the follow-up, whose input refers to one, as an update;
    # the up then finds nothing to change in it.
    preview = deployed.run("preview", "--diff")
    assert summary(preview.stdout) == {"to update": 2}
    deployed.up()
    assert writes(sandbox) == [
        {
            "method": "PATCH",
            "path": f"/phone/{before['support.id']}",
            "body": {"first_message": "Hello from Acme."},
            "status": 200,
        }
    ]
    assert deployed.outputs() == before, "an update keeps the id and the number"


def test_a_model_change_replaces_the_agent_and_updates_its_dependents(
    deployed: Project, sandbox: SandboxServer
) -> None:
    before = deployed.outputs()
    turbo = {"args": {**SUPPORT["args"], "model": "oppie-vox-turbo"}}
    deployed.declare({"support": turbo, "follow-up": FOLLOW_UP})

    preview = deployed.run("preview", "--diff")
    assert summary(preview.stdout) == {"to replace": 1, "to update": 1}  # the follow-up gets the new number
    assert "+-pulumi-python:dynamic/oppie:PhoneAgent: (replace)" in preview.stdout
    assert re.search(r'~ model\s*: "oppie-vox" => "oppie-vox-turbo"', preview.stdout)
    deployed.up()
    after = deployed.outputs()
    assert after["support.id"] != before["support.id"]
    agents = by_id(sandbox)
    assert before["support.id"] not in agents, "the old agent is deleted"
    assert agents[after["support.id"]]["model"] == "oppie-vox-turbo"
    # Create before delete: the new agent exists first, then the follow-up moves to its number, then the old goes.
    assert [(w["method"], w["path"]) for w in writes(sandbox)] == [
        ("POST", "/phone"),
        ("PATCH", f"/phone/{before['follow-up.id']}"),
        ("DELETE", f"/phone/{before['support.id']}"),
    ]
    assert agents[after["follow-up.id"]]["handoff_phone_number"] == after["support.phone_number"]


def test_dashboard_drift_shows_on_refresh_fails_a_no_change_preview_and_up_reverts_it(
    deployed: Project, sandbox: SandboxServer
) -> None:
    support_id = deployed.outputs()["support.id"]
    with dashboard(sandbox) as api:
        api.patch(f"/phone/{support_id}", json={"first_message": "Edited in the dashboard"}).raise_for_status()
    sandbox.reset_stats()

    refresh = deployed.run("refresh", "--yes", "--diff")
    assert summary(refresh.stdout).get("updated") == 1
    assert "Edited in the dashboard" in refresh.stdout
    assert writes(sandbox) == [], "a refresh only reads"

    drift = deployed.run("preview", "--expect-no-changes", "--diff", expect=None)
    assert drift.returncode != 0
    assert "first_message" in drift.stdout

    deployed.up()
    assert by_id(sandbox)[support_id]["first_message"] == SUPPORT["args"]["first_message"]
    assert [w["body"] for w in writes(sandbox)] == [{"first_message": SUPPORT["args"]["first_message"]}]
    deployed.run("preview", "--expect-no-changes")


def test_an_agent_deleted_elsewhere_drops_out_on_refresh_and_up_recreates_it(
    deployed: Project, sandbox: SandboxServer
) -> None:
    before = deployed.outputs()
    with dashboard(sandbox) as api:
        api.delete(f"/phone/{before['follow-up.id']}").raise_for_status()

    refresh = deployed.run("refresh", "--yes")
    assert summary(refresh.stdout).get("deleted") == 1
    assert set(deployed.resources()) == {"support"}

    deployed.up()
    after = deployed.outputs()
    assert after["follow-up.id"] != before["follow-up.id"]
    assert set(by_id(sandbox)) == {after["support.id"], after["follow-up.id"]}
    assert len(writes(sandbox, "POST")) == 1


def test_get_reads_an_existing_agent_without_managing_it(deployed: Project, sandbox: SandboxServer) -> None:
    support_id = deployed.outputs()["support.id"]
    deployed.declare({"support": SUPPORT, "follow-up": FOLLOW_UP}, gets={"looked-up": support_id})
    deployed.up()
    outputs = deployed.outputs()
    assert outputs["looked-up.name"] == "Acme support line"
    assert outputs["looked-up.phone_number"] == outputs["support.phone_number"]
    assert writes(sandbox) == []

    deployed.declare({"support": SUPPORT, "follow-up": FOLLOW_UP})
    deployed.up()
    assert support_id in by_id(sandbox), "dropping a looked-up agent from the program never deletes it"


def test_get_of_an_id_that_does_not_exist_fails_naming_the_id(project: Project, sandbox: SandboxServer) -> None:
    project.declare({}, gets={"ghost": "no-such-agent-id"})
    result = project.run("up", "--yes", expect=None)
    assert result.returncode != 0
    assert "no-such-agent-id" in result.stdout + result.stderr
    assert "ghost" not in project.resources(), "a failed lookup leaves nothing in the state"


def test_stack_export_holds_neither_the_token_nor_a_secret_input_in_plain_text(
    project: Project, sandbox: SandboxServer
) -> None:
    hook = "https://hooks.example.com/oppie?sig=SECRET_SIGNATURE_1234"
    collector = {"args": {"name": "Collector", "type": "outbound", "data_collection_webhook_url": hook}}
    project.declare({"collector": collector}, secret_args={"collector": ["data_collection_webhook_url"]})
    up = project.up()
    exported = project.run("stack", "export").stdout
    for secret in (TOKEN, hook, "SECRET_SIGNATURE_1234"):
        assert secret not in exported
        assert secret not in up.stdout + up.stderr
    assert by_id(sandbox)[project.outputs()["collector.id"]]["data_collection_webhook_url"] == hook
