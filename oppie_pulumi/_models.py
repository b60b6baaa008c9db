"""The agent as the program declares it (``AgentSpec``) and as the API returns it (``outputs_from_agent``).

Field behaviour lives beside the field: its API name, default, and whether a change replaces the agent
(``REPLACE_ON_CHANGE``, like Terraform's RequiresReplace).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "API_NAMES",
    "COMPUTED_OUTPUTS",
    "INPUT_FIELDS",
    "MODELS",
    "NEWER_MODELS",
    "OUTPUT_FIELDS",
    "REPLACE_ON_CHANGE",
    "AgentSpec",
    "api_body",
    "api_value",
    "normalized",
    "outputs_from_agent",
    "validation_failures",
]

MODELS = ("oppie-vox", "oppie-vox-turbo", "oppie-vox-2")
# Returned by newer API versions: accepted in a declaration so such agents can be adopted and managed, but
# POST /phone refuses it, so a new agent cannot be declared with it (see validation_failures(new_agent=...)).
NEWER_MODELS = ("oppie-vox-livekit",)
# Matched whole (fullmatch): with `$`, a trailing newline would pass. [0-9], not \d, which takes any script's digits.
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
# A value quoted in a check failure is cut to this many characters (a 1 MB value must not make a 1 MB reason).
SHOWN_CHARACTERS = 60

E164_REASON = "must be an E.164 number such as +14155550123: a '+', then 2 to 15 digits 0-9, nothing else"
URL_REASON = (
    "must be an http(s) URL such as https://example.com/hook: printable ASCII only (punycode for an "
    "international domain, %-escapes for the rest), no spaces or line breaks"
)
SURROGATE_REASON = (
    "must be text that can be sent: it holds a lone UTF-16 surrogate (half of a character, often of a cut emoji)"
)
LANGUAGE_LIST_REASON = (
    'must be one language code such as "en": the API takes one (a list of one code is the same as the code)'
)
# The models a new agent may use, as reasons list them: 'oppie-vox', 'oppie-vox-turbo' or 'oppie-vox-2'.
_NEW_AGENT_MODELS = ", ".join(repr(m) for m in MODELS[:-1]) + f" or {MODELS[-1]!r}"
# A pydantic message template: {got} is the value, quoted by _quoted. Lists only what a new agent may use, as the
# models a declaration also accepts (NEWER_MODELS) would be refused again for a new agent.
MODEL_REASON = (
    f"must be one of {_NEW_AGENT_MODELS} ({' and '.join(repr(m) for m in NEWER_MODELS)} is kept only by existing "
    "agents that already have it), got {got}"
)


def _sendable(value: str) -> str:
    """``value``, if it can be encoded to send: a lone surrogate cannot (httpx would raise while sending)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            sendable = False
        else:
            sendable = True
        if not sendable:
            raise ValueError(SURROGATE_REASON)
    return value


Text = Annotated[StrictStr, AfterValidator(_sendable)]
StrList = list[Text]


# The URL almost every webhook is: accepted without urlsplit (a preview checks every agent's URL), and never one
# the full test below would refuse (tests/test_models.py holds the two to that).
_PLAIN_HTTP_URL = re.compile(r"https?://[A-Za-z0-9][A-Za-z0-9.-]*(?::([0-9]{1,5}))?(?:[/?#][!-~]*)?")


def _is_http_url(value: str) -> bool:
    """An http(s) URL with a host (and a valid port, if any), in printable ASCII without spaces."""
    plain = _PLAIN_HTTP_URL.fullmatch(value)
    if plain is not None and (plain.group(1) is None or int(plain.group(1)) <= 65535):
        return True
    return _is_http_url_in_full(value)


def _is_http_url_in_full(value: str) -> bool:
    if not (value.isascii() and value.isprintable()) or " " in value:
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number in 0..65535)
    except ValueError:  # an unclosed [IPv6 host], a bad port
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class AgentSpec(BaseModel):
    """The declared agent: the create body, in Python names. Defaults are the API's own."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[
        StrictStr, Field(min_length=1, description="Name of the agent. Updated in place."), AfterValidator(_sendable)
    ]
    type: Literal["inbound", "outbound"] = Field("inbound", description="Call direction. Updated in place.")
    language: Text | StrList | None = Field(
        None, description="Main language (ISO-639-1, e.g. 'en'); newer API versions return a list of one."
    )
    accent: Text | None = Field(None, description="Accent the agent speaks with.")
    handoff_phone_number: Text | None = Field(
        None, description="E.164 number of the human to hand calls off to, e.g. +14155550123."
    )
    interruptible: StrictBool = Field(True, description="Whether callers can interrupt the agent.")
    action_ids: StrList | None = Field(
        None, description="Action ids the agent may use: null means all actions, [] means none."
    )
    instructions: StrList | None = Field(None, description="Instructions for the agent.")
    data_collection_fields: StrList | None = Field(None, description="Fields to collect from calls.")
    data_collection_webhook_url: Text | None = Field(None, description="http(s) URL that receives the collected data.")
    # The only immutable field: the API refuses to change it, so a change replaces the agent.
    model: Literal["oppie-vox", "oppie-vox-turbo", "oppie-vox-2", "oppie-vox-livekit"] = Field(
        "oppie-vox", description="Voice model. Changing it REPLACES the agent (new id, new phone number)."
    )
    first_message: Text | None = Field(None, description="First thing the agent says.")
    voice_id: Text | None = Field(None, description="Voice id.")

    # Reasons never quote the value: any free-text field can hold a secret (a token in a webhook URL), the
    # provider host sees secrets in plain text, and the engine prints reasons verbatim.
    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("language")
    @classmethod
    def _one_language(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 1:
            raise ValueError(LANGUAGE_LIST_REASON)
        return value

    @field_validator("model", mode="wrap")
    @classmethod
    def _a_known_model(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            pass
        raise PydanticCustomError("model_choice", MODEL_REASON, {"got": _quoted(value)})

    @field_validator("handoff_phone_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is not None and not E164.fullmatch(value):
            raise ValueError(E164_REASON)
        return value

    @field_validator("data_collection_webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not _is_http_url(value):
            raise ValueError(URL_REASON)
        return value


REPLACE_ON_CHANGE = frozenset({"model"})
INPUT_FIELDS: tuple[str, ...] = tuple(AgentSpec.model_fields)
# Python name -> API name, for the one field whose names differ.
API_NAMES: dict[str, str] = {name: name for name in INPUT_FIELDS} | {"action_ids": "actionIds"}
# What the API computes and returns beside the inputs, with its description (the schema's words).
COMPUTED_OUTPUTS: dict[str, str] = {
    "org_id": "Id of the organisation that owns the agent.",
    "phone_number": (
        "The phone number the API provisioned for the agent (E.164), the one callers dial. A replacement (a new "
        "`model`) gets a new number."
    ),
    "provider_external_id": "Id of the agent's phone line at the telephony provider, if the API reports one.",
    "created_at": "When the agent was created (ISO 8601, as the API reports it).",
    "updated_at": "When the agent was last changed (ISO 8601, as the API reports it).",
}
OUTPUT_FIELDS: tuple[str, ...] = INPUT_FIELDS + tuple(COMPUTED_OUTPUTS)


def validation_failures(
    props: Mapping[Any, Any], skip: frozenset[str] = frozenset(), *, new_agent: bool = False
) -> list[tuple[str, str]]:
    """``(property, reason)`` for every invalid property of ``props``, by Python name.

    Properties in ``skip`` (values still unknown during a preview) are not judged. ``new_agent``: the spec
    will be POSTed (not adopted, not an existing agent), so only the models POST /phone accepts will do.
    Never raises, whatever ``props`` holds; no reason quotes a value that can hold a secret.
    """
    failures: dict[str, str] = {}
    try:
        AgentSpec.model_validate(dict(props))
    except ValidationError as exc:
        for error in exc.errors():
            prop = _shown(str(error["loc"][0])) if error["loc"] else "name"
            if prop in skip or prop in failures:
                continue
            failures[prop] = _reason(error)
    model = props.get("model")
    if new_agent and "model" not in skip and "model" not in failures and model in NEWER_MODELS:
        failures["model"] = (
            f"{model!r} cannot be chosen for a new agent, nor for the new agent a model change makes: POST /phone "
            f"accepts only {_NEW_AGENT_MODELS}. An existing agent that already has it can be adopted (adopt_id) and "
            "managed"
        )
    return list(failures.items())


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS] + "\u2026"


def _quoted(value: Any) -> str:
    """``value`` for a reason, only ever for the enum fields (type, model): capped, and only if a scalar."""
    if isinstance(value, str):
        return repr(_shown(value))
    if value is None or isinstance(value, bool | int | float):
        return _shown(repr(value))
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else type(value).__name__


def _reason(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"is not a property of PhoneAgent (known: {', '.join(INPUT_FIELDS)})"
    if kind == "missing":
        return "is required"
    if kind == "literal_error":
        return f"must be one of {error['ctx']['expected']}, got {_quoted(error['input'])}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if len(error["loc"]) > 1:
        message = f"item {_shown(str(error['loc'][1]))}: {message}"
    return message


def defaults() -> dict[str, Any]:
    """Every input with the API's default, so a spelled default and an omitted one never differ."""
    return {name: info.default for name, info in AgentSpec.model_fields.items() if name != "name"}


def api_value(name: str, value: Any) -> Any:
    """``value`` as the API's request bodies document it."""
    if name == "language":
        # The create body documents a string: send a one-code list as that code.
        return _language_output(value)
    return value


def api_body(props: Mapping[str, Any]) -> dict[str, Any]:
    """The request body for ``props`` (Python names) in the API's field names, leaving out nulls."""
    return {
        API_NAMES[key]: api_value(key, value) for key, value in props.items() if key in API_NAMES and value is not None
    }


def outputs_from_agent(agent: Mapping[str, Any]) -> dict[str, Any]:
    """The one mapping from an agent as the API returns it to the resource's outputs.

    Every output key is present (``None`` when the API left it out) and fields the API added in newer
    versions are ignored, so a newer API never breaks a stack.
    """
    outputs = {name: agent.get(API_NAMES.get(name, name)) for name in OUTPUT_FIELDS}
    outputs["language"] = _language_output(outputs["language"])
    return outputs


def _language_output(value: Any) -> Any:
    # Newer API versions answer ["en"] for "en": keep the declared scalar form when it is one code.
    if isinstance(value, list):
        if not value:
            return None
        if len(value) == 1:
            return value[0]
    return value


def normalized(name: str, value: Any) -> Any:
    """``value`` in a form where equivalent spellings compare equal (``"en"`` == ``["en"]``)."""
    if name == "language":
        value = _language_output(value)
    if isinstance(value, list):
        return tuple(value)
    return value
