"""A killed `pulumi up`, then the documented recovery: the small version of benchmarks/chaos.py (issue 21).

Each case runs one trial of the benchmark under the real CLI: a stack of 10 agents, the API slow, its clock off
by 3 s and its stamps cut to whole seconds; `pulumi up` SIGKILLed (its whole process group) once the API holds
some of the agents, so some creates were answered, some were pending with their agent made, and some had not
POSTed; then `oppie-pulumi recover` and `pulumi up`. Nothing may be orphaned, made twice, held twice or missing,
and both commands must succeed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from oppie_pulumi.sandbox import SandboxConfig, serve

from .support import load_benchmark

pytestmark = pytest.mark.realcli


chaos = load_benchmark("chaos")


@pytest.mark.parametrize(
    ("offset_ms", "kill_at_agents"), [(-3000, 3), (3000, 7)], ids=["3 s behind, 3 made", "3 s ahead, 7 made"]
)
def test_a_killed_up_recovered_as_documented_leaves_every_agent_held_exactly_once(
    tmp_path: Path, offset_ms: int, kill_at_agents: int
) -> None:
    config = SandboxConfig(token=chaos.TOKEN, db_path=":memory:", rate_limit_per_minute=None)
    with serve(config) as sandbox:
        trial = chaos.trial(sandbox, tmp_path, offset_ms, kill_after_s=120.0, kill_at_agents=kill_at_agents)

    assert trial.killed and trial.agents_at_kill >= kill_at_agents, "killed halfway, or the case proves nothing"
    assert (trial.recover_exit, trial.up_exit) == (0, 0), trial.recover_output
    assert (trial.orphans, trial.duplicates, trial.held_twice, trial.missing) == (0, 0, 0, 0), trial.recover_output
