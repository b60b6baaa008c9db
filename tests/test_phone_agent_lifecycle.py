"""``phone_agent``: the whole PhoneAgent lifecycle through the real dynamic provider host, against the sandbox.

Each step opens a new host, as each `pulumi` command does, and keeps the state between steps.
"""

from __future__ import annotations

import dataclasses

import httpx
from oppie_pulumi_testing import StateEntry

from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN, HostFactory, StateFactory, agents_program

SUPPORT = {"resource": "support", "name": "Support", "language": "en", "instructions": ["Be brief"]}


def only(state: dict[str, StateEntry]) -> StateEntry:
    assert len(state) == 1
    return next(iter(state.values()))


def test_full_lifecycle_create_noop_update_replace_drift_gone_destroy(
    sandbox: SandboxServer, engine_for: StateFactory
) -> None:
    state: dict[str, StateEntry] = {}

    # create: one POST, the API's id and every output kept
    with engine_for(state) as engine:
        assert engine.preview(agents_program(SUPPORT)).created == ["support"]
        assert sandbox.agents() == []  # a preview creates nothing
        summary = engine.up(agents_program(SUPPORT))
    assert summary.created == ["support"] and not summary.failed
    [live] = sandbox.agents()
    entry = only(state)
    assert entry.id == live["id"]
    for key in ("phone_number", "provider_external_id", "org_id", "created_at", "updated_at"):
        assert entry.outputs[key] == live[key] and entry.outputs[key]
    assert entry.outputs["model"] == "oppie-vox" and entry.outputs["type"] == "inbound"
    assert entry.outputs["interruptible"] is True
    assert sandbox.stats()["by_route"].get("POST /phone") == 1

    # re-run unchanged: no diff, no API write
    sandbox.reset_stats()
    with engine_for(state) as engine:
        summary = engine.up(agents_program(SUPPORT))
    assert summary.same == ["support"] and summary.changes == 0
    assert sandbox.stats()["requests"] == 0

    # update in place: same id and phone number, only the changed field sent
    with engine_for(state) as engine:
        summary = engine.up(agents_program({**SUPPORT, "first_message": "Hi, Support here."}))
    assert summary.updated == ["support"]
    entry = only(state)
    assert entry.id == live["id"] and entry.outputs["phone_number"] == live["phone_number"]
    assert entry.outputs["first_message"] == "Hi, Support here."
    [after_update] = sandbox.agents()
    assert after_update["first_message"] == "Hi, Support here."
    assert sandbox.stats()["by_route"] == {"PATCH /phone/{id}": 1}
    # the PATCH body itself: a PATCH carrying every field passed this step before it was asserted
    assert [(w["method"], w["path"], w["body"]) for w in sandbox.writes()] == [
        ("PATCH", f"/phone/{live['id']}", {"first_message": "Hi, Support here."})
    ]

    # model change: replaced (new id and number), the old agent deleted, exactly one left
    with engine_for(state) as engine:
        preview = engine.preview(agents_program({**SUPPORT, "model": "oppie-vox-2"}))
        assert preview.replaced == ["support"]
        summary = engine.up(agents_program({**SUPPORT, "model": "oppie-vox-2"}))
    assert summary.replaced == ["support"]
    [replaced] = sandbox.agents()
    entry = only(state)
    assert entry.id == replaced["id"] != live["id"]
    assert replaced["model"] == "oppie-vox-2"

    # drift: an edit in the dashboard shows on refresh, and the next up puts it back
    httpx.patch(
        f"{sandbox.url}/phone/{entry.id}",
        json={"first_message": "edited by hand"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).raise_for_status()
    with engine_for(state) as engine:
        assert engine.refresh().updated == ["support"]
        assert only(state).outputs["first_message"] == "edited by hand"
        assert only(state).inputs["first_message"] == "edited by hand"
        summary = engine.up(agents_program({**SUPPORT, "model": "oppie-vox-2", "first_message": "Hi, Support here."}))
    assert summary.updated == ["support"]
    assert sandbox.agents()[0]["first_message"] == "Hi, Support here."

    # deleted elsewhere: refresh drops it from state
    httpx.delete(f"{sandbox.url}/phone/{entry.id}", headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
    with engine_for(state) as engine:
        assert engine.refresh().deleted == ["support"]
    assert state == {}

    # up recreates it; destroy removes it; destroy again is a no-op
    with engine_for(state) as engine:
        assert engine.up(agents_program(SUPPORT)).created == ["support"]
        stale = only(state)
        assert engine.destroy().deleted == ["support"]
    assert sandbox.agents() == [] and state == {}
    with engine_for(state) as engine:
        summary = engine.destroy()
        assert summary.changes == 0 and not summary.failed
        # the engine can still hold a stale id (an interrupted destroy): a 404 on delete is success
        engine.host.delete(stale.id, stale.urn, stale.outputs)


def test_removing_a_resource_from_the_program_deletes_its_agent(
    sandbox: SandboxServer, engine_for: StateFactory
) -> None:
    state: dict[str, StateEntry] = {}
    sales = {"resource": "sales", "name": "Sales", "type": "outbound"}
    with engine_for(state) as engine:
        engine.up(agents_program(SUPPORT, sales))
        assert len(sandbox.agents()) == 2
        assert engine.up(agents_program(SUPPORT)).deleted == ["sales"]
    assert [a["name"] for a in sandbox.agents()] == ["Support"]


def test_clearing_a_field_sends_null(sandbox: SandboxServer, engine_for: StateFactory) -> None:
    state: dict[str, StateEntry] = {}
    with engine_for(state) as engine:
        engine.up(agents_program({**SUPPORT, "accent": "british"}))
        sandbox.reset_stats()
        assert engine.up(agents_program(SUPPORT)).updated == ["support"]
    assert sandbox.agents()[0]["accent"] is None
    assert [w["body"] for w in sandbox.writes()] == [{"accent": None}]


def test_get_reads_an_existing_agent_by_id(sandbox: SandboxServer, host_for: HostFactory) -> None:
    created = httpx.post(
        f"{sandbox.url}/phone", json={"name": "Legacy"}, headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()
    from oppie_pulumi_testing import run_program

    from oppie_pulumi import PhoneAgent

    [registration] = run_program(lambda: PhoneAgent.get("legacy", created["id"]))
    with host_for() as host:
        id_, outputs, _ = host.read(created["id"], registration.urn, {}, registration.inputs)
    assert id_ == created["id"]
    assert outputs["name"] == "Legacy" and outputs["phone_number"] == created["phone_number"]


def test_check_failures_reach_the_engine_before_any_api_call(sandbox: SandboxServer, engine_for: StateFactory) -> None:
    """A Python program now stops at these itself (tests/test_phone_agent_program.py): the inputs are registered
    here as they are, as a program that does not judge them would send them, to reach the provider's check."""
    state: dict[str, StateEntry] = {}
    [registration] = agents_program({"resource": "bad", "name": "Bad"})
    bad = {"name": "", "model": "gpt", "handoff_phone_number": "555"}
    with engine_for(state) as engine:
        summary = engine.up([dataclasses.replace(registration, inputs={**registration.inputs, **bad})])
    assert {prop for prop, _ in summary.check_failures["bad"]} == {"name", "model", "handoff_phone_number"}
    assert sandbox.stats()["requests"] == 0


def test_newer_api_variants_are_accepted_without_drift(sandbox: SandboxServer, engine_for: StateFactory) -> None:
    sandbox.set_faults(post_status_200=True, patch_empty_body=True, language_as_list=True, extra_fields=True)
    state: dict[str, StateEntry] = {}
    with engine_for(state) as engine:
        assert engine.up(agents_program(SUPPORT)).created == ["support"]
        assert only(state).outputs["language"] == "en"
        assert engine.up(agents_program(SUPPORT)).same == ["support"]
        summary = engine.up(agents_program({**SUPPORT, "voice_id": "v2"}))
        assert summary.updated == ["support"]
        assert only(state).outputs["voice_id"] == "v2"  # read back after the empty PATCH body
        assert engine.refresh().same == ["support"]


def test_a_program_of_1500_agents_registers() -> None:
    """Regression: pulumi's serialize_provider leaks a pickler wrapper per dynamic resource, so a program
    of about 970 agents failed with RecursionError before PhoneAgent restored the pickler."""
    registrations = agents_program(*({"resource": f"a{i}", "name": f"Agent {i}"} for i in range(1500)))
    assert len(registrations) == 1500
