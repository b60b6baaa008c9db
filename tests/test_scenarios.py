"""Every scenario of tests/scenarios.py through the core, the dynamic ``PhoneAgent`` and the ``oppie`` plugin.

The core runs in-process: ``AgentService`` called in the order, and with the olds and news, the engine uses for a
provider (Check against the prior inputs, Diff against the prior outputs, Check again without olds before a
replacement, create before delete; a refresh judged by Diff of the refreshed outputs against the prior inputs).
The two adapters run under the real CLI: a Python program of dynamic ``PhoneAgent`` resources and a YAML program
of ``oppie:index:PhoneAgent`` resources, each against a sandbox of its own.

What "the same diff" means under the CLI, where each adapter shows it in its own way: the operation the engine
plans per resource (``pulumi preview --json``; a refresh's from its summary), and every changed property named in
the CLI's ``--diff`` output; for an up, the plugin also gives the engine its per-property diff (``detailedDiff``),
which must name exactly the properties the core names. The dynamic host has no way to say which property changes,
so the CLI shows what the engine finds by comparing inputs: an output the API changed shows on refresh only.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from oppie_pulumi import Settings
from oppie_pulumi._client import PhoneApiClient
from oppie_pulumi._models import API_NAMES
from oppie_pulumi.agents import IDENTITY_OUTPUTS, AgentService, UnknownForm
from oppie_pulumi.agents.coordination import Claims, RunMemory
from oppie_pulumi.provider import PHONE_AGENT
from oppie_pulumi.provider.schema import python_name, wire_name
from oppie_pulumi.sandbox import SandboxConfig, SandboxServer, serve

from .realcli import PHONE_AGENT as DYNAMIC_PHONE_AGENT
from .realcli import Project, summary
from .scenarios import SCENARIOS, Action, Ids, Op, Step, as_expected, normalised_outputs
from .support import TOKEN
from .test_plugin_yaml import write_program, yaml_env

pytestmark = pytest.mark.realcli

# The engine's step names for the three steps of a replacement.
_REPLACE_OPS = {"replace", "create-replacement", "delete-replaced"}


@dataclass
class Observed:
    """What one step did, in the table's terms."""

    ops: dict[str, Op] = field(default_factory=dict)
    changes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    writes: list[Any] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)


def dashboard_patch(sandbox: SandboxServer, agent_id: str, fields: dict[str, Any]) -> None:
    body = {API_NAMES[name]: value for name, value in fields.items()}
    with httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as api:
        api.patch(f"/phone/{agent_id}", json=body).raise_for_status()


def dashboard_delete(sandbox: SandboxServer, agent_id: str) -> None:
    with httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as api:
        api.delete(f"/phone/{agent_id}").raise_for_status()


class Runner:
    """One way of running a scenario against its own sandbox; subclasses say how a command and the state go."""

    def __init__(self, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self.ids = Ids()
        self.program: dict[str, dict[str, Any]] = {}

    def step(self, step: Step) -> Observed:
        for action in step.before:
            self.act(action)
        if step.program is not None:
            self.program = {name: dict(props) for name, props in step.program.items()}
        before = self.agent_ids()
        for name, agent_id in before.items():
            self.ids.saw(name, agent_id)
        self.sandbox.reset_stats()
        observed = self.run(step)
        for name, agent_id in self.agent_ids().items():
            self.ids.saw(name, agent_id)
        observed.writes = self.ids.writes(self.sandbox.writes())
        pinned = {name: step.outputs.get(name, {}) for name in self.program}
        observed.outputs = {name: normalised_outputs(out, pinned[name]) for name, out in self.outputs().items()}
        return observed

    def act(self, action: Action) -> None:
        what, resource, detail = action
        if what == "faults":
            self.sandbox.set_faults(**detail)
            return
        agent_id = self.agent_ids()[resource]
        if what == "dashboard":
            dashboard_patch(self.sandbox, agent_id, detail)
        elif what == "renumber":
            self.sandbox.state.store.update(agent_id, {"phone_number": detail})
        elif what == "gone":
            dashboard_delete(self.sandbox, agent_id)
        elif what == "strip_model":
            self.strip_model(resource)

    def run(self, step: Step) -> Observed:
        raise NotImplementedError

    def agent_ids(self) -> dict[str, str]:
        raise NotImplementedError

    def outputs(self) -> dict[str, dict[str, Any]]:
        """Each resource's outputs in ``_models``' names."""
        raise NotImplementedError

    def strip_model(self, resource: str) -> None:
        raise NotImplementedError


# -- the core, in-process ------------------------------------------------------------------------------------


@dataclass
class _Entry:
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


class CoreRunner(Runner):
    """``AgentService`` driven as the engine drives a provider; the state is a dict."""

    def __init__(self, sandbox: SandboxServer) -> None:
        super().__init__(sandbox)
        client = PhoneApiClient(Settings(api_token=TOKEN, base_url=sandbox.url, max_retries=3))
        self.close = client.close
        self.service = AgentService(lambda: client, unknown_form=UnknownForm(), claims=Claims(), run=RunMemory())
        self.state: dict[str, _Entry] = {}

    def run(self, step: Step) -> Observed:
        observed = Observed()
        if step.command == "up":
            for name, props in self.program.items():
                self._up(name, props, observed)
        elif step.command == "refresh":
            for name in list(self.state):
                self._refresh(name, observed)
        for name in [name for name in self.state if step.command == "destroy" or name not in self.program]:
            self.service.delete(self.state[name].id, self.state.pop(name).outputs)
            observed.ops[name] = "delete"
        return observed

    def _up(self, name: str, props: dict[str, Any], observed: Observed) -> None:
        old = self.state.get(name)
        checked = self.service.check(old.inputs if old else {}, props)
        assert not checked.failures, checked.failures
        if old is None:
            created = self.service.create(checked.inputs)
            self.state[name] = _Entry(created.id, checked.inputs, created.outputs)
            observed.ops[name] = "create"
            return
        diff = self.service.diff(old.id, old.outputs, checked.inputs)
        observed.changes[name] = tuple(diff.changes)
        if diff.replaces:
            rechecked = self.service.check({}, props)  # the engine checks again, without olds, to replace
            created = self.service.create(rechecked.inputs)
            self.state[name] = _Entry(created.id, rechecked.inputs, created.outputs)
            self.service.delete(old.id, old.outputs)
            observed.ops[name] = "replace"
        elif diff.changed:
            outputs = self.service.update(old.id, old.outputs, checked.inputs)
            self.state[name] = _Entry(old.id, checked.inputs, outputs)
            observed.ops[name] = "update"
        else:
            observed.ops[name] = "same"
            del observed.changes[name]

    def _refresh(self, name: str, observed: Observed) -> None:
        old = self.state[name]
        found = self.service.read(old.id, old.outputs)
        if found is None:
            del self.state[name]
            observed.ops[name] = "delete"
            return
        diff = self.service.diff(old.id, found.outputs, old.inputs)
        observed.ops[name] = "update" if diff.changed else "same"
        if diff.changed:
            observed.changes[name] = tuple(diff.changes)
        self.state[name] = _Entry(found.id, found.inputs, found.outputs)

    def agent_ids(self) -> dict[str, str]:
        return {name: entry.id for name, entry in self.state.items()}

    def outputs(self) -> dict[str, dict[str, Any]]:
        return {name: {"id": entry.id, **entry.outputs} for name, entry in self.state.items()}

    def strip_model(self, resource: str) -> None:
        for props in (self.state[resource].inputs, self.state[resource].outputs):
            props.pop("model", None)


# -- the adapters, under the real CLI ------------------------------------------------------------------------


class CliRunner(Runner):
    """A stack of one adapter run by the real CLI; ``names`` maps ``_models``' names to the adapter's."""

    type_token = ""

    def __init__(self, sandbox: SandboxServer, project: Project) -> None:
        super().__init__(sandbox)
        self.project = project

    def names(self, name: str) -> str:
        return name

    def write(self) -> None:
        raise NotImplementedError

    def run(self, step: Step) -> Observed:
        self.write()
        observed = Observed()
        if step.command == "up":
            plan = json.loads(self.project.run("preview", "--json", "--show-sames").stdout)
            for res in plan["steps"]:
                if res["urn"].split("::")[-2] == self.type_token:
                    name = res["urn"].rsplit("::", 1)[1]
                    op = "replace" if res["op"] in _REPLACE_OPS else res["op"]
                    observed.ops[name] = op
                    if op in ("update", "replace"):
                        observed.changes[name] = self.planned_changes(res)
            text = self.project.run("up", "--yes", "--diff").stdout
        elif step.command == "refresh":
            text = self.project.run("refresh", "--yes", "--diff").stdout
            counts = summary(text)
            (name,) = self.program  # the table's refreshes hold one resource: the summary is its operation
            observed.ops[name] = "update" if counts.get("updated") else "delete" if counts.get("deleted") else "same"
        else:
            text = self.project.destroy().stdout
            observed.ops = dict.fromkeys(self.program, "delete")
        for name, properties in step.changes.items():
            for prop in properties:
                if self.shows(step, prop):
                    assert self.names(prop) in text, f"{prop} of {name} is not named in the CLI's diff:\n{text}"
        return observed

    def shows(self, step: Step, prop: str) -> bool:
        """Whether the CLI's diff text names ``prop`` when it changes."""
        return True

    def planned_changes(self, res: dict[str, Any]) -> tuple[str, ...]:
        """The changed properties the engine was told of; the dynamic host tells none (see the module docs)."""
        raise NotImplementedError

    def resources(self) -> dict[str, dict[str, Any]]:
        return self.project.resources(self.type_token)

    def agent_ids(self) -> dict[str, str]:
        return {name: res["id"] for name, res in self.resources().items()}

    def outputs(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"id": res["id"], **{python_name(key): value for key, value in res["outputs"].items()}}
            for name, res in self.resources().items()
        }

    def strip_model(self, resource: str) -> None:
        exported = self.project.export()
        for res in exported["deployment"]["resources"]:
            if res["type"] == self.type_token and res["urn"].endswith(f"::{resource}"):
                res["inputs"].pop(self.names("model"))
                res["outputs"].pop(self.names("model"))
        path = self.project.dir.parent / "old-state.json"
        path.write_text(json.dumps(exported))
        self.project.run("stack", "import", "--file", str(path))


class DynamicRunner(CliRunner):
    """A Python program of dynamic ``PhoneAgent`` resources (tests/programs/agents)."""

    type_token = DYNAMIC_PHONE_AGENT

    def write(self) -> None:
        self.project.declare({name: {"args": props} for name, props in self.program.items()})

    def planned_changes(self, res: dict[str, Any]) -> tuple[str, ...]:
        return ()

    def shows(self, step: Step, prop: str) -> bool:
        # An up's diff text compares inputs: an output the API changed (a reassigned number) shows only on refresh.
        return step.command == "refresh" or prop not in IDENTITY_OUTPUTS


class PluginRunner(CliRunner):
    """A YAML program of ``oppie:index:PhoneAgent`` resources through the checkout's plugin."""

    type_token = PHONE_AGENT

    def names(self, name: str) -> str:
        return wire_name(name)

    def write(self) -> None:
        resources = {
            name: {"type": PHONE_AGENT, "properties": {wire_name(k): v for k, v in props.items()}}
            for name, props in self.program.items()
        }
        write_program(self.project.dir, resources)

    def planned_changes(self, res: dict[str, Any]) -> tuple[str, ...]:
        return tuple(python_name(key) for key in res.get("detailedDiff") or {})


def run_through(runner: Runner, steps: list[Step]) -> list[Observed]:
    return [runner.step(step) for step in steps]


def sandbox() -> Any:
    return serve(SandboxConfig(token=TOKEN, db_path=":memory:", rate_limit_per_minute=None))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_core_and_both_providers_give_the_same_diff_calls_and_outputs(scenario: str, tmp_path: Path) -> None:
    steps = SCENARIOS[scenario]
    with sandbox() as api:
        core = CoreRunner(api)
        try:
            via_core = run_through(core, steps)
        finally:
            core.close()

    def through_dynamic() -> list[Observed]:
        with sandbox() as api:
            dynamic = Project.program(tmp_path / "dynamic")
            dynamic.configure(api.url, TOKEN)
            return run_through(DynamicRunner(api, dynamic), steps)

    def through_plugin() -> list[Observed]:
        with sandbox() as api:
            plugin = Project(write_program(tmp_path / "plugin-src", {}), tmp_path / "plugin", env=yaml_env())
            plugin.configure(api.url, TOKEN)
            return run_through(PluginRunner(api, plugin), steps)

    # Side by side: each has its own sandbox, project and backend, and most of a CLI run is waiting.
    with ThreadPoolExecutor(max_workers=2) as pool:
        dynamic_run, plugin_run = pool.submit(through_dynamic), pool.submit(through_plugin)
        via_dynamic, via_plugin = dynamic_run.result(), plugin_run.result()

    for number, (step, core_saw, dynamic_saw, plugin_saw) in enumerate(
        zip(steps, via_core, via_dynamic, via_plugin, strict=True), start=1
    ):
        where = f"{scenario}, step {number} ({step.command})"
        # The table's expectations, met by the core ...
        assert core_saw.ops == dict(step.ops), where
        assert {n: sorted(c) for n, c in core_saw.changes.items()} == {n: sorted(c) for n, c in step.changes.items()}, (
            where
        )
        assert as_expected(core_saw.writes, step.writes) == list(step.writes), where
        for name, pinned in step.outputs.items():
            assert {k: core_saw.outputs[name].get(k) for k in pinned} == dict(pinned), where
        # ... and both providers doing exactly what the core does.
        for adapter, saw in (("dynamic", dynamic_saw), ("plugin", plugin_saw)):
            assert saw.ops == core_saw.ops, f"{where}: {adapter}"
            assert saw.writes == core_saw.writes, f"{where}: {adapter}"
            assert saw.outputs == core_saw.outputs, f"{where}: {adapter}"
        if step.command == "up":  # a refresh's per-property diff reaches the CLI's text only (checked in run)
            assert {n: sorted(c) for n, c in plugin_saw.changes.items()} == {
                n: sorted(c) for n, c in core_saw.changes.items()
            }, f"{where}: the plugin's detailed diff"
