"""The package schema of the ``oppie`` plugin, generated from ``_models`` and ``_config``.

The schema is what lets every Pulumi language use the plugin: the engine type-checks YAML programs against it,
``pulumi package gen-sdk`` writes the SDKs from it and ``pulumi import`` writes code from it. Nothing here restates
the agent: properties, their types, allowed values, defaults and descriptions come from ``AgentSpec``; the
replace-on-change property from ``REPLACE_ON_CHANGE``; the config keys, variables and defaults from ``Settings``.
The computed outputs' descriptions come from ``COMPUTED_OUTPUTS``, the settings' from ``_config.SOURCES``.

Names: Pulumi schemas spell properties in camelCase (``handoffPhoneNumber``), and every SDK maps them to its
language's style (Python ``handoff_phone_number``, as the dynamic ``PhoneAgent`` spells them). ``wire_name`` and
``python_name`` convert at the plugin's edge, so the rest of the package keeps ``_models``' Python names.
"""

from __future__ import annotations

import dataclasses
import json
import re
from functools import cache
from typing import Any

from .._config import SOURCES, Settings
from .._version import __version__

__all__ = ["PACKAGE", "PHONE_AGENT", "VERSION", "python_name", "schema", "schema_json", "wire_name"]

PACKAGE = "oppie"
PHONE_AGENT = f"{PACKAGE}:index:PhoneAgent"
VERSION = __version__


def wire_name(name: str) -> str:
    """The schema's (camelCase) name of a ``_models`` property: ``handoff_phone_number`` -> ``handoffPhoneNumber``."""
    if name.startswith("_"):
        return name
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def python_name(name: str) -> str:
    """The ``_models`` name of a schema property: ``handoffPhoneNumber`` -> ``handoff_phone_number``.

    Engine keys (``__defaults``) are returned as they are.
    """
    if name.startswith("_"):
        return name
    return re.sub(r"[A-Z]", lambda match: "_" + match.group().lower(), name)


def _type_spec(json_schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A Pulumi type spec for one pydantic JSON-schema property, and the allowed values if it is an enum."""
    variants = [v for v in json_schema.get("anyOf", [json_schema]) if v.get("type") != "null"]
    allowed = [value for v in variants for value in v.get("enum", [])]
    specs = []
    for variant in variants:
        if variant["type"] == "array":
            specs.append({"type": "array", "items": _type_spec(variant["items"])[0]})
        else:
            specs.append({"type": variant["type"]})
    if len(specs) == 1:
        return specs[0], allowed
    # A union: ``language`` is a code or a list of codes (newer API versions answer with lists).
    return {"type": specs[0]["type"], "oneOf": specs}, allowed


def _input_property(name: str, json_schema: dict[str, Any], replace_on_change: frozenset[str]) -> dict[str, Any]:
    spec, allowed = _type_spec(json_schema)
    description = json_schema["description"]
    if allowed:
        description += " One of: " + ", ".join(f"`{value}`" for value in allowed) + "."
    default = json_schema.get("default")
    if default is not None:
        description += f" Default: `{default if isinstance(default, str) else json.dumps(default)}`."
    spec["description"] = description
    if name in replace_on_change:
        spec["replaceOnChanges"] = True
    return spec


def _agent_resource() -> dict[str, Any]:
    # pydantic's models load here, not with the module: the plugin's names (``wire_name``, ``PHONE_AGENT``) are
    # needed at its start, the schema only when the engine or a build asks for it.
    from .._models import COMPUTED_OUTPUTS, INPUT_FIELDS, REPLACE_ON_CHANGE, AgentSpec

    properties = AgentSpec.model_json_schema()["properties"]
    inputs = {wire_name(name): _input_property(name, properties[name], REPLACE_ON_CHANGE) for name in INPUT_FIELDS}
    outputs = dict(inputs)
    for name in COMPUTED_OUTPUTS:
        outputs[wire_name(name)] = {"type": "string", "description": COMPUTED_OUTPUTS[name]}
    required_inputs = [wire_name(name) for name in INPUT_FIELDS if AgentSpec.model_fields[name].is_required()]
    # Always in the API's answer, and never null: everything with a non-null default, plus the identifiers.
    always = [n for n in INPUT_FIELDS if AgentSpec.model_fields[n].is_required() or properties[n].get("default")]
    return {
        "description": (
            "An AI phone agent of the phone-agent API, with the phone number the API provisions for it.\n\n"
            "Every property updates the agent in place except `model`, which replaces it (a new agent, a new "
            "phone number; the new one is created before the old one is deleted). An omitted input means the "
            "API's default, so a dashboard edit to a field the program leaves out shows as drift.\n\n"
            "Import an existing agent by its id: `pulumi import oppie:index:PhoneAgent <name> <id>`."
        ),
        "inputProperties": inputs,
        "requiredInputs": required_inputs,
        "properties": outputs,
        "required": [wire_name(name) for name in (*always, "org_id", "created_at", "updated_at")],
    }


def _settings() -> dict[str, dict[str, Any]]:
    """Config variables (and provider inputs) from ``Settings``: type, default and environment variable."""
    kinds = {"str | None": "string", "str": "string", "float": "number", "int": "integer"}
    variables: dict[str, dict[str, Any]] = {}
    for field in dataclasses.fields(Settings):
        source = SOURCES[field.name]
        key, env = source.key, source.variable
        spec: dict[str, Any] = {"type": kinds[str(field.type)]}
        description = f"{source.description} Environment variable: `{env}`."
        if field.default is not None:
            default = field.default
            if isinstance(default, float) and default.is_integer():
                default = int(default)
            spec["default"] = default
            description += f" Default: `{default}`."
        spec["description"] = description
        spec["defaultInfo"] = {"environment": [env]}
        if source.secret:
            spec["secret"] = True
        variables[key.split(":", 1)[1]] = spec
    return variables


@cache
def schema(plugin_download_url: str | None = None) -> dict[str, Any]:
    """The package schema, as ``GetSchema`` serves it and ``pulumi package get-schema`` prints it.

    ``plugin_download_url`` is where the engine downloads the plugin from (``<url>/pulumi-resource-oppie-v<version>-
    <os>-<arch>.tar.gz``): set by ``make dist`` in the schema it generates the SDKs from, so that a program using an
    SDK gets the plugin without installing it. The plugin's own ``GetSchema`` has none: where it was downloaded from
    is the release's business, not the code's.
    """
    settings = _settings()
    download = {"pluginDownloadURL": plugin_download_url} if plugin_download_url else {}
    return {
        "name": PACKAGE,
        "displayName": "Oppie phone agents",
        "version": VERSION,
        "description": "AI phone agents as code: the phone-agent API (POST /phone) as Pulumi resources.",
        "keywords": ["pulumi", "oppie", "phone", "voice", "ai", "category/utility", "kind/native"],
        "license": "Apache-2.0",
        "publisher": "oppie",
        **download,
        "config": {"variables": settings},
        "provider": {
            "description": (
                "The oppie provider. Without an explicit provider, resources use the stack's `oppie:*` config, "
                "then the environment (`OPPIE_*`), then the defaults."
            ),
            "inputProperties": settings,
            "properties": {key: spec for key, spec in settings.items() if not spec.get("secret")},
        },
        "resources": {PHONE_AGENT: _agent_resource()},
        "language": {
            "python": {
                "packageName": "pulumi_oppie",
                "requires": {"pulumi": ">=3.160.0,<4.0.0"},
                "pyproject": {"enabled": True},
                "respectSchemaVersion": True,
            },
            "nodejs": {
                "packageName": "@oppie/pulumi-oppie",
                # The generated code calls pulumi.runtime.existsResource, which older SDKs lack (3.248 did).
                "dependencies": {"@pulumi/pulumi": "^3.270.0"},
                "respectSchemaVersion": True,
            },
        },
    }


@cache
def schema_json(plugin_download_url: str | None = None) -> str:
    return json.dumps(schema(plugin_download_url), indent=2, sort_keys=False)
