"""Nothing lost under faults: every scenario of benchmarks/reliability.py, asserted.

After every command of every scenario, the agents on the server are exactly those in state: none lost,
orphaned or duplicated, and no operation failed where a retry was allowed.
"""

from __future__ import annotations

import pytest

from .support import load_benchmark

reliability = load_benchmark("reliability")


@pytest.mark.parametrize("scenario", reliability.SCENARIOS, ids=lambda s: s.name)
def test_no_agent_lost_orphaned_duplicated_or_held_twice_and_no_retryable_failure(
    scenario: reliability.Scenario,
) -> None:
    outcome = reliability.run(scenario)
    assert outcome.failed == []
    assert (outcome.lost, outcome.orphaned, outcome.duplicated, outcome.held_twice) == (0, 0, 0, 0)
    assert outcome.operations == 4 * scenario.agents * scenario.stacks
    # the fault really fired: a scenario whose fault never triggers would pass for nothing
    injected = {k: v for k, v in outcome.statuses.items() if k not in ("200", "201", "404")}
    if scenario.faults.get("error_rate"):
        assert injected.get("503", 0) > 0
    if scenario.faults.get("rate_limit_next"):
        assert injected.get("429") == scenario.faults["rate_limit_next"]
    if scenario.expect_no_429:
        # the provider's own limiter kept every request under the sandbox's: a shorter window would not
        assert "429" not in outcome.statuses
    for counter in ("drop_after_apply", "rate_limit_next", "fail_next", "malformed_json_next", "late_apply_next"):
        if scenario.faults.get(counter):
            assert outcome.faults_left[counter] == 0, f"{counter} was not used up"
    if scenario.faults.get("late_apply_next"):
        assert outcome.faults_fired == {"late apply POST /phone": scenario.faults["late_apply_next"]}
    if scenario.faults.get("truncate_rate"):
        fired = {key.removeprefix("truncated ") for key in outcome.faults_fired}
        assert fired == {"POST /phone", "GET /phone", "PATCH /phone/{id}", "DELETE /phone/{id}"}
    if scenario.faults.get("delay_after_apply_ms"):
        assert outcome.requests > 4 * scenario.agents  # reconciling lists and retries happened
