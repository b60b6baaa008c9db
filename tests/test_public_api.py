"""The public surface other code relies on: names, the resource's signature and type token."""

from __future__ import annotations

import inspect

import oppie_pulumi
from oppie_pulumi import PhoneAgent, PhoneAgentProvider


def test_public_names_are_exactly_these() -> None:
    assert sorted(oppie_pulumi.__all__) == sorted(
        [
            "AgentSpec",
            "AmbiguousCreate",
            "ApiError",
            "ConfigError",
            "DeadlineExceeded",
            "InvalidRequest",
            "MalformedResponse",
            "NotFound",
            "OppieError",
            "PhoneAgent",
            "PhoneAgentArgs",
            "PhoneAgentProvider",
            "RateLimited",
            "ServerError",
            "Settings",
            "TransportError",
            "Unauthorized",
            "__version__",
        ]
    )
    for name in oppie_pulumi.__all__:
        assert getattr(oppie_pulumi, name) is not None


def test_phone_agent_takes_the_documented_keyword_arguments() -> None:
    parameters = inspect.signature(PhoneAgent.__init__).parameters
    assert list(parameters) == [
        "self",
        "resource_name",
        "name",
        "type",
        "language",
        "accent",
        "handoff_phone_number",
        "interruptible",
        "action_ids",
        "instructions",
        "data_collection_fields",
        "data_collection_webhook_url",
        "model",
        "first_message",
        "voice_id",
        "adopt_id",
        "opts",
    ]
    assert all(p.kind is p.KEYWORD_ONLY for n, p in parameters.items() if n not in ("self", "resource_name"))


def test_type_token_and_provider_constructor() -> None:
    assert PhoneAgent._resource_type_name == "dynamic/oppie:PhoneAgent"
    assert list(inspect.signature(PhoneAgentProvider).parameters) == []


def test_errors_form_one_hierarchy() -> None:
    for name in ("ApiError", "TransportError", "ConfigError", "AmbiguousCreate", "DeadlineExceeded"):
        assert issubclass(getattr(oppie_pulumi, name), oppie_pulumi.OppieError)
    for name in ("NotFound", "Unauthorized", "InvalidRequest", "RateLimited", "ServerError", "MalformedResponse"):
        assert issubclass(getattr(oppie_pulumi, name), oppie_pulumi.ApiError)
