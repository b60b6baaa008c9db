"""The root stack and every example, run by the real Pulumi CLI against a sandbox of their own.

For each: `pulumi preview`, `pulumi up`, `pulumi up --expect-no-changes` (which must not write to the API),
then `pulumi destroy` (which must leave no agent). Examples run from a copy of the checkout, with the
checkout's virtualenv as their Python (their requirements install the local package: see
``test_example_requirements_install_the_checkout``).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from oppie_pulumi.sandbox import SandboxServer

from .realcli import EXAMPLES, ROOT, Project, summary
from .support import TOKEN

pytestmark = pytest.mark.realcli

PROGRAMS = sorted(path.parent.name for path in EXAMPLES.glob("*/__main__.py"))


def _seed_adoptable(project: Project, sandbox: SandboxServer) -> int:
    """adopt-existing adopts agents made "in the dashboard": make them with the example's own script."""
    spec = importlib.util.spec_from_file_location("seed_sandbox", EXAMPLES / "adopt-existing" / "seed_sandbox.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    created: dict[str, Any] = module.seed(sandbox.url, TOKEN)
    for key, agent in created.items():
        project.config_set(key, agent["id"])
    return len(created)


def _lifecycle(project: Project, sandbox: SandboxServer, agents: int, adopted: int = 0) -> None:
    preview = project.run("preview", "--diff")
    assert summary(preview.stdout).get("to create") == agents + 1, preview.stdout  # + the stack itself
    assert sandbox.writes() == [], "a preview must not write to the API"

    up = project.up()
    posts = [w for w in sandbox.writes() if w["method"] == "POST"]
    assert len(posts) == agents - adopted, "one POST per new agent, none for an adopted one"
    assert len(sandbox.agents()) == agents
    outputs = project.outputs()
    assert outputs, up.stdout
    ids = {agent["id"] for agent in sandbox.agents()}
    assert {res["id"] for res in project.resources().values()} == ids

    sandbox.reset_stats()
    project.run("up", "--yes", "--expect-no-changes")
    assert sandbox.writes() == [], "a no-change up must not write to the API"

    project.destroy()
    assert sandbox.agents() == [], "destroy must leave no agent"
    assert project.resources() == {}


def test_root_stack_previews_deploys_rests_and_destroys(sandbox: SandboxServer, tmp_path: Path) -> None:
    project = Project.root(tmp_path)
    project.configure(sandbox.url, TOKEN)
    _lifecycle(project, sandbox, agents=2)


@pytest.mark.parametrize("example", PROGRAMS)
def test_example_previews_deploys_rests_and_destroys(example: str, sandbox: SandboxServer, tmp_path: Path) -> None:
    project = Project.example(example, tmp_path)
    project.configure(sandbox.url, TOKEN)
    if example == "adopt-existing":
        adopted = _seed_adoptable(project, sandbox)
        sandbox.reset_stats()
        # Its support line is protected (a live line): unprotect before the destroy below, as a user must.
        _lifecycle_protected(project, sandbox, adopted)
        return
    _lifecycle(project, sandbox, agents=_declared_agents(example))


def _declared_agents(example: str) -> int:
    if example == "fleet-from-file":
        import yaml

        return len(yaml.safe_load((EXAMPLES / example / "agents.yaml").read_text()))
    return {"quickstart": 1, "outbound-data-collection": 1, "pipeline": 2}[example]


def _lifecycle_protected(project: Project, sandbox: SandboxServer, adopted: int) -> None:
    project.run("preview", "--diff")
    assert sandbox.writes() == []
    project.up()
    assert [w for w in sandbox.writes() if w["method"] == "POST"] == [], "adoption never POSTs"
    assert len(sandbox.agents()) == adopted
    sandbox.reset_stats()
    project.run("up", "--yes", "--expect-no-changes")
    assert sandbox.writes() == []
    # The engine deletes what it may and fails on the protected support line, which survives.
    refused = project.run("destroy", "--yes", "--skip-preview", expect=1)
    assert "because it is protected" in refused.stdout
    assert [agent["name"] for agent in sandbox.agents()] == ["Acme support line"]
    assert list(project.resources()) == ["support-line"]
    project.run("state", "unprotect", "--all", "--yes")
    project.destroy()
    assert sandbox.agents() == []


@pytest.mark.parametrize("example", PROGRAMS)
def test_example_requirements_install_the_checkout(example: str) -> None:
    """No index serves oppie-pulumi: an example's requirements.txt installs it from the checkout."""
    lines = (EXAMPLES / example / "requirements.txt").read_text().splitlines()
    ours = [line.split() for line in lines if "../.." in line]
    assert len(ours) == 1, "exactly one requirement installs the checkout"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--quiet", "--report", "-", *ours[0]],
        cwd=EXAMPLES / example,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [item["metadata"]["name"] for item in report["install"]] == ["oppie-pulumi"]
    assert report["install"][0]["download_info"]["url"] == ROOT.as_uri()
