"""The one mapping between the API's agent and the resource: outputs, request bodies, equivalences."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oppie_pulumi._models import (
    OUTPUT_FIELDS,
    _is_http_url,
    _is_http_url_in_full,
    api_body,
    normalized,
    outputs_from_agent,
)

from .support import examples


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


URL_PARTS = st.sampled_from(
    [
        "http",
        "https",
        "HTTP",
        "ftp",
        "://",
        ":",
        "/",
        "?",
        "#",
        "@",
        "[",
        "]",
        ".",
        "-",
        "a",
        "Z",
        "0",
        "9",
        "65535",
        "65536",
        "99999",
        "example.com",
        " ",
        "\t",
        "é",
        "%20",
        "xn--bcher-kva",
        "localhost",
        "",
    ]
)


@settings(max_examples=examples(2000), deadline=None)
@given(st.lists(URL_PARTS, max_size=12).map("".join) | st.text(max_size=40))
def test_the_quick_url_test_never_accepts_what_the_full_one_refuses(value: str) -> None:
    """The common webhook URL is accepted by a regular expression before urlsplit (a preview checks every agent's
    URL); it must agree with the full test on every value."""
    assert _is_http_url(value) == _is_http_url_in_full(value)


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("https://hooks.example.com/x?key=1#top", True),
        ("http://localhost:65535/", True),
        ("http://localhost:65536/", False),
        ("https://exa mple.com", False),
        ("https://", False),
        ("ftp://example.com", False),
        ("HTTPS://EXAMPLE.COM/", True),
    ],
)
def test_urls_are_judged_the_same_by_both_tests(url: str, valid: bool) -> None:
    assert _is_http_url(url) is valid and _is_http_url_in_full(url) is valid
