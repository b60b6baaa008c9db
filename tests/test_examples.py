"""Every example runs: its program under Pulumi's mock monitor, its agents through the real provider host.

No Pulumi CLI here, so each example's ``__main__.py`` runs as Pulumi would run it (its directory as the
working directory and on ``sys.path``, the config defaults of its ``Pulumi.yaml``), under
``run_program``; each registered ``PhoneAgent`` then goes through ``Engine`` and a real provider host to
a sandbox. Create, then run the program again: no changes; refresh, then preview: still none.
"""

from __future__ import annotations

import importlib.util
import json
import re
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pulumi
import pytest
import yaml
from oppie_pulumi_testing import Registration, StateEntry, run_program
from pulumi.runtime import rpc

from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN, StateFactory

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PROGRAMS = sorted(path.parent for path in EXAMPLES.glob("*/__main__.py"))
PHONE_AGENT = "pulumi-python:dynamic/oppie:PhoneAgent"
# Stack config an example may require because it cannot have a default: the ids of live agents.
REQUIRED_CONFIG = {"adopt-existing": {"supportAgentId", "followUpAgentId"}}


def load_module(path: Path, name: str) -> ModuleType:
    """A helper module of an example, imported from its file (examples are not packages)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: dataclasses look their module up while the class is being built.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def project_config(example: Path) -> tuple[str, dict[str, str]]:
    """The project name and the config defaults of ``Pulumi.yaml``, keys namespaced as Pulumi does."""
    project = yaml.safe_load((example / "Pulumi.yaml").read_text())
    name = project["name"]
    config: dict[str, str] = {}
    for key, spec in (project.get("config") or {}).items():
        value = spec.get("value", spec.get("default")) if isinstance(spec, dict) else spec
        if value is not None:
            config[key if ":" in key else f"{name}:{key}"] = value if isinstance(value, str) else json.dumps(value)
    return name, config


def run_example(
    example: Path,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    config: dict[str, str] | None = None,
    secret_keys: tuple[str, ...] = (),
    before: Callable[[], None] | None = None,
    main: Path | None = None,
) -> list[Registration]:
    """Run the example's program as ``pulumi up`` would, with the provider's config for ``sandbox``.

    ``main`` is the program's directory when ``Pulumi.yaml`` names one (``main:``).
    """
    project, defaults = project_config(example)
    settings = {**defaults, "oppie:baseUrl": sandbox.url, "oppie:apiToken": TOKEN, **(config or {})}
    monkeypatch.chdir(example)

    def program() -> None:
        if before is not None:
            before()
        # A directory, as Pulumi runs it: it goes first on sys.path, so sibling modules import.
        runpy.run_path(str(main or example), run_name="__main__")

    return run_program(program, project=project, config=settings, secret_keys=["oppie:apiToken", *secret_keys])


def seed_adopt_existing(sandbox: SandboxServer) -> dict[str, str]:
    """Live "legacy" agents for adopt-existing, made with its own seed script (HTTP POST with the token)."""
    seed = load_module(EXAMPLES / "adopt-existing" / "seed_sandbox.py", "adopt_existing_seed").seed
    created = seed(sandbox.url, TOKEN)
    return {f"oppie-adopt-existing:{key}": agent["id"] for key, agent in created.items()}


SEEDERS: dict[str, Callable[[SandboxServer], dict[str, str]]] = {"adopt-existing": seed_adopt_existing}


def test_every_example_is_collected() -> None:
    assert {p.name for p in PROGRAMS} == {
        "quickstart",
        "outbound-data-collection",
        "fleet-from-file",
        "adopt-existing",
        "pipeline",
    }


@pytest.mark.parametrize("example", PROGRAMS, ids=lambda p: p.name)
def test_example_has_its_files_and_needs_no_config_beyond_the_providers(example: Path) -> None:
    for name in ("Pulumi.yaml", "__main__.py", "requirements.txt", "README.md"):
        assert (example / name).is_file(), f"{example.name} lacks {name}"
    project = yaml.safe_load((example / "Pulumi.yaml").read_text())
    runtime = project["runtime"]
    assert (runtime if isinstance(runtime, str) else runtime["name"]) == "python"
    assert "oppie-pulumi" in (example / "requirements.txt").read_text()
    readme = (example / "README.md").read_text()
    assert "pulumi config set --secret oppie:apiToken sandbox-token" in readme
    # The sandbox and the rest of the set-up are examples/README.md's, linked from each (tests/docblocks.py runs both).
    assert "[examples/README.md](../README.md)" in readme and "pulumi up" in readme
    assert "make sandbox-start" in (example.parent / "README.md").read_text()
    # Every key of the project's own config has a default, except the live ids adopt-existing must be told.
    _, defaults = project_config(example)
    declared = {key for key in project.get("config") or {} if ":" not in key}
    without_default = {key for key in declared if f"{project['name']}:{key}" not in defaults}
    assert without_default == REQUIRED_CONFIG.get(example.name, set())


@pytest.mark.parametrize("example", PROGRAMS, ids=lambda p: p.name)
def test_example_deploys_to_the_sandbox_and_a_second_run_changes_nothing(
    example: Path,
    sandbox: SandboxServer,
    engine_for: StateFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seeder = SEEDERS.get(example.name)
    config = seeder(sandbox) if seeder else {}
    seeded = {agent["id"]: agent for agent in sandbox.agents()}
    sandbox.reset_stats()
    state: dict[str, StateEntry] = {}

    registrations = run_example(example, sandbox, monkeypatch, config)
    agents = sorted(r.name for r in registrations if r.type == PHONE_AGENT)
    assert agents, f"{example.name} declares no PhoneAgent"
    with engine_for(state) as engine:
        summary = engine.up(registrations)
    assert not summary.failed and not summary.check_failures, (summary.failed, summary.check_failures)
    assert sorted(summary.created) == agents

    live = {agent["id"]: agent for agent in sandbox.agents()}
    assert {entry.id for entry in state.values()} == set(live)
    for entry in state.values():
        assert entry.outputs["phone_number"] == live[entry.id]["phone_number"]
    if seeded:
        # Adopted, not created: the same agents with the same numbers, and no POST.
        assert set(live) == set(seeded)
        assert {a["phone_number"] for a in live.values()} == {a["phone_number"] for a in seeded.values()}
        assert "POST /phone" not in sandbox.stats()["by_route"]
        # Each legacy agent of the seed script differs from the program somewhere: one PATCH each.
        assert sandbox.stats()["by_route"].get("PATCH /phone/{id}") == len(seeded)

    sandbox.reset_stats()
    again = run_example(example, sandbox, monkeypatch, config)
    with engine_for(state) as engine:
        summary = engine.up(again)
        assert summary.changes == 0 and not summary.failed, summary
        assert sorted(summary.same) == agents
        refreshed = engine.refresh()
        assert refreshed.changes == 0 and not refreshed.failed, refreshed
        assert engine.preview(again).changes == 0
    # Re-running wrote nothing: the only calls were the refresh's reads.
    assert set(sandbox.stats()["by_route"]) <= {"GET /phone"}


# -- outbound-data-collection: the webhook URL stays secret ----------------------------------------------

OUTBOUND = EXAMPLES / "outbound-data-collection"


def test_outbound_webhook_url_is_a_secret_input_and_an_additional_secret_output(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the mock monitor can show: the input is a secret, and the program asks for a secret output.

    The mock monitor ignores ``additional_secret_outputs`` (the engine applies it when it records the
    outputs), so the option itself is asserted, read from the resource's options by a transformation.
    """
    options: dict[str, pulumi.ResourceOptions] = {}

    def capture(args: pulumi.ResourceTransformationArgs) -> None:
        options[args.name] = args.opts

    def watch() -> None:
        pulumi.runtime.register_stack_transformation(capture)

    url = "https://hooks.example.com/oppie/renewals?sig=s3cr3t"
    for config in ({}, {"oppie-outbound-data-collection:webhookUrl": url}):
        registrations = run_example(
            OUTBOUND, sandbox, monkeypatch, config, ("oppie-outbound-data-collection:webhookUrl",), watch
        )
        [agent] = [r for r in registrations if r.type == PHONE_AGENT]
        value = agent.inputs["data_collection_webhook_url"]
        assert rpc.is_rpc_secret(value), "the webhook URL reached the engine as plain text"
        assert rpc.unwrap_rpc_secret(value) == (url if config else "https://hooks.example.com/oppie/renewals")
        assert options[agent.name].additional_secret_outputs == ["data_collection_webhook_url"]


def test_outbound_has_no_plaintext_webhook_default_in_pulumi_yaml() -> None:
    _, defaults = project_config(OUTBOUND)
    assert not any(key.endswith(":webhookUrl") for key in defaults)


# -- fleet-from-file: the loader points at the entry -------------------------------------------------------

FLEET = EXAMPLES / "fleet-from-file"


@pytest.fixture(scope="module")
def fleet() -> ModuleType:
    return load_module(FLEET / "fleet.py", "fleet_example")


def test_fleet_file_of_the_example_loads_with_stable_logical_names(fleet: ModuleType) -> None:
    entries = fleet.load_fleet(FLEET / "agents.yaml")
    assert [e.resource for e in entries] == ["support-en", "support-fr", "billing", "delivery-follow-up"]
    assert entries[2].args["model"] == "oppie-vox-turbo" and entries[2].args["action_ids"] == []
    assert all(e.adopt_id is None for e in entries)


BAD_FLEET = """\
- resource: support
  name: Support
  language: no
- name: Billing
  model: gpt-4
  handoff_phone_number: +14155550123
  instructions:
    - Explain invoices.
    - 3
  colour: blue
- just a string
- name: Support
  resource: support
- name: ""
"""


def test_fleet_errors_name_the_file_line_entry_and_field_all_at_once(fleet: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(BAD_FLEET)
    with pytest.raises(fleet.FleetFileError) as caught:
        fleet.load_fleet(path)
    error = caught.value
    assert isinstance(error, pulumi.RunError)  # pulumi prints the message without a traceback
    assert str(error).startswith(f"{path} has 8 problems; no agent was changed:")
    assert error.problems == [
        f'{path}:3: entry 1 ("Support"): language: input should be a valid string, got False '
        "(YAML read it as a boolean: quote it)",
        f"{path}:5: entry 2 (\"Billing\"): model: must be one of 'oppie-vox', 'oppie-vox-turbo' or "
        "'oppie-vox-2' ('oppie-vox-livekit' is kept only by existing agents that already have it), got 'gpt-4'",
        f'{path}:6: entry 2 ("Billing"): handoff_phone_number: input should be a valid string, got '
        "14155550123 (YAML read it as a number: quote it)",
        f'{path}:9: entry 2 ("Billing"): instructions (item 2): input should be a valid string, got 3 '
        "(YAML read it as a number: quote it)",
        f'{path}:10: entry 2 ("Billing"): colour: is not a PhoneAgent argument (known: resource, adopt_id, '
        "name, type, language, accent, handoff_phone_number, interruptible, action_ids, instructions, "
        "data_collection_fields, data_collection_webhook_url, model, first_message, voice_id)",
        f"{path}:11: entry 3: expected a mapping of PhoneAgent arguments, found a string",
        f"{path}:13: entry 4 (\"Support\"): resource: 'support' is already the logical name of entry 1; "
        "give one of them a distinct `resource:`",
        f"{path}:14: entry 5 (\"\"): name: string should have at least 1 character, got ''",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "expected a list of agents (one entry per agent), found an empty file"),
        ("name: Support\n", "expected a list of agents (one entry per agent), found a mapping"),
        ("- name: [unclosed\n", "not valid YAML"),
    ],
)
def test_fleet_file_that_is_not_a_list_of_entries_is_refused(
    fleet: ModuleType, tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(text)
    with pytest.raises(fleet.FleetFileError, match="no agent was changed") as caught:
        fleet.load_fleet(path)
    assert problem in caught.value.problems[0]


def test_fleet_file_in_json_is_read_and_its_errors_name_the_entry(fleet: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "agents.json"
    path.write_text(json.dumps([{"name": "Support", "adopt_id": "agt_1"}, {"name": "Billing", "type": "both"}]))
    with pytest.raises(fleet.FleetFileError) as caught:
        fleet.load_fleet(path)
    assert caught.value.problems == [
        f"{path}: entry 2 (\"Billing\"): type: must be one of 'inbound' or 'outbound', got 'both'"
    ]
    path.write_text(json.dumps([{"name": "Support", "adopt_id": "agt_1"}]))
    [entry] = fleet.load_fleet(path)
    assert (entry.resource, entry.args, entry.adopt_id) == ("support", {"name": "Support"}, "agt_1")


def test_fleet_program_with_a_bad_file_declares_nothing(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: Billing\n  model: gpt-4\n")
    declared: list[str] = []

    def watch() -> None:
        pulumi.runtime.register_stack_transformation(lambda args: declared.append(args.name) and None)

    with pytest.raises(Exception, match=r'bad\.yaml:2: entry 1 \("Billing"\): model: must be one of'):
        run_example(FLEET, sandbox, monkeypatch, {"oppie-fleet-from-file:fleetFile": str(bad)}, before=watch)
    assert declared == []


# -- pipeline: the workflow ---------------------------------------------------------------------------------

PIPELINE = EXAMPLES / "pipeline"


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


def _pulumi_action(job: dict[str, Any]) -> dict[str, Any]:
    [step] = [s for s in _steps(job) if str(s.get("uses", "")).startswith("pulumi/actions@") and "with" in s]
    return dict(step["with"])


def test_pipeline_workflow_previews_pull_requests_deploys_main_and_checks_drift_on_a_schedule() -> None:
    workflow = yaml.safe_load((PIPELINE / "phone-agents.yml").read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    assert "pull_request" in triggers
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["schedule"] and triggers["schedule"][0]["cron"]
    env = workflow["env"]
    assert env["PROJECT_DIR"] == "examples/pipeline"
    assert env["OPPIE_API_TOKEN"] == "${{ secrets.OPPIE_API_TOKEN }}"
    assert (PIPELINE / f"Pulumi.{env['STACK'].rsplit('/', 1)[-1]}.yaml").is_file()
    jobs = workflow["jobs"]

    preview = jobs["preview"]
    assert "pull_request" in preview["if"]
    action = _pulumi_action(preview)
    assert action["command"] == "preview" and action["diff"] is True and action["comment-on-pr"] is True
    assert action["work-dir"] == "${{ env.PROJECT_DIR }}"
    assert preview["permissions"]["pull-requests"] == "write"

    up = jobs["up"]
    assert "refs/heads/main" in up["if"] and "push" in up["if"]
    assert _pulumi_action(up)["command"] == "up"
    assert up["concurrency"]["cancel-in-progress"] is False
    # What a killed deploy left is settled before the deploy, with the CLI installed first (issue 21).
    runs = [str(s.get("run") or s.get("uses")) for s in _steps(up)]
    recover = next(i for i, run in enumerate(runs) if run.startswith("oppie-pulumi recover "))
    assert runs[recover] == 'oppie-pulumi recover --stack "$STACK" -C "$PROJECT_DIR"'
    assert runs[recover - 1].startswith("pulumi/actions@") and "with" not in _steps(up)[recover - 1]
    assert runs[recover + 1].startswith("pulumi/actions@") and _pulumi_action(up)["command"] == "up"

    drift = jobs["drift"]
    assert "schedule" in drift["if"]
    # The drift review: its markdown to the job summary, its exit status (2: findings) failing the job.
    [check] = [s for s in _steps(drift) if "--format markdown" in s.get("run", "")]
    assert check["run"].startswith("oppie-pulumi drift ") and '--output "$GITHUB_STEP_SUMMARY"' in check["run"]
    assert "--fail-on" not in check["run"], "the default: any finding fails the job"
    # Every job installs the program's dependencies before Pulumi runs it.
    for job in jobs.values():
        assert any("pip install -r requirements.txt" in s.get("run", "") for s in _steps(job))


# -- the reference page ------------------------------------------------------------------------------------

DOCS = EXAMPLES.parent / "docs" / "phone-agent.md"


def _table_rows(text: str) -> dict[str, list[str]]:
    """The cells of the Markdown table rows whose first cell is code, by that cell (without backticks)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows.setdefault(cells[0].strip("`"), cells)  # the first table that has it: inputs before outputs
    return rows


def test_reference_page_documents_every_input_output_config_key_and_error() -> None:
    from oppie_pulumi import _exceptions
    from oppie_pulumi._config import SOURCES
    from oppie_pulumi._models import API_NAMES, COMPUTED_OUTPUTS, INPUT_FIELDS, REPLACE_ON_CHANGE, AgentSpec

    text = DOCS.read_text()
    rows = _table_rows(text)
    for name in INPUT_FIELDS:
        _, kind, default, change, api_field, _notes = rows[name]
        assert api_field == f"`{API_NAMES[name]}`", name
        assert change == ("**replace**" if name in REPLACE_ON_CHANGE else "update"), name
        expected = "required" if name == "name" else f"`{AgentSpec.model_fields[name].default!r}`".replace("'", '"')
        assert default == expected, name
        assert kind, name
    for name in (*COMPUTED_OUTPUTS, "id", "adopt_id"):
        assert name in rows, name
    for source in SOURCES.values():
        assert f"| `{source.key}` | `{source.variable}` |" in text, source.key
    for name in _exceptions.__all__:
        assert f"`{name}`" in text, name
    assert "pulumi/pulumi#16175" in text and "adopt_id" in text and "oppie-pulumi generate" in text
