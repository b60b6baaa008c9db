"""check: validation at preview time, naming the property, with the API's defaults filled in."""

from __future__ import annotations

from typing import Any

import pytest

from oppie_pulumi import PhoneAgentProvider
from oppie_pulumi.phone_agent import UNKNOWN

provider = PhoneAgentProvider()


def failures(news: dict[str, Any]) -> dict[str, str]:
    return {f.property: f.reason for f in provider.check({}, news).failures}


def test_minimal_spec_passes_and_gets_api_defaults() -> None:
    result = provider.check({}, {"name": "Support"})
    assert result.failures == []
    assert result.inputs["type"] == "inbound"
    assert result.inputs["interruptible"] is True
    assert result.inputs["model"] == "oppie-vox"
    assert result.inputs["language"] is None


def test_spelled_default_and_omitted_default_check_to_the_same_inputs() -> None:
    spelled = provider.check({}, {"name": "A", "type": "inbound", "interruptible": True, "model": "oppie-vox"})
    omitted = provider.check({}, {"name": "A", "type": None, "interruptible": None})
    assert spelled.inputs == omitted.inputs


@pytest.mark.parametrize(
    ("prop", "value", "reason_part"),
    [
        ("name", "", "at least 1 character"),
        ("name", "   ", "must not be empty"),
        ("type", "sideways", "'inbound' or 'outbound'"),
        ("model", "gpt-4", "oppie-vox"),
        ("interruptible", "yes", "valid boolean"),
        ("action_ids", ["a", 3], "item 1"),
        ("action_ids", "a,b", "valid list"),
        ("instructions", "be nice", "valid list"),
        ("data_collection_fields", [None], "item 0"),
        ("handoff_phone_number", "555-0123", "E.164"),
        ("handoff_phone_number", "+0123", "E.164"),
        ("data_collection_webhook_url", "ftp://example.com/x", "http(s) URL"),
        ("data_collection_webhook_url", "example.com/hook", "http(s) URL"),
        ("accent", 7, "valid string"),
        ("language", 7, "valid string"),
        ("first_message", ["hi"], "valid string"),
        ("voice_id", True, "valid string"),
        ("colour", "blue", "not a property of PhoneAgent"),
    ],
)
def test_each_invalid_property_is_one_failure_naming_it(prop: str, value: Any, reason_part: str) -> None:
    found = failures({"name": "Support", prop: value} if prop != "name" else {"name": value})
    assert list(found) == [prop]
    assert reason_part in found[prop]


def test_missing_name_is_reported_as_required() -> None:
    assert failures({"type": "outbound"}) == {"name": "is required"}


def test_several_invalid_properties_give_one_failure_each() -> None:
    found = failures({"name": "", "model": "x", "type": "y", "interruptible": 1})
    assert set(found) == {"name", "model", "type", "interruptible"}


def test_unknown_values_during_preview_pass_through_untouched() -> None:
    news = {"name": UNKNOWN, "data_collection_webhook_url": UNKNOWN, "action_ids": ["a", UNKNOWN]}
    result = provider.check({}, news)
    assert result.failures == []
    assert result.inputs["name"] == UNKNOWN
    assert result.inputs["data_collection_webhook_url"] == UNKNOWN
    assert result.inputs["action_ids"] == ["a", UNKNOWN]


def test_language_may_be_a_code_or_a_list_of_codes() -> None:
    assert failures({"name": "A", "language": "en"}) == {}
    assert failures({"name": "A", "language": ["en", "fr"]}) == {}


def test_engine_keys_are_not_judged_as_properties() -> None:
    assert failures({"name": "A", "__provider": "opaque"}) == {}


def test_adopt_id_must_be_a_non_empty_string() -> None:
    assert failures({"name": "A", "adopt_id": ""}) == {
        "adopt_id": "must be the id of an existing agent (a non-empty string)"
    }
    assert failures({"name": "A", "adopt_id": "abc"}) == {}


def test_computed_outputs_declared_as_none_are_not_inputs() -> None:
    result = provider.check({}, {"name": "A", "phone_number": None, "org_id": None})
    assert result.failures == []
    assert "phone_number" not in result.inputs


def test_a_computed_output_given_a_value_is_rejected_by_name() -> None:
    assert list(failures({"name": "A", "phone_number": "+15550000000"})) == ["phone_number"]
