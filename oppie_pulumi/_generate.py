"""Write a Pulumi program that adopts live agents as they are (what ``oppie-pulumi generate`` prints).

``render_program`` is a pure function of the agents the API listed: one ``PhoneAgent`` per agent with
every input that differs from the API's default and its ``adopt_id``, so that ``pulumi up`` on the result
takes each agent over with no change at all. Every value is written as a Python literal (``repr``), so a
name with quotes, newlines or any Unicode stays data and the program always parses. The output is
deterministic (no timestamps), so generating twice gives the same file and a diff shows real changes.
"""

from __future__ import annotations

import keyword
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._models import INPUT_FIELDS, defaults, normalized, outputs_from_agent, validation_failures

__all__ = ["GeneratedProgram", "logical_name", "python_literal", "render_program"]

LINE_LENGTH = 120
INDENT = "    "
# Names the program itself uses: an agent's variable must not shadow them.
_RESERVED = frozenset({"pulumi", "PhoneAgent"})

_HEADER = '''"""Phone agents adopted by `oppie-pulumi generate`: each one declared with its current settings.

Every agent has an ``adopt_id``, so the first `pulumi up` takes it over in place instead of creating a
new one: the preview lists the agents as creates because the state does not know them yet, but no
agent is created, none is replaced, and nothing is changed (each declaration matches the live agent).
From then on this program is the source of truth:

- edit an agent here and `pulumi up` updates it (changing `model` replaces it: new id, new number);
- an edit made in the dashboard shows as drift on `pulumi refresh`, and the next `pulumi up` reverts it;
- removing an agent from this program, or `pulumi destroy`, DELETES the agent and its phone number
  (add `opts=pulumi.ResourceOptions(protect=True)` to the agents that must never go).

The `adopt_id` lines do nothing after the first `pulumi up` and can then be deleted.
"""'''


@dataclass
class GeneratedProgram:
    """The program's source, how many agents it declares, and what needs a person's attention."""

    source: str
    count: int
    warnings: list[str] = field(default_factory=list)


def python_literal(value: Any) -> str:
    """``value`` (a JSON scalar or list) as Python source that evaluates to exactly ``value``.

    Strings are escaped as ``repr`` escapes them (so non-printable characters such as newlines and
    bidirectional controls show as escapes, never raw), in double quotes unless single quotes need fewer
    escapes: the quoting ``ruff format`` prefers.
    """
    if isinstance(value, str):
        quote = "'" if value.count('"') > value.count("'") else '"'
        return quote + "".join(_escaped(ch, quote) for ch in value) + quote
    if isinstance(value, list):
        return "[" + ", ".join(python_literal(item) for item in value) + "]"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    raise TypeError(f"cannot write {type(value).__name__} as a literal")


def _escaped(ch: str, quote: str) -> str:
    if ch in ("\\", quote):
        return "\\" + ch
    # repr's own escape for anything not printable: \n, \t, \x00, \u202e, a lone surrogate, ...
    return ch if ch.isprintable() else repr(ch)[1:-1]


def logical_name(name: Any, taken: set[str]) -> str:
    """A Pulumi logical name from an agent's name, unique among ``taken`` (which it joins).

    ASCII letters, digits and dashes (``"Café Nord"`` -> ``cafe-nord``), ``agent`` when nothing is left,
    and ``-2``, ``-3``, ... on a clash.
    """
    text = name if isinstance(name, str) else ""
    ascii_name = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-") or "agent"
    return _unique(base, taken, "-")


def _variable(logical: str, taken: set[str]) -> str:
    base = logical.replace("-", "_")
    if base[0].isdigit() or keyword.iskeyword(base) or base in _RESERVED:
        base = f"agent_{base}"
    return _unique(base, taken, "_")


def _unique(base: str, taken: set[str], separator: str) -> str:
    """``base``, or ``base-2``, ``base-3``, ... (with ``separator``): the first not in ``taken``, now taken."""
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}{separator}{n}"
    taken.add(candidate)
    return candidate


def _comment(text: str) -> str:
    # Comments hold text from the API: escape what could end the line or hide characters.
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _argument(key: str, value: Any) -> list[str]:
    inline = f"{INDENT}{key}={python_literal(value)},"
    if len(inline) <= LINE_LENGTH or not isinstance(value, list) or not value:
        return [inline]
    return [f"{INDENT}{key}=[", *(f"{INDENT * 2}{python_literal(item)}," for item in value), f"{INDENT}],"]


def _declared(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs that reproduce ``outputs``: the name, and every field that differs from its default."""
    api_defaults = defaults()
    declared = {"name": outputs.get("name")}
    for key in INPUT_FIELDS:
        if key == "name":
            continue
        value = outputs.get(key)
        # None is what an omitted argument means too: PhoneAgent fills in the API's default.
        if value is not None and normalized(key, value) != normalized(key, api_defaults.get(key)):
            declared[key] = value
    return declared


def render_program(agents: Sequence[Mapping[str, Any]], *, source: str) -> GeneratedProgram:
    """The Python program declaring every agent of ``agents`` (as ``GET /phone`` returns them).

    ``source`` (the API's base URL) goes into a comment. Agents are written oldest first, so their
    logical names stay put when the program is generated again after new agents appear.
    """
    ordered = sorted(agents, key=lambda agent: (str(agent.get("created_at") or ""), str(agent.get("id"))))
    names: set[str] = set()
    variables: set[str] = set(_RESERVED)
    warnings: list[str] = []
    lines = [
        _HEADER,
        "",
        f"# Generated from {_comment(source)}: {len(ordered)} agent{'s' if len(ordered) != 1 else ''}.",
        "",
        "import pulumi",
        "",
        "from oppie_pulumi import PhoneAgent",
    ]
    exports: list[str] = []
    for agent in ordered:
        agent_id = str(agent.get("id"))
        outputs = outputs_from_agent(agent)
        declared = _declared(outputs)
        logical = logical_name(declared["name"], names)
        variable = _variable(logical, variables)
        lines.append("")
        problems = []
        if not isinstance(declared["name"], str) or not declared["name"].strip():
            # PhoneAgent requires a name: leave it to a person rather than invent one the agent lacks.
            declared["name"] = ""
            problems.append("name: the live agent has none and PhoneAgent requires one: set it here")
        problems += [
            f"{prop}: {reason}" for prop, reason in validation_failures(declared) if not (prop == "name" and problems)
        ]
        for problem in problems:
            warnings.append(f"agent {agent_id} ({logical}): {problem}")
            lines.append(f"# FIXME (PhoneAgent will refuse this agent as it is) {_comment(problem)}")
        lines.append(f"{variable} = PhoneAgent(")
        lines.append(f"{INDENT}{python_literal(logical)},")
        for key, value in declared.items():
            lines += _argument(key, value)
        lines.append(f"{INDENT}adopt_id={python_literal(agent_id)},")
        lines.append(")")
        exports.append(f"pulumi.export({python_literal(variable + '_phone_number')}, {variable}.phone_number)")
    if exports:
        lines += ["", "", *exports]
    return GeneratedProgram("\n".join(lines) + "\n", len(ordered), warnings)
