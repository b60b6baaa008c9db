"""The plugin's package schema is generated from ``_models`` and ``_config``: it cannot drift from the resource."""

from __future__ import annotations

import json

from oppie_pulumi._config import Settings
from oppie_pulumi._models import COMPUTED_OUTPUTS, INPUT_FIELDS, OUTPUT_FIELDS, REPLACE_ON_CHANGE, AgentSpec
from oppie_pulumi.provider import PHONE_AGENT, VERSION, schema
from oppie_pulumi.provider.schema import python_name, schema_json, wire_name

AGENT = schema()["resources"][PHONE_AGENT]


def test_every_agent_field_is_an_input_and_an_output_described_by_its_model_field() -> None:
    # The descriptions start with AgentSpec's own words: the schema restates nothing.
    for name in INPUT_FIELDS:
        description = AgentSpec.model_fields[name].description
        assert description
        assert AGENT["inputProperties"][wire_name(name)]["description"].startswith(description)
        assert AGENT["properties"][wire_name(name)] == AGENT["inputProperties"][wire_name(name)]
    assert len(AGENT["inputProperties"]) == len(INPUT_FIELDS)


def test_computed_outputs_are_outputs_only_and_every_property_has_a_description() -> None:
    for name in COMPUTED_OUTPUTS:
        assert wire_name(name) in AGENT["properties"]
        assert wire_name(name) not in AGENT["inputProperties"]
    assert len(AGENT["properties"]) == len(OUTPUT_FIELDS)
    assert all(spec["description"].strip() for spec in AGENT["properties"].values())


def test_only_model_replaces_and_only_name_is_required() -> None:
    replacing = {key for key, spec in AGENT["inputProperties"].items() if spec.get("replaceOnChanges")}
    assert replacing == {wire_name(name) for name in REPLACE_ON_CHANGE} == {"model"}
    assert AGENT["requiredInputs"] == ["name"]


def test_allowed_values_come_from_the_models_literals() -> None:
    model = AGENT["inputProperties"]["model"]["description"]
    for value in ("oppie-vox", "oppie-vox-turbo", "oppie-vox-2", "oppie-vox-livekit"):
        assert f"`{value}`" in model
    # language is a code or a list of codes, as newer API versions answer.
    assert AGENT["inputProperties"]["language"]["oneOf"] == [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}},
    ]


def test_provider_config_matches_the_settings_with_a_secret_token_and_environment_fallbacks() -> None:
    variables = schema()["config"]["variables"]
    assert list(variables) == [
        "apiToken",
        "baseUrl",
        "timeoutSeconds",
        "maxRequestsPerMinute",
        "maxRetries",
        "listCacheSeconds",
        "rateLimitWindowSeconds",
    ]
    assert variables["apiToken"]["secret"] is True
    assert variables["apiToken"]["defaultInfo"] == {"environment": ["OPPIE_API_TOKEN"]}
    defaults = Settings()
    assert variables["baseUrl"]["default"] == defaults.base_url
    assert variables["maxRetries"] == {**variables["maxRetries"], "type": "integer", "default": defaults.max_retries}
    assert variables["listCacheSeconds"]["default"] == 2 and variables["rateLimitWindowSeconds"]["default"] == 60
    assert schema()["provider"]["inputProperties"] == variables
    # The provider's own outputs never include the token.
    assert "apiToken" not in schema()["provider"]["properties"]


def test_names_convert_between_the_schema_and_the_models() -> None:
    assert wire_name("handoff_phone_number") == "handoffPhoneNumber"
    assert wire_name("action_ids") == "actionIds"
    for name in OUTPUT_FIELDS:
        assert python_name(wire_name(name)) == name


def test_the_schema_names_the_package_and_its_version() -> None:
    document = json.loads(schema_json())
    assert (document["name"], document["version"]) == ("oppie", VERSION)
    assert document["language"]["python"]["packageName"] == "pulumi_oppie"
