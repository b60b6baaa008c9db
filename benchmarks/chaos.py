#!/usr/bin/env python
"""Chaos: ``pulumi up`` killed at random moments, then the documented recovery; nothing lost, nothing twice.

Run it with ``.venv/bin/python benchmarks/chaos.py [--trials N] [--offsets -3000,0,3000] [--seed S] [--json PATH]``.
It prints the machine, one line per trial and a table per API clock offset; nothing here asserts on time.
``tests/test_chaos.py`` runs a few trials of it in the real-engine tier and asserts the counts.

One trial (issue 21), under the real CLI (the pinned build, as the tests use) against a sandbox in this process:

1. a fresh stack of ``AGENTS`` agents (``benchmarks/programs/agents``, the dynamic ``PhoneAgent``), the API slow
   (``LATENCY_MS`` before every request), its clock offset by the trial's offset in the stamps it writes, and the
   stamps cut to whole seconds but written with milliseconds (``...:07.000Z``);
2. ``pulumi up`` started, and its whole process group (the CLI, the language host, the provider host) killed with
   SIGKILL at a moment drawn uniformly between half a second before the first request an uninterrupted ``up`` of
   the same stack makes and the moment it ends (both measured first, per offset): before, during or after its
   baseline list and its POSTs;
3. the recovery the docs give a pipeline (docs/reliability.md): ``oppie-pulumi recover --stack <stack>``, then
   ``pulumi up``;
4. then counted, from the API's agents and the stack's state: **orphans** (agents no resource holds),
   **duplicates** (agents beyond one per declared resource), agents **held twice** (one id in two resources),
   **missing** (a declared resource without a live agent), and **failed recoveries** (``recover`` or the ``up``
   after it exited non-zero). All must be 0.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oppie_pulumi_testing.cli import PHONE_AGENT, Project

from oppie_pulumi.sandbox import SandboxConfig, SandboxServer, serve

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report  # benchmarks/_report.py: the machine and the pinned CLI

PROGRAM = Path(__file__).resolve().parent / "programs" / "agents"
TOKEN = "chaos-token"
AGENTS = 10
LATENCY_MS = 150
OFFSETS_MS = (-3000, 0, 3000)


@dataclass
class Trial:
    """One killed ``up`` and its recovery: when it was killed, what recovery did, and what was counted after."""

    offset_ms: int
    kill_after_s: float
    killed: bool  # False: the up had finished before the kill moment
    agents_at_kill: int  # agents the API had when the command died
    recover_exit: int
    recover_output: str
    up_exit: int
    orphans: int = 0
    duplicates: int = 0
    held_twice: int = 0
    missing: int = 0
    seconds: float = 0.0

    @property
    def failed_recovery(self) -> bool:
        return self.recover_exit != 0 or self.up_exit != 0

    @property
    def clean(self) -> bool:
        return not (self.failed_recovery or self.orphans or self.duplicates or self.held_twice or self.missing)


@dataclass
class Chaos:
    """What a run measured: every trial, and the uninterrupted ``up``'s time per offset."""

    machine: dict[str, Any]
    agents: int
    latency_ms: int
    up_seconds: dict[int, float] = field(default_factory=dict)
    first_request: dict[int, float] = field(default_factory=dict)
    trials: list[Trial] = field(default_factory=list)


def declare(project: Project, agents: int) -> None:
    """The program's ``agents.json``: ``agents`` distinct agents, as a team's stack declares them."""
    (project.dir / "agents.json").write_text(json.dumps({f"line-{i:02d}": _report.spec(i) for i in range(agents)}))


def stack(sandbox: SandboxServer, folder: Path, agents: int) -> Project:
    project = Project(
        PROGRAM, folder, bin_dir=_report.pulumi_bin(), python=Path(sys.executable), files=["Pulumi.yaml", "__main__.py"]
    )
    project.configure(sandbox.url, TOKEN)
    declare(project, agents)
    return project


def recover(project: Project) -> subprocess.CompletedProcess[str]:
    """What a pipeline runs after a killed ``pulumi up``, before the next one (docs/reliability.md)."""
    return project.oppie("recover", "--stack", project.stack)


def slow_api(sandbox: SandboxServer, offset_ms: int) -> None:
    sandbox.reset()
    sandbox.set_faults(latency_ms=LATENCY_MS, clock_offset_ms=offset_ms, whole_second_stamps=True)


def time_an_uninterrupted_up(sandbox: SandboxServer, folder: Path, offset_ms: int, agents: int) -> tuple[float, float]:
    """When an uninterrupted ``up`` of the stack sends its first write, and when it ends (s from its start)."""
    slow_api(sandbox, offset_ms)
    project = stack(sandbox, folder, agents)
    began = time.monotonic()
    process = project.start("up", "--yes", "--skip-preview")
    first_write = None
    while process.poll() is None:
        if first_write is None and sandbox.stats()["requests"]:
            first_write = time.monotonic() - began
        time.sleep(0.01)
    ended = time.monotonic() - began
    out, _ = process.communicate()
    _report.expect(process.returncode == 0 and len(sandbox.agents()) == agents, f"the uninterrupted up failed:\n{out}")
    return first_write or 0.0, ended


def count(project: Project, sandbox: SandboxServer, agents: int, trial: Trial) -> None:
    """Orphans, duplicates, agents held twice and missing ones, from the API's agents and the stack's state."""
    resources = project.resources(PHONE_AGENT)
    held = Counter(resource["id"] for resource in resources.values())
    live = {agent["id"]: agent for agent in sandbox.agents()}
    trial.orphans = sum(1 for agent_id in live if agent_id not in held)
    trial.held_twice = sum(1 for n in held.values() if n > 1)
    by_name = Counter(agent["name"] for agent in live.values())
    trial.duplicates = sum(n - 1 for n in by_name.values() if n > 1)
    trial.missing = agents - sum(1 for resource in resources.values() if resource["id"] in live)


def trial(
    sandbox: SandboxServer,
    folder: Path,
    offset_ms: int,
    kill_after_s: float,
    agents: int = AGENTS,
    kill_at_agents: int | None = None,
) -> Trial:
    """One trial: ``up`` killed after ``kill_after_s`` seconds (or as soon as the API holds ``kill_at_agents``
    agents, if given: the tests' way to be sure some creates landed and others did not), the recovery, the counts."""
    began = time.monotonic()
    slow_api(sandbox, offset_ms)
    project = stack(sandbox, folder, agents)
    process = project.start("up", "--yes", "--skip-preview")
    deadline = time.monotonic() + kill_after_s
    while process.poll() is None and time.monotonic() < deadline:
        if kill_at_agents is not None and len(sandbox.agents()) >= kill_at_agents:
            break
        time.sleep(0.01)
    killed = process.poll() is None
    if killed:
        project.kill(process)
    else:
        process.communicate()
    at_kill = len(sandbox.agents())
    recovered = recover(project)
    up = project.up(expect=None)
    result = Trial(
        offset_ms,
        round(kill_after_s, 3),
        killed,
        at_kill,
        recovered.returncode,
        (recovered.stdout + recovered.stderr)[-4000:],
        up.returncode,
    )
    count(project, sandbox, agents, result)
    result.seconds = round(time.monotonic() - began, 2)
    return result


def run(trials: int, offsets: tuple[int, ...], seed: int, agents: int, progress: Any = print) -> Chaos:
    rng = random.Random(seed)
    chaos = Chaos(_report.machine(), agents, LATENCY_MS)
    config = SandboxConfig(token=TOKEN, db_path=":memory:", rate_limit_per_minute=None)
    with serve(config) as sandbox, tempfile.TemporaryDirectory(prefix="oppie-chaos-") as tmp:
        for offset in offsets:
            first, seconds = time_an_uninterrupted_up(sandbox, Path(tmp) / f"timing{offset}", offset, agents)
            chaos.up_seconds[offset] = round(seconds, 2)
            chaos.first_request[offset] = round(first, 2)
            progress(
                f"offset {offset:+} ms: an uninterrupted up of {agents} agents takes {seconds:.1f} s, its first "
                f"request to the API {first:.1f} s after it starts"
            )
        for n in range(trials):
            offset = offsets[n % len(offsets)]
            # From just before the first request to the end: killing the CLI while it starts is the same trial
            # every time (nothing in the state, nothing in the API).
            kill_after = rng.uniform(max(0.0, chaos.first_request[offset] - 0.5), chaos.up_seconds[offset])
            result = trial(sandbox, Path(tmp) / f"trial{n}", offset, kill_after, agents)
            chaos.trials.append(result)
            progress(
                f"trial {n + 1:3d}/{trials} offset {offset:+5d} ms, killed at {kill_after:5.2f} s "
                f"({'killed' if result.killed else 'had finished'}, {result.agents_at_kill:2d} agents made): "
                f"{'clean' if result.clean else 'NOT CLEAN'} ({result.seconds:.1f} s)"
            )
            if not result.clean:
                progress(result.recover_output)
    return chaos


def table(chaos: Chaos) -> str:
    lines = [
        "| API clock | trials | killed | orphans | duplicates | held twice | missing | failed recoveries | "
        "uninterrupted up (s) | median trial (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for offset, up_seconds in chaos.up_seconds.items():
        rows = [t for t in chaos.trials if t.offset_ms == offset]
        if not rows:
            continue
        lines.append(
            f"| {offset / 1000:+.0f} s | {len(rows)} | {sum(t.killed for t in rows)} | "
            f"{sum(t.orphans for t in rows)} | {sum(t.duplicates for t in rows)} | {sum(t.held_twice for t in rows)} | "
            f"{sum(t.missing for t in rows)} | {sum(t.failed_recovery for t in rows)} | {up_seconds} | "
            f"{statistics.median(t.seconds for t in rows):.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50, help="trials in all, offsets taken in turn (default 50)")
    parser.add_argument(
        "--offsets", default=",".join(map(str, OFFSETS_MS)), help="API clock offsets in ms (default -3000,0,3000)"
    )
    parser.add_argument("--agents", type=int, default=AGENTS)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--json", type=Path, help="also write every trial here")
    args = parser.parse_args()
    offsets = tuple(int(x) for x in args.offsets.split(","))
    began = time.monotonic()
    chaos = run(args.trials, offsets, args.seed, args.agents, progress=lambda line: print(line, flush=True))
    print()
    print(f"machine: {chaos.machine}")
    print(
        f"{args.agents} agents, API latency {LATENCY_MS} ms per request, stamps cut to whole seconds, "
        f"seed {args.seed}, {time.monotonic() - began:.0f} s in all"
    )
    print(table(chaos))
    if args.json:
        args.json.write_text(json.dumps(asdict(chaos), indent=2))
    return 0 if all(t.clean for t in chaos.trials) else 1


if __name__ == "__main__":
    sys.exit(main())
