"""The API's bodies as pydantic models (from the POST /phone seed), and its validation messages.

The real API is NestJS with class-validator (`whitelist`, `forbidNonWhitelisted`): invalid bodies answer 400
with a list of messages that each name the field. `validation_messages` turns pydantic's errors into those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

AgentType = Literal["inbound", "outbound"]
AgentModel = Literal["oppie-vox", "oppie-vox-turbo", "oppie-vox-2"]

AGENT_TYPES: tuple[str, ...] = ("inbound", "outbound")
AGENT_MODELS: tuple[str, ...] = ("oppie-vox", "oppie-vox-turbo", "oppie-vox-2")
# [0-9], not \d (which takes any script's digits); the Rust regex engine's `$` is the end of the text.
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
_SURROGATES = frozenset(chr(code) for code in range(0xD800, 0xE000))
SURROGATE = "lone UTF-16 surrogate"


def _well_formed(value: str) -> str:
    # JSON can escape half of a surrogate pair ("\ud800"); no UTF-8 database column can store it.
    if not value.isascii() and not _SURROGATES.isdisjoint(value):
        raise ValueError(SURROGATE)
    return value


def _not_blank(value: str) -> str:
    # Stricter than class-validator's IsNotEmpty (which takes "   "): a blank name is no name, and the
    # provider's check refuses it too; the two must agree.
    if not value.strip():
        raise ValueError("blank")
    return value


def _http_url(value: str) -> str:
    """An http(s) URL with a host, in printable ASCII (punycode and %-escapes for the rest), no whitespace."""
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError("must be an http(s) URL")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (a port must be a number in 0..65535)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host
        raise ValueError("must be an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    # Stored as given: normalising (a trailing slash, say) would show up as drift in the client.
    return value


Text = Annotated[str, AfterValidator(_well_formed)]
NonEmptyStr = Annotated[str, Field(min_length=1), AfterValidator(_well_formed), AfterValidator(_not_blank)]
E164 = Annotated[str, Field(pattern=E164_PATTERN, examples=["+14155550123"])]
HttpUrl = Annotated[str, AfterValidator(_http_url), Field(json_schema_extra={"format": "uri"})]

_DESCRIPTIONS = {
    "name": "The name of the AI phone agent",
    "type": "Whether the agent answers calls (inbound) or places them (outbound)",
    "language": "The language the AI phone agent should mainly speak in",
    "accent": "The accent the AI phone agent should mainly speak in",
    "handoff_phone_number": "The phone number of the human agent to hand off the call to (E.164)",
    "interruptible": "Whether the agent can be interrupted or not",
    "actionIds": "A list of action ids the AI phone agent has access to. A null value means all actions. "
    "An empty list means no actions",
    "instructions": "A list of instructions",
    "data_collection_fields": "A list of fields to collect data about",
    "data_collection_webhook_url": "The webhook url to send the collected data to",
    "model": "The AI model of the agent. This cannot be changed after creation",
    "first_message": "The first message the AI phone agent should say",
    "voice_id": "The voice id",
}

# A field left out of a PATCH body stays unchanged; an explicit JSON null is validated against the field's
# type, so `"name": null` is refused while `"language": null` clears the language.
_OMITTED: Any = None

# Strict: the API does not coerce ("yes" is not a boolean, 1 is not a string). Forbid: NestJS's
# forbidNonWhitelisted refuses unknown properties, which also catches a client's misspelt field.
_BODY_CONFIG = ConfigDict(strict=True, extra="forbid")


class AgentCreate(BaseModel):
    """The body of `POST /phone`: the seed's 13 fields, with the API's names."""

    model_config = _BODY_CONFIG

    name: NonEmptyStr = Field(description=_DESCRIPTIONS["name"])
    type: AgentType = Field(default="inbound", description=_DESCRIPTIONS["type"])
    language: Text | None = Field(default=None, description=_DESCRIPTIONS["language"])
    accent: Text | None = Field(default=None, description=_DESCRIPTIONS["accent"])
    handoff_phone_number: E164 | None = Field(default=None, description=_DESCRIPTIONS["handoff_phone_number"])
    interruptible: bool = Field(default=True, description=_DESCRIPTIONS["interruptible"])
    action_ids: list[Text] | None = Field(default=None, alias="actionIds", description=_DESCRIPTIONS["actionIds"])
    instructions: list[Text] | None = Field(default=None, description=_DESCRIPTIONS["instructions"])
    data_collection_fields: list[Text] | None = Field(default=None, description=_DESCRIPTIONS["data_collection_fields"])
    data_collection_webhook_url: HttpUrl | None = Field(
        default=None, description=_DESCRIPTIONS["data_collection_webhook_url"]
    )
    model: AgentModel = Field(default="oppie-vox", description=_DESCRIPTIONS["model"])
    first_message: Text | None = Field(default=None, description=_DESCRIPTIONS["first_message"])
    voice_id: Text | None = Field(default=None, description=_DESCRIPTIONS["voice_id"])


class AgentUpdate(BaseModel):
    """The body of `PATCH /phone/{id}`: any subset of the create fields; `model` may only repeat itself."""

    model_config = _BODY_CONFIG

    name: NonEmptyStr = Field(default=_OMITTED, description=_DESCRIPTIONS["name"])
    type: AgentType = Field(default=_OMITTED, description=_DESCRIPTIONS["type"])
    language: Text | None = Field(default=_OMITTED, description=_DESCRIPTIONS["language"])
    accent: Text | None = Field(default=_OMITTED, description=_DESCRIPTIONS["accent"])
    handoff_phone_number: E164 | None = Field(default=_OMITTED, description=_DESCRIPTIONS["handoff_phone_number"])
    interruptible: bool = Field(default=_OMITTED, description=_DESCRIPTIONS["interruptible"])
    action_ids: list[Text] | None = Field(default=_OMITTED, alias="actionIds", description=_DESCRIPTIONS["actionIds"])
    instructions: list[Text] | None = Field(default=_OMITTED, description=_DESCRIPTIONS["instructions"])
    data_collection_fields: list[Text] | None = Field(
        default=_OMITTED, description=_DESCRIPTIONS["data_collection_fields"]
    )
    data_collection_webhook_url: HttpUrl | None = Field(
        default=_OMITTED, description=_DESCRIPTIONS["data_collection_webhook_url"]
    )
    model: AgentModel = Field(default=_OMITTED, description=_DESCRIPTIONS["model"])
    first_message: Text | None = Field(default=_OMITTED, description=_DESCRIPTIONS["first_message"])
    voice_id: Text | None = Field(default=_OMITTED, description=_DESCRIPTIONS["voice_id"])

    def changes(self) -> dict[str, Any]:
        """The fields the body set, by API name."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class Agent(BaseModel):
    """An agent as the API returns it (documentation only: the sandbox serves the stored JSON as is)."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    org_id: str
    phone_number: str | None
    name: str | None
    type: AgentType
    language: str | list[str] | None = Field(description="A string; newer API versions return a list")
    accent: str | None
    handoff_phone_number: str | None
    interruptible: bool
    action_ids: list[str] | None = Field(alias="actionIds")
    instructions: list[str] | None
    data_collection_fields: list[str] | None
    data_collection_webhook_url: str | None
    model: AgentModel
    voice_id: str | None
    first_message: str | None
    created_at: str = Field(examples=["2026-11-24T07:06:17.123Z"])
    updated_at: str = Field(examples=["2026-11-24T07:06:17.123Z"])
    provider_external_id: str | None


class ErrorEnvelope(BaseModel):
    """Every error body: `{"statusCode": 404, "error": "Not Found", "message": "..."}`."""

    model_config = ConfigDict(populate_by_name=True)

    status_code: int = Field(alias="statusCode")
    error: str
    message: str | list[str]


_STRING_FIELDS = frozenset({"name", "language", "accent", "first_message", "voice_id"})
_LIST_FIELDS = frozenset({"actionIds", "instructions", "data_collection_fields"})
_ALL_FIELDS = frozenset(_DESCRIPTIONS)


def _field_message(field: str, error: Mapping[str, Any], nested: bool) -> list[str]:
    kind = error.get("type", "")
    if kind == "string_unicode" or (kind == "value_error" and SURROGATE in str(error.get("msg", ""))):
        held = "holds strings, one with" if field in _LIST_FIELDS else "holds"
        return [f"{field} must be well-formed text: it {held} a {SURROGATE}"]
    if field == "name" and kind == "value_error":
        return ["name should not be empty"]
    if field == "type":
        return [f"type must be one of the following values: {', '.join(AGENT_TYPES)}"]
    if field == "model":
        return [f"model must be one of the following values: {', '.join(AGENT_MODELS)}"]
    if field == "interruptible":
        return ["interruptible must be a boolean value"]
    if field in _LIST_FIELDS:
        return [f"each value in {field} must be a string" if nested else f"{field} must be an array"]
    if field == "handoff_phone_number" and kind == "string_pattern_mismatch":
        return ["handoff_phone_number must be a valid phone number in E.164 format, e.g. +14155550123"]
    if field == "data_collection_webhook_url" and kind == "value_error":
        return ["data_collection_webhook_url must be a URL address (http or https)"]
    if kind == "missing":
        return [f"{field} should not be empty", f"{field} must be a string"]
    if kind == "string_too_short":
        return [f"{field} should not be empty"]
    if field in _STRING_FIELDS or field in ("handoff_phone_number", "data_collection_webhook_url"):
        return [f"{field} must be a string"]
    return [f"{field} is invalid: {error.get('msg', 'invalid value')}"]


def validation_messages(errors: Iterable[Mapping[str, Any]], required: Sequence[str] = ()) -> list[str]:
    """class-validator style messages, one per problem, each naming the field; duplicates dropped.

    `required` names the body's required fields: a request without any body reads, as in NestJS, as an
    empty object, so what is reported is those fields missing.
    """
    messages: list[str] = []
    for error in errors:
        loc: Sequence[Any] = error.get("loc", ())
        if loc and loc[0] == "body":
            loc = loc[1:]
        if error.get("type") == "extra_forbidden" and loc:
            found = [f"property {loc[0]} should not exist"]
        elif not loc or not isinstance(loc[0], str):
            if error.get("type") == "missing" and required:
                found = [text for field in required for text in _field_message(field, error, nested=False)]
            else:
                found = ["the body must be a JSON object"]
        elif loc[0] in _ALL_FIELDS:
            found = _field_message(loc[0], error, nested=len(loc) > 1)
        else:
            found = [f"{'.'.join(str(part) for part in loc)} {error.get('msg', 'is invalid')}"]
        messages.extend(message for message in found if message not in messages)
    return messages
