"""The root stack through Pulumi's Automation API (``pulumi.automation``), driving the pinned CLI.

What a program that embeds Pulumi does: create a stack, set its config, ``up``, read the outputs, ``preview``,
``refresh``, ``destroy``. The Automation API runs the CLI that ``realcli.pulumi_bin()`` finds (the pinned build
in ``.tools/``), so this test never depends on whatever ``pulumi`` happens to be on PATH, and under ``CI=true``
a missing CLI fails it instead of skipping it.

The project is a copy of the checkout's ``Pulumi.yaml`` and ``__main__.py`` in a temporary folder (as
``realcli.Project.root`` makes it), with a file backend and ``PULUMI_HOME`` there too: the test never writes
``Pulumi.<stack>.yaml`` or state into the checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from pulumi import automation as auto

from oppie_pulumi.sandbox import SandboxServer

from .realcli import PHONE_AGENT, ROOT, VENV, cli_env, pulumi_bin
from .support import TOKEN

pytestmark = pytest.mark.realcli

STACK = "automation"
EXPORTS = {"support_line_id", "support_line_number", "follow_up_id", "follow_up_number"}


def _root_stack(tmp: Path) -> auto.Stack:
    """A new stack of a copy of the root project, on a file backend in ``tmp``, run by the pinned CLI."""
    bin_dir = pulumi_bin()
    project = tmp / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy2(ROOT / name, project / name)
    # Pulumi.yaml names `virtualenv: .venv`: the copy shares the checkout's.
    (project / ".venv").symlink_to(VENV)
    (tmp / "state").mkdir()
    (tmp / "home").mkdir()
    env = cli_env(bin_dir, VENV / "bin" / "python", tmp / "home", tmp / "state")
    workspace = auto.LocalWorkspaceOptions(
        pulumi_home=str(tmp / "home"),
        env_vars=env,
        # PulumiCommand runs <root>/bin/pulumi. The pinned build reports its own version (3.274.1), newer
        # than this SDK's; the check would only compare the two, so it is skipped.
        pulumi_command=auto.PulumiCommand(root=str(bin_dir.parent), skip_version_check=True),
    )
    return auto.create_stack(STACK, work_dir=str(project), opts=workspace)


def test_root_stack_deploys_rests_refreshes_and_destroys_through_the_automation_api(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    stack = _root_stack(tmp_path)
    log: list[str] = []
    try:
        stack.set_config("oppie:baseUrl", auto.ConfigValue(sandbox.url))
        stack.set_config("oppie:apiToken", auto.ConfigValue(TOKEN, secret=True))

        up = stack.up(on_output=log.append)
        # The stack itself and the two agents of __main__.py.
        assert up.summary.resource_changes == {"create": 3}, "\n".join(log)
        agents = {agent["name"]: agent for agent in sandbox.agents()}
        assert sorted(agents) == ["Acme delivery follow-up", "Acme support line"]
        support, follow_up = agents["Acme support line"], agents["Acme delivery follow-up"]
        outputs = {key: value.value for key, value in up.outputs.items()}
        assert outputs == {
            "support_line_id": support["id"],
            "support_line_number": support["phone_number"],
            "follow_up_id": follow_up["id"],
            "follow_up_number": follow_up["phone_number"],
        }
        assert set(outputs) == EXPORTS
        # The cross-resource reference of __main__.py reached the API once the support line existed.
        assert follow_up["handoff_phone_number"] == support["phone_number"]

        sandbox.reset_stats()
        # expect_no_changes: the CLI itself fails the preview if it plans anything.
        preview = stack.preview(expect_no_changes=True, on_output=log.append)
        assert preview.change_summary == {auto.OpType.SAME: 3}, "\n".join(log)
        assert sandbox.writes() == [], "a no-change preview must not write to the API"

        # A dashboard edit: refresh reads it from the API into the state, and writes nothing.
        edited = httpx.patch(
            f"{sandbox.url}/phone/{follow_up['id']}",
            json={"first_message": "Edited in the dashboard"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert edited.status_code == 200, edited.text
        sandbox.reset_stats()
        refresh = stack.refresh(on_output=log.append)
        assert refresh.summary.resource_changes == {"same": 2, "update": 1}, "\n".join(log)
        assert sandbox.writes() == [], "a refresh must not write to the API"
        deployment = stack.export_stack().deployment
        assert deployment is not None
        state = {res["urn"].rsplit("::", 1)[1]: res for res in deployment["resources"] if res["type"] == PHONE_AGENT}
        assert state["follow-up"]["outputs"]["first_message"] == "Edited in the dashboard"
        assert state["support-line"]["outputs"]["first_message"] == support["first_message"]

        destroy = stack.destroy(on_output=log.append)
        assert destroy.summary.resource_changes == {"delete": 3}, "\n".join(log)
        assert sandbox.agents() == [], "destroy must leave no agent"
    finally:
        stack.workspace.remove_stack(STACK, force=True)
