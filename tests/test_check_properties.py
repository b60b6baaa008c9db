"""Property-based tests of check over thousands of generated inputs (hypothesis).

check runs in every preview on whatever a program computed, so it must never raise: a valid spec gives
no failure, and each invalid property gives a failure naming exactly that property.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oppie_pulumi import AgentSpec, PhoneAgentProvider
from oppie_pulumi._models import MODELS

provider = PhoneAgentProvider()

texts = st.text(max_size=40)
nonblank = texts.filter(lambda s: s.strip() != "")
str_lists = st.none() | st.lists(texts, max_size=5)
e164 = st.from_regex(r"\+[1-9][0-9]{1,14}", fullmatch=True)
urls = st.builds(
    lambda host, path: f"https://{host}.example.com/{path}",
    st.from_regex(r"[a-z]{1,10}", fullmatch=True),
    st.from_regex(r"[a-z0-9/]{0,20}", fullmatch=True),
)

VALID: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(["inbound", "outbound"]),
    "language": st.none() | texts | st.lists(texts, max_size=3),
    "accent": st.none() | texts,
    "handoff_phone_number": st.none() | e164,
    "interruptible": st.booleans(),
    "action_ids": str_lists,
    "instructions": str_lists,
    "data_collection_fields": str_lists,
    "data_collection_webhook_url": st.none() | urls,
    "model": st.sampled_from(MODELS),
    "first_message": st.none() | texts,
    "voice_id": st.none() | texts,
}

anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=6,
)


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": draw(nonblank)}
    for prop in draw(st.sets(st.sampled_from(sorted(VALID)))):
        spec[prop] = draw(VALID[prop])
    return spec


def is_valid(prop: str, value: Any) -> bool:
    try:
        AgentSpec.model_validate({"name": "x", prop: value} if prop != "name" else {"name": value})
    except Exception:
        return False
    return True


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_valid_specs_produce_no_failure(spec: dict[str, Any]) -> None:
    result = provider.check({}, spec)
    assert result.failures == []
    assert result.inputs["name"] == spec["name"]


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs(), st.sampled_from([*sorted(VALID), "name"]), anything)
def test_each_invalid_property_is_named_and_check_never_raises(spec: dict[str, Any], prop: str, value: Any) -> None:
    spec = {**spec, prop: value}
    result = provider.check({}, spec)
    named = [f.property for f in result.failures]
    # None means "the API default" for every property but name
    if (value is None and prop != "name") or is_valid(prop, value):
        assert named == []
    else:
        assert named == [prop]
        assert all(f.reason for f in result.failures)


@settings(max_examples=1000)
@given(st.dictionaries(texts, anything, max_size=8))
def test_check_never_raises_on_arbitrary_property_bags(news: dict[str, Any]) -> None:
    result = provider.check({}, news)
    assert all(isinstance(f.property, str) and f.reason for f in result.failures)
