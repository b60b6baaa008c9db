#!/usr/bin/env python
"""What users feel: ``pulumi preview``, ``up``, ``refresh`` and ``destroy`` through the real CLI, against the floor
the engine itself sets.

Run it with ``.venv/bin/python benchmarks/engine.py [--smoke | --full] [--json PATH] [--profile DIR]``. It
prints the machine, one table of figures (ours, floor, ratio, goal, met?) and, with ``--full``, how they grow
with the stack. The default run (200 agents, 5 repetitions) takes 2 to 3 minutes on 2 cores; ``--smoke`` (5
agents, one repetition, a time-scaled rate-limit run) about a minute, and asserts nothing about time: CI runs
it only to prove the script works (``tests/test_benchmarks_smoke.py``); ``--full`` (50, 200 and 500 agents,
and 100 creates and deletes at the API's real 100 requests/minute) about 9. Nothing here asserts on time.
Results: ``docs/performance.md``.

The two floors
--------------
1. **The engine's.** ``benchmarks/programs/noop`` is the program of ``benchmarks/programs/agents`` (one
   resource per entry of ``agents.json``, the same arguments) on a dynamic provider that does nothing:
   ``check`` returns the news, ``create`` a fresh id, ``diff`` no change, ``read`` the state. Its outputs have
   our outputs' keys and about their size, and its provider pickles by reference as ours does, so its state
   weighs what ours weighs. It runs in the same CLI (the pinned build, from ``tools/pulumi/install.sh``), on the
   same machine, in the same run: every command is timed for ours and for the floor back to back, the order
   alternating at each repetition (ours-floor, floor-ours, ...), and the figures are medians. What the floor
   cannot remove is what any dynamic provider costs: the CLI, the language host, the Python program with the
   Pulumi SDK, and the dynamic-provider host (``python -m pulumi.dynamic``, which serves **4 gRPC calls at
   once**, whatever the CLI's ``--parallel``, **8 by default** here: 4 x the CPUs). The ratio is what ours
   adds on top: importing ``oppie_pulumi`` in the program and the host, validation, the API.
2. **The API's.** The API allows 100 requests a minute (a sliding window, as the sandbox enforces it), so N
   creates cannot take less than N x 0.6 s at that pace (the issue's floor, 60 s for 100). A fresh window
   admits its first 100 at once, though, so 100 creates on an idle budget are bound by the engine, not the
   limit; the ``destroy`` that follows has a floor the limit really sets: its last DELETE cannot go before the
   last POST has left the window, i.e. ``last POST + 60 s`` (see ``bench_rate``).

Commands, as users type them in CI (wall time of the whole command, the CLI's start to its exit)
-------------------------------------------------------------------------------------------------
- ``pulumi preview``: a stack of N existing agents, nothing changed. API calls: every request the sandbox
  counted during the command (goal: 0).
- ``pulumi up --yes``: the same stack, nothing changed (``--yes`` previews, then updates: two passes). API
  writes: POST, PATCH and DELETE the sandbox journalled (goal: 0).
- ``pulumi refresh --yes``: the same stack; it previews (reads every agent) then refreshes (reads them again).
  Every read lists ``GET /phone`` (the API has no ``GET /phone/{id}``) and the provider shares one list for
  2 s, so the goal counts list calls over both passes (<= 3).
- ``pulumi up --yes`` creating 100 agents, then ``pulumi destroy --yes`` of them, against a sandbox limited
  to 100/minute with the provider's default client limit (100/minute): ``--full`` only, run once (each is
  bound by minutes of real time); the floor's create and destroy (no API) are run beside them.
- ``pulumi stack export``: bytes per agent (the resource's entry, compact JSON), and of that the pickled
  provider (``__provider``, base64 of dill, in the inputs and in the outputs).

Set-up, outside the clock: the sandbox runs in this process (``oppie_pulumi.sandbox.serve``, SQLite in memory)
and counts what reaches it (``server.stats()``, ``server.writes()``). Each stack is populated by ``pulumi up``
with both limits off, then the sandbox's limit is set to the API's 100/minute and the provider's setting is
removed (its default is 100/minute), and one ``up`` and one ``preview`` of each stack run before any timing (the
engine stores the config in the state; the first commands also warm the disk cache and ``__pycache__``).
Every timed command is checked: it must exit 0 and report N + 1 unchanged resources (the stack is one).

Finding where the time goes
---------------------------
- ``--profile DIR``: per size, one more run of each command with py-spy (``pip install py-spy``) attached to
  the program and to the provider host(s) of each kind (100 Hz, CPU samples only, raw stacks kept in DIR),
  and the CPU seconds of each of those processes read from ``/proc``; it prints where the CPU went.
- ``--attribute``: a third kind, the floor whose program and provider module also ``import oppie_pulumi``
  (``BENCH_NOOP_IMPORT``, see ``programs/noop/noop_provider.py``): what importing our package costs.
- ``--candidate DIR``: a fourth kind, ours run with the ``oppie_pulumi`` package found in DIR (first on its
  ``PYTHONPATH``), on ours' agents (a copy of ours' state), interleaved with the rest: a change measured
  before it is made.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from oppie_pulumi_testing.cli import PHONE_AGENT, Project

from oppie_pulumi.sandbox import SandboxConfig, SandboxServer, serve

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROGRAMS = HERE / "programs"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

sys.path.insert(0, str(HERE))
import _report  # noqa: E402  (benchmarks/_report.py: the table, the agent and the checks run.py shares)
from _plugin import Release, plugin_rows  # noqa: E402  (--plugin: the plugin as installed from make dist)
from _profile import Profiler, print_profile  # noqa: E402  (--profile: py-spy on every Python process of a run)
from _report import Row, expect, goals_line, median, print_table, progress, pulumi_bin, spec  # noqa: E402

TOKEN = "bench-engine-token-7c2d"
OURS, FLOOR = "agents", "noop"
# --attribute: the floor that also imports oppie_pulumi, in the program and in the provider host, when ours does.
FLOOR_IMPORT = "noop+import"
# --candidate DIR: ours again, with the oppie_pulumi found in DIR (a change not installed), on the same agents.
CANDIDATE = "candidate"
# --plugin: the same agents through the plugin (oppie:index:PhoneAgent) and its Python SDK, from make dist's output.
PLUGIN = "plugin"
PROGRAM = {OURS: "agents", FLOOR: "noop", FLOOR_IMPORT: "noop", CANDIDATE: "agents", PLUGIN: "plugin"}
CANDIDATE_PATH: list[Path] = []
NOOP_TYPE = "pulumi-python:dynamic/bench:NoopAgent"
API_LIMIT_PER_MINUTE = 100
PROVIDER_KEY = "__provider"
TABLE_HEADER = ("figure", "ours", "floor", "ratio", "goal", "met?")
# The no-change commands, as typed; the key names the figure.
COMMANDS: dict[str, tuple[str, ...]] = {
    "preview": ("preview",),
    "up": ("up", "--yes"),
    "refresh": ("refresh", "--yes"),
}
GOALS = {"preview": 1.25, "up": 1.25, "refresh": 1.5}
RATE_GOAL = 1.05
PICKLE_GOAL_BYTES = 512
MAX_LIST_CALLS = 3
COMMAND_TIMEOUT = 900.0


@dataclass(frozen=True)
class Sizes:
    """How much a mode does."""

    agents: tuple[int, ...]  # stack sizes; the headline figures are at HEADLINE agents when present
    reps: dict[int, int]  # repetitions (each: ours and floor) per stack size
    rate_creates: int  # 0: no rate-limited create/destroy
    rate_limit: int  # requests per window, sandbox and provider alike
    rate_window: float  # seconds; 60 unless time-scaled (--smoke)


HEADLINE = 200
SMOKE = Sizes(agents=(5,), reps={5: 1}, rate_creates=6, rate_limit=5, rate_window=1.0)
DEFAULT = Sizes(agents=(200,), reps={200: 5}, rate_creates=0, rate_limit=API_LIMIT_PER_MINUTE, rate_window=60.0)
FULL = Sizes(
    agents=(50, 200, 500),
    reps={50: 5, 200: 5, 500: 3},
    rate_creates=100,
    rate_limit=API_LIMIT_PER_MINUTE,
    rate_window=60.0,
)


# -- the CLI, one stack per program -------------------------------------------------------------------------


@dataclass
class Timed:
    """One CLI run: wall seconds, what it printed, and what reached the API meanwhile."""

    seconds: float
    output: str
    api: dict[str, Any]
    writes: int
    processes: list[dict[str, Any]] = field(default_factory=list)


class Stack:
    """A copy of ``benchmarks/programs/<program>`` with a stack of its own (``oppie_pulumi_testing.cli.Project``).

    ``kind``: ours, the floor, the floor that imports oppie_pulumi (``--attribute``), or the plugin (``--plugin``,
    which needs ``release``).
    """

    def __init__(self, kind: str, folder: Path, sandbox: SandboxServer, release: Release | None = None) -> None:
        self.kind = kind
        self.sandbox = sandbox
        project_dir = folder / "project"  # where Project copies the program
        # The floor's provider module is imported by the provider host from the program's folder.
        path = [*(CANDIDATE_PATH if kind == CANDIDATE else ()), project_dir]
        if kind == PLUGIN:
            assert release is not None, "the plugin kind needs the release artefacts"
            path.insert(0, release.site)
        env = {"PYTHONPATH": os.pathsep.join(str(p) for p in path)}
        if kind == FLOOR_IMPORT:
            env["BENCH_NOOP_IMPORT"] = "oppie_pulumi"
        self.project = Project(
            PROGRAMS / PROGRAM[kind], folder, bin_dir=pulumi_bin(), python=VENV_PYTHON, stack="bench", env=env
        )
        if release is not None and kind == PLUGIN:
            release.install(self.project)
        self.project.configure(sandbox.url, TOKEN)
        self.size = 0

    def declare(self, n: int) -> None:
        """The program declares agents ``agent-0`` .. ``agent-{n-1}``."""
        agents = {f"agent-{i}": spec(i) for i in range(n)}
        (self.project.dir / "agents.json").write_text(json.dumps(agents))
        self.size = n

    def run(self, *args: str, profiler: Profiler | None = None) -> Timed:
        """``pulumi <args>``, timed; fails with the CLI's output unless it exits 0."""
        command = self.project.command(*args)
        self.sandbox.reset_stats()
        start = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=self.project.dir,
            env=self.project.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        watcher = profiler.watch(process.pid, self.kind, args[0]) if profiler else contextlib.nullcontext([])
        with watcher as processes:
            try:
                output, _ = process.communicate(timeout=COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
                what = f"`pulumi {' '.join(args)}` ({self.kind})"
                raise RuntimeError(f"{what} ran over {COMMAND_TIMEOUT:.0f} s") from None
            seconds = time.perf_counter() - start
        if process.returncode != 0:
            what = f"`pulumi {' '.join(args)}` ({self.kind})"
            raise RuntimeError(f"{what} exited {process.returncode}:\n{output[-4000:]}")
        writes = sum(1 for write in self.sandbox.writes() if write["method"] in ("POST", "PATCH", "DELETE"))
        return Timed(seconds, output, self.sandbox.stats(), writes, list(processes))

    def set_config(self, key: str, value: str | None) -> None:
        if value is None:
            self.project.run("config", "rm", key)
        else:
            self.project.config_set(key, value)

    def export(self) -> dict[str, Any]:
        return self.project.export()


_UNCHANGED = re.compile(r"^\s*(\d+) unchanged\s*$", re.MULTILINE)
_CHANGES = re.compile(r"^\s*[-+~]+\s*\d+\s+(to create|to update|to delete|to replace|created|updated|deleted|replaced)")


def check_unchanged(timed: Timed, n: int, what: str) -> None:
    """The command changed nothing and saw the whole stack (the agents and the stack resource)."""
    counts = [int(c) for c in _UNCHANGED.findall(timed.output)]
    expect(bool(counts) and all(c == n + 1 for c in counts), f"{what}: expected {n + 1} unchanged, got {counts}")
    expect(not _CHANGES.search(timed.output), f"{what}: reported changes:\n{timed.output[-2000:]}")


# -- results -------------------------------------------------------------------------------------------------


def default_parallel(bin_dir: Path) -> str:
    """The CLI's default ``--parallel``, as its help states it."""
    result = subprocess.run([str(bin_dir / "pulumi"), "up", "--help"], capture_output=True, text=True, check=False)
    found = re.search(r"--parallel int32.*\(default (\d+)\)", result.stdout)
    return found.group(1) if found else "unknown"


def machine(bin_dir: Path) -> dict[str, Any]:
    """What the figures were measured on."""
    version = subprocess.run([str(bin_dir / "pulumi"), "version"], capture_output=True, text=True, check=False)
    return {
        **_report.machine(),
        "pulumi_cli": version.stdout.strip(),
        "pulumi_sdk": metadata.version("pulumi"),
        "cli_default_parallel": default_parallel(bin_dir),
        "provider_host_workers": 4,
    }


# -- no-change commands at one stack size --------------------------------------------------------------------


@dataclass
class SizeResult:
    """Every sample at one stack size."""

    n: int
    reps: int
    seconds: dict[str, dict[str, list[float]]]  # command -> kind -> samples
    api: dict[str, list[dict[str, Any]]]  # command -> our runs' API stats
    writes: dict[str, list[int]]  # command -> our runs' API writes
    populate_seconds: dict[str, float]
    state: dict[str, Any]
    profile: list[dict[str, Any]] = field(default_factory=list)
    plugin_api: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # command -> the plugin's API stats

    def median(self, command: str, kind: str) -> float:
        return median(self.seconds[command][kind])

    def ratio(self, command: str) -> float:
        return self.median(command, OURS) / self.median(command, FLOOR)

    def kinds(self) -> list[str]:
        return list(next(iter(self.seconds.values())))

    def list_calls(self, command: str) -> list[int]:
        return [stats["by_route"].get("GET /phone", 0) for stats in self.api[command]]

    def api_calls(self, command: str) -> list[int]:
        return [stats["requests"] for stats in self.api[command]]


def populate(stacks: dict[str, Stack], n: int) -> dict[str, float]:
    """Make each stack's ``n`` agents, limits off (500 creates at 100/minute take 5 minutes), then put them back.

    Ours and the plugin each have a sandbox (an organisation) of their own; the floor makes no API call.
    """
    sandboxes = list({id(stack.sandbox): stack.sandbox for stack in stacks.values()}.values())
    seconds: dict[str, float] = {}
    for sandbox in sandboxes:
        sandbox.state.rate_limiter.limit = None
    for kind, stack in stacks.items():
        stack.declare(n)
        if kind == CANDIDATE:
            continue
        progress(f"{n} agents: populating {kind}")
        stack.set_config("oppie:maxRequestsPerMinute", "0")
        seconds[kind] = stack.run("up", "--yes", "--skip-preview").seconds
        stack.set_config("oppie:maxRequestsPerMinute", None)
    if CANDIDATE in stacks:
        # The candidate manages ours' agents: ours' state and config (the config file holds the salt that the
        # secrets in the state are encrypted with). Neither ever writes to the API here.
        ours, candidate = stacks[OURS].project, stacks[CANDIDATE].project
        config = f"Pulumi.{ours.stack}.yaml"
        shutil.copy2(ours.dir / config, candidate.dir / config)
        exported = ours.dir.parent / "exported.json"
        ours.run("stack", "export", "--file", str(exported))
        candidate.run("stack", "import", "--file", str(exported))
    for sandbox in sandboxes:
        expect(len(sandbox.agents()) == n, f"populating made {len(sandbox.agents())} agents, not {n}")
        sandbox.state.rate_limiter.reset()
        sandbox.state.rate_limiter.limit = API_LIMIT_PER_MINUTE
    for kind, stack in stacks.items():
        # The engine keeps the config in the state: this up stores the config the timed runs use.
        stack.run("up", "--yes", "--skip-preview")
        check_unchanged(stack.run("preview"), n, f"{kind} warm-up preview")
    return seconds


def bench_size(
    n: int,
    reps: int,
    sandboxes: dict[str, SandboxServer],
    folder: Path,
    profiler: Profiler | None,
    release: Release | None = None,
) -> SizeResult:
    """Populate a stack of ``n`` agents per kind (``sandboxes``' keys), then time each command ``reps`` times."""
    kinds = list(sandboxes)
    stacks = {kind: Stack(kind, folder / f"{kind}-{n}", sandboxes[kind], release) for kind in kinds}
    populated = populate(stacks, n)
    result = SizeResult(n, reps, {cmd: {kind: [] for kind in kinds} for cmd in COMMANDS}, {}, {}, populated, {})
    for rep in range(reps):
        # Each kind first in turn: ours-floor, floor-ours, ... (with --attribute, a rotation of three).
        order = [*kinds[rep % len(kinds) :], *kinds[: rep % len(kinds)]]
        for name, args in COMMANDS.items():
            for kind in order:
                timed = stacks[kind].run(*args)
                check_unchanged(timed, n, f"{kind} {' '.join(args)}")
                result.seconds[name][kind].append(timed.seconds)
                if kind == OURS:
                    result.api.setdefault(name, []).append(timed.api)
                    result.writes.setdefault(name, []).append(timed.writes)
                elif kind == PLUGIN:
                    result.plugin_api.setdefault(name, []).append(timed.api)
            timings = ", ".join(f"{kind} {result.seconds[name][kind][-1]:.2f} s" for kind in kinds)
            progress(f"{n} agents, rep {rep + 1}/{reps}: {name}: {timings}")

    result.state = state_bytes(stacks[OURS].export(), stacks[FLOOR].export(), n)
    if profiler is not None:
        for name, args in COMMANDS.items():
            for kind in kinds:
                progress(f"{n} agents: profiling {kind} {name}")
                timed = stacks[kind].run(*args, profiler=profiler)
                for record in timed.processes:
                    record.update(n=n, figure=name, wall_seconds=timed.seconds)
                result.profile += timed.processes
    for sandbox in {id(s): s for s in sandboxes.values()}.values():
        expect(len(sandbox.agents()) == n, "the no-change commands changed the agents")
        sandbox.reset()  # the next size starts from an empty organisation
    return result


def state_bytes(ours: dict[str, Any], floor: dict[str, Any], n: int) -> dict[str, Any]:
    """Bytes per agent in ``pulumi stack export``, and of that the pickled provider."""

    def entries(export: dict[str, Any], type_: str) -> list[dict[str, Any]]:
        return [r for r in export["deployment"].get("resources") or [] if r["type"] == type_]

    agents, noops = entries(ours, PHONE_AGENT), entries(floor, NOOP_TYPE)
    expect(len(agents) == n and len(noops) == n, f"state holds {len(agents)} / {len(noops)} agents, not {n}")

    def compact(value: Any) -> int:
        return len(json.dumps(value, separators=(",", ":")))

    entry = agents[0]
    serialized = entry["outputs"][PROVIDER_KEY]
    per_agent = [compact(r) for r in agents]
    engine_fields = ("sourcePosition", "stackTrace", "created", "modified", "parent", "provider")
    return {
        "export_bytes_per_agent": len(json.dumps(ours, indent=4)) / n,
        "entry_bytes": median(per_agent),
        "floor_entry_bytes": median([compact(r) for r in noops]),
        "pickle_bytes": len(base64.b64decode(serialized)),
        "provider_base64_bytes": len(serialized),
        "provider_copies": sum(PROVIDER_KEY in entry.get(part, {}) for part in ("inputs", "outputs")),
        "engine_bytes": sum(compact(entry[k]) for k in engine_fields if k in entry),
        "stack_trace_bytes": compact(entry.get("stackTrace", [])) + compact(entry.get("sourcePosition", "")),
        "inputs_outputs_bytes": compact(entry["inputs"]) + compact(entry["outputs"]),
    }


def size_rows(result: SizeResult) -> list[Row]:
    n = result.n
    rows: list[Row] = []
    for name, args in COMMANDS.items():
        ours, floor = result.median(name, OURS), result.median(name, FLOOR)
        ratio = result.ratio(name)
        pairs = [a / b for a, b in zip(result.seconds[name][OURS], result.seconds[name][FLOOR], strict=True)]
        calls, lists = result.api_calls(name), result.list_calls(name)
        if name == "preview":
            api_text, api_ok, api_goal = f"{max(calls)} API calls", max(calls) == 0, "0 API calls"
        elif name == "up":
            writes = max(result.writes[name])
            api_text, api_ok, api_goal = f"{writes} API writes, {max(calls)} calls", writes == 0, "0 API writes"
        else:
            api_text = f"{max(lists)} list calls ({max(calls)} in all)"
            api_ok, api_goal = max(lists) <= MAX_LIST_CALLS and max(calls) == max(lists), f"<= {MAX_LIST_CALLS} lists"
        goal = GOALS[name]
        rows.append(
            Row(
                f"pulumi {' '.join(args)}, {n} agents, no change",
                f"{ours:.2f} s; {api_text}",
                f"{floor:.2f} s",
                f"{ratio:.2f} ({min(pairs):.2f}-{max(pairs):.2f})",
                f"<= {goal:g}; {api_goal}",
                ratio <= goal and api_ok,
                {
                    "n": n,
                    "command": ["pulumi", *args],
                    "ours_seconds": result.seconds[name][OURS],
                    "floor_seconds": result.seconds[name][FLOOR],
                    "ours_median": ours,
                    "floor_median": floor,
                    "ratio_of_medians": ratio,
                    "pair_ratios": pairs,
                    "api_calls": calls,
                    "list_calls": lists,
                    "api_writes": result.writes[name],
                    "api_by_route": [stats["by_route"] for stats in result.api[name]],
                },
                key=name,
            )
        )
        if CANDIDATE in result.kinds():
            candidate = result.median(name, CANDIDATE)
            rows.append(
                Row(
                    "  ours with oppie_pulumi from --candidate",
                    f"{candidate:.2f} s ({candidate / ours:.2f} x ours)",
                    f"{floor:.2f} s",
                    f"{candidate / floor:.2f}",
                    data={"seconds": result.seconds[name][CANDIDATE], "median": candidate, "path": CANDIDATE_PATH},
                    key=f"{name}-candidate",
                )
            )
        if FLOOR_IMPORT in result.kinds():
            with_import = result.median(name, FLOOR_IMPORT)
            rows.append(
                Row(
                    "  the floor importing oppie_pulumi (--attribute)",
                    f"{with_import:.2f} s",
                    f"{floor:.2f} s",
                    f"{with_import / floor:.2f}",
                    data={"seconds": result.seconds[name][FLOOR_IMPORT], "median": with_import},
                    key=f"{name}-floor-importing",
                )
            )
    state = result.state
    rows.append(
        Row(
            f"pulumi stack export, bytes per agent ({n} agents)",
            f"{state['entry_bytes']:,.0f} B",
            f"{state['floor_entry_bytes']:,.0f} B",
            f"{state['entry_bytes'] / state['floor_entry_bytes']:.2f}",
            data=state,
            key="export",
        )
    )
    rows.append(
        Row(
            "  of which the pickled provider",
            f"{state['pickle_bytes']} B ({state['provider_copies']} x {state['provider_base64_bytes']} B base64)",
            goal=f"<= {PICKLE_GOAL_BYTES} B",
            met=state["pickle_bytes"] <= PICKLE_GOAL_BYTES,
            data={"pickle_bytes": state["pickle_bytes"]},
            key="pickle",
        )
    )
    return rows


# -- creates and deletes at the API's limit ------------------------------------------------------------------


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def bench_rate(sizes: Sizes, folder: Path) -> list[Row]:
    """``pulumi up --yes`` creating N agents, then ``pulumi destroy --yes``, at the API's limit; the floor's too."""
    n, limit, window = sizes.rate_creates, sizes.rate_limit, sizes.rate_window
    scaled = window != 60.0
    config = SandboxConfig(token=TOKEN, db_path=":memory:", rate_limit_per_minute=limit, rate_window_seconds=window)
    with serve(config) as sandbox:
        stacks = {kind: Stack(kind, folder / f"{kind}-rate", sandbox) for kind in (FLOOR, OURS)}
        for stack in stacks.values():
            stack.declare(n)
            if scaled:
                # Both windows shortened through their settings; the provider's limit per (scaled) window.
                stack.set_config("oppie:rateLimitWindowSeconds", str(window))
                stack.set_config("oppie:maxRequestsPerMinute", str(limit))
            # else: the provider's default, 100/minute, as a user has it.
        floor_up = stacks[FLOOR].run("up", "--yes")
        floor_destroy = stacks[FLOOR].run("destroy", "--yes")
        sandbox.state.rate_limiter.reset()  # a fresh window for ours
        progress(f"rate: {n} creates at {limit} per {window:g} s")
        up = stacks[OURS].run("up", "--yes")
        agents = sandbox.agents()
        up_429 = up.api["by_status"].get("429", 0)
        created = up.api["by_status"].get("201", 0)
        last_post = max(_epoch(agent["created_at"]) for agent in agents) if agents else time.time()
        progress(f"rate: destroy of {len(agents)}")
        destroy_start = time.time()
        destroy = stacks[OURS].run("destroy", "--yes")
        left = len(sandbox.agents())
    pace = f"{limit}/min" if not scaled else f"{limit} per {window:g} s (time-scaled)"
    up_floor = n * window / limit  # the floor: N x 0.6 s at 100/minute
    failures = n - created
    # The destroy's last DELETE cannot go before the last POST has left the window (see the module docstring).
    destroy_floor = max(last_post + window - destroy_start, floor_destroy.seconds)
    destroy_429 = destroy.api["by_status"].get("429", 0)
    deletes = destroy.api["by_status"].get("200", 0) + destroy.api["by_status"].get("204", 0)
    return [
        Row(
            f"pulumi up --yes creating {n} agents at {pace}",
            f"{up.seconds:.1f} s; {failures} failed, {up_429} x 429",
            f"{up_floor:.1f} s (N x {window / limit:g} s); engine {floor_up.seconds:.1f} s",
            f"{up.seconds / up_floor:.2f}; {up.seconds / floor_up.seconds:.2f} x engine",
            f"<= {RATE_GOAL:g}; 0 failed, 0 x 429",
            up.seconds <= RATE_GOAL * up_floor and failures == 0 and up_429 == 0,
            {
                "seconds": up.seconds,
                "floor_seconds_limit": up_floor,
                "floor_seconds_engine": floor_up.seconds,
                "created": created,
                "by_status": up.api["by_status"],
                "by_route": up.api["by_route"],
                "window_seconds": window,
                "limit_per_window": limit,
            },
            key="rate-up",
        ),
        Row(
            f"pulumi destroy --yes of those {n}, right after, same limit",
            f"{destroy.seconds:.1f} s; {left} left, {destroy_429} x 429",
            f"{destroy_floor:.1f} s (last POST + {window:g} s); engine {floor_destroy.seconds:.1f} s",
            f"{destroy.seconds / destroy_floor:.2f}",
            f"<= {RATE_GOAL:g}; none left",
            destroy.seconds <= RATE_GOAL * destroy_floor and left == 0,
            {
                "seconds": destroy.seconds,
                "floor_seconds": destroy_floor,
                "floor_seconds_engine": floor_destroy.seconds,
                "seconds_from_last_post_to_start": destroy_start - last_post,
                "deleted": deletes,
                "left": left,
                "by_status": destroy.api["by_status"],
                "by_route": destroy.api["by_route"],
            },
            key="rate-destroy",
        ),
    ]


# -- main ----------------------------------------------------------------------------------------------------


def scaling_table(results: Sequence[SizeResult]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    header = ("command", "agents", "ours", "floor", "ratio", "ours - floor", "per agent", "API calls")
    lines = []
    for name, args in COMMANDS.items():
        for result in results:
            ours, floor = result.median(name, OURS), result.median(name, FLOOR)
            extra = ours - floor
            lines.append(
                (
                    f"pulumi {' '.join(args)}",
                    str(result.n),
                    f"{ours:.2f} s",
                    f"{floor:.2f} s",
                    f"{ours / floor:.2f}",
                    f"{extra:+.2f} s",
                    f"{ours / result.n * 1000:.1f} / {floor / result.n * 1000:.1f} ms",
                    str(max(result.api_calls(name))),
                )
            )
        if len(results) > 1:
            # The slope between the smallest and largest stacks: the cost of one more agent.
            small, large = results[0], results[-1]
            span = large.n - small.n
            slope_ours = (large.median(name, OURS) - small.median(name, OURS)) / span * 1000
            slope_floor = (large.median(name, FLOOR) - small.median(name, FLOOR)) / span * 1000
            lines.append(
                (
                    f"pulumi {' '.join(args)}",
                    f"+1 ({small.n}->{large.n})",
                    f"{slope_ours:.1f} ms",
                    f"{slope_floor:.1f} ms",
                    f"{slope_ours / slope_floor:.2f}",
                    f"{slope_ours - slope_floor:+.1f} ms",
                    "",
                    "",
                )
            )
    for result in results:
        state = result.state
        lines.append(
            (
                "stack export",
                str(result.n),
                f"{state['entry_bytes']:,.0f} B/agent",
                f"{state['floor_entry_bytes']:,.0f} B/agent",
                f"{state['entry_bytes'] / state['floor_entry_bytes']:.2f}",
                "",
                "",
                "",
            )
        )
    return header, lines


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="5 agents, 1 repetition, time-scaled limit (CI)")
    mode.add_argument("--full", action="store_true", help="50/200/500 agents and 100 creates at 100/min")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH")
    parser.add_argument("--profile", metavar="DIR", help="one more run per command under py-spy; raw stacks in DIR")
    parser.add_argument("--sizes", metavar="N,N", help="override the stack sizes (e.g. 200 or 50,200)")
    parser.add_argument("--reps", type=int, metavar="R", help="override the repetitions per size")
    parser.add_argument("--no-rate", action="store_true", help="skip the rate-limited create/destroy")
    parser.add_argument(
        "--attribute",
        action="store_true",
        help="also time the floor importing oppie_pulumi where ours does (what the import costs)",
    )
    parser.add_argument(
        "--candidate",
        metavar="DIR",
        help="also time ours with the oppie_pulumi package found in DIR (a change not installed), interleaved",
    )
    parser.add_argument(
        "--plugin",
        action="store_true",
        help="also time the plugin (oppie:index:PhoneAgent through its Python SDK), installed from --dist",
    )
    parser.add_argument("--dist", metavar="DIR", default=str(ROOT / "dist"), help="make dist's output (--plugin)")
    args = parser.parse_args(argv)
    if args.candidate:
        found = Path(args.candidate).resolve()
        if not (found / "oppie_pulumi" / "__init__.py").exists():
            parser.error(f"--candidate {args.candidate}: no oppie_pulumi package there")
        CANDIDATE_PATH[:] = [found]
    return args


def print_header(host: dict[str, Any], command: str, mode: str, reps: dict[int, int], args: argparse.Namespace) -> None:
    print(f"oppie-pulumi engine benchmarks ({mode}): {command}")
    print(
        f"machine: {host['nproc']} CPUs ({host['cpu']}), load {host['load_average_at_start']}, Python "
        f"{host['python']}, {host['pulumi_cli']} (SDK {host['pulumi_sdk']}); CLI default --parallel "
        f"{host['cli_default_parallel']}, dynamic provider host: {host['provider_host_workers']} calls at once"
    )
    print(
        f"ours: benchmarks/programs/{OURS}; floor: benchmarks/programs/{FLOOR} (no-op dynamic provider), "
        f"interleaved, order alternating; medians of {', '.join(f'{r} at {n}' for n, r in reps.items())} runs"
    )
    if args.candidate:
        print(f"candidate: ours with oppie_pulumi from {args.candidate} (--candidate), on ours' agents")
    if args.plugin:
        print(
            f"plugin: benchmarks/programs/{PROGRAM[PLUGIN]} (pulumi_oppie), the plugin and the SDK installed from "
            f"{args.dist}, with a sandbox of its own"
        )
    sys.stdout.flush()


def run_sizes(agents: Sequence[int], reps: dict[int, int], args: argparse.Namespace, tmp: Path) -> list[SizeResult]:
    """Every stack size, each kind against its sandbox: ours, the floor and the extras the flags ask for."""
    profiler = Profiler(Path(args.profile).resolve()) if args.profile else None
    release = Release.from_dist(Path(args.dist).resolve(), tmp) if args.plugin else None
    config = SandboxConfig(token=TOKEN, db_path=":memory:", rate_limit_per_minute=None)
    with serve(config) as sandbox, serve(config) if args.plugin else contextlib.nullcontext(None) as own:
        sandboxes = {OURS: sandbox, FLOOR: sandbox}
        sandboxes |= {FLOOR_IMPORT: sandbox} if args.attribute else {}
        sandboxes |= {CANDIDATE: sandbox} if args.candidate else {}
        sandboxes |= {PLUGIN: own} if own is not None else {}
        return [bench_size(n, reps[n], sandboxes, tmp, profiler, release) for n in agents]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    sizes = SMOKE if args.smoke else FULL if args.full else DEFAULT
    mode_name = "smoke" if args.smoke else "full" if args.full else "default"
    agents = tuple(int(x) for x in args.sizes.split(",")) if args.sizes else sizes.agents
    reps = {n: args.reps or sizes.reps.get(n, 3) for n in agents}
    try:
        bin_dir = pulumi_bin()
    except RuntimeError as exc:
        print(f"benchmarks/engine.py needs the Pulumi CLI: {exc}", file=sys.stderr)
        return 2
    host = machine(bin_dir)
    command = " ".join(["python", "benchmarks/engine.py", *(argv if argv is not None else sys.argv[1:])])
    print_header(host, command, mode_name, reps, args)

    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="oppie-engine-bench-") as tmp:
        results = run_sizes(agents, reps, args, Path(tmp))
        headline = next((r for r in results if r.n == HEADLINE), results[-1])
        rows += size_rows(headline)
        if args.plugin:
            by_size = {r.n: r for r in results}
            rows += plugin_rows(
                agents,
                lambda n, cmd, kind: by_size[n].median(cmd, kind),
                lambda n, cmd: max(stats["requests"] for stats in by_size[n].plugin_api[cmd]),
                (PLUGIN, OURS, FLOOR),
            )
        if sizes.rate_creates and not args.no_rate:
            rows += bench_rate(sizes, Path(tmp))

    print()
    print_table(TABLE_HEADER, [row.cells() for row in rows])
    print("ratio: of medians (the range of the ratios of each ours/floor pair in brackets)")
    if len(results) > 1:
        print("\nhow the cost grows (medians; per agent: ours / floor):")
        print_table(*scaling_table(results))
    profile = [record for result in results for record in result.profile]
    if profile:
        print_profile(profile, OURS)
    total = time.perf_counter() - started
    print(f"\n{goals_line(rows, total)}")
    if args.json:
        write_json(Path(args.json), command, mode_name, host, sizes, agents, reps, total, rows, results, profile)
    return 0


def write_json(
    path: Path,
    command: str,
    mode: str,
    host: dict[str, Any],
    sizes: Sizes,
    agents: Sequence[int],
    reps: dict[int, int],
    total: float,
    rows: Sequence[Row],
    results: Sequence[SizeResult],
    profile: Sequence[dict[str, Any]],
) -> None:
    """Every figure behind the table, for ``--json PATH``."""
    scaling = [
        {
            "n": r.n,
            "reps": r.reps,
            "seconds": r.seconds,
            "api": r.api,
            "plugin_api": r.plugin_api,
            "writes": r.writes,
            "populate_seconds": r.populate_seconds,
            "state": r.state,
        }
        for r in results
    ]
    document = {
        "command": command,
        "mode": mode,
        "machine": host,
        "sizes": asdict(sizes) | {"agents": agents, "reps": reps},
        "seconds": total,
        "rows": [asdict(row) for row in rows],
        "scaling": scaling,
        "profile": profile,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
