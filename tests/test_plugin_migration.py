"""A stack moves from the dynamic ``PhoneAgent`` to the plugin without replacing (or touching) a single agent.

Two ways, as docs/plugin.md describes them, each under the real CLI: an ``aliases`` option naming the dynamic
resource (no state surgery: the engine hands the old state to the plugin, which rewrites it without calling the
API), and ``pulumi state delete`` followed by the ``import`` option. Either way the agents keep their ids and phone
numbers, and the API sees no write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from oppie_pulumi.provider import PHONE_AGENT
from oppie_pulumi.provider.schema import wire_name
from oppie_pulumi.sandbox import SandboxServer

from .realcli import PHONE_AGENT as DYNAMIC_PHONE_AGENT
from .realcli import Project, summary
from .support import TOKEN
from .test_plugin_yaml import PLUGIN_DIR, yaml_env

pytestmark = pytest.mark.realcli

PROJECT = "migrate"
AGENTS = {
    "support": {"name": "Support line", "language": "en", "first_message": "Hello", "action_ids": []},
    "sales": {"name": "Sales line", "type": "outbound", "instructions": ["Be brief"], "model": "oppie-vox-2"},
}


def dynamic_stack(tmp: Path, sandbox: SandboxServer) -> Project:
    """A Python stack of dynamic PhoneAgents, deployed."""
    source = tmp / "src"
    source.mkdir()
    (source / "Pulumi.yaml").write_text(f"name: {PROJECT}\nruntime: python\n")
    lines = ["from oppie_pulumi import PhoneAgent"]
    lines += [f"PhoneAgent({name!r}, **{props!r})" for name, props in AGENTS.items()]
    (source / "__main__.py").write_text("\n".join(lines) + "\n")
    project = Project(source, tmp, env=yaml_env())
    project.configure(sandbox.url, TOKEN)
    project.up()
    return project


def to_plugin_program(project: Project, options: dict[str, dict[str, Any]]) -> None:
    """Rewrite the project as the same agents in YAML, through the plugin, with per-resource ``options``."""
    resources = {
        name: {
            "type": PHONE_AGENT,
            "properties": {wire_name(key): value for key, value in props.items()},
            "options": options[name],
        }
        for name, props in AGENTS.items()
    }
    document = {
        "name": PROJECT,
        "runtime": "yaml",
        "plugins": {"providers": [{"name": "oppie", "path": str(PLUGIN_DIR)}]},
        "resources": resources,
    }
    (project.dir / "Pulumi.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def agents_by_id(sandbox: SandboxServer) -> dict[str, str | None]:
    return {agent["id"]: agent["phone_number"] for agent in sandbox.agents()}


def test_an_alias_moves_the_stack_to_the_plugin_without_touching_the_agents(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    project = dynamic_stack(tmp_path, sandbox)
    before = agents_by_id(sandbox)
    old = project.resources(DYNAMIC_PHONE_AGENT)
    urn = {name: res["urn"] for name, res in old.items()}
    to_plugin_program(project, {name: {"aliases": [urn[name]]} for name in AGENTS})
    sandbox.reset_stats()

    preview = project.run("preview", "--diff")
    assert "to replace" not in preview.stdout and "to create" not in preview.stdout, preview.stdout
    project.up()
    assert sandbox.writes() == [], "moving to the plugin must not write to the API"
    assert agents_by_id(sandbox) == before
    moved = project.resources(PHONE_AGENT)
    assert {name: res["id"] for name, res in moved.items()} == {name: res["id"] for name, res in old.items()}
    # The state is the plugin's now: schema names, no pickled dynamic provider.
    assert moved["support"]["outputs"]["phoneNumber"] == old["support"]["outputs"]["phone_number"]
    assert "__provider" not in moved["support"]["outputs"]
    assert project.resources(DYNAMIC_PHONE_AGENT) == {}
    project.run("up", "--yes", "--expect-no-changes")
    assert sandbox.writes() == []


def test_state_delete_and_the_import_option_move_the_stack_without_touching_the_agents(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    project = dynamic_stack(tmp_path, sandbox)
    before = agents_by_id(sandbox)
    old = project.resources(DYNAMIC_PHONE_AGENT)
    for res in old.values():
        # Forget the resource without deleting the agent.
        project.run("state", "delete", res["urn"], "--yes")
    to_plugin_program(project, {name: {"import": old[name]["id"]} for name in AGENTS})
    sandbox.reset_stats()

    up = project.up()
    assert "2 imported" in up.stdout, up.stdout
    assert sandbox.writes() == [], "importing must not write to the API"
    assert agents_by_id(sandbox) == before
    assert {name: res["id"] for name, res in project.resources(PHONE_AGENT).items()} == {
        name: res["id"] for name, res in old.items()
    }
    project.run("up", "--yes", "--expect-no-changes")
    assert sandbox.writes() == []


def test_a_dynamic_state_without_model_moved_to_the_plugin_by_alias_is_not_replaced(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Issue 18: the plugin proposed to replace every agent of such a state (new ids, new numbers), where the
    dynamic resource sees no change; the state an earlier version wrote lacks model, which says nothing."""
    project = dynamic_stack(tmp_path, sandbox)
    before = agents_by_id(sandbox)
    exported = project.export()
    for res in exported["deployment"]["resources"]:
        if res["type"] == DYNAMIC_PHONE_AGENT:
            res["inputs"].pop("model")
            res["outputs"].pop("model")
    old_state = tmp_path / "old-state.json"
    old_state.write_text(json.dumps(exported))
    project.run("stack", "import", "--file", str(old_state))
    urns = {name: res["urn"] for name, res in project.resources(DYNAMIC_PHONE_AGENT).items()}
    to_plugin_program(project, {name: {"aliases": [urns[name]]} for name in AGENTS})
    sandbox.reset_stats()

    preview = project.run("preview", "--diff")
    assert "to replace" not in summary(preview.stdout), preview.stdout
    project.up()
    assert sandbox.writes() == [], "moving an old state to the plugin must not write to the API"
    assert agents_by_id(sandbox) == before
    moved = project.resources(PHONE_AGENT)
    assert {name: res["outputs"]["model"] for name, res in moved.items()} == {
        "support": "oppie-vox",
        "sales": "oppie-vox-2",
    }
    project.run("up", "--yes", "--expect-no-changes")
