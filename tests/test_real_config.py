"""Where the provider's settings live under the real engine, and what `refresh`/`destroy` configure from.

The engine sends the whole stack config to the default `pulumi-python` provider and keeps it as that provider's
inputs in the state (pkg/resource/deploy/target.go, default_providers.go). A plain `pulumi refresh` or
`pulumi destroy` does not run the program and configures the provider from that stored copy; with
`--run-program` it uses the current config. docs/phone-agent.md ("Configuration in the state") says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from oppie_pulumi.sandbox import SandboxServer

from .realcli import Project
from .support import TOKEN, closed_port_url

pytestmark = pytest.mark.realcli

LINE = {"args": {"name": "Line", "first_message": "Hello."}}
DEFAULT_PROVIDER = "pulumi:providers:pulumi-python"


def stored_config(project: Project) -> dict[str, Any]:
    [provider] = project.resources(DEFAULT_PROVIDER).values()
    return dict(provider["inputs"])


@pytest.fixture
def project(sandbox: SandboxServer, tmp_path: Path) -> Project:
    project = Project.program(tmp_path)
    project.declare({"line": LINE})
    return project


def test_the_stack_config_is_kept_in_the_state_with_the_token_encrypted_when_set_as_a_secret(
    project: Project, sandbox: SandboxServer
) -> None:
    project.configure(sandbox.url, TOKEN)
    project.up()
    stored = stored_config(project)
    assert stored["oppie:baseUrl"] == sandbox.url
    assert "ciphertext" in stored["oppie:apiToken"], "a secret config value is stored encrypted"
    assert TOKEN not in json.dumps(project.export())


def test_a_token_set_without_secret_is_stored_in_plain_text_and_warned_about(
    project: Project, sandbox: SandboxServer
) -> None:
    project.config_set("oppie:baseUrl", sandbox.url)
    project.config_set("oppie:apiToken", TOKEN)  # --plaintext: what the warning is for
    up = project.up()
    assert "oppie:apiToken is set in plain text" in up.stdout
    assert "pulumi config set --secret oppie:apiToken" in up.stdout
    assert stored_config(project)["oppie:apiToken"] == TOKEN, "the engine stores it as it was given"
    assert TOKEN not in up.stdout, "the warning never prints the token"


def test_a_base_url_where_nothing_listens_fails_saying_to_check_it(project: Project) -> None:
    """Regression (issue "A new user's first hour", 4): the dynamic resource waited up to 7.75 s in silence (its
    host shows no progress), then failed without naming the setting to check."""
    closed = closed_port_url()
    project.configure(closed, TOKEN)
    failed = project.up(expect=None)
    assert failed.returncode != 0
    # The dynamic host prints a traceback (pulumi/dynamic/__main__.py); its last line is the error.
    assert (
        f"TransportError: create phone agent 'Line' failed: GET /phone failed (ConnectError): could not connect to "
        f"{closed} (connection refused): is the API running there? Check oppie:baseUrl / OPPIE_BASE_URL. The "
        "request never reached the API, so nothing was changed"
    ) in failed.stdout, failed.stdout
    # Our own errors are whole sentences: the host's traceback stops at the adapter, without the client's frames.
    assert "_client.py" not in failed.stdout and "service.py" not in failed.stdout, failed.stdout
    assert TOKEN not in failed.stdout + failed.stderr


def test_plain_refresh_uses_the_stored_config_and_run_program_the_current_one(
    project: Project, sandbox: SandboxServer
) -> None:
    project.configure(sandbox.url, TOKEN)
    project.up()
    # Point the stack elsewhere (a port nothing listens on), as a rotated baseUrl would.
    project.config_set("oppie:baseUrl", "http://127.0.0.1:9")
    project.config_set("oppie:maxRetries", "0")
    sandbox.reset_stats()

    project.run("refresh", "--yes")
    assert sandbox.stats()["by_route"].get("GET /phone", 0) >= 1, "the stored copy still points at the sandbox"

    failed = project.run("refresh", "--yes", "--run-program", expect=None)
    assert failed.returncode != 0
    assert "127.0.0.1:9" in failed.stdout, "with --run-program the provider uses the current baseUrl"
