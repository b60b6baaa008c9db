"""``oppie-pulumi drift`` run as a user runs it, over stacks that the real Pulumi CLI made against the sandbox.

Stacks come from `pulumi up` of the tier's Python program (dynamic ``PhoneAgent``s) and of YAML programs (the
``oppie`` plugin); everything else happens as it does in life: an edit in the dashboard, a deletion, a number the API
reassigned, an agent made outside any stack, the orphan of a `pulumi up` killed after its POST, one agent adopted by
two stacks. Each review is checked for its verdicts, its exit status, its JSON against the schema, and for what it
must never do: show a secret (the token, a secret input), write to the API, change a state, or list an organisation
more than once.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from oppie_pulumi import drift
from oppie_pulumi.drift.report import MARKDOWN_LIMIT
from oppie_pulumi.sandbox import SandboxConfig, SandboxServer, serve

from .realcli import VENV, Project
from .support import TOKEN, dashboard
from .test_plugin_yaml import write_program, yaml_env
from .test_real_interrupted import LINE, interrupted_up

pytestmark = pytest.mark.realcli

SCHEMA = json.loads((Path(drift.__file__).parent / "schema.json").read_text())
PLUGIN = "oppie:index:PhoneAgent"
WEBHOOK = "https://hooks.example.com/collect?key=s3cr3t-deployed-hook"
EDITED_WEBHOOK = "https://hooks.example.com/collect?key=s3cr3t-dashboard-hook"
WRONG_TOKEN = "tok_WRONG_1a2b3c4d5e6f"
NEW_NUMBER = "+15550009999"


def review(
    project: Project, *stacks: str, fmt: str = "json", args: tuple[str, ...] = (), env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``oppie-pulumi drift --stack ... --format fmt`` in the project's folder, with the project's CLI and backend."""
    command = [str(VENV / "bin" / "oppie-pulumi"), "drift", "--format", fmt, *args]
    for stack in stacks:
        command += ["--stack", stack]
    return subprocess.run(
        command,
        cwd=project.dir,
        env={**project.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def document(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON report, valid against its schema."""
    parsed = json.loads(result.stdout)
    jsonschema.validate(parsed, SCHEMA, cls=jsonschema.Draft202012Validator)
    return dict(parsed)


def by_resource(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's agents by the logical name of the resource holding them ("(unmanaged) <name>" otherwise)."""
    agents = {}
    for agent in report["agents"]:
        names = [holder["urn"].rsplit("::", 1)[-1] for holder in agent["held_by"]]
        agents[",".join(names) or f"(unmanaged) {agent['name']}"] = agent
    return agents


def fields(agent: Mapping[str, Any]) -> list[tuple[str, str, Any, Any]]:
    return [(f["field"], f["class"], f["deployed"], f["live"]) for f in agent["fields"]]


def shared_backend(project: Project) -> dict[str, str]:
    """What another project needs to keep its stacks in ``project``'s backend (and read them with its CLI)."""
    return {key: project.env[key] for key in ("PULUMI_HOME", "PULUMI_BACKEND_URL")}


def state(project: Project) -> dict[str, Any]:
    return project.export()


def assert_no_secret(results: list[subprocess.CompletedProcess[str]], *secrets: str) -> None:
    for result in results:
        for secret in (TOKEN, *secrets):
            assert secret not in result.stdout and secret not in result.stderr, f"{secret!r} shown:\n{result.stdout}"


def test_a_dynamic_stack_in_sync_then_changed_behind_its_back(sandbox: SandboxServer, tmp_path: Path) -> None:
    """In sync (0); then a dashboard edit, a deletion, a reassigned number, a new model, a changed secret and an
    agent made outside any stack: each its verdict and class, exit 2, the same JSON bytes twice, nothing written."""
    project = Project.program(tmp_path)
    project.configure(sandbox.url, TOKEN)
    names = ("keep", "edited", "gone", "renumbered", "remodelled")
    agents: dict[str, Any] = {name: {"args": {"name": name.title(), "first_message": "Hello."}} for name in names}
    agents["hook"] = {"args": {"name": "Hook", "data_collection_webhook_url": WEBHOOK}}
    project.declare(agents, secret_args={"hook": ["data_collection_webhook_url"]})
    project.up()
    ids = {name: res["id"] for name, res in project.resources().items()}
    before = state(project)

    sandbox.reset_stats()
    synced = review(project, "test")
    assert synced.returncode == 0, synced.stderr
    report = document(synced)
    assert {agent["verdict"] for agent in report["agents"]} == {"in_sync"}
    assert report["summary"] == {
        "agents": 6,
        "managed": 6,
        "coverage": 1,
        "in_sync": 6,
        "drifted": 0,
        "deleted": 0,
        "held_twice": 0,
        "unmanaged": 0,
        "unreadable": 0,
    }
    assert {h["provider"] for a in report["agents"] for h in a["held_by"]} == {"dynamic"}
    assert sandbox.stats()["by_route"] == {"GET /phone": 1}

    # Behind the stack's back.
    with dashboard(sandbox) as api:
        api.patch(f"/phone/{ids['edited']}", json={"first_message": "Edited in the dashboard"}).raise_for_status()
        api.patch(f"/phone/{ids['hook']}", json={"data_collection_webhook_url": EDITED_WEBHOOK}).raise_for_status()
        api.delete(f"/phone/{ids['gone']}").raise_for_status()
        outsider = api.post("/phone", json={"name": "Made by hand"}).raise_for_status().json()
    sandbox.state.store.update(ids["renumbered"], {"phone_number": NEW_NUMBER})
    sandbox.state.store.update(ids["remodelled"], {"model": "oppie-vox-2"})
    old_number = before_number(before, "renumbered")

    sandbox.reset_stats()
    first, second = review(project, "test"), review(project, "test")
    assert first.returncode == 2 and second.returncode == 2, first.stderr
    assert first.stdout == second.stdout, "the same state and agents give the same bytes"
    report = document(first)
    agents_by = by_resource(report)
    verdicts = {name: agent["verdict"] for name, agent in agents_by.items()}
    assert verdicts == {
        "keep": "in_sync",
        "edited": "drifted",
        "hook": "drifted",
        "gone": "deleted",
        "renumbered": "drifted",
        "remodelled": "drifted",
        "(unmanaged) Made by hand": "unmanaged",
    }
    assert agents_by["(unmanaged) Made by hand"]["id"] == outsider["id"]
    assert fields(agents_by["edited"]) == [("first_message", "configuration", "Hello.", "Edited in the dashboard")]
    assert fields(agents_by["hook"]) == [("data_collection_webhook_url", "secret", "[secret]", "[secret]")]
    assert fields(agents_by["renumbered"]) == [("phone_number", "computed", old_number, NEW_NUMBER)]
    assert fields(agents_by["remodelled"]) == [("model", "immutable", "oppie-vox", "oppie-vox-2")]
    assert [a["replaces"] for a in (agents_by["remodelled"], agents_by["edited"])] == [True, False]
    assert any("--target" in fix and "::gone" in fix for fix in agents_by["gone"]["fixes"])
    # 6 listed (the deleted one is not): 5 held, 1 unmanaged.
    assert (report["summary"]["agents"], report["summary"]["managed"]) == (6, 5)
    assert report["summary"]["coverage"] == round(5 / 6, 4)

    text = review(project, "test", fmt="text")
    markdown = review(project, "test", fmt="markdown")
    assert text.returncode == 2 and markdown.returncode == 2
    assert '~ model (immutable): "oppie-vox" => "oppie-vox-2"' in text.stdout
    assert "Deleted outside Pulumi (1)" in text.stdout and "oppie-pulumi drift: reading stack test" in text.stderr
    assert len(markdown.stdout) < MARKDOWN_LIMIT and "### Drifted (4)" in markdown.stdout

    # --fail-on chooses what counts; --output appends.
    assert review(project, "test", args=("--fail-on", "none")).returncode == 0
    assert review(project, "test", args=("--fail-on", "replace")).returncode == 2
    assert review(project, "test", args=("--fail-on", "unmanaged")).returncode == 2
    summary = tmp_path / "summary.md"
    summary.write_text("# Nightly\n")
    written = review(project, "test", fmt="markdown", args=("--output", str(summary)))
    assert written.returncode == 2 and written.stdout == ""
    assert summary.read_text() == "# Nightly\n" + markdown.stdout

    assert_no_secret([first, text, markdown], WEBHOOK, EDITED_WEBHOOK, "s3cr3t")
    assert sandbox.writes() == [], "a review never writes to the API"
    assert sandbox.stats()["by_route"] == {"GET /phone": 8}, "one list per review"
    assert state(project) == before, "a review never changes the state"


def before_number(exported: Mapping[str, Any], name: str) -> str:
    [res] = [r for r in exported["deployment"]["resources"] if r["urn"].endswith(f"::{name}")]
    return str(res["outputs"]["phone_number"])


@pytest.mark.parametrize("python_stack", ["py", "test"], ids=["other-names", "same-name-in-two-folders"])
def test_plugin_and_dynamic_stacks_in_one_review(python_stack: str, sandbox: SandboxServer, tmp_path: Path) -> None:
    """A Python project's stack and a YAML project's `test` (the plugin, camelCase state), one backend: one list,
    every agent of both judged, secrets hidden. Stacks of one name in two project folders (`dev` of each project)
    are two stacks like any others."""
    python = Project.program(tmp_path / "python", stack=python_stack)
    python.configure(sandbox.url, TOKEN)
    python.declare({"support": {"args": {"name": "Support", "first_message": "Hello."}}})
    python.up()
    resources = {
        "line": {
            "type": PLUGIN,
            "properties": {"name": "Line", "firstMessage": "Hi", "dataCollectionWebhookUrl": {"fn::secret": WEBHOOK}},
        },
        "desk": {"type": PLUGIN, "properties": {"name": "Desk", "handoffPhoneNumber": "+14155550123"}},
    }
    plugin = Project(
        write_program(tmp_path / "src", resources), tmp_path / "yaml", env={**yaml_env(), **shared_backend(python)}
    )
    plugin.configure(sandbox.url, TOKEN)
    plugin.up()
    ids = {name: res["id"] for name, res in plugin.resources(PLUGIN).items()}
    with dashboard(sandbox) as api:
        api.patch(f"/phone/{ids['line']}", json={"first_message": "Edited"}).raise_for_status()
    sandbox.state.store.update(ids["desk"], {"phone_number": NEW_NUMBER})
    before = (state(python), state(plugin))

    sandbox.reset_stats()
    stacks = (python_stack, f"{plugin.dir}:test")
    results = [review(python, *stacks, fmt=fmt) for fmt in ("json", "text", "markdown")]
    assert [r.returncode for r in results] == [2, 2, 2], results[0].stderr
    report = document(results[0])
    assert sandbox.stats()["by_route"] == {"GET /phone": 3}, "one list per review for the two stacks"
    assert sandbox.writes() == []
    assert (state(python), state(plugin)) == before
    assert_no_secret(results, WEBHOOK, "s3cr3t")
    assert sorted(s["resources"] for s in report["stacks"]) == [1, 2]

    agents_by = by_resource(report)
    assert {name: agent["verdict"] for name, agent in agents_by.items()} == {
        "support": "in_sync",
        "line": "drifted",
        "desk": "drifted",
    }
    assert [h["provider"] for h in agents_by["support"]["held_by"]] == ["dynamic"]
    assert [h["provider"] for h in agents_by["line"]["held_by"]] == ["plugin"]
    assert fields(agents_by["line"]) == [("first_message", "configuration", "Hi", "Edited")]
    assert fields(agents_by["desk"])[0][:2] == ("phone_number", "computed")
    assert fields(agents_by["desk"])[0][3] == NEW_NUMBER
    assert (report["summary"]["agents"], report["summary"]["managed"], report["summary"]["coverage"]) == (3, 3, 1)


def test_the_orphan_of_a_killed_up_is_unmanaged_with_the_recovery(sandbox: SandboxServer, tmp_path: Path) -> None:
    project = Project.program(tmp_path)
    project.configure(sandbox.url, TOKEN)
    project.declare({"line": LINE})
    agent_id = interrupted_up(project, sandbox)
    before = state(project)

    sandbox.reset_stats()
    result = review(project, "test")
    assert result.returncode == 2, result.stderr
    report = document(result)
    [agent] = report["agents"]
    assert (agent["id"], agent["verdict"], agent["held_by"]) == (agent_id, "unmanaged", [])
    urn = before["deployment"]["pending_operations"][0]["resource"]["urn"]
    assert report["stacks"][0]["pending_creates"] == [urn]
    assert "pending create" in agent["note"] and urn in agent["note"]
    assert agent["fixes"][:2] == [
        "pulumi cancel --yes --stack test",
        "pulumi refresh --yes --clear-pending-creates --stack test",
    ]
    assert f"adopt_id={agent_id!r}" in agent["fixes"][2]
    assert report["summary"]["coverage"] == 0

    # Findings --fail-on does not count: exit 0, the report still shows them.
    for fail_on in ("none", "drift,replace"):
        quiet = review(project, "test", fmt="text", args=("--fail-on", fail_on))
        assert quiet.returncode == 0, quiet.stderr
        assert "Unmanaged (in no reviewed stack) (1)" in quiet.stdout and "note: most likely made by" in quiet.stdout

    assert sandbox.writes() == []
    assert state(project) == before, "the pending create and the dead CLI's lock are left alone"
    assert project.run("up", "--yes", expect=None).returncode != 0, "the stack is still locked by the killed up"


def test_one_agent_adopted_by_two_stacks_is_held_twice(sandbox: SandboxServer, tmp_path: Path) -> None:
    first = Project.program(tmp_path / "first", stack="first")
    first.configure(sandbox.url, TOKEN)
    first.declare({"support": {"args": {"name": "Support", "first_message": "Hello."}}})
    first.up()
    agent_id = first.resources()["support"]["id"]
    second = Project.program(tmp_path / "second", stack="second", env=shared_backend(first))
    second.configure(sandbox.url, TOKEN)
    second.declare({"support-copy": {"args": {"name": "Support", "first_message": "Hello.", "adopt_id": agent_id}}})
    second.up()
    assert second.resources()["support-copy"]["id"] == agent_id

    sandbox.reset_stats()
    result = review(first, "first", f"{second.dir}:second")
    assert result.returncode == 2, result.stderr
    assert sandbox.stats()["by_route"] == {"GET /phone": 1}, "two stacks of one organisation: one list"
    report = document(result)
    [agent] = report["agents"]
    assert (agent["id"], agent["verdict"]) == (agent_id, "held_twice")
    # Each stack is named as --stack took it: the one of another project folder with its folder.
    assert sorted((h["stack"], h["urn"].rsplit("::", 1)[-1]) for h in agent["held_by"]) == sorted(
        [("first", "support"), (f"{second.dir}:second", "support-copy")]
    )
    [fix] = agent["fixes"]
    assert "state delete --yes" in fix
    assert (report["summary"]["managed"], report["summary"]["coverage"]) == (1, 1)
    assert sandbox.writes() == []


def test_stacks_of_two_organisations_are_listed_once_each(sandbox: SandboxServer, tmp_path: Path) -> None:
    """Three empty stacks, two on the fixture's sandbox and one on another: one list per organisation."""
    with serve(SandboxConfig(token=TOKEN, db_path=":memory:", rate_limit_per_minute=None)) as other:
        first = Project.program(tmp_path / "a", stack="a")
        projects = [
            first,
            Project.program(tmp_path / "b", stack="b", env=shared_backend(first)),
            Project.program(tmp_path / "c", stack="c", env=shared_backend(first)),
        ]
        for project, server in zip(projects, (sandbox, sandbox, other), strict=True):
            project.configure(server.url, TOKEN)
            with dashboard(server) as api:
                api.post("/phone", json={"name": f"Loose {project.stack}"}).raise_for_status()
        sandbox.reset_stats()
        other.reset_stats()
        result = review(first, "a", f"{projects[1].dir}:b", f"{projects[2].dir}:c")
        assert result.returncode == 2, result.stderr
        assert sandbox.stats()["by_route"] == {"GET /phone": 1}
        assert other.stats()["by_route"] == {"GET /phone": 1}
        report = document(result)
        b, c = f"{projects[1].dir}:b", f"{projects[2].dir}:c"  # named as --stack took them
        assert sorted(o["stacks"] for o in report["organisations"]) == sorted([sorted(["a", b]), [c]])
        assert sorted((a["name"], a["verdict"]) for a in report["agents"]) == [
            ("Loose a", "unmanaged"),
            ("Loose b", "unmanaged"),
            ("Loose c", "unmanaged"),
        ]
        assert report["summary"]["coverage"] == 0
        assert sandbox.writes() == [] and other.writes() == []


def test_a_review_that_cannot_run_exits_1_and_says_why(sandbox: SandboxServer, tmp_path: Path) -> None:
    """No stack of that name; a token the API refuses, in the stack's config or in OPPIE_API_TOKEN."""
    project = Project.program(tmp_path)
    project.configure(sandbox.url, TOKEN)
    with dashboard(sandbox) as api:
        api.post("/phone", json={"name": "Front desk"}).raise_for_status()
    sandbox.reset_stats()
    results = []

    empty = review(project, "test", args=("--fail-on", "none"))
    assert empty.returncode == 0, empty.stderr
    assert document(empty)["summary"]["unmanaged"] == 1

    missing = review(project, "test", "nosuch")
    results.append(missing)
    assert missing.returncode == 1
    assert "oppie-pulumi drift: stack nosuch: `pulumi stack export --stack nosuch` exited" in missing.stderr
    [stack] = [s for s in document(missing)["stacks"] if s["stack"] == "nosuch"]
    assert stack["error"]

    project.config_set("oppie:apiToken", WRONG_TOKEN, secret=True)
    for fmt in ("json", "text", "markdown"):
        refused = review(project, "test", fmt=fmt)
        results.append(refused)
        assert refused.returncode == 1, refused.stderr
        assert "401" in refused.stderr, refused.stderr
    assert document(results[1])["organisations"][0]["agents"] is None

    # The token from the environment, as the provider takes it when the stack's config has none.
    project.run("config", "rm", "oppie:apiToken")
    from_env = review(project, "test", env={"OPPIE_API_TOKEN": TOKEN})
    assert from_env.returncode == 2, from_env.stderr
    wrong_env = review(project, "test", fmt="text", env={"OPPIE_API_TOKEN": WRONG_TOKEN})
    results += [from_env, wrong_env]
    assert wrong_env.returncode == 1 and "401" in wrong_env.stderr
    no_token = review(project, "test", fmt="text")
    results.append(no_token)
    assert no_token.returncode == 1 and "oppie:apiToken" in no_token.stderr + no_token.stdout

    assert_no_secret(results, WRONG_TOKEN)
    assert sandbox.writes() == []


def test_the_printed_fix_for_a_dashboard_edit_puts_the_declared_values_back(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """The first fix of a drifted agent, run as printed (in the project's folder), leaves the review in sync. A
    plain `pulumi up --target` compares the program with the state, which still holds the deployed values, and
    changes nothing: the fix must refresh first."""
    project = Project.program(tmp_path)
    project.configure(sandbox.url, TOKEN)
    project.declare({"line": {"args": {"name": "Line", "first_message": "Hello."}}})
    project.up()
    with dashboard(sandbox) as api:
        api.patch(f"/phone/{project.resources()['line']['id']}", json={"first_message": "Edited"}).raise_for_status()
    [agent] = document(review(project, "test"))["agents"]
    fix = agent["fixes"][0].split("  #")[0]
    assert fix.startswith("pulumi ") and "--target" in fix, fix
    subprocess.run(fix, shell=True, cwd=project.dir, env=project.env, check=True, capture_output=True, timeout=300)
    assert sandbox.agents()[0]["first_message"] == "Hello."
    again = review(project, "test")
    assert again.returncode == 0, again.stdout + again.stderr
    assert [a["verdict"] for a in document(again)["agents"]] == ["in_sync"]
