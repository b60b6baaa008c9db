"""One scenario through the stand-in (``oppie_pulumi_testing.Engine``) and through the real Pulumi CLI.

The scenario: create two agents, change one field, change ``model`` (a replacement), then refresh after a
dashboard edit and put it back. Both runs start from an empty sandbox of their own; what reached the API
(method, path shape, body) and what the sandbox holds at the end must be the same. Where the stand-in is not
the engine (docs in tests/harness/oppie_pulumi_testing/engine.py), this test is what keeps it honest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from oppie_pulumi_testing import StateEntry

from oppie_pulumi.sandbox import SandboxServer

from .realcli import Project
from .support import TOKEN, StateFactory, agents_program, dashboard

pytestmark = pytest.mark.realcli

BASE = {"name": "Line", "first_message": "Hello.", "language": "en"}
STEPS: list[dict[str, Any]] = [
    {**BASE},
    {**BASE, "first_message": "Hello again."},
    {**BASE, "first_message": "Hello again.", "model": "oppie-vox-turbo"},
]
EDIT = {"first_message": "Edited in the dashboard"}
# What differs between any two runs by design: ids, numbers, timestamps.
_VOLATILE = ("id", "org_id", "phone_number", "provider_external_id", "created_at", "updated_at")


def _journal(sandbox: SandboxServer) -> list[tuple[str, str, Any]]:
    return [(w["method"], re.sub(r"/phone/.+", "/phone/{id}", w["path"]), w["body"]) for w in sandbox.writes()]


def _agents(sandbox: SandboxServer) -> list[dict[str, Any]]:
    return [{k: v for k, v in agent.items() if k not in _VOLATILE} for agent in sandbox.agents()]


def _dashboard_edit(sandbox: SandboxServer) -> None:
    [agent] = sandbox.agents()
    with dashboard(sandbox) as api:
        api.patch(f"/phone/{agent['id']}", json=EDIT).raise_for_status()


def _scenario(up: Callable[[dict[str, Any]], None], refresh: Callable[[], None], sandbox: SandboxServer) -> Any:
    for spec in STEPS:
        up(spec)
    journal = _journal(sandbox)
    _dashboard_edit(sandbox)
    sandbox.reset_stats()
    refresh()
    up(STEPS[-1])
    return journal, _journal(sandbox), _agents(sandbox)


def test_the_stand_in_engine_makes_the_api_calls_the_real_cli_makes(
    sandbox: SandboxServer, engine_for: StateFactory, tmp_path: Path
) -> None:
    state: dict[str, StateEntry] = {}

    def stand_in_up(spec: dict[str, Any]) -> None:
        with engine_for(state) as engine:  # one host per command, as the CLI
            summary = engine.up(agents_program({"resource": "line", **spec}))
        assert not summary.failed and not summary.check_failures, summary

    def stand_in_refresh() -> None:
        with engine_for(state) as engine:
            assert engine.refresh().updated == ["line"]

    stand_in = _scenario(stand_in_up, stand_in_refresh, sandbox)

    sandbox.reset()
    project = Project.program(tmp_path)
    project.configure(sandbox.url, TOKEN)

    def cli_up(spec: dict[str, Any]) -> None:
        project.declare({"line": {"args": spec}})
        project.up()

    def cli_refresh() -> None:
        assert "1 updated" in project.run("refresh", "--yes").stdout

    real = _scenario(cli_up, cli_refresh, sandbox)
    assert stand_in == real
