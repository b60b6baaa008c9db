"""Pulumi's resource options and targeting on `PhoneAgent`, once each, as the real engine applies them, and
what the dynamic provider host drops (detailed diffs, custom timeouts, log lines).

docs/phone-agent.md ("Resource options under the real engine") describes what each test shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from oppie_pulumi.sandbox import SandboxServer

from .realcli import Project, summary
from .support import TOKEN

pytestmark = pytest.mark.realcli


def agent(name: str, **args: Any) -> dict[str, Any]:
    return {"args": {"name": name, "first_message": "Hello.", **args}}


def with_opts(entry: dict[str, Any], **opts: Any) -> dict[str, Any]:
    return {**entry, "opts": opts}


def methods(sandbox: SandboxServer) -> list[str]:
    return [w["method"] for w in sandbox.writes()]


@pytest.fixture
def project(sandbox: SandboxServer, tmp_path: Path) -> Project:
    project = Project.program(tmp_path)
    project.configure(sandbox.url, TOKEN)
    return project


def deploy(project: Project, sandbox: SandboxServer, agents: dict[str, Any]) -> dict[str, Any]:
    project.declare(agents)
    project.up()
    sandbox.reset_stats()
    return project.outputs()


def test_protect_refuses_to_delete_the_agent_until_unprotected(project: Project, sandbox: SandboxServer) -> None:
    deploy(project, sandbox, {"line": with_opts(agent("Line"), protect=True)})
    project.declare({})
    refused = project.run("up", "--yes", expect=None)
    assert refused.returncode != 0 and "because it is protected" in refused.stdout
    assert len(sandbox.agents()) == 1 and methods(sandbox) == []
    project.run("state", "unprotect", "--all", "--yes")
    project.up()
    assert sandbox.agents() == [] and methods(sandbox) == ["DELETE"]


def test_retain_on_delete_drops_the_resource_and_leaves_the_agent(project: Project, sandbox: SandboxServer) -> None:
    outputs = deploy(project, sandbox, {"line": with_opts(agent("Line"), retain_on_delete=True)})
    project.declare({})
    project.up()
    assert project.resources() == {}
    assert [a["id"] for a in sandbox.agents()] == [outputs["line.id"]] and methods(sandbox) == []


def test_ignore_changes_keeps_a_field_out_of_diffs_and_patches(project: Project, sandbox: SandboxServer) -> None:
    deploy(project, sandbox, {"line": with_opts(agent("Line"), ignore_changes=["first_message"])})
    project.declare({"line": with_opts(agent("Line", first_message="Changed."), ignore_changes=["first_message"])})
    project.run("preview", "--expect-no-changes")
    project.declare({"line": with_opts(agent("Line 2", first_message="Changed."), ignore_changes=["first_message"])})
    project.up()
    assert [w["body"] for w in sandbox.writes()] == [{"name": "Line 2"}], "only the field not ignored"


def test_delete_before_replace_deletes_the_old_agent_first(project: Project, sandbox: SandboxServer) -> None:
    old = deploy(project, sandbox, {"line": with_opts(agent("Line"), delete_before_replace=True)})
    project.declare({"line": with_opts(agent("Line", model="oppie-vox-2"), delete_before_replace=True)})
    project.up()
    assert methods(sandbox) == ["DELETE", "POST"]
    assert [a["id"] for a in sandbox.agents()] == [project.outputs()["line.id"]] != [old["line.id"]]


def test_target_updates_only_the_targeted_agent(project: Project, sandbox: SandboxServer) -> None:
    deploy(project, sandbox, {"a": agent("A"), "b": agent("B")})
    project.declare({"a": agent("A", first_message="New."), "b": agent("B", first_message="New.")})
    urn_a = project.resources()["a"]["urn"]
    project.up("--target", urn_a)
    outputs = project.outputs()
    assert [(w["method"], w["path"]) for w in sandbox.writes()] == [("PATCH", f"/phone/{outputs['a.id']}")]
    assert summary(project.run("preview").stdout).get("to update") == 1, "b is still to do"


def test_replace_on_changes_is_ignored_and_the_change_is_made_in_place(
    project: Project, sandbox: SandboxServer
) -> None:
    """The engine matches replace_on_changes against the provider's detailed diff, which the dynamic provider
    host never sends (it forwards only changes/replaces): the option has no effect on a `PhoneAgent`. Only a
    `model` change replaces; the `oppie` provider plugin (docs/plugin.md) honours the option."""
    old = deploy(project, sandbox, {"line": with_opts(agent("Line"), replace_on_changes=["first_message"])})
    project.declare({"line": with_opts(agent("Line", first_message="New."), replace_on_changes=["first_message"])})
    preview = project.run("preview", "--diff")
    assert summary(preview.stdout) == {"to update": 1}
    project.up()
    assert methods(sandbox) == ["PATCH"]
    assert project.outputs()["line.id"] == old["line.id"]


def test_an_unknown_model_previews_as_a_replacement(project: Project, sandbox: SandboxServer) -> None:
    """A model computed from another resource is unknown in a preview: the change it may bring is a replacement."""
    deploy(project, sandbox, {"src": agent("Source"), "line": agent("Line")})
    # Only the dashboard-free way to make `model` unknown in a preview: take it from a resource being replaced.
    project.declare(
        {
            "src": agent("Source", model="oppie-vox-2"),
            "line": {"args": {"name": "Line", "first_message": "Hello."}, "refs": {"model": "src.model"}},
        }
    )
    preview = project.run("preview", "--diff")
    assert summary(preview.stdout) == {"to replace": 2}


def test_a_check_failure_names_the_property_before_any_api_call(project: Project, sandbox: SandboxServer) -> None:
    project.declare({"line": agent("Line", handoff_phone_number="4155550123", model="oppie-vox-9")})
    failed = project.run("preview", expect=None)
    assert failed.returncode != 0
    assert "handoff_phone_number" in failed.stdout + failed.stderr
    assert "model" in failed.stdout + failed.stderr
    assert methods(sandbox) == [] and sandbox.stats()["requests"] == 0


def test_custom_timeouts_are_not_applied_by_the_dynamic_host(project: Project, sandbox: SandboxServer) -> None:
    """The engine passes a create timeout to the provider; the dynamic host ignores it, so a create slower than
    `custom_timeouts` still completes. The provider's own timeouts (oppie:timeoutSeconds, per request) apply."""
    sandbox.set_faults(latency_ms=2500)
    project.declare({"line": with_opts(agent("Line"), custom_timeouts={"create": "1s"})})
    project.up()
    assert len(sandbox.agents()) == 1


def test_a_provider_error_reaches_the_user_as_a_traceback_ending_in_the_message(
    project: Project, sandbox: SandboxServer
) -> None:
    """The dynamic host cannot send log lines or structured errors: an exception becomes the diagnostic,
    traceback first; the project's message (operation, status, the API's message, the fix) is its last line."""
    project.config_set("oppie:apiToken", "not-the-token", secret=True)
    project.declare({"line": agent("Line")})
    failed = project.run("up", "--yes", expect=None)
    assert failed.returncode != 0
    assert "Traceback (most recent call last)" in failed.stdout
    assert "401" in failed.stdout and "oppie:apiToken" in failed.stdout
    assert "not-the-token" not in failed.stdout + failed.stderr


def test_a_check_failure_never_quotes_a_secret_value_and_caps_any_quoted_value(
    project: Project, sandbox: SandboxServer
) -> None:
    """The dynamic host accepts no secrets, so check sees plain values; the engine prints reasons verbatim.

    A secret input is an output in the program, so the provider's check judges it; plain values the program
    judges first (PhoneAgent fails as it is declared). Neither quotes a secret, nor any value whole."""
    bad_hook = "ftp://hooks.example.com/collect?token=SECRET_HOOK_TOKEN_42"
    project.declare(
        {"line": agent("Line", data_collection_webhook_url=bad_hook)},
        secret_args={"line": ["data_collection_webhook_url"]},
    )
    by_the_provider = project.run("preview", expect=None)
    project.declare({"line": agent("Line", first_message="x" * 1_000_000, accent=7)})
    by_the_program = project.run("preview", expect=None)

    for failed, names in ((by_the_provider, ["data_collection_webhook_url"]), (by_the_program, ["accent"])):
        shown = failed.stdout + failed.stderr
        assert failed.returncode != 0
        assert all(name in shown for name in names), shown
        assert "SECRET_HOOK_TOKEN_42" not in shown
        assert len(shown) < 20_000, "no reason quotes a value whole"
