"""`pulumi up` for real, through the Automation API, whenever a `pulumi` binary is on PATH.

The CLI cannot be installed where this project is built, so this test skips there, saying why; on a
machine with the CLI it deploys the root stack (stack/) against the sandbox, checks that a second
preview changes nothing, refreshes, and destroys.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    shutil.which("pulumi") is None,
    reason="no `pulumi` binary on PATH: install the Pulumi CLI (https://www.pulumi.com/docs/install/) to run "
    "the real `pulumi up` test; the provider host and gRPC lifecycle tests cover the rest",
)


def test_root_stack_deploys_refreshes_and_destroys_against_the_sandbox(sandbox: SandboxServer, tmp_path: Path) -> None:
    from pulumi import automation as auto

    env = {
        "PULUMI_BACKEND_URL": f"file://{tmp_path}",
        "PULUMI_CONFIG_PASSPHRASE": "test",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_PYTHON_CMD": sys.executable,
    }
    workspace = auto.LocalWorkspaceOptions(
        env_vars=env,
        project_settings=auto.ProjectSettings(
            name="oppie-agents", runtime=auto.ProjectRuntimeInfo(name="python"), main=str(ROOT / "stack")
        ),
    )
    stack = auto.create_or_select_stack("test", work_dir=str(ROOT), opts=workspace)
    try:
        stack.set_config("oppie:baseUrl", auto.ConfigValue(sandbox.url))
        stack.set_config("oppie:apiToken", auto.ConfigValue(TOKEN, secret=True))
        result = stack.up(on_output=print)
        assert result.summary.resource_changes and result.summary.resource_changes.get("create") == 3
        assert result.outputs["support_line_number"].value.startswith("+")
        assert len(sandbox.agents()) == 2
        assert not stack.preview(expect_no_changes=True).change_summary.get("update")
        stack.refresh()
        stack.destroy()
        assert sandbox.agents() == []
    finally:
        stack.workspace.remove_stack("test", force=True)
