"""Read a fleet file (YAML or JSON, one entry per agent) and check every entry before anything is declared.

Each entry holds ``PhoneAgent`` arguments by their Python names, plus two optional keys:

- ``resource``: the Pulumi logical name (default: the ``name``, slugified). Keep it stable: a new logical
  name is a new resource to Pulumi, which replaces the agent (new id, new phone number).
- ``adopt_id``: take over that existing agent instead of creating one.

All problems in the file are reported at once, each naming the file, the line, the entry and the field,
e.g. ``agents.yaml:14: entry 2 ("Billing"): model: must be one of 'oppie-vox', ...``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pydantic import ValidationError

from oppie_pulumi import AgentSpec

__all__ = ["FleetEntry", "FleetFileError", "load_fleet"]

EXTRA_KEYS = ("resource", "adopt_id")
KNOWN_KEYS = (*EXTRA_KEYS, *AgentSpec.model_fields)


class FleetFileError(pulumi.RunError):
    """The fleet file cannot be used; the message lists every problem with its file, line, entry and field.

    A ``pulumi.RunError``, so ``pulumi up`` prints the message without a Python traceback.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        count = f"{len(problems)} problems" if len(problems) > 1 else "a problem"
        super().__init__(f"{path} has {count}; no agent was changed:\n" + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class FleetEntry:
    """One checked entry: the logical name, the ``PhoneAgent`` arguments as written, and ``adopt_id``."""

    resource: str
    args: dict[str, Any]
    adopt_id: str | None = None


def slug(name: str) -> str:
    """A logical name from an agent's name: ASCII letters, digits and dashes (``"Café Nord"`` -> ``cafe-nord``)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "agent"


def load_fleet(path: str | Path) -> list[FleetEntry]:
    """The entries of the fleet file at ``path``, checked; raises ``FleetFileError`` naming each problem.

    ``path`` is shown in messages as given (Pulumi runs a program in its project directory, so a relative
    path reads naturally).
    """
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FleetFileError(shown, [f"{shown}: cannot be read ({exc.strerror or exc})"]) from None
    data, lines = _parse(text, shown, json_file=str(path).lower().endswith(".json"))

    if not isinstance(data, list):
        found = "an empty file" if data is None else f"a {_kind(data)}"
        raise FleetFileError(shown, [f"{shown}: expected a list of agents (one entry per agent), found {found}"])

    problems: list[str] = []
    entries: list[FleetEntry] = []
    taken: dict[str, int] = {}
    for index, raw in enumerate(data):
        where = _Where(shown, index, raw, lines[index] if index < len(lines) else None)
        if not isinstance(raw, dict):
            problems.append(where.say(f"expected a mapping of PhoneAgent arguments, found a {_kind(raw)}"))
            continue
        entry_problems = _check_entry(raw, where)
        resource = raw.get("resource") or (slug(raw["name"]) if isinstance(raw.get("name"), str) else None)
        if isinstance(resource, str) and resource in taken:
            entry_problems.append(
                where.say(
                    f"resource: {resource!r} is already the logical name of entry {taken[resource] + 1}; "
                    "give one of them a distinct `resource:`",
                    "resource" if "resource" in raw else "name",
                )
            )
        elif isinstance(resource, str):
            taken[resource] = index
        problems += sorted(entry_problems, key=_line_of)
        if not entry_problems and isinstance(resource, str):
            args = {key: value for key, value in raw.items() if key not in EXTRA_KEYS}
            entries.append(FleetEntry(resource, args, raw.get("adopt_id")))
    if problems:
        raise FleetFileError(shown, problems)
    return entries


def _check_entry(raw: dict[Any, Any], where: _Where) -> list[str]:
    problems = []
    for key in EXTRA_KEYS:
        value = raw.get(key)
        if key in raw and not (isinstance(value, str) and value.strip() and "::" not in value):
            problems.append(where.say(f"{key}: must be a non-empty string without '::', got {value!r}", key))
    spec = {key: value for key, value in raw.items() if key not in EXTRA_KEYS}
    try:
        AgentSpec.model_validate(spec)
    except ValidationError as exc:
        seen: set[str] = set()
        for error in exc.errors():
            loc = error["loc"]
            field = str(loc[0]) if loc else "name"
            # One problem per field: a union (language: a code or a list of codes) fails once per member.
            if field in seen:
                continue
            seen.add(field)
            item = next((part for part in loc[1:] if isinstance(part, int)), None)
            shown_field = field if item is None else f"{field} (item {item + 1})"
            problems.append(where.say(f"{shown_field}: {_reason(error)}", field, item))
    return problems


def _line_of(problem: str) -> int:
    # Problems read "file:line: ...": within an entry, report them in the order of the file.
    match = re.match(r"^.*?:(\d+): ", problem)
    return int(match.group(1)) if match else 0


def _reason(error: Any) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return f"is not a PhoneAgent argument (known: {', '.join(KNOWN_KEYS)})"
    if kind == "missing":
        return "is required"
    if kind == "literal_error":
        return f"must be one of {error['ctx']['expected']}, got {value!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    if "got " not in message:
        message += f", got {value!r}"
    # YAML 1.1 reads `no`, `on`, `+14155550123` and `1.0` as booleans and numbers: say so.
    if kind == "string_type" and isinstance(value, (bool, int, float)):
        message += " (YAML read it as a " + ("boolean" if isinstance(value, bool) else "number") + ": quote it)"
    return message


@dataclass
class _Lines:
    """Where an entry and its fields start in the file (1-based lines), when the file is YAML."""

    entry: int
    fields: dict[str, int]
    items: dict[str, list[int]]


class _Where:
    def __init__(self, shown: str, index: int, raw: Any, lines: _Lines | None) -> None:
        self.shown, self.index, self.lines = shown, index, lines
        name = raw.get("name") if isinstance(raw, dict) else None
        self.label = f"entry {index + 1}" + (
            f" ({json.dumps(name, ensure_ascii=False)})" if isinstance(name, str) else ""
        )

    def say(self, problem: str, field: str | None = None, item: Any = None) -> str:
        line = None
        if self.lines is not None:
            line = self.lines.entry
            if field is not None and field in self.lines.fields:
                line = self.lines.fields[field]
                items = self.lines.items.get(field, [])
                if isinstance(item, int) and 0 <= item < len(items):
                    line = items[item]
        at = f"{self.shown}:{line}" if line is not None else self.shown
        return f"{at}: {self.label}: {problem}"


def _parse(text: str, shown: str, *, json_file: bool) -> tuple[Any, list[_Lines]]:
    if json_file:
        try:
            return json.loads(text), []
        except json.JSONDecodeError as exc:
            raise FleetFileError(shown, [f"{shown}:{exc.lineno}: not valid JSON: {exc.msg}"]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{shown}:{mark.line + 1}" if mark is not None else shown
        problem = getattr(exc, "problem", None) or str(exc)
        raise FleetFileError(shown, [f"{at}: not valid YAML: {problem}"]) from None
    finally:
        loader.dispose()
    return data, _lines(node)


def _lines(node: yaml.Node | None) -> list[_Lines]:
    if not isinstance(node, yaml.SequenceNode):
        return []
    found = []
    for item in node.value:
        fields: dict[str, int] = {}
        items: dict[str, list[int]] = {}
        if isinstance(item, yaml.MappingNode):
            for key, value in item.value:
                if isinstance(key, yaml.ScalarNode):
                    fields[str(key.value)] = key.start_mark.line + 1
                    if isinstance(value, yaml.SequenceNode):
                        items[str(key.value)] = [v.start_mark.line + 1 for v in value.value]
        found.append(_Lines(item.start_mark.line + 1, fields, items))
    return found


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__
