"""``AgentService.read``: reads that scale (the API can only list, so reads share a short-lived snapshot of the
list), and what a read makes of the live agent (drift, a reassigned number, an agent gone)."""

from __future__ import annotations

import pytest
from oppie_pulumi_testing import StateEntry, run_program

from oppie_pulumi import NotFound, PhoneAgent
from oppie_pulumi.agents import REASSIGNED
from oppie_pulumi.sandbox import SandboxServer

from .support import StateFactory, agents_program, configured_provider, dashboard


def test_refreshing_100_agents_costs_a_handful_of_list_calls(sandbox: SandboxServer, engine_for: StateFactory) -> None:
    state: dict[str, StateEntry] = {}
    specs = [{"resource": f"a{i}", "name": f"Agent {i}"} for i in range(100)]
    with engine_for(state, parallel=10) as engine:
        assert len(engine.up(agents_program(*specs)).created) == 100
    sandbox.reset_stats()
    with engine_for(state, parallel=10) as engine:
        summary = engine.refresh()
    assert len(summary.same) == 100 and not summary.failed
    lists = sandbox.stats()["by_route"]["GET /phone"]
    assert 1 <= lists <= 5, f"{lists} list calls for 100 reads"


def test_read_after_the_providers_own_write_sees_the_write(sandbox: SandboxServer) -> None:
    provider = configured_provider(sandbox.url)
    inputs = provider.check({}, {"name": "Support"}).inputs
    created = provider.create(inputs)
    before = provider.read(created.id, created.outs or {})
    assert before.outs and before.outs["first_message"] is None
    news = provider.check({}, {"name": "Support", "first_message": "Hi"}).inputs
    provider.update(created.id, before.outs, news)
    after = provider.read(created.id, before.outs)
    assert after.outs and after.outs["first_message"] == "Hi"


def test_back_to_back_reads_share_one_list(sandbox: SandboxServer) -> None:
    provider = configured_provider(sandbox.url)
    created = provider.create(provider.check({}, {"name": "Support"}).inputs)
    sandbox.reset_stats()
    for _ in range(20):
        assert provider.read(created.id, {}).id == created.id
    assert sandbox.stats()["by_route"] == {"GET /phone": 1}


def test_get_of_an_id_no_agent_has_is_a_not_found_naming_the_lookup(sandbox: SandboxServer) -> None:
    """An empty read would be taken by the engine as found with every output None; the error carries what any
    API error carries (operation, method, path, status, message), as the list answered it."""
    [registration] = run_program(lambda: PhoneAgent.get("legacy", "ph_missing"))
    assert registration.id == "ph_missing"
    provider = configured_provider(sandbox.url)

    with pytest.raises(NotFound) as caught:
        provider.read("ph_missing", registration.inputs)

    error = caught.value
    assert str(error).startswith(
        "look up phone agent 'ph_missing' (PhoneAgent.get) failed: no agent with id 'ph_missing' exists"
    )
    assert (error.operation, error.method, error.path, error.status_code, error.api_message) == (
        "look up phone agent 'ph_missing' (PhoneAgent.get)",
        "GET",
        "/phone",
        404,
        "not in GET /phone",
    )


def test_a_read_marks_a_phone_number_the_api_reassigned_and_the_mark_outlives_further_reads(
    sandbox: SandboxServer,
) -> None:
    """The mark is how the next diff (and so `pulumi up`) learns that outputs changed under the stack; inputs
    follow the live agent, so the diff of a refresh shows drift rather than undoing it."""
    provider = configured_provider(sandbox.url)
    created = provider.create(provider.check({}, {"name": "Support", "accent": "british"}).inputs)
    assert created.outs is not None
    old_number = created.outs["phone_number"]
    sandbox.state.store.update(created.id, {"phone_number": "+15550009999", "accent": "american"})

    first = provider.read(created.id, created.outs)

    assert first.id == created.id and first.outs is not None and first.inputs is not None
    assert first.outs["phone_number"] == "+15550009999"
    assert first.outs[REASSIGNED] == {"phone_number": old_number}
    assert first.inputs["accent"] == "american" and "phone_number" not in first.inputs
    # A later read still knows the number the stack last deployed with.
    second = provider.read(created.id, first.outs)
    assert second.outs is not None and second.outs[REASSIGNED] == {"phone_number": old_number}


def test_a_read_of_an_unchanged_agent_marks_nothing_and_keeps_adopt_id_in_its_inputs(sandbox: SandboxServer) -> None:
    provider = configured_provider(sandbox.url)
    created = provider.create(provider.check({}, {"name": "Support"}).inputs)
    assert created.outs is not None
    # A state from before phone numbers were outputs has none: nothing to compare with, so no mark either.
    older = {**created.outs, "phone_number": None, "adopt_id": created.id}

    for outs in (created.outs, older):
        result = provider.read(created.id, outs)
        assert result.outs is not None and REASSIGNED not in result.outs

    result = provider.read(created.id, older)
    assert result.inputs is not None and result.inputs["adopt_id"] == created.id


def test_a_read_of_an_agent_deleted_elsewhere_drops_it_with_empty_outputs(sandbox: SandboxServer) -> None:
    """The dynamic host adds its provider key to the outputs it gets back, so they must be a dict, not None."""
    provider = configured_provider(sandbox.url)
    created = provider.create(provider.check({}, {"name": "Support"}).inputs)
    assert created.outs is not None
    with dashboard(sandbox) as api:
        api.delete(f"/phone/{created.id}").raise_for_status()

    result = provider.read(created.id, created.outs)

    assert (result.id, result.outs) == (None, {})
