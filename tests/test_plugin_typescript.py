"""A TypeScript program manages agents through the ``oppie`` plugin under the real Pulumi CLI.

The Node.js language host is the project's own (tools/pulumi/cmd/pulumi-language-nodejs, built beside the CLI by
tools/pulumi/install.sh); it runs the program with @pulumi/pulumi's runner and ts-node from the example's
node_modules, which ``make typescript`` prepares (the SDK generated from the plugin's schema, then ``npm ci``). The
plugin is the checkout's (``plugins.providers`` in Pulumi.yaml points at plugin/). Everything talks real HTTP to the
sandbox fixture. What is pinned: preview with unknowns, up, a no-change up, drift on refresh and its revert, a
``model`` replacement shown per property, ``pulumi import`` printing TypeScript that previews without changes, and a
failing program reported once (the host's "bail").
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from oppie_pulumi.provider import PHONE_AGENT
from oppie_pulumi.sandbox import SandboxServer

from .realcli import EXAMPLES, ROOT, VENV, Project, summary
from .support import TOKEN, dashboard
from .test_plugin_yaml import PLUGIN_DIR, writes

pytestmark = pytest.mark.realcli

EXAMPLE = EXAMPLES / "typescript-phone-agents"
INSTALL = ROOT / "tools" / "pulumi" / "install.sh"
# What a TypeScript project is made of; node_modules is linked, not copied (about 200 MB).
PROJECT_FILES = ("Pulumi.yaml", "package.json", "tsconfig.json", "index.ts")


def _unavailable(reason: str) -> None:
    """Skip, except under ``CI=true``, where it fails (as tests/realcli.py does for the CLI)."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@cache
def nodejs_host_bin() -> Path:
    """The CLI's folder with our ``pulumi-language-nodejs`` beside it, the example's node_modules ready.

    tools/pulumi/install.sh --build returns at once when already built; ``make typescript`` does nothing when the
    SDK and node_modules are up to date. Without Go, Node.js or npm the tier skips outside CI.
    """
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        _unavailable(f"the TypeScript tier needs {' and '.join(missing)} on PATH")
    built = subprocess.run([str(INSTALL), "--build"], capture_output=True, text=True, check=False, timeout=1800)
    if built.returncode != 0:
        _unavailable(f"tools/pulumi/install.sh could not provide pulumi-language-nodejs:\n{built.stderr[-3000:]}")
    bin_dir = Path(built.stdout.strip().splitlines()[-1])
    # Without an enclosing make's flags (`make test` runs pytest), with our CLI first on PATH.
    env = {key: value for key, value in os.environ.items() if key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    prepared = subprocess.run(
        ["make", "--no-print-directory", "typescript"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if prepared.returncode != 0:
        _unavailable(f"`make typescript` failed:\n{prepared.stdout[-2000:]}\n{prepared.stderr[-3000:]}")
    return bin_dir


def ts_project(tmp: Path, sandbox: SandboxServer, source: Path = EXAMPLE, *, node_modules: bool = True) -> Project:
    """A copy of a TypeScript project using the example's node_modules and the checkout's plugin, for the sandbox."""
    bin_dir = nodejs_host_bin()
    path = os.pathsep.join([str(bin_dir), str(VENV / "bin"), os.environ.get("PATH", "")])
    project = Project(source, tmp, files=PROJECT_FILES, env={"PATH": path})
    if node_modules:
        (project.dir / "node_modules").symlink_to(EXAMPLE / "node_modules")
    pulumi_yaml = project.dir / "Pulumi.yaml"
    pulumi_yaml.write_text(pulumi_yaml.read_text().replace("path: ../../plugin", f"path: {PLUGIN_DIR}"))
    project.configure(sandbox.url, TOKEN)
    return project


def write_program(directory: Path, index_ts: str) -> Path:
    """The example's project files with another ``index.ts``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy2(EXAMPLE / name, directory / name)
    (directory / "index.ts").write_text(index_ts)
    return directory


def test_typescript_program_previews_deploys_drifts_replaces_and_destroys(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    project = ts_project(tmp_path, sandbox)

    # Preview: two creates; the follow-up hands off to the support line's number, unknown until it exists.
    preview = project.run("preview", "--diff")
    assert summary(preview.stdout) == {"to create": 3}, preview.stdout  # + the stack
    assert re.search(r"handoffPhoneNumber: \[unknown\]", preview.stdout), preview.stdout
    assert re.search(r"supportNumber\s*: \[unknown\]", preview.stdout), preview.stdout
    assert sandbox.writes() == [], "a preview must not write to the API"

    project.up()
    assert [method for method, _, _ in writes(sandbox)] == ["POST", "POST"]
    outputs = project.outputs()
    agents = {agent["id"]: agent for agent in sandbox.agents()}
    support = agents[outputs["supportId"]]
    assert support["phone_number"] and outputs["supportNumber"] == support["phone_number"]
    assert agents[outputs["followUpId"]]["handoff_phone_number"] == support["phone_number"]
    assert support["first_message"] == "Thanks for calling Acme. How can I help?"
    assert project.resources(PHONE_AGENT)["support"]["outputs"]["phoneNumber"] == support["phone_number"]

    sandbox.reset_stats()
    project.run("up", "--yes", "--expect-no-changes")
    assert sandbox.writes() == [], "a no-change up must not write to the API"

    # Drift: an edit in the dashboard shows on refresh, and the next up puts the declared values back.
    with dashboard(sandbox) as api:
        api.patch(f"/phone/{support['id']}", json={"first_message": "Edited", "accent": "british"}).raise_for_status()
    project.run("refresh", "--yes")
    drift = project.run("preview", "--diff", "--expect-no-changes", expect=None)
    assert drift.returncode != 0, "a drifted stack must fail --expect-no-changes"
    assert '~ firstMessage: "Edited" => "Thanks for calling Acme. How can I help?"' in drift.stdout, drift.stdout
    assert '- accent      : "british"' in drift.stdout, drift.stdout
    sandbox.reset_stats()
    project.up()
    assert writes(sandbox) == [
        (
            "PATCH",
            f"/phone/{support['id']}",
            {"first_message": "Thanks for calling Acme. How can I help?", "accent": None},
        )
    ]

    # A new model (stack config the program reads) replaces the agent, shown per property; the follow-up is
    # updated with the new number.
    project.config_set("supportModel", "oppie-vox-2")
    sandbox.reset_stats()
    preview = project.run("preview", "--diff")
    assert "+-oppie:index:PhoneAgent: (replace)" in preview.stdout, preview.stdout
    assert '~ model: "oppie-vox" => "oppie-vox-2"' in preview.stdout
    assert summary(preview.stdout) == {"to update": 1, "to replace": 1}, preview.stdout
    assert sandbox.writes() == []
    project.up()
    new_support = project.outputs()["supportId"]
    assert new_support != support["id"]
    # Create before delete: the new agent and its number exist before the old one goes.
    assert [(method, path) for method, path, _ in writes(sandbox)] == [
        ("POST", "/phone"),
        ("PATCH", f"/phone/{outputs['followUpId']}"),
        ("DELETE", f"/phone/{support['id']}"),
    ]
    agents = {agent["id"]: agent for agent in sandbox.agents()}
    assert agents[outputs["followUpId"]]["handoff_phone_number"] == agents[new_support]["phone_number"]

    project.destroy()
    assert sandbox.agents() == []
    assert project.resources(PHONE_AGENT) == {}


def test_pulumi_import_prints_typescript_that_then_previews_without_changes(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    with dashboard(sandbox) as api:
        created = api.post(
            "/phone",
            json={
                "name": "Legacy line",
                "language": "fr",
                "actionIds": [],
                "model": "oppie-vox-turbo",
                "interruptible": False,
            },
        )
        agent = created.raise_for_status().json()
    project = ts_project(tmp_path, sandbox, source=write_program(tmp_path / "src", "export {};\n"))
    sandbox.reset_stats()

    imported = project.run("import", PHONE_AGENT, "legacy", agent["id"], "--yes")
    assert "= 1 imported" in imported.stdout, imported.stdout
    assert "Please copy the following code into your Pulumi application" in imported.stdout
    code = imported.stdout[imported.stdout.index('import * as pulumi from "@pulumi/pulumi";') :]
    assert 'import * as oppie from "@oppie/pulumi-oppie";' in code, code
    assert 'new oppie.PhoneAgent("legacy", {' in code, code
    for line in (
        "actionIds: [],",
        "interruptible: false,",
        'language: "fr",',
        'model: "oppie-vox-turbo",',
        'name: "Legacy line",',
        'type: "inbound",',
        "protect: true,",
    ):
        assert line in code, code
    assert project.resources(PHONE_AGENT)["legacy"]["id"] == agent["id"]

    # Paste the code into the program: it type-checks (ts-node) and the next preview finds nothing to do.
    (project.dir / "index.ts").write_text(code)
    project.run("preview", "--diff", "--expect-no-changes")
    assert sandbox.writes() == [], "importing and previewing must not write to the API"

    # Imported resources are protected, as `pulumi import` says; once unprotected, destroy deletes the agent.
    project.run("state", "unprotect", "--all", "--yes")
    project.destroy()
    assert sandbox.agents() == []


def test_a_failing_program_is_reported_once(sandbox: SandboxServer, tmp_path: Path) -> None:
    # @pulumi/pulumi's runner prints the error and exits 32; the host then tells the engine to bail quietly instead
    # of adding "program exited with non-zero exit code" to what the user already saw.
    source = write_program(tmp_path / "src", 'throw new Error("no agents today: the sandbox is closed");\n')
    project = ts_project(tmp_path, sandbox, source=source)
    failed = project.run("preview", expect=None)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, output
    assert output.count("no agents today: the sandbox is closed") == 1, output
    assert "non-zero exit code" not in output, output
    assert sandbox.writes() == []


def test_a_program_without_node_modules_says_to_install_them(sandbox: SandboxServer, tmp_path: Path) -> None:
    # The host looks for @pulumi/pulumi's runner in the program's folder and its parents, as Node.js would.
    project = ts_project(tmp_path, sandbox, node_modules=False)
    failed = project.run("preview", expect=None)
    assert failed.returncode != 0, failed.stdout
    assert "@pulumi/pulumi is not installed in" in failed.stdout and "run `npm ci`" in failed.stdout, failed.stdout


def test_a_type_error_stops_the_program_before_any_resource(sandbox: SandboxServer, tmp_path: Path) -> None:
    # The runner type-checks through ts-node (the example's tsconfig does not set noCheck): a wrong property type
    # fails the preview, naming the file, line and expected type, before any agent is registered.
    index_ts = (EXAMPLE / "index.ts").read_text().replace("interruptible: false,", 'interruptible: "no",')
    project = ts_project(tmp_path, sandbox, source=write_program(tmp_path / "src", index_ts))
    failed = project.run("preview", expect=None)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, output
    assert "index.ts(" in output and "error TS2322" in output, output
    assert "is not assignable to type 'Input<boolean | undefined>'" in output, output
    assert summary(failed.stdout) == {"to create": 1}, output  # the stack only
