"""The one mapping between the API's agent and the resource: outputs, request bodies, equivalences."""

from __future__ import annotations

from oppie_pulumi._models import OUTPUT_FIELDS, api_body, normalized, outputs_from_agent


def test_outputs_have_every_key_in_snake_case_and_ignore_unknown_fields() -> None:
    outputs = outputs_from_agent({"id": "a1", "name": "A", "actionIds": ["x"], "speed": 1.2})
    assert set(outputs) == set(OUTPUT_FIELDS)
    assert outputs["action_ids"] == ["x"]
    assert "speed" not in outputs and "id" not in outputs


def test_language_list_of_one_is_shown_as_its_code() -> None:
    assert outputs_from_agent({"id": "a", "language": ["en"]})["language"] == "en"
    assert outputs_from_agent({"id": "a", "language": []})["language"] is None
    assert outputs_from_agent({"id": "a", "language": ["en", "fr"]})["language"] == ["en", "fr"]


def test_create_body_uses_api_names_leaves_out_nulls_and_sends_one_code_as_a_string() -> None:
    body = api_body({"name": "A", "action_ids": [], "language": ["en"], "accent": None, "adopt_id": "x"})
    assert body == {"name": "A", "actionIds": [], "language": "en"}


def test_null_and_empty_list_stay_different() -> None:
    assert normalized("action_ids", None) != normalized("action_ids", [])
    assert normalized("language", "en") == normalized("language", ["en"])
