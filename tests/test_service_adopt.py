"""``AgentService`` with ``adopt_id``: taking over a live agent instead of creating one, through the real host,
against the sandbox.

Adopting keeps the agent's id and phone number, PATCHes only what differs from the declaration, and from
then on the agent is managed like any other (destroy deletes it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from oppie_pulumi_testing import StateEntry

from oppie_pulumi import Unauthorized
from oppie_pulumi.agents.coordination import CLAIMS, RUN
from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN, StateFactory, agents_program, configured_provider, dashboard

LEGACY = {
    "name": "Legacy support",
    "language": "en",
    "accent": "british",
    "first_message": "Hello, Acme here.",
    "instructions": ["Be brief"],
    "actionIds": [],
}
# The same agent in PhoneAgent's terms.
DECLARED = {
    "resource": "support",
    "name": "Legacy support",
    "language": "en",
    "accent": "british",
    "first_message": "Hello, Acme here.",
    "instructions": ["Be brief"],
    "action_ids": [],
}


def post_agent(sandbox: SandboxServer, body: dict[str, Any]) -> dict[str, Any]:
    """Make an agent the way the dashboard would: straight through the API, unknown to any state."""
    response = httpx.post(f"{sandbox.url}/phone", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    response.raise_for_status()
    agent: dict[str, Any] = response.json()
    return agent


@pytest.fixture
def patches(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The changes of every PATCH the sandbox applies (API field names), in order."""
    seen: list[dict[str, Any]] = []
    store = sandbox.state.store
    update: Callable[[str, dict[str, Any]], Any] = store.update

    def recording(agent_id: str, changes: dict[str, Any]) -> Any:
        seen.append(dict(changes))
        return update(agent_id, changes)

    monkeypatch.setattr(store, "update", recording)
    return seen


def only(state: dict[str, StateEntry]) -> StateEntry:
    assert len(state) == 1
    return next(iter(state.values()))


def test_adopting_keeps_the_id_and_phone_number_and_patches_only_what_differs(
    sandbox: SandboxServer, engine_for: StateFactory, patches: list[dict[str, Any]]
) -> None:
    live = post_agent(sandbox, LEGACY)
    sandbox.reset_stats()
    state: dict[str, StateEntry] = {}
    declared = {**DECLARED, "first_message": "Thanks for calling Acme.", "adopt_id": live["id"]}

    with engine_for(state) as engine:
        preview = engine.preview(agents_program(declared))
        assert preview.created == ["support"]
        assert sandbox.stats()["requests"] == 0  # a preview does not adopt: create does not run in it
        summary = engine.up(agents_program(declared))
    assert summary.created == ["support"] and not summary.failed

    entry = only(state)
    [after] = sandbox.agents()
    assert entry.id == live["id"] == after["id"]
    for key in ("phone_number", "provider_external_id", "org_id", "created_at"):
        assert entry.outputs[key] == live[key] == after[key]
    assert patches == [{"first_message": "Thanks for calling Acme."}]
    by_route = sandbox.stats()["by_route"]
    assert "POST /phone" not in by_route and by_route["PATCH /phone/{id}"] == 1
    assert after["first_message"] == "Thanks for calling Acme."
    assert entry.outputs["adopt_id"] == live["id"]

    # Adopted: the next run compares with the state and changes nothing.
    sandbox.reset_stats()
    with engine_for(state) as engine:
        summary = engine.up(agents_program(declared))
    assert summary.same == ["support"] and summary.changes == 0
    assert sandbox.stats()["requests"] == 0


def test_adopting_an_agent_that_already_matches_sends_no_patch(
    sandbox: SandboxServer, engine_for: StateFactory, patches: list[dict[str, Any]]
) -> None:
    live = post_agent(sandbox, LEGACY)
    state: dict[str, StateEntry] = {}
    with engine_for(state) as engine:
        summary = engine.up(agents_program({**DECLARED, "adopt_id": live["id"]}))
    assert summary.created == ["support"] and not summary.failed
    assert patches == []
    assert only(state).outputs["phone_number"] == live["phone_number"]


def test_adopting_resets_fields_the_program_leaves_out_to_the_api_default(
    sandbox: SandboxServer, engine_for: StateFactory, patches: list[dict[str, Any]]
) -> None:
    """An omitted argument means the API's default, not "whatever the live agent has"."""
    live = post_agent(sandbox, LEGACY)
    state: dict[str, StateEntry] = {}
    declared = {"resource": "support", "name": "Legacy support", "adopt_id": live["id"]}
    with engine_for(state) as engine:
        assert engine.up(agents_program(declared)).created == ["support"]
    [changes] = patches
    assert changes == {"language": None, "accent": None, "first_message": None, "instructions": None, "actionIds": None}
    [after] = sandbox.agents()
    assert after["id"] == live["id"] and after["actionIds"] is None and after["accent"] is None


def test_adopting_an_id_that_does_not_exist_fails_naming_the_id(
    sandbox: SandboxServer, engine_for: StateFactory
) -> None:
    post_agent(sandbox, LEGACY)
    sandbox.reset_stats()
    state: dict[str, StateEntry] = {}
    missing = "0b7d1c9e-0000-4000-8000-000000000000"
    with engine_for(state) as engine:
        summary = engine.up(agents_program({**DECLARED, "adopt_id": missing}))
    message = summary.failed["support"]
    assert "NotFound" in message
    assert f"adopt phone agent 'Legacy support' ({missing}) failed: no agent with id {missing!r} exists in this " in (
        message
    )
    # The fix for each way this happens: a mistyped id, or an agent this stack adopted and someone deleted since.
    assert (
        "If adopt_id is mistyped, correct it (`oppie-pulumi generate` lists the ids); if this stack adopted that "
        "agent before and it was deleted elsewhere since, remove adopt_id (it has done its job) and run `pulumi up` "
        "again to create a new agent (`pulumi up --refresh` does that by itself when it sees the agent gone)"
    ) in message
    assert state == {} and len(sandbox.agents()) == 1  # nothing created instead
    assert "POST /phone" not in sandbox.stats()["by_route"]


def test_adopting_with_a_different_model_fails_saying_model_is_immutable_and_which_to_declare(
    sandbox: SandboxServer, engine_for: StateFactory, patches: list[dict[str, Any]]
) -> None:
    live = post_agent(sandbox, {**LEGACY, "model": "oppie-vox-2"})
    state: dict[str, StateEntry] = {}
    with engine_for(state) as engine:
        summary = engine.up(agents_program({**DECLARED, "adopt_id": live["id"]}))
    message = summary.failed["support"]
    assert "ConfigError" in message
    assert "the live agent uses model 'oppie-vox-2' but the program declares 'oppie-vox'" in message
    assert "model cannot be changed after creation" in message
    assert "declare model='oppie-vox-2' to adopt it" in message
    assert state == {} and patches == []
    assert sandbox.agents()[0]["model"] == "oppie-vox-2"


@pytest.mark.parametrize("adopt_id", ["", "   "])
def test_a_blank_adopt_id_is_a_check_failure_before_any_api_call(
    sandbox: SandboxServer, engine_for: StateFactory, adopt_id: str
) -> None:
    state: dict[str, StateEntry] = {}
    with engine_for(state) as engine:
        summary = engine.up(agents_program({**DECLARED, "adopt_id": adopt_id}))
    assert summary.check_failures["support"] == [
        ("adopt_id", "must be the id of an existing agent (a non-empty string)")
    ]
    assert sandbox.stats()["requests"] == 0


def test_destroying_an_adopted_agent_deletes_it(sandbox: SandboxServer, engine_for: StateFactory) -> None:
    """Adopted means managed: destroy (or removing it from the program) deletes the live agent."""
    live = post_agent(sandbox, LEGACY)
    state: dict[str, StateEntry] = {}
    with engine_for(state) as engine:
        engine.up(agents_program({**DECLARED, "adopt_id": live["id"]}))
    # A later command, as with the CLI: each `pulumi` command starts its own provider host.
    with engine_for(state) as engine:
        assert engine.destroy().deleted == ["support"]
    assert sandbox.agents() == [] and state == {}


def test_adopt_id_can_be_removed_once_adopted_without_any_change(
    sandbox: SandboxServer, engine_for: StateFactory
) -> None:
    live = post_agent(sandbox, LEGACY)
    state: dict[str, StateEntry] = {}
    with engine_for(state) as engine:
        engine.up(agents_program({**DECLARED, "adopt_id": live["id"]}))
        sandbox.reset_stats()
        summary = engine.up(agents_program(DECLARED))
        assert summary.same == ["support"] and summary.changes == 0
        assert engine.refresh().changes == 0
        assert engine.up(agents_program(DECLARED)).changes == 0
    assert only(state).id == live["id"]
    assert set(sandbox.stats()["by_route"]) <= {"GET /phone"}


def test_adopting_under_newer_api_variants_sees_no_spurious_difference(
    sandbox: SandboxServer, engine_for: StateFactory, patches: list[dict[str, Any]]
) -> None:
    """``language`` listed as ``["en"]`` equals the declared "en"; an empty PATCH answer is read back."""
    sandbox.set_faults(language_as_list=True, patch_empty_body=True, extra_fields=True)
    live = post_agent(sandbox, LEGACY)
    state: dict[str, StateEntry] = {}
    with engine_for(state) as engine:
        summary = engine.up(agents_program({**DECLARED, "voice_id": "v2", "adopt_id": live["id"]}))
        assert summary.created == ["support"] and not summary.failed
        assert patches == [{"voice_id": "v2"}]
        entry = only(state)
        assert entry.outputs["voice_id"] == "v2" and entry.outputs["language"] == "en"
        assert engine.up(agents_program({**DECLARED, "voice_id": "v2", "adopt_id": live["id"]})).changes == 0


def test_each_of_several_agents_is_adopted_in_one_up(sandbox: SandboxServer, engine_for: StateFactory) -> None:
    agents = [post_agent(sandbox, {**LEGACY, "name": f"Line {n}"}) for n in range(6)]
    sandbox.reset_stats()
    state: dict[str, StateEntry] = {}
    specs = [
        {**DECLARED, "resource": f"line-{n}", "name": f"Line {n}", "adopt_id": a["id"]} for n, a in enumerate(agents)
    ]
    with engine_for(state) as engine:
        summary = engine.up(agents_program(*specs))
    assert sorted(summary.created) == sorted(s["resource"] for s in specs) and not summary.failed
    assert {e.id: e.outputs["phone_number"] for e in state.values()} == {a["id"]: a["phone_number"] for a in agents}
    assert "POST /phone" not in sandbox.stats()["by_route"]
    assert "PATCH /phone/{id}" not in sandbox.stats()["by_route"]


def test_changing_the_model_of_an_adopted_agent_replaces_it(sandbox: SandboxServer, engine_for: StateFactory) -> None:
    live = post_agent(sandbox, LEGACY)
    state: dict[str, StateEntry] = {}
    declared = {**DECLARED, "adopt_id": live["id"]}
    with engine_for(state) as engine:
        engine.up(agents_program(declared))
    with engine_for(state) as engine:  # the next `pulumi up`: a provider host of its own, as with the CLI
        summary = engine.up(agents_program({**declared, "model": "oppie-vox-2"}))
    assert summary.replaced == ["support"], summary.failed
    [replacement] = sandbox.agents()
    assert replacement["id"] != live["id"] and replacement["model"] == "oppie-vox-2"


def test_an_adoption_whose_list_fails_names_the_adoption_and_the_agent(sandbox: SandboxServer) -> None:
    live = post_agent(sandbox, LEGACY)
    provider = configured_provider(sandbox.url)
    declared = {k: v for k, v in DECLARED.items() if k != "resource"}
    inputs = provider.check({}, {**declared, "adopt_id": live["id"]}).inputs
    sandbox.set_faults(fail_next=1, fail_status=401)

    with pytest.raises(Unauthorized) as caught:
        provider.create(inputs)

    assert str(caught.value).startswith(
        f"adopt phone agent 'Legacy support' ({live['id']}) failed: GET /phone answered 401"
    )
    assert caught.value.operation == f"adopt phone agent 'Legacy support' ({live['id']})"


@pytest.fixture
def fresh_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new CLI run (one provider host): nothing seen yet of the stack."""
    for seen in ("held", "vanished", "adopted"):
        monkeypatch.setattr(RUN, seen, set())
    monkeypatch.setattr(CLAIMS, "_ids", set())


@pytest.mark.usefixtures("fresh_run")
def test_a_delete_in_the_run_whose_create_adopted_the_agent_leaves_it_to_the_new_resource(
    sandbox: SandboxServer,
) -> None:
    """`pulumi up --replace` of an adopting resource: the create adopts the agent again, then the old resource's
    delete comes, and must not delete what the new resource now holds."""
    live = post_agent(sandbox, LEGACY)
    provider = configured_provider(sandbox.url)
    declared = {k: v for k, v in DECLARED.items() if k != "resource"}
    created = provider.create(provider.check({}, {**declared, "adopt_id": live["id"]}).inputs)
    assert created.id == live["id"]

    provider.delete(live["id"], created.outs or {})

    assert [agent["id"] for agent in sandbox.agents()] == [live["id"]]


@pytest.mark.usefixtures("fresh_run")
def test_reads_updates_and_deletes_tell_the_run_that_the_stack_holds_or_held_the_agent(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What makes a later create naming that agent in adopt_id a replacement (a new agent), not an adoption."""
    provider = configured_provider(sandbox.url)
    kept, deleted, vanished, updated = (
        provider.create(provider.check({}, {"name": f"Support {i}"}).inputs) for i in range(4)
    )
    with dashboard(sandbox) as api:
        api.delete(f"/phone/{vanished.id}").raise_for_status()
    monkeypatch.setattr(CLAIMS, "_ids", set())  # the creates claimed theirs; a refresh's host starts with none

    provider.read(kept.id, kept.outs or {})
    provider.delete(deleted.id, deleted.outs or {})
    provider.read(vanished.id, vanished.outs or {})
    outs = updated.outs or {}
    provider.update(updated.id, outs, provider.check(outs, {"name": "Support 3", "voice_id": "v2"}).inputs)

    assert all(RUN.is_replacement(agent.id) for agent in (kept, deleted, vanished, updated))
    assert not RUN.is_replacement("ph_never_seen")
    # A read also claims the agent for this process, so no failed create here can take it as its own.
    assert kept.id in CLAIMS.ids()
