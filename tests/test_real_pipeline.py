"""examples/pipeline: the three jobs of its GitHub Actions workflow, run by the real CLI against the sandbox.

The commands come from ``phone-agents.yml`` itself: the drift job's ``oppie-pulumi drift`` steps as written (their
``run:`` lines, run in order with each step's ``if:``, the workflow's variables set as the runner sets them:
``GITHUB_STEP_SUMMARY`` a file of the test's), and for the jobs that use ``pulumi/actions@v6`` the command that
action runs for their ``with:`` inputs (v6 calls the Automation API: ``preview`` -> ``pulumi preview``, ``up`` ->
``pulumi up --yes --skip-preview``, plus ``--refresh`` for ``refresh: true`` and ``--diff`` for ``diff: true``).
A change to the workflow changes what this test runs, and an input or a step the test does not know fails it
until it is taught what it does.

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
from dataclasses import dataclass
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
DRIFT = ["oppie-pulumi", "drift"]
# The drift job's step conditions the test knows how to run: none (after success only), and after a failure too.
_STEP_CONDITIONS = {None: False, "${{ !cancelled() }}": True}
# `oppie-pulumi drift`'s exit status: nothing counted, findings.
IN_SYNC, FINDINGS = 0, 2
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


@dataclass(frozen=True)
class DriftStep:
    """One ``oppie-pulumi drift`` step of the drift job: its arguments as written (variables unexpanded) and
    whether it runs after an earlier step failed."""

    args: list[str]
    after_failure: bool


def _drift_steps(workflow: dict[str, Any]) -> list[DriftStep]:
    """The drift job's review steps, in order; no other step of that job may run a command of ours or Pulumi's."""
    steps = []
    for step in workflow["jobs"]["drift"]["steps"]:
        inputs = step.get("with") or {}
        assert not (step.get("uses", "").startswith("pulumi/actions@") and "command" in inputs), (
            "the drift job's pulumi/actions step only installs the CLI"
        )
        run = step.get("run", "")
        if not run or run.startswith("pip install"):
            continue  # an action (checkout, Python, the CLI), or the program's dependencies
        assert run.startswith(" ".join(DRIFT) + " ") and "\n" not in run.strip(), f"unknown drift job step: {step}"
        # -C "$PROJECT_DIR": relative to the checkout, where a step without working-directory runs.
        assert "working-directory" not in step, step
        assert step.get("if") in _STEP_CONDITIONS, f"the test does not know how to run a step with if: {step['if']}"
        steps.append(DriftStep(shlex.split(run)[len(DRIFT) :], _STEP_CONDITIONS[step.get("if")]))
    return steps


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

    def drift_job(self, steps: list[DriftStep], summary: Path) -> tuple[int, list[subprocess.CompletedProcess[str]]]:
        """The drift job's steps as the runner runs them, from the checkout (here: the project's parent), the
        workflow's variables in the environment; returns the job's exit status (its first failed step's) and
        each step's run. ``summary`` is the job summary file (``GITHUB_STEP_SUMMARY``)."""
        variables = {"STACK": STACK, "PROJECT_DIR": self.project.dir.name, "GITHUB_STEP_SUMMARY": str(summary)}
        env = {**self.project.env, **variables}
        status, runs = 0, []
        for step in steps:
            if status and not step.after_failure:
                continue
            args = [_expand(arg, variables) for arg in step.args]
            result = subprocess.run(
                [*DRIFT, *args],
                cwd=self.project.dir.parent,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            self.printed += [result.stdout, result.stderr]
            runs.append(result)
            status = status or result.returncode
        return status, runs


def _expand(arg: str, variables: dict[str, str]) -> str:
    """A ``run:`` argument with the shell's ``$NAME`` expanded; a variable the test does not set fails it."""
    names = re.findall(r"\$\{?(\w+)\}?", arg)
    assert set(names) <= set(variables), f"the test does not set {sorted(set(names) - set(variables))} for {arg!r}"
    return re.sub(r"\$\{?(\w+)\}?", lambda found: variables[found.group(1)], arg)


def _edit_in_dashboard(sandbox: SandboxServer, agent_id: str, **changes: Any) -> None:
    answer = httpx.patch(f"{sandbox.url}/phone/{agent_id}", json=changes, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text


def test_pipeline_jobs_deploy_detect_a_dashboard_edit_and_put_it_back(sandbox: SandboxServer, tmp_path: Path) -> None:
    workflow = _workflow()
    pr_job, main_job = (_job_command(workflow, job) for job in ("preview", "up"))
    drift_steps = _drift_steps(workflow)
    # The flags the README promises for each job: the live agents, not only the state, against the code.
    assert pr_job == ["preview", "--refresh", "--diff"]
    assert main_job == ["up", "--yes", "--skip-preview", "--refresh", "--diff"]
    # The drift job (README): the review as markdown into the job summary, its exit status the job's; then the
    # same review as text in the log, after a failure too, never failing by itself on findings.
    review_flags = ["--stack", "$STACK", "-C", "$PROJECT_DIR"]
    assert drift_steps == [
        DriftStep([*review_flags, "--format", "markdown", "--output", "$GITHUB_STEP_SUMMARY"], after_failure=False),
        DriftStep([*review_flags, "--format", "text", "--fail-on", "none"], after_failure=True),
    ]
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

    # The next morning's drift review: nothing drifted, the job passes, its summary says so.
    sandbox.reset_stats()
    job_summary = tmp_path / "summary-rested.md"
    status, (review, log) = pipeline.drift_job(drift_steps, job_summary)
    assert status == IN_SYNC, review.stdout + review.stderr + log.stdout + log.stderr
    written = job_summary.read_text()
    assert written.startswith("## Phone agents: drift review"), written
    assert "2 agents, 2 managed (coverage 100%): 2 in sync" in written, written
    assert review.stdout == "", "the markdown goes to the job summary, not the log"
    assert "In sync: 2 agent(s)." in log.stdout, log.stdout
    assert sandbox.writes() == [], "a drift review must not write to the API"
    assert sandbox.stats()["by_route"] == {"GET /phone": 2}, "one list call per review (the job runs two)"

    # Someone edits the support line in the dashboard; the review fails the job and names the field.
    _edit_in_dashboard(sandbox, support["id"], first_message="Edited in the dashboard")
    state_before = pipeline.export()
    sandbox.reset_stats()
    job_summary = tmp_path / "summary-drifted.md"
    status, (review, log) = pipeline.drift_job(drift_steps, job_summary)
    assert status == FINDINGS, review.stdout + review.stderr + log.stdout + log.stderr
    assert log.returncode == 0, "--fail-on none: the log step only prints"
    written = job_summary.read_text()
    assert "1 drifted, 1 in sync" in written, written
    assert "### Drifted (1)" in written, written
    field = f'`first_message` (configuration): {json.dumps(declared)} → "Edited in the dashboard"'
    assert field in written, written
    assert f"`{support['id']}`" in written, written
    # The log: the field with both values, and the fix, naming the resource.
    urn = f"urn:pulumi:{STACK}::oppie-pipeline::pulumi-python:dynamic/oppie:PhoneAgent::support-line"
    assert f'~ first_message (configuration): {json.dumps(declared)} => "Edited in the dashboard"' in log.stdout
    assert re.search(rf"fix: pulumi -C project up .*--target {re.escape(urn)} --stack {STACK}", log.stdout), log.stdout
    assert sandbox.writes() == [], "a drift review must not write to the API"
    assert sandbox.stats()["by_route"] == {"GET /phone": 2}
    # The review reads the state and never writes it (no refresh is saved).
    assert pipeline.export() == state_before
    # Why every job refreshes (README): without --refresh the CLI compares the code with the state only.
    blind = pipeline.run(["preview", "--expect-no-changes", "--diff"])
    assert summary(blind.stdout) == {}, blind.stdout
    # The README's other check, the code against the live agents, fails on the edit too (exit 7, the CLI's
    # ExitNoChanges), with the planned update putting the declared value back over the live one.
    against_code = pipeline.run(["preview", "--refresh", "--expect-no-changes", "--diff"], expect=None)
    assert against_code.returncode == 7, against_code.stdout + against_code.stderr
    assert CHANGES_PROPOSED.format("preview") in against_code.stderr, against_code.stderr
    assert re.search(rf'~ first_message\s*: "Edited in the dashboard" => "{re.escape(declared)}"', against_code.stdout)
    assert sandbox.writes() == []
    # --refresh in a preview stays in memory (README): the state still holds the deployed value.
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

    # And the drift review passes again.
    sandbox.reset_stats()
    job_summary = tmp_path / "summary-fixed.md"
    status, (review, log) = pipeline.drift_job(drift_steps, job_summary)
    assert status == IN_SYNC, review.stdout + review.stderr + log.stdout + log.stderr
    assert "2 agents, 2 managed (coverage 100%): 2 in sync" in job_summary.read_text()
    assert sandbox.writes() == []

    # The token was only ever in the environment: not in the state (even decrypted), not in any output.
    assert TOKEN not in pipeline.run(["stack", "export"]).stdout
    assert TOKEN not in pipeline.run(["stack", "export", "--show-secrets"]).stdout
    for path in pipeline.state.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), f"the token is in {path}"
    for summary_file in (tmp_path / "summary-rested.md", tmp_path / "summary-drifted.md", job_summary):
        assert TOKEN not in summary_file.read_text(), f"the token is in the job summary {summary_file.name}"
    leaks = [output for output in pipeline.printed if TOKEN in output]
    assert leaks == [], "the token appeared in CLI output"
