"""``agents.rules.diff`` (through ``PhoneAgentProvider.diff``): old outputs against new inputs; model replaces,
everything else updates in place."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime.rpc import UNKNOWN

from oppie_pulumi import PhoneAgentProvider
from oppie_pulumi.agents import REASSIGNED
from oppie_pulumi.agents.coordination import RUN

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
