"""A YAML program manages agents through the ``oppie`` plugin under the real Pulumi CLI.

The YAML language host is Pulumi's own (github.com/pulumi/pulumi-yaml), built by tools/pulumi-yaml/install.sh; the
plugin is the checkout's (``plugins.providers`` in Pulumi.yaml points at plugin/). Everything talks real HTTP to
the sandbox fixture. What is pinned: preview with unknowns, up, a no-change up, drift on refresh and its revert, a
``model`` replacement shown per property, ``pulumi import`` whose printed code previews without changes, the
``import`` option, failures as one message, retry lines in the CLI, and ``customTimeouts``.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from oppie_pulumi.provider import PHONE_AGENT
from oppie_pulumi.sandbox import SandboxServer

from .realcli import EXAMPLES, ROOT, VENV, Project, pulumi_bin, summary
from .support import TOKEN, closed_port_url

pytestmark = pytest.mark.realcli

PLUGIN_DIR = ROOT / "plugin"
EXAMPLE = EXAMPLES / "yaml-phone-agents"
YAML_INSTALL = ROOT / "tools" / "pulumi-yaml" / "install.sh"


def yaml_host_bin() -> Path:
    """The folder of ``pulumi-language-yaml``, built by tools/pulumi-yaml/install.sh (at once when already built).

    Without Go the tier skips, except under ``CI=true``, where it fails (as tests/realcli.py does for the CLI).
    """
    result = subprocess.run([str(YAML_INSTALL), "--build"], capture_output=True, text=True, check=False, timeout=1800)
    if result.returncode != 0:
        reason = f"tools/pulumi-yaml/install.sh could not provide pulumi-language-yaml:\n{result.stderr[-3000:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return Path(result.stdout.strip().splitlines()[-1])


def yaml_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """PATH with our CLI first: install.sh puts the YAML host beside it, where the CLI looks without a warning."""
    path = os.pathsep.join([str(pulumi_bin()), str(yaml_host_bin()), str(VENV / "bin"), os.environ.get("PATH", "")])
    return {"PATH": path, **(extra or {})}


def yaml_project(tmp: Path, sandbox: SandboxServer, source: Path = EXAMPLE, **config: str) -> Project:
    """A copy of a YAML project, its plugin path pointed at the checkout's plugin/, configured for the sandbox."""
    project = Project(source, tmp, env=yaml_env())
    use_checkout_plugin(project)
    project.configure(sandbox.url, TOKEN, **config)
    return project


def use_checkout_plugin(project: Project) -> None:
    pulumi_yaml = project.dir / "Pulumi.yaml"
    pulumi_yaml.write_text(pulumi_yaml.read_text().replace("path: ../../plugin", f"path: {PLUGIN_DIR}"))


def write_program(directory: Path, resources: Mapping[str, Any], *, checkout_plugin: bool = True) -> Path:
    """A YAML project declaring ``resources``; it uses the checkout's plugin unless told not to."""
    directory.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {"name": "oppie-yaml-test", "runtime": "yaml"}
    if checkout_plugin:
        document["plugins"] = {"providers": [{"name": "oppie", "path": str(PLUGIN_DIR)}]}
    document["resources"] = dict(resources)
    (directory / "Pulumi.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return directory


def dashboard(sandbox: SandboxServer) -> httpx.Client:
    """Someone else using the API (the dashboard, another tool): changes Pulumi did not make."""
    return httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


def writes(sandbox: SandboxServer) -> list[tuple[str, str, Any]]:
    return [(w["method"], w["path"], w["body"]) for w in sandbox.writes()]


def test_yaml_program_previews_deploys_drifts_replaces_and_destroys(sandbox: SandboxServer, tmp_path: Path) -> None:
    project = yaml_project(tmp_path, sandbox)

    # Preview: two creates; the follow-up's instructions quote the support line's number, unknown until it exists.
    preview = project.run("preview", "--diff")
    assert summary(preview.stdout) == {"to create": 3}, preview.stdout  # + the stack
    assert "[0]: " in preview.stdout and "[1]: [unknown]" in preview.stdout, preview.stdout
    assert "supportNumber: [unknown]" in preview.stdout
    assert sandbox.writes() == [], "a preview must not write to the API"
    # The host is found beside the CLI, as in Pulumi's releases: no "using pulumi-language-yaml from $PATH".
    assert "from $PATH" not in preview.stdout + preview.stderr

    project.up()
    assert [method for method, _, _ in writes(sandbox)] == ["POST", "POST"]
    outputs = project.outputs()
    agents = {agent["id"]: agent for agent in sandbox.agents()}
    support = agents[outputs["supportId"]]
    assert outputs["supportNumber"] == support["phone_number"]
    assert support["phone_number"] in agents[outputs["followUpId"]]["instructions"][1]
    state = project.resources(PHONE_AGENT)
    assert state["support"]["outputs"]["phoneNumber"] == support["phone_number"]

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

    # A new model replaces the agent, shown per property; the follow-up is updated with the new number.
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
    methods = [(method, path) for method, path, _ in writes(sandbox)]
    # Create before delete: the new agent and its number exist before the old one goes.
    assert methods == [
        ("POST", "/phone"),
        ("PATCH", f"/phone/{outputs['followUpId']}"),
        ("DELETE", f"/phone/{support['id']}"),
    ]

    project.destroy()
    assert sandbox.agents() == []
    assert project.resources(PHONE_AGENT) == {}


def test_pulumi_import_prints_code_that_then_previews_without_changes(sandbox: SandboxServer, tmp_path: Path) -> None:
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
    project = yaml_project(tmp_path, sandbox, source=write_program(tmp_path / "src", {}))
    sandbox.reset_stats()

    imported = project.run("import", PHONE_AGENT, "legacy", agent["id"], "--yes")
    assert "= 1 imported" in imported.stdout, imported.stdout
    assert "Please copy the following code into your Pulumi application" in imported.stdout
    code = yaml.safe_load(imported.stdout[imported.stdout.index("resources:") :])
    assert code["resources"]["legacy"]["properties"] == {
        "actionIds": [],
        "interruptible": False,
        "language": "fr",
        "model": "oppie-vox-turbo",
        "name": "Legacy line",
        "type": "inbound",
    }
    assert project.resources(PHONE_AGENT)["legacy"]["id"] == agent["id"]

    # Paste the code into the program: the next preview finds nothing to do.
    pulumi_yaml = project.dir / "Pulumi.yaml"
    document = yaml.safe_load(pulumi_yaml.read_text())
    document["resources"] = code["resources"]
    pulumi_yaml.write_text(yaml.safe_dump(document, sort_keys=False))
    project.run("preview", "--diff", "--expect-no-changes")
    assert sandbox.writes() == [], "importing and previewing must not write to the API"

    # Imported resources are protected, as `pulumi import` says; once unprotected, destroy deletes the agent.
    project.run("state", "unprotect", "--all", "--yes")
    project.destroy()
    assert sandbox.agents() == []


def test_import_option_takes_over_an_agent_without_writing(sandbox: SandboxServer, tmp_path: Path) -> None:
    with dashboard(sandbox) as api:
        agent = api.post("/phone", json={"name": "Front desk", "first_message": "Hello"}).raise_for_status().json()
    resources = {
        "desk": {
            "type": PHONE_AGENT,
            "properties": {"name": "Front desk", "firstMessage": "Hello"},
            "options": {"import": agent["id"]},
        }
    }
    project = yaml_project(tmp_path, sandbox, source=write_program(tmp_path / "src", resources))
    sandbox.reset_stats()
    up = project.up()
    assert "= 1 imported" in up.stdout or "1 imported" in up.stdout, up.stdout
    assert sandbox.writes() == []
    assert project.resources(PHONE_AGENT)["desk"]["outputs"]["phoneNumber"] == agent["phone_number"]
    project.run("up", "--yes", "--expect-no-changes")


def test_a_failed_call_is_one_clear_message_without_a_traceback(sandbox: SandboxServer, tmp_path: Path) -> None:
    project = yaml_project(tmp_path, sandbox)
    project.config_set("oppie:apiToken", "not-the-token", secret=True)
    failed = project.up(expect=None)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert "error: create phone agent 'Acme support line' failed: GET /phone answered 401 Unauthorized: " in output, (
        output
    )
    assert "Fix: check the token" in output
    assert "Traceback" not in output and 'File "' not in output


def test_retries_show_as_lines_in_the_cli(sandbox: SandboxServer, tmp_path: Path) -> None:
    # One 429 with Retry-After for a POST (after the baseline list): the client waits and retries, and says so
    # beside the resource.
    sandbox.set_faults(rate_limit_next=1, retry_after_s=0.2, writes_only=True)
    project = yaml_project(tmp_path, sandbox)
    up = project.up()
    assert "POST /phone answered 429 (rate limited by the API); retry 1 in 0.2 s" in up.stdout, up.stdout
    assert len(sandbox.agents()) == 2


def test_custom_timeouts_stop_a_create_that_would_wait_too_long(sandbox: SandboxServer, tmp_path: Path) -> None:
    # One request a minute: the create's baseline list takes it, and its POST would wait about 60 s for the rate
    # limit, past its 3 s timeout.
    resources = {
        "first": {
            "type": PHONE_AGENT,
            "properties": {"name": "first"},
            "options": {"customTimeouts": {"create": "3s"}},
        }
    }
    project = yaml_project(
        tmp_path, sandbox, source=write_program(tmp_path / "src", resources), **{"oppie:maxRequestsPerMinute": "1"}
    )
    failed = project.up(expect=None)
    assert failed.returncode != 0
    assert "would have to wait" in failed.stdout and "past its custom timeout of 3 s" in failed.stdout, failed.stdout
    assert sandbox.writes() == [], "the create that gave up sent nothing"


def test_secrets_stay_secret_and_the_token_never_appears_in_state(sandbox: SandboxServer, tmp_path: Path) -> None:
    # The plugin accepts no secrets: the engine hands it plain values and marks the same-named outputs secret again.
    webhook = "https://hooks.example.com/collect?key=s3cr3t-hook"
    resources = {
        "collector": {
            "type": PHONE_AGENT,
            "properties": {"name": "Collector", "dataCollectionWebhookUrl": {"fn::secret": webhook}},
        }
    }
    project = yaml_project(tmp_path, sandbox, source=write_program(tmp_path / "src", resources))
    project.up()
    assert sandbox.agents()[0]["data_collection_webhook_url"] == webhook
    state = project.run("stack", "export").stdout
    assert webhook not in state and TOKEN not in state
    outputs = project.resources(PHONE_AGENT)["collector"]["outputs"]
    assert "ciphertext" in outputs["dataCollectionWebhookUrl"]


def test_replace_on_changes_makes_any_property_a_replacement(sandbox: SandboxServer, tmp_path: Path) -> None:
    # The engine decides this from the plugin's per-property diff, which a dynamic provider cannot give.
    def program(first_message: str) -> dict[str, Any]:
        return {
            "line": {
                "type": PHONE_AGENT,
                "properties": {"name": "Line", "firstMessage": first_message},
                "options": {"replaceOnChanges": ["firstMessage"]},
            }
        }

    project = yaml_project(tmp_path, sandbox, source=write_program(tmp_path / "src", program("Hello")))
    project.up()
    write_program(project.dir, program("Welcome"))
    preview = project.run("preview", "--diff")
    assert "+-oppie:index:PhoneAgent: (replace)" in preview.stdout, preview.stdout
    assert '~ firstMessage: "Hello" => "Welcome"' in preview.stdout


def test_a_base_url_where_nothing_listens_fails_within_a_second_saying_to_check_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Regression (issue "A new user's first hour", 4): a wrong port spent up to 7.75 s in retries, and the error
    did not say to check oppie:baseUrl."""
    closed = closed_port_url()
    resources = {"support": {"type": PHONE_AGENT, "properties": {"name": "Support"}}}
    project = yaml_project(tmp_path, sandbox, source=write_program(tmp_path / "src", resources))
    project.config_set("oppie:baseUrl", closed)
    failed = project.up(expect=None)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert (
        f"error: create phone agent 'Support' failed: GET /phone failed (ConnectError): could not connect to "
        f"{closed} (connection refused): is the API running there? Check oppie:baseUrl / OPPIE_BASE_URL. The "
        "request never reached the API, so nothing was changed"
    ) in output, output
    # The waits still show beside the resource, each naming why; together they stay within about a second.
    listed = re.findall(
        r"^ +create phone agent 'Support': .*\(connection refused\); retry \d in ([0-9.]+) s$", output, re.M
    )
    waits = [float(seconds) for seconds in listed]  # as Diagnostics lists them (the progress lines show them too)
    assert len(waits) == 5, output
    assert sum(waits) <= 1.0 + 0.05 * len(waits), output  # each shown rounded to 0.1 s
    assert "Traceback" not in output and TOKEN not in output
