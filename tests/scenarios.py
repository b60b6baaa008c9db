"""One table of scenarios, run through the core in-process and under the real CLI by both adapters.

Each scenario is a list of steps: out-of-band changes (a dashboard edit, a number the API reassigns, an agent
deleted elsewhere, a state written by an earlier version), then a command (``up``, ``refresh``, ``destroy``) and
what it must do, per resource: the operation (create, update, replace, same, delete), the properties that change
(``_models``' Python names), and the writes the API receives. tests/test_scenarios.py runs every scenario three
ways, through the core (``AgentService``, called as the engine calls a provider), through the dynamic
``PhoneAgent`` and through the ``oppie`` plugin under the real CLI, and requires the same diff, the same API calls
and the same outputs from all three.

Ids differ between runs: a write's path names the agent as ``<resource>#<n>``, its n-th agent in the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Op = Literal["create", "update", "replace", "same", "delete"]
# (what, resource, detail): "dashboard" PATCHes API fields behind the stack's back, "renumber" is the API giving the
# agent a new number, "gone" deletes it elsewhere, "strip_model" makes the stack's state one an earlier version
# wrote (no model), "faults" switches the sandbox's behaviour (a newer API's answers).
Action = tuple[Literal["dashboard", "renumber", "gone", "strip_model", "faults"], str, Any]
# (method, path, body): body None means "whatever the declared agent makes" (a POST's full body)
Write = tuple[str, str, Any]

NEW_NUMBER = "+15550009999"


@dataclass(frozen=True)
class Step:
    """One command of a scenario and what it must do."""

    command: Literal["up", "refresh", "destroy"]
    program: Mapping[str, Mapping[str, Any]] | None = None  # the agents declared from now on (None: as before)
    before: tuple[Action, ...] = ()
    ops: Mapping[str, Op] = field(default_factory=dict)
    changes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    writes: tuple[Write, ...] = ()
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # values some outputs must have after


LINE = {"name": "Line", "first_message": "Hello."}
SUPPORT = {
    "name": "Support line",
    "language": "en",
    "accent": "british",
    "handoff_phone_number": "+14155550123",
    "action_ids": [],
    "instructions": ["Be kind"],
    "first_message": "Hello",
}
SUPPORT_EDITED = {**{k: v for k, v in SUPPORT.items() if k != "accent"}, "instructions": ["Be kind", "Be brief"]}
SUPPORT_EDITED["first_message"] = "Welcome"

SCENARIOS: dict[str, list[Step]] = {
    # create, nothing to do, an update that clears a field, a replacement on model, destroy
    "lifecycle": [
        Step("up", {"support": SUPPORT}, ops={"support": "create"}, writes=(("POST", "/phone", None),)),
        Step("up", ops={"support": "same"}),
        Step(
            "up",
            {"support": SUPPORT_EDITED},
            ops={"support": "update"},
            changes={"support": ("accent", "instructions", "first_message")},
            writes=(
                (
                    "PATCH",
                    "/phone/<support#1>",
                    {"accent": None, "instructions": ["Be kind", "Be brief"], "first_message": "Welcome"},
                ),
            ),
        ),
        Step(
            "up",
            {"support": {**SUPPORT_EDITED, "model": "oppie-vox-2"}},
            ops={"support": "replace"},
            changes={"support": ("model",)},
            # Create before delete: the new agent and its number exist before the old one goes.
            writes=(("POST", "/phone", None), ("DELETE", "/phone/<support#1>", None)),
            outputs={"support": {"model": "oppie-vox-2"}},
        ),
        Step("destroy", ops={"support": "delete"}, writes=(("DELETE", "/phone/<support#2>", None),)),
    ],
    # an edit in the dashboard shows on refresh, per field, and the next up puts the declared values back
    "dashboard drift": [
        Step("up", {"line": LINE}, ops={"line": "create"}, writes=(("POST", "/phone", None),)),
        Step(
            "refresh",
            before=(("dashboard", "line", {"first_message": "Edited", "accent": "british"}),),
            ops={"line": "update"},
            changes={"line": ("accent", "first_message")},
            outputs={"line": {"first_message": "Edited", "accent": "british"}},
        ),
        Step(
            "up",
            ops={"line": "update"},
            changes={"line": ("accent", "first_message")},
            writes=(("PATCH", "/phone/<line#1>", {"accent": None, "first_message": "Hello."}),),
            outputs={"line": {"first_message": "Hello."}},
        ),
        Step("up", ops={"line": "same"}),
    ],
    # the API gives the agent a new number: no declared field changes, yet the refresh must show it (issue 18:
    # the plugin's diff ignored the mark a read sets), and the next up carries it to the stack without a write
    "reassigned number": [
        Step("up", {"line": LINE}, ops={"line": "create"}, writes=(("POST", "/phone", None),)),
        Step(
            "refresh",
            before=(("renumber", "line", NEW_NUMBER),),
            ops={"line": "update"},
            changes={"line": ("phone_number",)},
            outputs={"line": {"phone_number": NEW_NUMBER}},
        ),
        Step(
            "up",
            ops={"line": "update"},
            changes={"line": ("phone_number",)},
            outputs={"line": {"phone_number": NEW_NUMBER}},
        ),
        Step("up", ops={"line": "same"}),
    ],
    # a state written before model was declared: never a replacement (issue 18: the plugin proposed one), and the
    # next real change brings model back into the state from the API's answer
    "old state without model": [
        Step("up", {"line": LINE}, ops={"line": "create"}, writes=(("POST", "/phone", None),)),
        Step("up", before=(("strip_model", "line", None),), ops={"line": "same"}),
        Step(
            "up",
            {"line": {**LINE, "first_message": "Welcome."}},
            ops={"line": "update"},
            changes={"line": ("first_message",)},
            writes=(("PATCH", "/phone/<line#1>", {"first_message": "Welcome."}),),
            outputs={"line": {"model": "oppie-vox", "first_message": "Welcome."}},
        ),
    ],
    # deleted in the dashboard: the refresh drops it from the state, the next up creates it again
    "deleted elsewhere": [
        Step("up", {"line": LINE}, ops={"line": "create"}, writes=(("POST", "/phone", None),)),
        Step("refresh", before=(("gone", "line", None),), ops={"line": "delete"}),
        Step("up", ops={"line": "create"}, writes=(("POST", "/phone", None),)),
    ],
    # a newer API answers language as a list: the same as the declared code, never drift
    "equivalent values": [
        Step(
            "up",
            {"line": {**LINE, "language": "en"}},
            before=(("faults", "", {"language_as_list": True, "extra_fields": True}),),
            ops={"line": "create"},
            writes=(("POST", "/phone", None),),
            outputs={"line": {"language": "en"}},
        ),
        Step("refresh", ops={"line": "same"}),
        Step("up", ops={"line": "same"}),
    ],
}

# Outputs whose values differ from run to run: compared as present or absent.
VOLATILE = frozenset({"id", "org_id", "phone_number", "provider_external_id", "created_at", "updated_at"})


def normalised_outputs(outputs: Mapping[str, Any], pinned: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs in ``_models``' names without nulls and engine keys; volatile values as ``<set>`` unless pinned."""
    shown: dict[str, Any] = {}
    for key, value in outputs.items():
        if value is None or key.startswith("__"):
            continue
        if key in VOLATILE and key not in pinned:
            value = "<set>"
        elif isinstance(value, dict):  # the reassigned mark: {output: the value it had}
            value = dict.fromkeys(value, "<set>")
        shown[key] = value
    return shown


class Ids:
    """Agent ids named ``<resource>#<n>``: the n-th agent a resource held in this run."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self._count: dict[str, int] = {}

    def saw(self, resource: str, agent_id: str) -> None:
        if agent_id not in self.names:
            self._count[resource] = self._count.get(resource, 0) + 1
            self.names[agent_id] = f"<{resource}#{self._count[resource]}>"

    def writes(self, raw: list[dict[str, Any]]) -> list[Write]:
        """The sandbox's journal as ``(method, path, body)``, ids named."""
        shown: list[Write] = []
        for write in raw:
            path = write["path"]
            for agent_id, name in self.names.items():
                path = path.replace(agent_id, name)
            shown.append((write["method"], path, write["body"]))
        return shown


def as_expected(writes: list[Write], expected: tuple[Write, ...]) -> list[Write]:
    """``writes`` with the bodies the table leaves open (None) left out, to compare with it."""
    open_bodies = [body is None for _, _, body in expected]
    if len(open_bodies) != len(writes):
        return writes
    return [(m, p, None if is_open else b) for (m, p, b), is_open in zip(writes, open_bodies, strict=True)]
