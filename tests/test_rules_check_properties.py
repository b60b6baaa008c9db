"""Property-based tests of ``agents.rules.check`` over thousands of generated inputs (hypothesis).

check runs in every preview on whatever a program computed, so it must never raise: a valid spec gives
no failure, and each invalid property gives a failure naming exactly that property.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oppie_pulumi import PhoneAgentProvider
from oppie_pulumi._models import MODELS

from .support import examples

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
    "language": st.none() | texts | st.lists(texts, max_size=1),
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


# Values one slip away from valid, where a validator that is almost right differs from the API.
surrogated = texts.map(lambda s: s + "\ud800")
NEAR: dict[str, st.SearchStrategy[Any]] = {
    "name": st.sampled_from(["", " ", "\t\n", "\u3000"]) | surrogated,
    "handoff_phone_number": e164.flatmap(
        lambda p: st.sampled_from(
            [p[1:], p + "\n", "\n" + p, p + " ", "+0" + p[2:], p.replace("1", "\u0661"), p + "1" * 15]
        )
    ),
    "data_collection_webhook_url": urls.flatmap(
        lambda u: st.sampled_from(
            [
                u + "\n",
                u + " x",
                u.replace("https", "ftp"),
                u.replace(".", "\uff0e"),
                u.replace("://", ":/"),
                "http://[abc",
            ]
        )
    ),
    "language": st.lists(st.sampled_from(["en", "fr", "de"]), min_size=2, max_size=3) | surrogated,
    "action_ids": st.lists(surrogated, min_size=1, max_size=2),
    "instructions": st.lists(surrogated, min_size=1, max_size=2),
    "data_collection_fields": st.lists(surrogated, min_size=1, max_size=2),
    "accent": surrogated,
    "first_message": surrogated,
    "voice_id": surrogated,
    "type": st.sampled_from(["Inbound", "inbound ", "outbound\n"]),
    "model": st.sampled_from(["oppie-vox ", "OPPIE-VOX", "oppie-vox-3"]),
    "interruptible": st.sampled_from([0, 1, "true"]),
}


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": draw(nonblank)}
    for prop in draw(st.sets(st.sampled_from(sorted(VALID)))):
        spec[prop] = draw(VALID[prop])
    return spec


def _text(value: Any) -> bool:
    """A string the API can store: no lone UTF-16 surrogate (it cannot be encoded to send)."""
    return isinstance(value, str) and not any("\ud800" <= ch <= "\udfff" for ch in value)


def _url(value: Any) -> bool:
    """http(s), a host, an optional port of at most 65535, then any printable ASCII without spaces."""
    if not isinstance(value, str):
        return False
    match = re.fullmatch(
        r"(?i:https?)://(?:[^@/?#\s]*@)?([a-z0-9._~%!$&'()*+,;=-]+)(?::([0-9]*))?([/?#][!-~]*)?", value
    )
    return bool(match) and (not match[2] or int(match[2]) <= 65535)


def is_valid(prop: str, value: Any) -> bool:
    """What the API accepts, written from API.md and the seed: deliberately not the validator check uses."""
    if prop == "name":
        return _text(value) and value.strip() != ""
    if prop == "type":
        return value in ("inbound", "outbound")
    if prop == "model":
        return isinstance(value, str) and value in (*MODELS, "oppie-vox-livekit")
    if prop == "interruptible":
        return isinstance(value, bool)
    if prop in ("action_ids", "instructions", "data_collection_fields"):
        return isinstance(value, list) and all(_text(item) for item in value)
    if prop == "language":
        return _text(value) or (isinstance(value, list) and len(value) <= 1 and all(_text(item) for item in value))
    if prop == "handoff_phone_number":
        return isinstance(value, str) and re.fullmatch(r"\+[1-9][0-9]{1,14}", value) is not None
    if prop == "data_collection_webhook_url":
        return _url(value)
    return _text(value)  # accent, first_message, voice_id


def test_the_oracle_knows_what_the_api_refuses() -> None:
    """The oracle is independent of check; pin it on the cases that fooled check."""
    assert not is_valid("handoff_phone_number", "14155550123")
    assert not is_valid("handoff_phone_number", "+14155550123\n")
    assert not is_valid("handoff_phone_number", "+1\u0664\u0661\u0665")
    assert not is_valid("data_collection_webhook_url", "https://example.com/\n")
    assert not is_valid("data_collection_webhook_url", "http://[abc")
    assert not is_valid("data_collection_webhook_url", "https://exa\uff0fmple.com")
    assert not is_valid("language", ["en", "fr"])
    assert not is_valid("accent", "\ud800")
    assert is_valid("data_collection_webhook_url", "https://hooks.example.com:443/x?a=b#c")


@settings(max_examples=examples(1500), suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_valid_specs_produce_no_failure(spec: dict[str, Any]) -> None:
    result = provider.check({}, spec)
    assert result.failures == []
    assert result.inputs["name"] == spec["name"]


@settings(max_examples=examples(1500), suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs(), st.sampled_from([*sorted(VALID), "name"]), st.data())
def test_each_invalid_property_is_named_and_check_never_raises(
    spec: dict[str, Any], prop: str, data: st.DataObject
) -> None:
    value = data.draw(anything | NEAR[prop], label="value")
    spec = {**spec, prop: value}
    result = provider.check({}, spec)
    named = [f.property for f in result.failures]
    # None means "the API default" for every property but name
    if (value is None and prop != "name") or is_valid(prop, value):
        assert named == []
    else:
        assert named == [prop]
        assert all(f.reason for f in result.failures)


@settings(max_examples=examples(1000))
@given(st.dictionaries(texts, anything, max_size=8))
def test_check_never_raises_on_arbitrary_property_bags(news: dict[str, Any]) -> None:
    result = provider.check({}, news)
    assert all(isinstance(f.property, str) and f.reason for f in result.failures)
