"""State written by earlier versions of the provider, as `pulumi stack import` loads it into the real engine.

Earlier versions kept ``adopt_id`` among the outputs and, before ``model`` was declared, kept no ``model`` at all.
A diff must never replace an agent because an old state lacks a field: ``model`` cannot change on a live agent,
so an old state without it says nothing about a change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oppie_pulumi.sandbox import SandboxServer

from .realcli import PHONE_AGENT, Project, summary
from .support import TOKEN

pytestmark = pytest.mark.realcli

LINE = {"args": {"name": "Line", "first_message": "Hello."}}


def test_an_old_state_without_model_and_with_adopt_id_among_outputs_is_not_replaced(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    project = Project.program(tmp_path)
    project.configure(sandbox.url, TOKEN)
    project.declare({"line": LINE})
    project.up()
    agent_id = project.outputs()["line.id"]

    exported = project.export()
    for res in exported["deployment"]["resources"]:
        if res["type"] == PHONE_AGENT:
            for props in (res["inputs"], res["outputs"]):
                props.pop("model")
            res["outputs"]["adopt_id"] = agent_id
    old_state = tmp_path / "old-state.json"
    old_state.write_text(json.dumps(exported))
    project.run("stack", "import", "--file", str(old_state))

    sandbox.reset_stats()
    preview = project.run("preview", "--diff")
    assert "to replace" not in summary(preview.stdout), preview.stdout
    project.up()
    assert [w["method"] for w in sandbox.writes()] != ["POST", "DELETE"]
    assert [a["id"] for a in sandbox.agents()] == [agent_id], "the same agent, not a replacement"
    project.run("preview", "--expect-no-changes")
