"""Refresh when only computed outputs change: the API gives an agent a new phone number.

The real refresh decides between 'update' and 'same' by the provider's Diff of the refreshed state, not by
comparing outputs; a number users export and wire elsewhere must still show, and a drift review must fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from oppie_pulumi.sandbox import SandboxServer

from .realcli import Project, summary
from .support import TOKEN

pytestmark = pytest.mark.realcli

NEW_NUMBER = "+15550009999"


@pytest.fixture
def renumbered(sandbox: SandboxServer, tmp_path: Path) -> tuple[Project, str]:
    project = Project.program(tmp_path)
    project.configure(sandbox.url, TOKEN)
    project.declare({"line": {"args": {"name": "Line", "first_message": "Hello."}}})
    project.up()
    agent_id = project.outputs()["line.id"]
    # What the API does when it reassigns a number: no field the program declares changes.
    sandbox.state.store.update(agent_id, {"phone_number": NEW_NUMBER})
    return project, agent_id


def test_refresh_shows_a_reassigned_phone_number_as_an_update(renumbered: tuple[Project, str]) -> None:
    project, _ = renumbered
    refresh = project.run("refresh", "--yes", "--diff")
    assert summary(refresh.stdout).get("updated") == 1, refresh.stdout
    assert NEW_NUMBER in refresh.stdout
    assert project.resources()["line"]["outputs"]["phone_number"] == NEW_NUMBER


def test_the_up_after_the_refresh_carries_the_new_number_to_the_stack_without_an_api_write(
    renumbered: tuple[Project, str], sandbox: SandboxServer
) -> None:
    project, _ = renumbered
    project.run("refresh", "--yes")
    sandbox.reset_stats()
    project.up()
    assert sandbox.writes() == [], "nothing to send: the agent already is as declared"
    assert project.outputs()["line.phone_number"] == NEW_NUMBER
    project.run("preview", "--expect-no-changes")
    assert not any(key.startswith("_oppie") for key in project.resources()["line"]["outputs"])


def test_a_drift_review_fails_on_a_reassigned_phone_number(renumbered: tuple[Project, str]) -> None:
    project, _ = renumbered
    review = project.run("refresh", "--preview-only", "--expect-no-changes", "--diff", expect=None)
    assert review.returncode != 0, review.stdout
    assert "phone_number" in review.stdout
