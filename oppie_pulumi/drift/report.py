"""A drift review, written for a person (``text``), a program (``json``) or a CI job summary (``markdown``).

- ``text``: what a terminal shows; findings first, with the fix for each as a command.
- ``json``: a versioned document (``schema.json`` beside this module describes it): agents sorted by id, fields
  by name, no timestamp, so two runs over the same state give the same bytes.
- ``markdown``: fits a CI job summary or a pull-request comment: under 64,000 characters, whatever the fleet's
  size (what does not fit is counted, and the JSON report has it all).

No format ever shows a secret: the token never reaches a review, and a field Pulumi keeps secret shows as
``[secret]`` (only that it changed).
"""

from __future__ import annotations

import json
from typing import Any

from .._version import __version__
from .review import VERDICTS, Agent, Review, organisation_label

__all__ = ["MARKDOWN_LIMIT", "SCHEMA_VERSION", "as_json", "as_markdown", "as_text", "document", "organisation_label"]

SCHEMA_VERSION = 1
# GitHub's limit for a job summary (and near its limit for a comment) is 65,536 characters.
MARKDOWN_LIMIT = 64_000
_HEADINGS = {
    "unreadable": "Unreadable",
    "held_twice": "Held by more than one resource",
    "deleted": "Deleted outside Pulumi",
    "drifted": "Drifted",
    "unmanaged": "Unmanaged (in no reviewed stack)",
    "in_sync": "In sync",
}


def document(result: Review) -> dict[str, Any]:
    """The review as plain data: the JSON report."""
    return {
        "version": SCHEMA_VERSION,
        "tool": f"oppie-pulumi {__version__}",
        "summary": _summary(result),
        "stacks": [
            {
                "stack": state.ref.name,
                "project_dir": str(state.ref.dir),
                "resources": len(state.resources),
                "pending_creates": sorted(pending.urn for pending in state.pending),
                "error": state.error,
            }
            for state in sorted(result.stacks, key=lambda state: (state.ref.name, str(state.ref.dir)))
        ],
        "organisations": [
            {
                "base_url": organisation_label(org.base_url),
                "stacks": sorted(org.stacks),
                "agents": None if org.agents is None else len(org.agents),
                "error": org.error,
            }
            for org in sorted(result.organisations, key=lambda org: org.base_url)
        ],
        "agents": [_agent(agent) for agent in result.agents],
    }


def _summary(result: Review) -> dict[str, Any]:
    coverage = result.coverage
    return {
        "agents": result.total,
        "managed": result.managed,
        "coverage": None if coverage is None else round(coverage, 4),
        **{verdict: result.count(verdict) for verdict in VERDICTS},
    }


def _agent(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "verdict": agent.verdict,
        "replaces": agent.replaces,
        "held_by": [{"stack": h.stack, "urn": h.urn, "provider": h.adapter} for h in agent.holders],
        "fields": [
            {"field": drift.field, "class": drift.kind, "deployed": drift.deployed, "live": drift.live}
            for drift in agent.fields
        ],
        "note": agent.note,
        "fixes": list(agent.fixes),
    }


def as_json(result: Review) -> str:
    return json.dumps(document(result), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not (isinstance(value, str) and value == "[secret]") else value
    return text if len(text) <= 80 else text[:77] + "..."


def _headline(result: Review) -> str:
    coverage = result.coverage
    shown = "-" if coverage is None else f"{coverage:.0%}"
    counts = ", ".join(f"{result.count(v)} {v.replace('_', ' ')}" for v in VERDICTS if result.count(v))
    return f"{result.total} agents, {result.managed} managed (coverage {shown}): {counts or 'nothing listed'}"


def as_text(result: Review) -> str:
    """What the terminal shows: the headline, then each finding with its fields and fixes."""
    lines = [f"Drift review of {len(result.stacks)} stack(s): {_headline(result)}", ""]
    for problem in [state for state in result.stacks if state.error]:
        lines.append(f"! stack {problem.ref.label}: {problem.error}")
    for org in result.organisations:
        if org.error:
            lines.append(f"! {organisation_label(org.base_url)}: {org.error}")
    for verdict in VERDICTS:
        if verdict == "in_sync":
            continue
        agents = [agent for agent in result.agents if agent.verdict == verdict]
        if not agents:
            continue
        lines.append(f"{_HEADINGS[verdict]} ({len(agents)})")
        for agent in agents:
            held = ", ".join(f"{h.stack}:{h.urn.rsplit('::', 1)[-1]}" for h in agent.holders) or "no stack"
            lines.append(f"  {agent.id}  {agent.name!r}  [{held}]")
            for drift in agent.fields:
                lines.append(f"    ~ {drift.field} ({drift.kind}): {_value(drift.deployed)} => {_value(drift.live)}")
            if agent.note:
                lines.append(f"    note: {agent.note}")
            lines.extend(f"    fix: {fix}" for fix in agent.fixes)
        lines.append("")
    in_sync = result.count("in_sync")
    lines.append(f"In sync: {in_sync} agent(s).")
    return "\n".join(lines) + "\n"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def as_markdown(result: Review, limit: int = MARKDOWN_LIMIT) -> str:
    """The review for a CI job summary or a pull-request comment, within ``limit`` characters."""
    head = [
        "## Phone agents: drift review",
        "",
        f"**{_headline(result)}**",
        "",
        "| verdict | agents |",
        "|---|---|",
        *[f"| {_HEADINGS[v]} | {result.count(v)} |" for v in VERDICTS],
        "",
    ]
    for state in result.stacks:
        if state.error:
            head.append(f"> stack `{state.ref.label}` could not be read: {_cell(state.error)}")
    for org in result.organisations:
        if org.error:
            head.append(f"> {_cell(organisation_label(org.base_url))}: {_cell(org.error)}")
    # Every line is counted before it is added; the closing lines have room kept for them.
    budget = limit - sum(len(line) + 1 for line in head) - 300
    body: list[str] = []
    left_out = 0
    for verdict in VERDICTS[:-1]:
        agents = [agent for agent in result.agents if agent.verdict == verdict]
        if not agents:
            continue
        section = [f"### {_HEADINGS[verdict]} ({len(agents)})", "", "| agent | held by | what differs | fix |"]
        section += ["|---|---|---|---|"]
        cost = sum(len(line) + 1 for line in section) + 1  # and the blank line after the table
        rows = []
        for agent in agents:
            row = _markdown_row(agent)
            if cost + len(row) + 1 > budget:
                left_out += 1
                continue
            rows.append(row)
            cost += len(row) + 1
        if rows:
            body += [*section, *rows, ""]
            budget -= cost
    tail = []
    if left_out:
        tail.append(f"_{left_out} more finding(s) did not fit: run `oppie-pulumi drift --format json` for all._")
    tail.append(f"_{result.count('in_sync')} agent(s) in sync. oppie-pulumi {__version__}._")
    return "\n".join([*head, *body, *tail]) + "\n"


def _markdown_row(agent: Agent) -> str:
    held = "<br>".join(f"`{h.stack}` {_cell(h.urn.rsplit('::', 1)[-1])}" for h in agent.holders) or "-"
    fields = "<br>".join(
        f"`{d.field}` ({d.kind}): {_cell(_value(d.deployed))} → {_cell(_value(d.live))}" for d in agent.fields
    ) or _cell(agent.note or "-")
    fix = "<br>".join(f"`{_cell(fix.split('  #')[0])}`" for fix in agent.fixes[:2]) or "-"
    return f"| `{agent.id}` {_cell(agent.name or '')} | {held} | {fields} | {fix} |"
