"""``agents.rules.check`` (through ``PhoneAgentProvider.check``): validation at preview time, naming the property,
with the API's defaults filled in."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN

from oppie_pulumi import PhoneAgentProvider
from oppie_pulumi._models import validation_failures

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


def test_language_may_be_a_code_or_a_list_of_one_code() -> None:
    """Newer API versions answer ["en"] for "en"; the create body takes one code, so ["en", "fr"] cannot be sent
    (this test used to pass ["en", "fr"], which the API then refused: issue 11, item 3)."""
    assert failures({"name": "A", "language": "en"}) == {}
    assert failures({"name": "A", "language": ["en"]}) == {}
    assert list(failures({"name": "A", "language": ["en", "fr"]})) == ["language"]


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


# -- what check passes, the API accepts (issue 11, item 3) ----------------------------------------------------

SURROGATE = "\ud800"


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        pytest.param("language", ["en", "fr"], id="two language codes: the create body takes one"),
        pytest.param("handoff_phone_number", "+14155550123\n", id="phone with a trailing newline"),
        pytest.param("handoff_phone_number", "14155550123", id="phone without the plus"),
        pytest.param("handoff_phone_number", "+1\u0664\u0661\u0665\u0665\u0665", id="phone with Arabic-Indic digits"),
        pytest.param("data_collection_webhook_url", "https://example.com/hook\n", id="url with a trailing newline"),
        pytest.param("data_collection_webhook_url", "http://[abc", id="url with a broken IPv6 host"),
        pytest.param("data_collection_webhook_url", "https://example\uff0ecom/hook", id="url with full-width dot"),
        pytest.param("data_collection_webhook_url", "https://exa\uff0fmple.com", id="url with full-width solidus"),
        pytest.param("data_collection_webhook_url", "https://example.com:99999/x", id="url with a port too large"),
        pytest.param("data_collection_webhook_url", "http://:80/x", id="url without a host"),
        pytest.param("name", "Support" + SURROGATE, id="lone surrogate in name"),
        pytest.param("accent", SURROGATE, id="lone surrogate in accent"),
        pytest.param("language", "e" + SURROGATE, id="lone surrogate in language"),
        pytest.param("first_message", "hi \udc80", id="lone surrogate in first_message"),
        pytest.param("voice_id", SURROGATE, id="lone surrogate in voice_id"),
        pytest.param("instructions", ["ok", "\udfff"], id="lone surrogate in an instruction"),
        pytest.param("action_ids", [SURROGATE], id="lone surrogate in an action id"),
        pytest.param("data_collection_fields", ["a" + SURROGATE], id="lone surrogate in a data field"),
    ],
)
def test_values_the_api_refuses_fail_check_naming_the_property(prop: str, value: Any) -> None:
    assert list(failures({"name": "Support", prop: value} if prop != "name" else {"name": value})) == [prop]


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("language", ["en"]),
        ("language", []),
        ("handoff_phone_number", "+14155550123"),
        ("data_collection_webhook_url", "https://hooks.example.com/x?sig=abc#frag"),
        ("data_collection_webhook_url", "HTTP://EXAMPLE.COM:8080"),
        ("data_collection_webhook_url", "http://[::1]:8080/hook"),
        ("name", "Caf\u00e9 \U0001f680"),
    ],
)
def test_values_the_api_accepts_pass_check(prop: str, value: Any) -> None:
    assert failures({"name": "Support", prop: value} if prop != "name" else {"name": value}) == {}


def test_livekit_model_fails_check_for_a_new_agent_and_passes_for_adoption_or_an_existing_one() -> None:
    """POST /phone refuses oppie-vox-livekit: only an agent that already has it can be adopted and managed."""
    assert list(failures({"name": "A", "model": "oppie-vox-livekit"})) == ["model"]
    assert failures({"name": "A", "model": "oppie-vox-livekit", "adopt_id": "agt_1"}) == {}
    olds = {"name": "A", "model": "oppie-vox-livekit"}
    assert provider.check(olds, {"name": "B", "model": "oppie-vox-livekit"}).failures == []


def test_an_unknown_model_lists_only_the_models_a_new_agent_may_use() -> None:
    """Regression (issue "A new user's first hour", 7c): the reason listed oppie-vox-livekit among the allowed
    models, and the next check then refused it for a new agent."""
    assert failures({"name": "A", "model": "gpt-4"}) == {
        "model": "must be one of 'oppie-vox', 'oppie-vox-turbo' or 'oppie-vox-2' ('oppie-vox-livekit' is kept only "
        "by existing agents that already have it), got 'gpt-4'"
    }


def test_livekit_for_a_new_agent_says_that_only_an_agent_that_has_it_may_keep_it() -> None:
    assert failures({"name": "A", "model": "oppie-vox-livekit"}) == {
        "model": "'oppie-vox-livekit' cannot be chosen for a new agent, nor for the new agent a model change "
        "makes: POST /phone accepts only 'oppie-vox', 'oppie-vox-turbo' or 'oppie-vox-2'. An existing agent that "
        "already has it can be adopted (adopt_id) and managed"
    }


def test_changing_an_existing_agent_to_livekit_fails_check_because_its_replacement_is_a_new_agent() -> None:
    """A model change replaces the agent: the replacement is POSTed, and POST /phone refuses oppie-vox-livekit
    (check let it through, and the create failed with a 400 after the preview had shown a replacement)."""
    olds = {"name": "A", "model": "oppie-vox"}
    assert [f.property for f in provider.check(olds, {"name": "A", "model": "oppie-vox-livekit"}).failures] == ["model"]
    # A state written before `model` was declared holds none: no replacement, so nothing to refuse.
    assert provider.check({"name": "A"}, {"name": "A", "model": "oppie-vox-livekit"}).failures == []


def test_validation_tells_a_new_livekit_agent_from_an_adopted_one() -> None:
    from oppie_pulumi._models import validation_failures

    assert [prop for prop, _ in validation_failures({"name": "A", "model": "oppie-vox-livekit"}, new_agent=True)] == [
        "model"
    ]
    assert validation_failures({"name": "A", "model": "oppie-vox-livekit"}) == []


def deep_list(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("prop", ["name", "type", "model", "language", "action_ids", "accent"])
def test_validation_of_a_1000_deep_value_reports_it_and_does_not_raise(prop: str) -> None:
    from oppie_pulumi._models import validation_failures

    assert [name for name, _ in validation_failures({"name": "A", prop: deep_list(1000)})] == [prop]


@pytest.mark.parametrize("news", [{"name": "A", 1: "x"}, {"name": "A", "accent": deep_list(1000)}], ids=["key", "deep"])
def test_check_reports_non_string_keys_and_deep_nesting_instead_of_raising(news: dict[Any, Any]) -> None:
    assert provider.check({}, news).failures


# -- check failures never quote a value that can hold a secret (sibling issue) ------------------------------

SECRET = "s3cr3t-Value-9f8e"


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("data_collection_webhook_url", f"ftp://hooks.example.com/x?token={SECRET}"),
        ("data_collection_webhook_url", f"hooks.example.com/{SECRET}"),
        ("handoff_phone_number", f"+1 {SECRET}"),
        ("name", ["Support", SECRET]),
        ("instructions", [SECRET, 3]),
        ("first_message", {"text": SECRET}),
        ("accent", [SECRET]),
        ("language", [SECRET, SECRET]),
        ("voice_id", 7),
        (f"unknown_{SECRET}"[:5], SECRET),
    ],
)
def test_no_failure_reason_quotes_a_value_that_can_hold_a_secret(prop: str, value: Any) -> None:
    found = failures({"name": "Support", prop: value} if prop != "name" else {"name": value})
    assert list(found) == [prop]
    assert SECRET not in found[prop]


def test_a_url_failure_says_what_is_wrong_with_an_example() -> None:
    reason = failures({"name": "A", "data_collection_webhook_url": f"ftp://x/?token={SECRET}"})[
        "data_collection_webhook_url"
    ]
    assert "must be an http(s) URL such as https://example.com/hook" in reason


@pytest.mark.parametrize("prop", ["type", "model"])
def test_a_quoted_enum_value_is_capped_at_60_characters(prop: str) -> None:
    reason = failures({"name": "A", prop: "x" * 1_000_000})[prop]
    assert "x" * 60 + "\u2026" in reason and "x" * 61 not in reason
    assert len(reason) < 300


def test_a_huge_unknown_property_name_is_capped_in_the_failure() -> None:
    found = provider.check({}, {"name": "A", "k" * 100_000: 1}).failures
    assert len(found) == 1 and len(found[0].property) < 100 and len(found[0].reason) < 400


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (["oppie-vox"], "a list"),
        ({"name": "oppie-vox"}, "a mapping"),
        (3, "3"),
        (2.5, "2.5"),
        (True, "True"),
        (b"oppie-vox", "bytes"),
        ("gpt-4", "'gpt-4'"),
    ],
)
def test_a_bad_model_says_what_was_given_by_value_for_a_scalar_and_by_kind_for_the_rest(value: Any, shown: str) -> None:
    [failure] = provider.check({}, {"name": "Support", "model": value}).failures
    assert failure.property == "model"
    assert failure.reason.endswith(f", got {shown}"), failure.reason


def test_a_property_still_unknown_in_a_preview_does_not_hide_the_failures_of_the_others() -> None:
    result = provider.check({}, {"name": UNKNOWN, "model": "gpt"})
    assert [f.property for f in result.failures] == ["model"]


def test_a_lone_surrogate_is_refused_saying_what_it_is() -> None:
    [failure] = provider.check({}, {"name": "Support", "first_message": "Hi \ud83d"}).failures
    assert failure.property == "first_message"
    assert "lone UTF-16 surrogate (half of a character, often of a cut emoji)" in failure.reason


def test_a_property_with_several_errors_or_skipped_does_not_hide_the_failures_after_it() -> None:
    # language fails both its forms (a code, a list of codes): two errors for one property, one failure.
    assert [prop for prop, _ in validation_failures({"name": "S", "language": 3, "model": "gpt"})] == [
        "language",
        "model",
    ]
    assert [prop for prop, _ in validation_failures({"name": "", "model": "gpt"}, skip=frozenset({"name"}))] == [
        "model"
    ]


# -- inputs the engine already holds are not judged again -------------------------------------------------------

# What a refresh can put in the inputs: the live agent's values, here a language list the API answered with.
LIVE = provider.check({}, {"name": "Support", "first_message": "Hello"}).inputs | {"language": ["en", "fr"]}


def test_inputs_exactly_as_the_prior_ones_are_not_judged_again() -> None:
    """They were judged when new, or are the live agent's (a refresh): an unchanged stack previews clean."""
    assert validation_failures(LIVE) != [], "the live value is one check would refuse if it were new"
    assert provider.check(LIVE, dict(LIVE)).failures == []


def test_a_changed_input_has_every_input_judged_again() -> None:
    changed = provider.check(LIVE, {**LIVE, "first_message": "Welcome"})
    assert [f.property for f in changed.failures] == ["language"]


def test_the_same_value_of_another_type_is_judged() -> None:
    """``1 == True`` in Python, but 1 is not a boolean to the API."""
    prior = provider.check({}, {"name": "Support"}).inputs
    assert [f.property for f in provider.check(prior, {**prior, "interruptible": 1}).failures] == ["interruptible"]


def test_an_unknown_property_beside_unchanged_inputs_is_judged() -> None:
    prior = provider.check({}, {"name": "Support"}).inputs
    assert [f.property for f in provider.check(prior, {**prior, "speed": 2}).failures] == ["speed"]


def test_unknown_values_in_the_hosts_object_form_pass_through_untouched_nested_or_not() -> None:
    """pulumi >= 3.2xx's dynamic host hands over ``pulumi.output.Unknown`` objects, not the sentinel string: as a
    property's value or inside a list, they are not judged (a boolean or a list of strings would fail)."""
    later, inside = Unknown(), Unknown()
    result = provider.check({}, {"name": "Support", "interruptible": later, "instructions": ["Be kind", inside]})
    assert result.failures == []
    assert result.inputs["interruptible"] is later and result.inputs["instructions"][1] is inside
