"""The plugin installs and is used as Pulumi users install and use providers, under the real CLI.

- ``pulumi package get-schema`` reads the schema from the checkout's plugin (the path ``plugins.providers`` names);
- plugin/package.sh builds a tarball that ``pulumi plugin install resource oppie <version> --file`` installs, and a
  YAML program with no ``plugins`` block then runs on the installed plugin alone;
- ``pulumi package gen-sdk --language python`` writes a Python SDK from the schema, and a Python program using it
  manages an agent through the plugin (with ``model`` replaced on change, as the schema says).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from oppie_pulumi.provider import PHONE_AGENT, VERSION, schema
from oppie_pulumi.sandbox import SandboxServer

from .realcli import VENV, Project, cli_env, pulumi_bin
from .support import TOKEN
from .test_plugin_yaml import PLUGIN_DIR, write_program, yaml_env

pytestmark = pytest.mark.realcli

LAUNCHER = PLUGIN_DIR / "pulumi-resource-oppie"


def pulumi(tmp: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``pulumi <args>`` with a private home and backend, outside any project."""
    private = tmp / "cli"
    for folder in ("home", "state"):
        (private / folder).mkdir(parents=True, exist_ok=True)
    env = cli_env(pulumi_bin(), VENV / "bin" / "python", private / "home", private / "state", yaml_env())
    return subprocess.run(
        [str(pulumi_bin() / "pulumi"), *args], cwd=cwd or tmp, env=env, capture_output=True, text=True, check=False
    )


def test_the_cli_reads_the_schema_from_the_checkouts_plugin(tmp_path: Path) -> None:
    result = pulumi(tmp_path, "package", "get-schema", str(LAUNCHER))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["resources"][PHONE_AGENT] == schema()["resources"][PHONE_AGENT]


def test_the_plugin_tarball_installs_with_pulumi_plugin_install_and_runs_a_program(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    built = subprocess.run(
        [str(PLUGIN_DIR / "package.sh"), str(tmp_path / "dist")], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    tarball = Path(built.stdout.strip().splitlines()[-1])
    assert tarball.name.startswith(f"pulumi-resource-oppie-v{VERSION}-")

    # A program that names no plugin path: the engine must find the installed plugin.
    resources = {"line": {"type": PHONE_AGENT, "properties": {"name": "Installed"}}}
    # The venv's base interpreter has none of the dependencies: the plugin must bring its own.
    bare_python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    assert subprocess.run([str(bare_python), "-c", "import pulumi"], capture_output=True, check=False).returncode
    env = yaml_env({"OPPIE_PLUGIN_PYTHON": str(bare_python)})
    project = Project(write_program(tmp_path / "src", resources, checkout_plugin=False), tmp_path, env=env)
    installed = subprocess.run(
        [str(project.bin / "pulumi"), "plugin", "install", "resource", "oppie", VERSION, "--file", str(tarball)],
        env=project.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    project.configure(sandbox.url, TOKEN)
    project.up()
    [agent] = sandbox.agents()
    assert project.resources(PHONE_AGENT)["line"]["id"] == agent["id"]
    project.destroy()
    assert sandbox.agents() == []


PYTHON_PROGRAM = """\
import pulumi
import pulumi_oppie as oppie

config = pulumi.Config()
agent = oppie.PhoneAgent(
    "support",
    name="SDK line",
    language="en",
    handoff_phone_number="+14155550123",
    model=config.get("model") or "oppie-vox",
)
pulumi.export("phone_number", agent.phone_number)
"""


def test_a_python_sdk_generated_from_the_schema_manages_agents_through_the_plugin(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    generated = pulumi(tmp_path, "package", "gen-sdk", str(LAUNCHER), "--language", "python", "--out", "sdk")
    assert generated.returncode == 0, generated.stdout + generated.stderr
    site = tmp_path / "site"
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(tmp_path / "sdk" / "python"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr

    source = tmp_path / "program"
    source.mkdir()
    (source / "Pulumi.yaml").write_text(
        f"name: sdk-test\nruntime: python\nplugins:\n  providers:\n    - name: oppie\n      path: {PLUGIN_DIR}\n"
    )
    (source / "__main__.py").write_text(PYTHON_PROGRAM)
    project = Project(source, tmp_path, env=yaml_env({"PYTHONPATH": str(site)}))
    project.configure(sandbox.url, TOKEN)
    project.up()
    [agent] = sandbox.agents()
    assert project.outputs()["phone_number"] == agent["phone_number"]
    project.run("up", "--yes", "--expect-no-changes")

    # The SDK marks model replace-on-change, as the schema does: the preview shows a replacement.
    project.config_set("model", "oppie-vox-2")
    preview = project.run("preview", "--diff")
    assert "+-oppie:index:PhoneAgent: (replace)" in preview.stdout, preview.stdout
    project.destroy()
    assert sandbox.agents() == []
