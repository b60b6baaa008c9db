"""The plugin and the dynamic ``PhoneAgent`` are one implementation: the same scenario, the same API calls, the
same outputs.

One scenario (create, update with a cleared field, ``model`` replacement, destroy) runs twice under the real CLI:
once as a Python program with the dynamic resource, once as a YAML program with the plugin, each against a fresh
sandbox. The requests each step sends (``sandbox.writes()``, ids numbered in order of appearance) and the outputs
(in ``_models``' names; ids, numbers and timestamps differ between runs and are only checked to be there) must be
the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from oppie_pulumi._models import OUTPUT_FIELDS
from oppie_pulumi.provider import PHONE_AGENT
from oppie_pulumi.provider.schema import python_name, wire_name
from oppie_pulumi.sandbox import SandboxConfig, SandboxServer, serve

from .realcli import Project
from .support import TOKEN
from .test_plugin_yaml import PLUGIN_DIR, yaml_env

pytestmark = pytest.mark.realcli

# (step, the agent's declared properties in _models' names)
STEPS: list[tuple[str, dict[str, Any]]] = [
    (
        "create",
        {
            "name": "Parity line",
            "language": "en",
            "accent": "british",
            "handoff_phone_number": "+14155550123",
            "action_ids": [],
            "instructions": ["Be kind"],
            "first_message": "Hello",
        },
    ),
    (
        "update",
        {
            "name": "Parity line",
            "language": "en",
            "handoff_phone_number": "+14155550123",
            "action_ids": [],
            "instructions": ["Be kind", "Be brief"],
            "first_message": "Welcome",
        },
    ),
    (
        "replace",
        {
            "name": "Parity line",
            "language": "en",
            "handoff_phone_number": "+14155550123",
            "action_ids": [],
            "instructions": ["Be kind", "Be brief"],
            "first_message": "Welcome",
            "model": "oppie-vox-2",
        },
    ),
]
VOLATILE = {"id", "phone_number", "provider_external_id", "created_at", "updated_at"}


def dynamic_program(directory: Path, props: dict[str, Any]) -> None:
    """The scenario step as a Python program with the dynamic PhoneAgent, exporting every output."""
    (directory / "Pulumi.yaml").write_text("name: parity\nruntime: python\n")
    (directory / "__main__.py").write_text(
        "import pulumi\n"
        "from oppie_pulumi import PhoneAgent\n"
        f"agent = PhoneAgent('agent', **{props!r})\n"
        "pulumi.export('id', agent.id)\n"
        f"for name in {list(OUTPUT_FIELDS)!r}:\n"
        "    pulumi.export(name, getattr(agent, name))\n"
    )


def plugin_program(directory: Path, props: dict[str, Any]) -> None:
    """The same step as a YAML program with the plugin, exporting every output."""
    document = {
        "name": "parity",
        "runtime": "yaml",
        "plugins": {"providers": [{"name": "oppie", "path": str(PLUGIN_DIR)}]},
        "resources": {
            "agent": {"type": PHONE_AGENT, "properties": {wire_name(key): value for key, value in props.items()}}
        },
        "outputs": {
            "id": "${agent.id}",
            **{wire_name(name): f"${{agent.{wire_name(name)}}}" for name in OUTPUT_FIELDS},
        },
    }
    (directory / "Pulumi.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def run_scenario(
    tmp: Path, write: Callable[[Path, dict[str, Any]], None], env: dict[str, str] | None = None
) -> list[tuple[list[Any], dict[str, Any]]]:
    """Each step's normalised requests and outputs, against a sandbox of its own."""
    source = tmp / "src"
    source.mkdir(parents=True)
    write(source, STEPS[0][1])
    results = []
    with serve(SandboxConfig(token=TOKEN, db_path=":memory:", rate_limit_per_minute=None)) as sandbox:
        project = Project(source, tmp, env=env)
        project.configure(sandbox.url, TOKEN)
        ids: dict[str, str] = {}
        for _, props in STEPS:
            write(project.dir, props)
            sandbox.reset_stats()
            project.up()
            results.append((normalised_writes(sandbox, ids), normalised_outputs(project.outputs())))
        sandbox.reset_stats()
        project.destroy()
        results.append((normalised_writes(sandbox, ids), {}))
        assert sandbox.agents() == []
    return results


def normalised_writes(sandbox: SandboxServer, ids: dict[str, str]) -> list[Any]:
    """The writes with every agent id replaced by its order of appearance (ids differ between runs)."""
    for agent in sandbox.agents():
        ids.setdefault(agent["id"], f"<agent {len(ids) + 1}>")
    text = json.dumps([(w["method"], w["path"], w["body"], w["status"]) for w in sandbox.writes()])
    for agent_id, placeholder in ids.items():
        text = text.replace(agent_id, placeholder)
    assert not re.search(r"/phone/[0-9a-f-]{36}", text), f"an id the sandbox no longer lists: {text}"
    return list(json.loads(text))


def normalised_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs in _models' names, without nulls (absent and null are the same), volatile values as their presence."""
    named = {python_name(key): value for key, value in outputs.items() if value is not None}
    return {key: (key in named) if key in VOLATILE else value for key, value in named.items()} | {
        key: key in named for key in VOLATILE
    }


def test_the_plugin_sends_the_same_requests_and_outputs_as_the_dynamic_resource(tmp_path: Path) -> None:
    dynamic = run_scenario(tmp_path / "dynamic", dynamic_program)
    plugin = run_scenario(tmp_path / "plugin", plugin_program, env=yaml_env())
    for (step, _), (dynamic_writes, dynamic_outputs), (plugin_writes, plugin_outputs) in zip(
        [*STEPS, ("destroy", {})], dynamic, plugin, strict=True
    ):
        assert plugin_writes == dynamic_writes, step
        assert plugin_outputs == dynamic_outputs, step
    # The scenario did what it says: one POST, a PATCH, a replacement (POST, DELETE), a DELETE...
    assert [[w[0] for w in writes] for writes, _ in dynamic] == [["POST"], ["PATCH"], ["POST", "DELETE"], ["DELETE"]]
    # ... and the outputs compared are the agent's: the accent set, then cleared; the model replaced.
    (_, created), (_, updated), (_, replaced), _ = plugin
    assert (created["accent"], created["first_message"], created["phone_number"]) == ("british", "Hello", True)
    assert "accent" not in updated and updated["first_message"] == "Welcome"
    assert replaced["model"] == "oppie-vox-2"
