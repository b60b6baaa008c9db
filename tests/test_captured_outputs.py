"""The CLI output blocks in README.md and the examples' READMEs still match what the real CLI prints.

Each block was captured by ``python -m tests.captured``; here each scenario runs again and the two are compared
with ids, numbers, times and the order of parallel progress lines set aside (``captured.normalized``).
"""

from __future__ import annotations

import pytest

from . import captured

pytestmark = pytest.mark.realcli


def test_every_captured_block_has_a_scenario_and_every_scenario_a_block() -> None:
    assert set(captured.blocks()) == set(captured.SCENARIOS)


@pytest.mark.parametrize("name", sorted(captured.SCENARIOS))
def test_a_captured_block_matches_a_fresh_run(name: str) -> None:
    document, text = captured.blocks()[name]
    fresh = captured.capture(name)
    assert captured.normalized(text) == captured.normalized(fresh), (
        f"the block {name!r} in {document} is stale: run `.venv/bin/python -m tests.captured`"
    )
