"""``oppie-pulumi drift`` without the Pulumi CLI: reading exported states, the verdicts, the reports, the command line.

States and organisations are made by hand here (what ``pulumi stack export`` and ``GET /phone`` would give); the
real CLI, with stacks made by ``pulumi up``, is tests/test_drift_real.py.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from oppie_pulumi import cli, drift
from oppie_pulumi._config import Settings
from oppie_pulumi._models import API_NAMES, defaults, outputs_from_agent
from oppie_pulumi.agents import rules
from oppie_pulumi.drift import report
from oppie_pulumi.drift.review import HIDDEN, Organisation, Review, review
from oppie_pulumi.drift.stacks import (
    DYNAMIC_TYPE,
    PLUGIN_TYPE,
    Managed,
    Pending,
    StackRef,
    StackState,
    parse_deployment,
)
from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN, closed_port_url, dashboard

SCHEMA = json.loads((Path(drift.__file__).parent / "schema.json").read_text())
BASE_URL = "https://api.example.com"
SECRET_SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
WEBHOOK = "https://hooks.example.com/collect?key=s3cr3t-deployed"
LIVE_WEBHOOK = "https://hooks.example.com/collect?key=s3cr3t-edited"


def api_agent(agent_id: str, **fields: Any) -> dict[str, Any]:
    """An agent as ``GET /phone`` returns it (API names), with the API's defaults."""
    agent: dict[str, Any] = {API_NAMES[name]: value for name, value in defaults().items()}
    agent.update(
        {
            "id": agent_id,
            "name": f"Agent {agent_id}",
            "org_id": "org_1",
            "phone_number": f"+1555{zlib.crc32(agent_id.encode()) % 10_000_000:07d}",
            "provider_external_id": f"PN{agent_id}",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }
    )
    agent.update(fields)
    return agent


def held(
    stack: str, logical: str, agent: dict[str, Any], *, plugin: bool = False, secret: Iterable[str] = ()
) -> Managed:
    """The resource a `pulumi up` of ``agent`` leaves in ``stack``: inputs as declared, outputs as the API answered."""
    type_ = PLUGIN_TYPE if plugin else DYNAMIC_TYPE
    outputs = outputs_from_agent(agent)
    inputs = {name: value for name, value in rules.spec_of(outputs).items() if value is not None}
    project = "yaml" if plugin else "py"
    urn = f"urn:pulumi:{stack}::{project}::{type_}::{logical}"
    return Managed(stack, urn, type_, agent["id"], inputs, outputs, frozenset(secret))


def stack_state(name: str, *resources: Managed, folder: str = ".", pending: Iterable[Pending] = ()) -> StackState:
    return StackState(
        StackRef(name, Path(folder)),
        list(resources),
        list(pending),
        settings=Settings(api_token=TOKEN, base_url=BASE_URL),
    )


def org(listed: list[dict[str, Any]] | None, *stacks: str, error: str | None = None) -> Organisation:
    return Organisation(BASE_URL, list(stacks), listed, error)


def one(result: Review, agent_id: str) -> Any:
    [agent] = [agent for agent in result.agents if agent.id == agent_id]
    return agent


def every_format(result: Review) -> str:
    return report.as_text(result) + report.as_json(result) + report.as_markdown(result)


def secret(value: Any) -> dict[str, Any]:
    """A secret as ``pulumi stack export --show-secrets`` shows it."""
    return {**SECRET_SIG, "plaintext": json.dumps(value)}


# ---------------------------------------------------------------------------------------------------------------
# Reading an exported state


def test_parse_deployment_reads_a_dynamic_agent_with_its_secrets_decrypted_and_remembered() -> None:
    exported = {
        "version": 3,
        "deployment": {
            "resources": [
                {"urn": "urn:pulumi:dev::py::pulumi:pulumi:Stack::py-dev", "type": "pulumi:pulumi:Stack"},
                {
                    "urn": "urn:pulumi:dev::py::pulumi:providers:pulumi-python::default::1",
                    "custom": True,
                    "id": "1",
                    "type": "pulumi:providers:pulumi-python",
                },
                {
                    "urn": f"urn:pulumi:dev::py::{DYNAMIC_TYPE}::support",
                    "custom": True,
                    "id": "ag_1",
                    "type": DYNAMIC_TYPE,
                    "inputs": {"__provider": "gASV", "name": "Support", "data_collection_webhook_url": secret(WEBHOOK)},
                    "outputs": {
                        "__provider": "gASV",
                        "name": "Support",
                        "data_collection_webhook_url": secret(WEBHOOK),
                        "phone_number": "+15550001111",
                        "action_ids": ["a1"],
                    },
                },
            ]
        },
    }
    [res], pending = parse_deployment("dev", exported)
    assert pending == []
    assert (res.stack, res.id, res.name, res.adapter) == ("dev", "ag_1", "support", "dynamic")
    assert res.inputs["data_collection_webhook_url"] == WEBHOOK
    assert res.outputs["data_collection_webhook_url"] == WEBHOOK
    assert res.outputs["phone_number"] == "+15550001111" and res.outputs["action_ids"] == ["a1"]
    assert res.secret == frozenset({"data_collection_webhook_url"})


def test_parse_deployment_reads_a_plugin_agent_in_python_names() -> None:
    exported = {
        "deployment": {
            "resources": [
                {
                    "urn": f"urn:pulumi:dev::yaml::{PLUGIN_TYPE}::line",
                    "custom": True,
                    "id": "ag_2",
                    "type": PLUGIN_TYPE,
                    "inputs": {
                        "__defaults": [],
                        "name": "Line",
                        "firstMessage": "Hi",
                        "actionIds": [],
                        "handoffPhoneNumber": "+14155550123",
                        "dataCollectionWebhookUrl": secret(WEBHOOK),
                    },
                    "outputs": {
                        "name": "Line",
                        "firstMessage": "Hi",
                        "actionIds": [],
                        "phoneNumber": "+15550002222",
                        "providerExternalId": "PN2",
                        "dataCollectionWebhookUrl": secret(WEBHOOK),
                        "_oppie_reassigned": {"phone_number": "+15550009999"},
                    },
                }
            ]
        }
    }
    [res], _ = parse_deployment("dev", exported)
    assert res.adapter == "plugin" and res.name == "line"
    assert res.inputs == {
        "__defaults": [],
        "name": "Line",
        "first_message": "Hi",
        "action_ids": [],
        "handoff_phone_number": "+14155550123",
        "data_collection_webhook_url": WEBHOOK,
    }
    assert res.outputs["phone_number"] == "+15550002222"
    assert res.outputs["provider_external_id"] == "PN2"
    assert res.outputs[rules.REASSIGNED] == {"phone_number": "+15550009999"}
    assert res.secret == frozenset({"data_collection_webhook_url"})


def test_parse_deployment_keeps_a_secret_it_cannot_decrypt_as_secret_without_a_value() -> None:
    exported = {
        "deployment": {
            "resources": [
                {
                    "urn": f"urn:pulumi:dev::yaml::{PLUGIN_TYPE}::line",
                    "id": "ag_3",
                    "type": PLUGIN_TYPE,
                    "inputs": {"name": "Line", "voiceId": {**SECRET_SIG, "ciphertext": "v1:abc"}},
                    "outputs": {"name": "Line", "voiceId": {**SECRET_SIG, "ciphertext": "v1:abc"}},
                }
            ]
        }
    }
    [res], _ = parse_deployment("dev", exported)
    assert res.inputs["voice_id"] is None and res.secret == frozenset({"voice_id"})


def test_parse_deployment_keeps_pending_creates_of_agents_only() -> None:
    dynamic_urn = f"urn:pulumi:dev::py::{DYNAMIC_TYPE}::line"
    plugin_urn = f"urn:pulumi:dev::yaml::{PLUGIN_TYPE}::other"
    exported = {
        "deployment": {
            "resources": [
                # Not yet created (no id), and a component: neither holds an agent.
                {"urn": f"urn:pulumi:dev::py::{DYNAMIC_TYPE}::nascent", "type": DYNAMIC_TYPE, "custom": True},
                {"urn": f"urn:pulumi:dev::py::{DYNAMIC_TYPE}::comp", "type": DYNAMIC_TYPE, "custom": False, "id": "x"},
            ],
            "pending_operations": [
                {
                    "type": "creating",
                    "resource": {"urn": dynamic_urn, "type": DYNAMIC_TYPE, "inputs": {"name": "Line"}},
                },
                {
                    "type": "creating",
                    "resource": {
                        "urn": plugin_urn,
                        "type": PLUGIN_TYPE,
                        "inputs": {"name": "Other", "firstMessage": "Hi", "voiceId": secret("v-1")},
                    },
                },
                {"type": "updating", "resource": {"urn": dynamic_urn, "type": DYNAMIC_TYPE, "inputs": {}}},
                {"type": "creating", "resource": {"urn": "urn:x::aws:s3:Bucket::b", "type": "aws:s3/bucket:Bucket"}},
            ],
        }
    }
    managed, pending = parse_deployment("dev", exported)
    assert managed == []
    assert [(p.stack, p.urn, p.type) for p in pending] == [
        ("dev", dynamic_urn, DYNAMIC_TYPE),
        ("dev", plugin_urn, PLUGIN_TYPE),
    ]
    assert pending[0].inputs == {"name": "Line"}
    assert pending[1].inputs == {"name": "Other", "first_message": "Hi", "voice_id": "v-1"}


def test_parse_deployment_of_an_empty_stack() -> None:
    assert parse_deployment("dev", {"version": 3, "deployment": {}}) == ([], [])
    assert parse_deployment("dev", {}) == ([], [])


def test_a_stack_reference_may_name_its_project_folder() -> None:
    assert StackRef.parse("dev", Path("here")) == StackRef("dev", Path("here"))
    assert StackRef.parse("infra/agents:prod", Path("here")) == StackRef("prod", Path("infra/agents"))
    assert StackRef.parse("org/project/prod", Path(".")) == StackRef("org/project/prod", Path("."))


# ---------------------------------------------------------------------------------------------------------------
# Verdicts


def test_an_agent_as_deployed_is_in_sync() -> None:
    agent = api_agent("ag_1", language="en", instructions=["Be brief"])
    result = review([stack_state("dev", held("dev", "support", agent))], [org([agent], "dev")])
    verdict = one(result, "ag_1")
    assert (verdict.verdict, verdict.name, verdict.fields, verdict.fixes) == ("in_sync", "Agent ag_1", [], [])
    assert [(h.stack, h.adapter) for h in verdict.holders] == [("dev", "dynamic")]
    assert (result.total, result.managed, result.coverage) == (1, 1, 1.0)


def test_equivalent_spellings_are_no_drift() -> None:
    """The core's rules judge: "en" deployed, ["en"] listed by a newer API, is the same language."""
    deployed = api_agent("ag_1", language="en")
    result = review([stack_state("dev", held("dev", "a", deployed))], [org([{**deployed, "language": ["en"]}], "dev")])
    assert one(result, "ag_1").verdict == "in_sync"


def test_a_dashboard_edit_is_configuration_drift_with_the_commands_that_fix_it() -> None:
    deployed = api_agent("ag_1", first_message="Hello", accent=None)
    live = {**deployed, "first_message": "Edited", "accent": "british", "name": "Renamed"}
    result = review([stack_state("dev", held("dev", "support", deployed))], [org([live], "dev")])
    verdict = one(result, "ag_1")
    assert verdict.verdict == "drifted" and not verdict.replaces
    assert verdict.name == "Renamed", "the name the dashboard shows now"
    assert [(d.field, d.kind, d.deployed, d.live) for d in verdict.fields] == [
        ("accent", "configuration", None, "british"),
        ("first_message", "configuration", "Hello", "Edited"),
        ("name", "configuration", "Agent ag_1", "Renamed"),
    ]
    urn = f"urn:pulumi:dev::py::{DYNAMIC_TYPE}::support"
    assert verdict.fixes[0].startswith(f"pulumi up --refresh --yes --target {urn} --stack dev  #")
    assert verdict.fixes[1].startswith(f"pulumi refresh --yes --target {urn} --stack dev  #")
    assert len(verdict.fixes) == 2


def test_a_fix_names_the_project_folder_of_a_stack_elsewhere() -> None:
    deployed = api_agent("ag_1", first_message="Hello")
    state = stack_state("prod", held("prod", "support", deployed), folder="infra/my agents")
    result = review([state], [org([{**deployed, "first_message": "Edited"}], "infra/my agents:prod")])
    assert all(fix.startswith("pulumi -C 'infra/my agents' ") for fix in one(result, "ag_1").fixes)


def test_a_reassigned_number_is_computed_drift() -> None:
    deployed = api_agent("ag_1", phone_number="+15550001111")
    live = {**deployed, "phone_number": "+15550002222"}
    result = review([stack_state("dev", held("dev", "support", deployed))], [org([live], "dev")])
    verdict = one(result, "ag_1")
    assert verdict.verdict == "drifted" and not verdict.replaces
    assert [(d.field, d.kind, d.deployed, d.live) for d in verdict.fields] == [
        ("phone_number", "computed", "+15550001111", "+15550002222")
    ]
    assert len(verdict.fixes) == 1 and " refresh --yes --target " in verdict.fixes[0], "nothing to put back"


def test_a_number_reassigned_before_a_refresh_is_still_drift_from_what_was_deployed() -> None:
    """A refresh already took the new number (the state's mark keeps the deployed one): still drift."""
    deployed = api_agent("ag_1", phone_number="+15550001111")
    live = {**deployed, "phone_number": "+15550002222"}
    res = held("dev", "support", live)
    res.outputs[rules.REASSIGNED] = {"phone_number": "+15550001111"}
    result = review([stack_state("dev", res)], [org([live], "dev")])
    assert [(d.field, d.kind, d.deployed, d.live) for d in one(result, "ag_1").fields] == [
        ("phone_number", "computed", "+15550001111", "+15550002222")
    ]


def test_a_new_model_is_immutable_drift_whose_fix_replaces_the_agent() -> None:
    deployed = api_agent("ag_1", model="oppie-vox")
    live = {**deployed, "model": "oppie-vox-2"}
    result = review([stack_state("dev", held("dev", "support", deployed))], [org([live], "dev")])
    verdict = one(result, "ag_1")
    assert verdict.verdict == "drifted" and verdict.replaces
    assert [(d.field, d.kind, d.deployed, d.live) for d in verdict.fields] == [
        ("model", "immutable", "oppie-vox", "oppie-vox-2")
    ]
    assert any("REPLACES" in fix for fix in verdict.fixes)
    assert report.document(result)["agents"][0]["replaces"] is True


def test_an_old_state_without_model_is_no_replacement() -> None:
    """A state written before ``model`` was declared lacks it: that says nothing about a change (rules.diff), and
    `pulumi up` of such a stack replaces nothing (tests/test_real_old_state.py). The review must not say it does."""
    agent = api_agent("ag_1", first_message="Hello")
    res = held("dev", "line", agent)
    del res.inputs["model"], res.outputs["model"]
    result = review([stack_state("dev", res)], [org([agent], "dev")])
    verdict = one(result, "ag_1")
    assert not verdict.replaces, [(d.field, d.kind, d.deployed, d.live) for d in verdict.fields]
    assert not any("REPLACES" in fix for fix in verdict.fixes)
    assert cli._counted(result, {"replace"}) == 0


def test_a_secret_field_shows_only_that_it_changed() -> None:
    deployed = api_agent("ag_1", data_collection_webhook_url=WEBHOOK)
    live = {**deployed, "data_collection_webhook_url": LIVE_WEBHOOK}
    res = held("dev", "collector", deployed, secret={"data_collection_webhook_url"})
    result = review([stack_state("dev", res)], [org([live], "dev")])
    verdict = one(result, "ag_1")
    assert verdict.verdict == "drifted"
    assert [(d.field, d.kind, d.deployed, d.live) for d in verdict.fields] == [
        ("data_collection_webhook_url", "secret", HIDDEN, HIDDEN)
    ]
    shown = every_format(result)
    assert "[secret]" in shown
    assert "s3cr3t" not in shown and TOKEN not in shown


def test_a_secret_name_is_never_shown() -> None:
    """Whatever field Pulumi keeps secret stays out of every report, the name (the agent's heading) too."""
    deployed = api_agent("ag_1", name="Hotline s3cr3t-name", first_message="Hello")
    live = {**deployed, "first_message": "Edited"}
    res = held("dev", "hotline", deployed, secret={"name"})
    result = review([stack_state("dev", res)], [org([live], "dev")])
    assert one(result, "ag_1").verdict == "drifted"
    assert "s3cr3t-name" not in every_format(result)


def test_an_agent_gone_from_the_api_is_deleted() -> None:
    deployed = api_agent("ag_1")
    result = review([stack_state("dev", held("dev", "support", deployed))], [org([], "dev")])
    verdict = one(result, "ag_1")
    assert verdict.verdict == "deleted" and verdict.name == "Agent ag_1"
    urn = f"urn:pulumi:dev::py::{DYNAMIC_TYPE}::support"
    assert verdict.fixes[0].startswith(f"pulumi refresh --yes --target {urn} --stack dev")
    assert verdict.fixes[1].startswith("pulumi up --yes --stack dev")
    assert (result.total, result.managed, result.coverage) == (0, 0, None), "a deleted agent is not listed"


def test_an_agent_in_no_stack_is_unmanaged_with_adopt_import_and_delete_fixes() -> None:
    agent = api_agent("ag_9", name="Front desk")
    result = review([stack_state("dev")], [org([agent], "dev")])
    verdict = one(result, "ag_9")
    assert (verdict.verdict, verdict.name, verdict.holders, verdict.note) == ("unmanaged", "Front desk", [], None)
    adopt, import_, delete = verdict.fixes
    assert "adopt_id='ag_9'" in adopt and "name='Front desk'" in adopt
    assert import_.startswith("pulumi import oppie:index:PhoneAgent front-desk ag_9")
    assert delete.startswith(f'curl -X DELETE -H "Authorization: Bearer $OPPIE_API_TOKEN" {BASE_URL}/phone/ag_9')
    assert (result.total, result.managed, result.coverage) == (1, 0, 0.0)


def test_an_orphan_matching_a_pending_create_gets_the_recovery_of_the_interrupted_up() -> None:
    orphan = api_agent("ag_7", name="Interrupted line", first_message="Hello.")
    other = api_agent("ag_8", name="Someone else's")
    urn = f"urn:pulumi:dev::py::{DYNAMIC_TYPE}::line"
    # The engine checkpoints the create's checked inputs: the declared ones with the API's defaults.
    pending = Pending("dev", urn, DYNAMIC_TYPE, held("dev", "line", orphan).inputs)
    result = review([stack_state("dev", pending=[pending])], [org([orphan, other], "dev")])
    verdict = one(result, "ag_7")
    assert verdict.verdict == "unmanaged"
    assert verdict.note is not None and "pending create" in verdict.note and urn in verdict.note
    assert verdict.fixes[0] == "pulumi cancel --yes --stack dev"
    assert verdict.fixes[1] == "pulumi refresh --yes --clear-pending-creates --stack dev"
    assert "adopt_id='ag_7'" in verdict.fixes[2] and "on line" in verdict.fixes[2]
    assert one(result, "ag_8").note is None, "an agent of another spec is no orphan of that create"
    assert report.document(result)["stacks"][0]["pending_creates"] == [urn]


@pytest.mark.parametrize("across_stacks", [False, True], ids=["one-stack", "two-stacks"])
def test_an_agent_held_by_two_resources_is_held_twice(across_stacks: bool) -> None:
    agent = api_agent("ag_1")
    first = held("dev", "support", agent)
    if across_stacks:
        second = held("prod", "support", agent, plugin=True)
        states = [stack_state("dev", first), stack_state("prod", second)]
        stacks: tuple[str, ...] = ("dev", "prod")
    else:
        second = held("dev", "support-again", agent)
        states = [stack_state("dev", first, second)]
        stacks = ("dev",)
    result = review(states, [org([agent], *stacks)])
    assert [a.id for a in result.agents] == ["ag_1"]
    verdict = one(result, "ag_1")
    assert verdict.verdict == "held_twice"
    assert sorted(h.urn for h in verdict.holders) == sorted([first.urn, second.urn])
    assert verdict.note and "deletes the agent the other holds" in verdict.note
    assert len(verdict.fixes) == 1 and " state delete --yes " in verdict.fixes[0]
    assert (result.managed, result.coverage) == (1, 1.0)


def test_a_failed_list_makes_the_agents_held_there_unreadable() -> None:
    agent = api_agent("ag_1")
    failed = org(None, "dev", error="list phone agents failed: GET /phone answered 401 Unauthorized")
    result = review([stack_state("dev", held("dev", "support", agent))], [failed])
    verdict = one(result, "ag_1")
    assert verdict.verdict == "unreadable" and verdict.note == failed.error
    assert (result.total, result.coverage) == (0, None)
    assert report.document(result)["organisations"][0]["agents"] is None


def fleet() -> Review:
    """One review with every verdict, over two stacks of one organisation and one of another."""
    synced, edited, renumbered, remodelled, doubled, gone, loose, blind = (
        api_agent(f"ag_{n}", first_message="Hello", data_collection_webhook_url=WEBHOOK) for n in range(8)
    )
    dev = stack_state(
        "dev",
        held("dev", "synced", synced),
        held("dev", "edited", edited, secret={"data_collection_webhook_url"}),
        held("dev", "renumbered", renumbered),
        held("dev", "doubled", doubled),
        held("dev", "gone", gone),
    )
    prod = stack_state(
        "prod",
        held("prod", "remodelled", remodelled, plugin=True),
        held("prod", "doubled", doubled, plugin=True),
        folder="../prod",
    )
    other = stack_state("other", held("other", "blind", blind))
    listed = [
        loose,
        doubled,
        {**remodelled, "model": "oppie-vox-2"},
        {**renumbered, "phone_number": "+15559999999"},
        {**edited, "first_message": "Edited", "data_collection_webhook_url": LIVE_WEBHOOK},
        synced,
    ]
    organisations = [
        # Stacks are named as --stack takes them: the one of another project folder with its folder.
        org(listed, "dev", "../prod:prod"),
        Organisation("https://other.example.com", ["other"], None, "GET /phone answered 401 Unauthorized"),
    ]
    return review([dev, prod, other], organisations)


def test_every_verdict_in_one_review_with_the_coverage() -> None:
    result = fleet()
    assert [(a.id, a.verdict) for a in result.agents] == [
        ("ag_0", "in_sync"),
        ("ag_1", "drifted"),
        ("ag_2", "drifted"),
        ("ag_3", "drifted"),
        ("ag_4", "held_twice"),
        ("ag_5", "deleted"),
        ("ag_6", "unmanaged"),
        ("ag_7", "unreadable"),
    ]
    assert [(d.field, d.kind) for d in one(result, "ag_1").fields] == [
        ("data_collection_webhook_url", "secret"),
        ("first_message", "configuration"),
    ]
    assert [(d.field, d.kind) for d in one(result, "ag_2").fields] == [("phone_number", "computed")]
    assert [(d.field, d.kind) for d in one(result, "ag_3").fields] == [("model", "immutable")]
    # Holders are sorted by stack as reports name it: "../prod:prod" before "dev".
    assert [(h.stack, h.adapter) for h in one(result, "ag_4").holders] == [
        ("../prod:prod", "plugin"),
        ("dev", "dynamic"),
    ]
    # Listed: 6 (the deleted and the unreadable ones are not); held among them: in sync, 3 drifted, held twice.
    assert (result.total, result.managed) == (6, 5)
    assert result.coverage == pytest.approx(5 / 6)
    summary = report.document(result)["summary"]
    assert summary == {
        "agents": 6,
        "managed": 5,
        "coverage": 0.8333,
        "in_sync": 1,
        "drifted": 3,
        "deleted": 1,
        "held_twice": 1,
        "unmanaged": 1,
        "unreadable": 1,
    }


def test_stacks_of_the_same_name_in_two_project_folders_are_both_reviewed() -> None:
    """`dev` of a Python project and `dev` of a YAML project: two stacks, every agent of both judged."""
    first, second = api_agent("ag_1"), api_agent("ag_2")
    python = stack_state("dev", held("dev", "support", first), folder="python")
    yaml = stack_state("dev", held("dev", "line", second, plugin=True), folder="yaml")
    result = review([python, yaml], [org([first, second], "python:dev", "yaml:dev")])
    assert [[h.stack for h in a.holders] for a in result.agents] == [["python:dev"], ["yaml:dev"]]
    assert [(a.id, a.verdict) for a in result.agents] == [("ag_1", "in_sync"), ("ag_2", "in_sync")]
    assert (result.managed, result.coverage) == (2, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# Reports


def test_the_json_report_is_sorted_stable_and_valid_against_its_schema() -> None:
    first, second = report.as_json(fleet()), report.as_json(fleet())
    assert first == second, "the same state and agents give the same bytes"
    document = json.loads(first)
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert first == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    ids = [agent["id"] for agent in document["agents"]]
    assert ids == sorted(ids)
    assert [s["stack"] for s in document["stacks"]] == ["dev", "other", "prod"]
    assert [o["base_url"] for o in document["organisations"]] == sorted([BASE_URL, "https://other.example.com"])
    for agent in document["agents"]:
        assert [f["field"] for f in agent["fields"]] == sorted(f["field"] for f in agent["fields"])
    assert document["version"] == 1 and document["tool"].startswith("oppie-pulumi ")


def test_no_report_shows_a_secret_value_or_the_token() -> None:
    shown = every_format(fleet())
    assert WEBHOOK not in shown and LIVE_WEBHOOK not in shown and "s3cr3t" not in shown
    assert TOKEN not in shown


def test_the_text_report_lists_findings_first_with_their_fixes() -> None:
    text = report.as_text(fleet())
    assert text.startswith("Drift review of 3 stack(s): 6 agents, 5 managed (coverage 83%): ")
    order = [text.index(heading) for heading in ("Unreadable (1)", "Held by more", "Deleted outside", "Drifted (3)")]
    assert order == sorted(order)
    assert '~ model (immutable): "oppie-vox" => "oppie-vox-2"' in text
    assert "~ data_collection_webhook_url (secret): [secret] => [secret]" in text
    assert "! https://other.example.com: GET /phone answered 401 Unauthorized" in text
    assert text.rstrip().endswith("In sync: 1 agent(s).")


def many_drifted(count: int) -> Review:
    """``count`` agents of one stack, each edited in the dashboard."""
    resources, listed = [], []
    for n in range(count):
        deployed = api_agent(f"ag_{n:05d}", first_message="Hello")
        resources.append(held("dev", f"agent-{n}", deployed))
        listed.append({**deployed, "first_message": "Edited in the dashboard"})
    return review([stack_state("dev", *resources)], [org(listed, "dev")])


def test_markdown_of_5000_drifted_agents_fits_and_says_what_did_not() -> None:
    result = many_drifted(5000)
    assert result.count("drifted") == 5000
    markdown = report.as_markdown(result)
    assert len(markdown) < report.MARKDOWN_LIMIT
    assert "**5000 agents, 5000 managed (coverage 100%): 5000 drifted**" in markdown
    [line] = [line for line in markdown.splitlines() if "did not fit" in line]
    shown = markdown.count("| `ag_")
    assert shown > 100
    assert line == f"_{5000 - shown} more finding(s) did not fit: run `oppie-pulumi drift --format json` for all._"


def test_markdown_fits_whatever_the_mix_of_findings() -> None:
    """Every verdict overflowing at once: each section's heading still has to fit under the limit."""
    resources, listed = [], []
    for n in range(1000):
        drifted, doubled, gone, loose = (api_agent(f"{kind}{n:05d}") for kind in "dhxu")
        resources += [held("dev", f"d{n}", drifted), held("dev", f"h{n}", doubled), held("dev", f"h{n}b", doubled)]
        resources.append(held("dev", f"x{n}", gone))
        listed += [{**drifted, "first_message": "Edited"}, doubled, loose]
    unreadable = [held("other", f"r{n}", api_agent(f"r{n:05d}")) for n in range(1000)]
    result = review(
        [stack_state("dev", *resources), stack_state("other", *unreadable)],
        [org(listed, "dev"), Organisation("https://other.example.com", ["other"], None, "GET /phone answered 500")],
    )
    markdown = report.as_markdown(result)
    assert len(markdown) < report.MARKDOWN_LIMIT, f"{len(markdown)} characters"
    assert "did not fit" in markdown


def test_markdown_of_a_small_review_shows_every_finding() -> None:
    markdown = report.as_markdown(fleet())
    assert "did not fit" not in markdown
    for agent_id in ("ag_1", "ag_2", "ag_3", "ag_4", "ag_5", "ag_6", "ag_7"):
        assert f"| `{agent_id}` " in markdown
    assert "| `ag_0` " not in markdown, "agents in sync are counted, not listed"


# ---------------------------------------------------------------------------------------------------------------
# The command line


@pytest.mark.parametrize("fail_on", ["bogus", "drift,bogus", "none,drift", "", ","])
def test_a_bad_fail_on_is_a_usage_error_that_says_why(fail_on: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["drift", "--stack", "x", "--fail-on", fail_on]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "oppie-pulumi drift: --fail-on takes drift, replace, unmanaged (comma-separated), or none" in captured.err


@pytest.mark.parametrize(
    "argv", [["drift"], ["drift", "--stack", "x", "--format", "yaml"]], ids=["no-stack", "bad-format"]
)
def test_other_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--stack" in err or "--format" in err


@pytest.mark.parametrize(
    ("kinds", "counted"),
    [
        ({"drift", "replace", "unmanaged"}, 6),
        ({"drift"}, 5),  # every drift: two drifted in place, the new model, one deleted, one held twice
        ({"replace"}, 1),  # only the drift whose fix replaces: the new model
        ({"unmanaged"}, 1),
        ({"drift", "replace"}, 5),
        ({"none"}, 0),
    ],
)
def test_fail_on_chooses_which_findings_count(kinds: set[str], counted: int) -> None:
    # In sync and unreadable never count: the first is no finding, the second makes the exit status 1.
    assert cli._counted(fleet(), kinds) == counted


# Through drift.run and the command, with stacks read by a fake reader and the organisation a real sandbox.


def sandbox_reader(sandbox: SandboxServer, stacks: dict[str, list[Managed]], token: str = TOKEN) -> Any:
    def reader(ref: StackRef) -> StackState:
        if ref.name not in stacks:
            return StackState(ref, error=f"`pulumi stack export --stack {ref.name}` exited 255: no stack named")
        settings = Settings(api_token=token, base_url=sandbox.url, max_retries=0)
        return StackState(ref, list(stacks[ref.name]), settings=settings)

    return reader


def made(sandbox: SandboxServer, **fields: Any) -> dict[str, Any]:
    with dashboard(sandbox) as api:
        return dict(api.post("/phone", json={"name": "Support", **fields}).raise_for_status().json())


def test_run_lists_each_organisation_once_whatever_the_number_of_stacks(sandbox: SandboxServer) -> None:
    agents = [made(sandbox, name=f"Agent {n}") for n in range(3)]
    stacks = {f"s{n}": [held(f"s{n}", "agent", agent)] for n, agent in enumerate(agents)}
    sandbox.reset_stats()
    lines: list[str] = []
    result = drift.run(
        [StackRef(name, Path(".")) for name in stacks], reader=sandbox_reader(sandbox, stacks), progress=lines.append
    )
    assert sandbox.stats()["by_route"] == {"GET /phone": 1}
    assert sandbox.writes() == []
    assert [a.verdict for a in result.agents] == ["in_sync"] * 3
    assert [org.stacks for org in result.organisations] == [["s0", "s1", "s2"]]
    assert lines[-1] == f"listing the agents at {sandbox.url} (one call for 3 stack(s))"


def test_run_lists_once_per_token_and_a_refused_token_makes_its_agents_unreadable(sandbox: SandboxServer) -> None:
    agent = made(sandbox)
    good = sandbox_reader(sandbox, {"good": [held("good", "a", agent)]})
    bad = sandbox_reader(sandbox, {"bad": [held("bad", "b", api_agent("ag_elsewhere"))]}, token="tok_WRONG_0000")
    sandbox.reset_stats()
    result = drift.run(
        [StackRef("good", Path(".")), StackRef("bad", Path("."))],
        reader=lambda ref: (good if ref.name == "good" else bad)(ref),
    )
    assert sandbox.stats()["by_route"] == {"GET /phone": 2}
    errors = [org.error for org in result.organisations]
    assert errors[0] is None and errors[1] and "401" in errors[1]
    assert one(result, agent["id"]).verdict == "in_sync"
    assert one(result, "ag_elsewhere").verdict == "unreadable"
    assert "tok_WRONG_0000" not in every_format(result)


def run_cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    reader: Any,
    *argv: str,
) -> tuple[int, str, str]:
    monkeypatch.setattr(drift, "read", lambda ref, environ=None: reader(ref))
    status = cli.main(["drift", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_the_command_exits_0_in_sync_2_on_findings_and_1_when_it_cannot_review(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    agent = made(sandbox, first_message="Hello")
    stacks = {"dev": [held("dev", "support", agent)]}
    reader = sandbox_reader(sandbox, stacks)

    status, out, err = run_cli(monkeypatch, capsys, reader, "--stack", "dev")
    assert status == 0, err
    assert "1 agents, 1 managed (coverage 100%): 1 in sync" in out
    assert "oppie-pulumi drift: reading stack dev" in err, "progress lines on stderr"

    loose = made(sandbox, name="Loose")
    sandbox.reset_stats()
    status, out, _ = run_cli(monkeypatch, capsys, reader, "--stack", "dev", "--format", "json")
    assert status == 2
    assert one_json(out, loose["id"])["verdict"] == "unmanaged"
    assert run_cli(monkeypatch, capsys, reader, "--stack", "dev", "--fail-on", "none")[0] == 0
    assert run_cli(monkeypatch, capsys, reader, "--stack", "dev", "--fail-on", "drift,replace")[0] == 0
    assert run_cli(monkeypatch, capsys, reader, "--stack", "dev", "--fail-on", "unmanaged")[0] == 2

    summary = tmp_path / "summary.md"
    summary.write_text("# Before\n")
    status, out, _ = run_cli(
        monkeypatch, capsys, reader, "--stack", "dev", "--format", "markdown", "--output", str(summary)
    )
    assert status == 2 and out == ""
    assert summary.read_text().startswith("# Before\n## Phone agents: drift review\n"), "appended"

    status, out, err = run_cli(monkeypatch, capsys, reader, "--stack", "dev", "--stack", "missing", "--fail-on", "none")
    assert status == 1
    assert "oppie-pulumi drift: stack missing: `pulumi stack export --stack missing` exited 255" in err
    assert sandbox.writes() == []
    assert TOKEN not in out + err


def one_json(out: str, agent_id: str) -> dict[str, Any]:
    document = json.loads(out)
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    [agent] = [agent for agent in document["agents"] if agent["id"] == agent_id]
    return dict(agent)


def test_an_agent_held_twice_and_deleted_is_no_managed_agent_of_the_listing() -> None:
    """Coverage is of the listed agents: one gone from the API (held twice or not) is not among them."""
    listed, gone = api_agent("ag_1"), api_agent("ag_2")
    states = [
        stack_state("dev", held("dev", "a", listed), held("dev", "gone", gone)),
        stack_state("prod", held("prod", "gone", gone)),
    ]
    result = review(states, [org([listed], "dev", "prod")])
    assert (result.total, result.managed, result.coverage) == (1, 1, 1.0)
    jsonschema.validate(report.document(result), SCHEMA, cls=jsonschema.Draft202012Validator)


def test_an_api_out_of_reach_exits_1_and_says_where(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = closed_port_url()

    def reader(ref: StackRef) -> StackState:
        return StackState(ref, settings=Settings(api_token=TOKEN, base_url=url, max_retries=0))

    status, out, err = run_cli(monkeypatch, capsys, reader, "--stack", "dev", "--format", "json")
    assert status == 1
    [organisation] = json.loads(out)["organisations"]
    assert organisation["agents"] is None and organisation["error"]
    assert f"oppie-pulumi drift: {url}: " in err
    assert TOKEN not in out + err


def test_a_report_file_that_cannot_be_written_is_one_clear_message(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """As `generate` does for its file: a message naming the file, no traceback, a failing status."""
    target = tmp_path / "no such folder" / "summary.md"
    reader = sandbox_reader(sandbox, {"dev": []})
    try:
        status, _, err = run_cli(monkeypatch, capsys, reader, "--stack", "dev", "--output", str(target))
    except OSError as exc:
        pytest.fail(f"the command raised {exc!r} instead of saying it cannot write the report")
    assert status == 1
    assert str(target) in err
