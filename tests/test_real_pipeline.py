"""examples/pipeline: the three jobs of its GitHub Actions workflow, run by the real CLI against the sandbox.

The commands come from ``phone-agents.yml`` itself: the drift job's ``run:`` line as written, and for the jobs
that use ``pulumi/actions@v6`` the command that action runs for their ``with:`` inputs (v6 calls the Automation
API: ``preview`` -> ``pulumi preview``, ``up`` -> ``pulumi up --yes --skip-preview``, plus ``--refresh`` for
``refresh: true`` and ``--diff`` for ``diff: true``). A change to the workflow changes what this test runs, and
an input the test does not know fails it until it is taught what the input does.

The stack is configured as the workflow's is: the stack's config is ``Pulumi.prod.yaml`` (``oppie:baseUrl``, here
the sandbox's), and the API token comes from ``OPPIE_API_TOKEN`` in the CLI's environment, never from config.
The program's Python is found as on the runner: no ``PULUMI_PYTHON_CMD``, ``python3`` on PATH (the virtualenv
with the requirements installed, as ``pip install -r requirements.txt`` leaves the runner's Python).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from oppie_pulumi.sandbox import SandboxServer

from .realcli import EXAMPLES, Project, summary
from .support import TOKEN

pytestmark = pytest.mark.realcli

PIPELINE = EXAMPLES / "pipeline"
WORKFLOW = PIPELINE / "phone-agents.yml"
STACK = "prod"  # Pulumi.prod.yaml is the config of the stack the workflow deploys
ACTION = "pulumi/actions@v6"
# What the CLI prints when --expect-no-changes meets a change, for `pulumi preview` and `pulumi refresh`.
CHANGES_PROPOSED = "error: no changes were expected for {} but changes were proposed"
# pulumi/actions@v6 inputs that decide where and how the action runs, not which CLI command it runs.
_PLACE_INPUTS = {"command", "stack-name", "work-dir", "comment-on-pr", "github-token"}
# pulumi/actions@v6 boolean inputs and the CLI flag the Automation API adds for each.
_FLAG_INPUTS = {"refresh": "--refresh", "diff": "--diff", "expect-no-changes": "--expect-no-changes"}
_ACTION_COMMANDS = {"preview": ["preview"], "up": ["up", "--yes", "--skip-preview"]}


def _workflow() -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    # The project the test copies is the one the workflow deploys, and the token reaches the CLI from the
    # environment (a repository secret), not from the stack's config.
    assert workflow["env"]["PROJECT_DIR"] == "examples/pipeline"
    assert workflow["env"]["OPPIE_API_TOKEN"] == "${{ secrets.OPPIE_API_TOKEN }}"
    return workflow


def _job_command(workflow: dict[str, Any], job: str) -> list[str]:
    """The one ``pulumi`` command a job runs, as CLI arguments without ``pulumi`` and ``--stack``."""
    commands = []
    for step in workflow["jobs"][job]["steps"]:
        inputs = step.get("with") or {}
        if step.get("uses", "").startswith("pulumi/actions@") and "command" in inputs:
            commands.append(_action_command(step["uses"], inputs))
        elif step.get("run", "").startswith("pulumi "):
            assert step["working-directory"] == "${{ env.PROJECT_DIR }}"
            args = shlex.split(step["run"])[1:]
            at = args.index("--stack")
            assert args[at + 1] == "$STACK", step["run"]
            commands.append(args[:at] + args[at + 2 :])
    assert len(commands) == 1, f"job {job!r} should run exactly one pulumi command, found {commands}"
    return commands[0]


def _action_command(uses: str, inputs: dict[str, Any]) -> list[str]:
    # Another major version may run otherwise (v5 ran a separate `pulumi refresh` for `refresh: true`).
    assert uses == ACTION, f"the test knows what {ACTION} runs, not {uses}: check and update _action_command"
    assert inputs["work-dir"] == "${{ env.PROJECT_DIR }}"
    assert inputs["stack-name"] == "${{ env.STACK }}"
    unknown = set(inputs) - _PLACE_INPUTS - set(_FLAG_INPUTS)
    assert not unknown, f"the test does not know which CLI flags the inputs {sorted(unknown)} add"
    args = list(_ACTION_COMMANDS[inputs["command"]])
    for name, flag in _FLAG_INPUTS.items():
        value = inputs.get(name, False)
        assert isinstance(value, bool), f"{name}: {value!r}"
        if value:
            args.append(flag)
    return args


class Pipeline:
    """The pipeline example's CI stack, with every CLI run's output kept for the token scan."""

    def __init__(self, sandbox: SandboxServer, tmp: Path) -> None:
        self.project = Project.example("pipeline", tmp, stack=STACK, env={"OPPIE_API_TOKEN": TOKEN})
        # As on the runner: the language host finds `python3` on PATH, where the requirements are installed.
        del self.project.env["PULUMI_PYTHON_CMD"]
        ci_config = yaml.safe_load((PIPELINE / f"Pulumi.{STACK}.yaml").read_text())["config"]
        assert "oppie:apiToken" not in ci_config, "the CI stack's config must not hold the token"
        for key, value in ci_config.items():
            # The sandbox stands in for the real API.
            self.project.config_set(key, sandbox.url if key == "oppie:baseUrl" else str(value))
        self.state = tmp / "state"
        self.printed: list[str] = []

    def run(self, args: list[str], expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        result = self.project.run(*args, expect=expect)
        self.printed += [result.stdout, result.stderr]
        return result

    def export(self, *flags: str) -> dict[str, Any]:
        result = self.run(["stack", "export", *flags])
        return dict(json.loads(result.stdout))


def _edit_in_dashboard(sandbox: SandboxServer, agent_id: str, **changes: Any) -> None:
    answer = httpx.patch(f"{sandbox.url}/phone/{agent_id}", json=changes, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text


def test_pipeline_jobs_deploy_detect_a_dashboard_edit_and_put_it_back(sandbox: SandboxServer, tmp_path: Path) -> None:
    workflow = _workflow()
    pr_job, main_job, drift_job = (_job_command(workflow, job) for job in ("preview", "up", "drift"))
    # The flags the README promises for each job: the live agents, not only the state, against the code.
    assert pr_job == ["preview", "--refresh", "--diff"]
    assert main_job == ["up", "--yes", "--skip-preview", "--refresh", "--diff"]
    assert drift_job == ["preview", "--refresh", "--expect-no-changes", "--diff"]
    pipeline = Pipeline(sandbox, tmp_path)
    config = (pipeline.project.dir / f"Pulumi.{STACK}.yaml").read_text()
    assert "apiToken" not in config, "every API call below authenticates with OPPIE_API_TOKEN alone"

    # A pull request against an empty stack: the plan, and nothing written.
    pr = pipeline.run(pr_job)
    assert summary(pr.stdout) == {"to create": 3}, pr.stdout  # the stack and two agents
    assert sandbox.writes() == []

    # The merge to main deploys.
    up = pipeline.run(main_job)
    assert summary(up.stdout) == {"created": 3}, up.stdout
    agents = {agent["name"]: agent for agent in sandbox.agents()}
    assert sorted(agents) == ["Acme appointment reminders", "Acme support line"]
    support = agents["Acme support line"]
    declared = support["first_message"]
    assert pipeline.project.outputs()["support_line_id"] == support["id"]

    # The next morning's drift check: nothing drifted, the job passes.
    sandbox.reset_stats()
    rested = pipeline.run(drift_job)
    assert summary(rested.stdout) == {}, rested.stdout
    assert sandbox.writes() == [], "a drift check must not write to the API"

    # Someone edits the support line in the dashboard; the drift check fails and its log shows the field.
    _edit_in_dashboard(sandbox, support["id"], first_message="Edited in the dashboard")
    state_before = pipeline.export()
    sandbox.reset_stats()
    drifted = pipeline.run(drift_job, expect=None)
    # 7 is the CLI's ExitNoChanges (its exit codes are a stable contract): a CI job can tell drift from an error.
    assert drifted.returncode == 7, drifted.stdout + drifted.stderr
    assert CHANGES_PROPOSED.format("preview") in drifted.stderr, drifted.stderr
    assert summary(drifted.stdout) == {"to update": 1}, drifted.stdout
    # The planned update puts the declared value back over the live one.
    field = rf'~ first_message\s*: "Edited in the dashboard" => "{re.escape(declared)}"'
    assert re.search(field, drifted.stdout), drifted.stdout
    assert sandbox.writes() == [], "a drift check must not write to the API"
    # Why every job refreshes (README): without --refresh the CLI compares the code with the state only.
    blind = pipeline.run(["preview", "--expect-no-changes", "--diff"])
    assert summary(blind.stdout) == {}, blind.stdout
    # The README's alternative drift check, the state against the API only, fails on the edit too.
    refresh_only = pipeline.run(["refresh", "--preview-only", "--expect-no-changes"], expect=None)
    assert refresh_only.returncode == 7, refresh_only.stdout + refresh_only.stderr
    assert CHANGES_PROPOSED.format("refresh") in refresh_only.stderr, refresh_only.stderr
    assert sandbox.writes() == []
    # --refresh in a preview (and a refresh --preview-only) stays in memory (README): the state still holds
    # the deployed value.
    assert pipeline.export() == state_before

    # A pull request opened meanwhile shows the same update in its preview, without failing.
    pr = pipeline.run(pr_job)
    assert summary(pr.stdout) == {"to update": 1}, pr.stdout
    assert sandbox.writes() == []

    # The next deploy from main reverts the edit with one PATCH of that field.
    up = pipeline.run(main_job)
    assert summary(up.stdout) == {"updated": 1}, up.stdout
    assert sandbox.writes() == [
        {"method": "PATCH", "path": f"/phone/{support['id']}", "body": {"first_message": declared}, "status": 200}
    ]
    live = {agent["id"]: agent for agent in sandbox.agents()}
    assert live[support["id"]]["first_message"] == declared
    assert live[support["id"]]["phone_number"] == support["phone_number"], "an update keeps the number"

    # And the drift check passes again.
    sandbox.reset_stats()
    rested = pipeline.run(drift_job)
    assert summary(rested.stdout) == {}, rested.stdout
    assert sandbox.writes() == []

    # The token was only ever in the environment: not in the state (even decrypted), not in any output.
    assert TOKEN not in pipeline.run(["stack", "export"]).stdout
    assert TOKEN not in pipeline.run(["stack", "export", "--show-secrets"]).stdout
    for path in pipeline.state.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), f"the token is in {path}"
    leaks = [output for output in pipeline.printed if TOKEN in output]
    assert leaks == [], "the token appeared in CLI output"
