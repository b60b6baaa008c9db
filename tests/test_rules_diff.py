"""``agents.rules.diff`` (through ``PhoneAgentProvider.diff``): old outputs against new inputs; model replaces,
everything else updates in place."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime.rpc import UNKNOWN

from oppie_pulumi import PhoneAgentProvider
from oppie_pulumi.agents import REASSIGNED, AgentService, UnknownForm, rules
from oppie_pulumi.agents.coordination import RUN, Claims, RunMemory

provider = PhoneAgentProvider()

OUTPUTS: dict[str, Any] = {
    "name": "Support",
    "type": "inbound",
    "language": "en",
    "accent": None,
    "handoff_phone_number": None,
    "interruptible": True,
    "action_ids": None,
    "instructions": ["Be brief"],
    "data_collection_fields": None,
    "data_collection_webhook_url": None,
    "model": "oppie-vox",
    "first_message": None,
    "voice_id": None,
    "org_id": "org_1",
    "phone_number": "+15550000001",
    "provider_external_id": "PN1",
    "created_at": "2026-11-24T07:00:00.000Z",
    "updated_at": "2026-11-24T07:00:00.000Z",
    "__provider": "opaque",
}


def inputs(**changes: Any) -> dict[str, Any]:
    news = {k: v for k, v in OUTPUTS.items() if k not in ("org_id", "phone_number", "provider_external_id")}
    news.pop("created_at")
    news.pop("updated_at")
    news.update(changes)
    return provider.check({}, news).inputs


def test_unchanged_spec_is_no_diff() -> None:
    result = provider.diff("id1", OUTPUTS, inputs())
    assert result.changes is False
    assert result.replaces == []


def test_model_change_forces_replacement() -> None:
    result = provider.diff("id1", OUTPUTS, inputs(model="oppie-vox-2"))
    assert result.changes is True
    assert result.replaces == ["model"]
    assert result.delete_before_replace is False


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("name", "Sales"),
        ("type", "outbound"),
        ("language", "fr"),
        ("accent", "british"),
        ("handoff_phone_number", "+14155550123"),
        ("interruptible", False),
        ("action_ids", []),
        ("instructions", None),
        ("data_collection_fields", ["email"]),
        ("data_collection_webhook_url", "https://example.com/hook"),
        ("first_message", "Hello"),
        ("voice_id", "v1"),
    ],
)
def test_any_other_change_is_an_in_place_update(prop: str, value: Any) -> None:
    result = provider.diff("id1", OUTPUTS, inputs(**{prop: value}))
    assert result.changes is True
    assert result.replaces == []


def test_language_as_list_is_not_drift() -> None:
    assert provider.diff("id1", {**OUTPUTS, "language": ["en"]}, inputs()).changes is False
    assert provider.diff("id1", OUTPUTS, inputs(language=["en"])).changes is False


def test_null_and_empty_action_ids_differ_because_the_api_gives_them_different_meanings() -> None:
    assert provider.diff("id1", OUTPUTS, inputs(action_ids=[])).changes is True


def test_unknown_value_in_preview_is_a_possible_change() -> None:
    assert provider.diff("id1", OUTPUTS, inputs(first_message=UNKNOWN)).changes is True
    assert provider.diff("id1", OUTPUTS, inputs(model=UNKNOWN)).replaces == ["model"]


def test_changing_adopt_id_after_create_is_no_change() -> None:
    olds = {**OUTPUTS, "adopt_id": "a"}
    assert provider.diff("id1", olds, inputs(adopt_id="b")).changes is False


def test_a_phone_number_the_api_reassigned_since_the_last_deployment_is_an_update() -> None:
    """read() marks identity outputs that changed under the stack (REASSIGNED); the next diff must show them."""
    olds = {**OUTPUTS, REASSIGNED: {"phone_number": "+15550000009"}}
    result = provider.diff("id1", olds, inputs())
    assert (result.changes, result.replaces) == (True, [])
    # A replacement asked for at the same time still stands.
    assert provider.diff("id1", olds, inputs(model="oppie-vox-2")).replaces == ["model"]


def test_an_empty_reassigned_mark_is_no_change() -> None:
    assert provider.diff("id1", {**OUTPUTS, REASSIGNED: {}}, inputs()).changes is False


def test_a_model_missing_from_an_old_state_is_neither_a_change_nor_a_replacement() -> None:
    """A state written before a field existed lacks it: replacing a working agent on that ground would be wrong."""
    olds = {k: v for k, v in OUTPUTS.items() if k != "model"}
    result = provider.diff("id1", olds, inputs())
    assert (result.changes, result.replaces) == (False, [])


def test_a_diff_tells_the_run_that_the_stack_holds_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """So that a create adopting that agent later in the same run is a replacement (see RunMemory)."""
    monkeypatch.setattr(RUN, "held", set())
    monkeypatch.setattr(RUN, "vanished", set())
    provider.diff("ph_held", OUTPUTS, inputs())
    assert RUN.is_replacement("ph_held") and not RUN.is_replacement("ph_other")


# -- per property: what the plugin's detailed diff shows, from the one rule both adapters follow ---------------


def changes(olds: dict[str, Any], news: dict[str, Any], ignore: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {name: (change.kind, change.replace) for name, change in rules.diff(olds, news, ignore).changes.items()}


def test_each_changed_property_says_whether_it_is_added_changed_or_removed() -> None:
    news = inputs(accent="british", instructions=None, language="fr")
    assert changes(OUTPUTS, news) == {
        "language": ("update", False),
        "accent": ("add", False),
        "instructions": ("delete", False),
    }


def test_only_model_is_a_replacement_and_it_is_an_update_of_the_value() -> None:
    assert changes(OUTPUTS, inputs(model="oppie-vox-2", voice_id="v1")) == {
        "model": ("update", True),
        "voice_id": ("add", False),
    }


def test_a_reassigned_number_changes_from_the_number_the_stack_had_to_the_live_one() -> None:
    olds = {**OUTPUTS, REASSIGNED: {"phone_number": "+15550000009", "provider_external_id": "PN9"}}
    assert changes(olds, inputs()) == {"phone_number": ("update", False), "provider_external_id": ("update", False)}
    gone = {**OUTPUTS, "phone_number": None, REASSIGNED: {"phone_number": "+15550000009"}}
    assert changes(gone, inputs()) == {"phone_number": ("delete", False)}
    added = {**OUTPUTS, REASSIGNED: {"phone_number": None}}
    assert changes(added, inputs()) == {"phone_number": ("add", False)}


def test_a_mark_that_is_not_a_mapping_is_no_change() -> None:
    """Only a read writes the mark, as a mapping; anything else in its place says nothing."""
    assert changes({**OUTPUTS, REASSIGNED: "phone_number"}, inputs()) == {}


def test_ignored_properties_never_change_not_even_a_reassigned_number() -> None:
    olds = {**OUTPUTS, REASSIGNED: {"phone_number": "+15550000009"}}
    news = inputs(first_message="Hi", model="oppie-vox-2")
    assert changes(olds, news, frozenset({"first_message", "phone_number"})) == {"model": ("update", True)}


def test_the_service_passes_ignore_changes_to_the_rule() -> None:
    service = AgentService(lambda: None, unknown_form=UnknownForm(), claims=Claims(), run=RunMemory())  # type: ignore[arg-type,return-value]
    diff = service.diff("id1", OUTPUTS, inputs(first_message="Hi", voice_id="v1"), frozenset({"first_message"}))
    assert list(diff.changes) == ["voice_id"] and diff.changed and diff.replaces == []
    assert service.run.held == {"id1"}


# -- previews: what a plan shows of a create and an update --------------------------------------------------


def test_a_previewed_create_shows_the_inputs_and_leaves_computed_outputs_unknown() -> None:
    preview = rules.preview_create({**inputs(first_message="Hi"), "adopt_id": "ph_1"})
    assert preview["first_message"] == "Hi" and preview["model"] == "oppie-vox" and preview["adopt_id"] == "ph_1"
    for name in ("org_id", "phone_number", "provider_external_id", "created_at", "updated_at"):
        assert preview[name] is rules.NOT_YET_KNOWN, name
    assert repr(rules.NOT_YET_KNOWN) == "NOT_YET_KNOWN"


def test_a_previewed_update_keeps_what_an_update_keeps_and_only_updated_at_is_unknown() -> None:
    preview = rules.preview_update(OUTPUTS, {**inputs(first_message="Hi"), "adopt_id": "ph_1"})
    assert preview["first_message"] == "Hi" and preview["adopt_id"] == "ph_1"
    assert {name: preview[name] for name in rules.STABLE_ON_UPDATE} == {
        name: OUTPUTS[name] for name in rules.STABLE_ON_UPDATE
    }
    assert preview["updated_at"] is rules.NOT_YET_KNOWN
    assert rules.preview_update(OUTPUTS, inputs()).get("adopt_id") is None
