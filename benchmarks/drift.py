#!/usr/bin/env python
"""A drift review of a fleet: ``oppie-pulumi drift`` over 1,000 agents in 3 stacks, its time, API calls and memory.

Run it with ``.venv/bin/python benchmarks/drift.py [--smoke] [--agents N] [--reps R] [--json PATH]``. It prints the
machine, the fleet and one table of figures; nothing here asserts on time (``--smoke``, 30 agents and one
repetition, is what ``tests/test_benchmarks_smoke.py`` runs to prove the script works). The default run takes
about a minute on 2 cores, most of it building the fleet.

The fleet, built fast (outside the clock)
-----------------------------------------
- A sandbox in this process (``oppie_pulumi.sandbox.serve``, SQLite in memory, no rate limit) and N agents
  created through its API directly (``POST /phone`` from 8 threads), each the typical agent of ``_report.spec``.
- One Pulumi project and three stacks (``a``, ``b``, ``c``) on one local file backend, each holding 33 % of the
  agents (330 of 1,000, so 10 are in no stack: unmanaged). No ``pulumi up`` runs: each stack is ``pulumi stack
  init``-ed, configured (``oppie:baseUrl``, ``oppie:apiToken`` as a secret) and given a deployment written here
  and loaded with ``pulumi stack import``: the export of the empty stack as the template, then the stack
  resource, the default ``pulumi-python`` provider, and one ``pulumi-python:dynamic/oppie:PhoneAgent`` entry per
  agent, shaped as ``pulumi up`` writes it (``__provider`` the provider pickled by
  ``pulumi.dynamic.serialize_provider``, the declared inputs with the API's defaults, the outputs from
  ``_models.outputs_from_agent`` of the API's answer, parent, provider, property dependencies, timestamps).
- Then, behind the stacks' back: a few agents of each stack edited (``PATCH first_message``: drifted) and a few
  deleted (``DELETE``: deleted outside Pulumi).

What is timed
-------------
``oppie-pulumi drift --stack a --stack b --stack c --format json``, as a user types it, in the project folder:
wall time from start to exit (a run that is not the first: one untimed run warms the disk cache and
``__pycache__``), the median of ``--reps`` runs. Each run must exit 2 (findings), give the expected verdict
counts and make exactly one API call (``GET /phone``, from the sandbox's own counters) and no write. Beside it
each repetition times the floor, back to back and in alternating order: what any review through the CLI
cannot avoid, the same ``pulumi stack export --show-secrets`` and ``pulumi config --json --show-secrets`` per
stack, one after the other as the review runs them, plus one ``GET /phone`` of the whole fleet. Memory: the
peak resident set of the largest process of a run (``os.wait4``: the review's Python process or one of the
``pulumi`` commands it starts), and of the review's own Python process (one more run, through the same
``oppie_pulumi.cli.main``, that reports its ``RUSAGE_SELF`` at exit).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from pulumi.dynamic.dynamic import serialize_provider

from oppie_pulumi._models import api_body, defaults, outputs_from_agent
from oppie_pulumi.phone_agent import _PROVIDER
from oppie_pulumi.sandbox import SandboxConfig, SandboxServer, serve

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_BIN = ROOT / ".venv" / "bin"

sys.path.insert(0, str(HERE))
import _report  # noqa: E402  (benchmarks/_report.py: the table, the agent and the checks the scripts share)
from _report import Row, expect, print_table, progress, pulumi_bin, spec  # noqa: E402

TOKEN = "bench-drift-token-3b9e"
PASSPHRASE = "bench-drift"
PROJECT = "oppie-drift-bench"
STACKS = ("a", "b", "c")
AGENT_TYPE = "pulumi-python:dynamic/oppie:PhoneAgent"
PROVIDER_TYPE = "pulumi:providers:pulumi-python"
# How Pulumi marks a secret in a deployment (a plaintext one, as `stack export --show-secrets` writes it).
SECRET_SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
TABLE_HEADER = ("figure", "ours", "floor", "ratio", "goal", "met?")
EXIT_FINDINGS = 2
COMMAND_TIMEOUT = 600.0
CREATE_THREADS = 8


@dataclass(frozen=True)
class Fleet:
    """How big the fleet is and what happened to it behind the stacks' back."""

    agents: int
    per_stack: int  # agents each of the 3 stacks holds; the rest are in no stack
    drifted_per_stack: int
    deleted_per_stack: int
    reps: int

    @property
    def expected(self) -> dict[str, int]:
        """The verdict counts the review must give."""
        held = self.per_stack * len(STACKS)
        drifted = self.drifted_per_stack * len(STACKS)
        deleted = self.deleted_per_stack * len(STACKS)
        return {
            "agents": self.agents - deleted,  # what GET /phone lists
            "in_sync": held - drifted - deleted,
            "drifted": drifted,
            "deleted": deleted,
            "unmanaged": self.agents - held,
            "held_twice": 0,
            "unreadable": 0,
        }


DEFAULT = Fleet(agents=1000, per_stack=330, drifted_per_stack=3, deleted_per_stack=2, reps=3)
SMOKE = Fleet(agents=30, per_stack=9, drifted_per_stack=1, deleted_per_stack=1, reps=1)


# -- the CLI ---------------------------------------------------------------------------------------------------


def cli_env(bin_dir: Path, tmp: Path) -> dict[str, str]:
    """The CLI first on PATH (then the checkout's virtualenv, for ``oppie-pulumi``), a private home and backend."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPPIE_", "PULUMI_"))}
    env.update(
        {
            "PATH": os.pathsep.join([str(bin_dir), str(VENV_BIN), env.get("PATH", "")]),
            "PULUMI_HOME": str(tmp / "home"),
            "PULUMI_BACKEND_URL": f"file://{tmp / 'state'}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "NO_COLOR": "1",
        }
    )
    return env


class Cli:
    """``pulumi`` in the bench project's folder."""

    def __init__(self, bin_dir: Path, tmp: Path) -> None:
        self.bin = bin_dir
        self.dir = tmp / "project"
        self.dir.mkdir(parents=True)
        (tmp / "state").mkdir()
        (tmp / "home").mkdir()
        # The review runs no program: a project file is all the CLI needs to find the stacks.
        (self.dir / "Pulumi.yaml").write_text(f"name: {PROJECT}\nruntime: python\n")
        self.env = cli_env(bin_dir, tmp)

    def run(self, *args: str) -> str:
        result = subprocess.run(
            [str(self.bin / "pulumi"), *args, "--non-interactive"],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"`pulumi {' '.join(args)}` exited {result.returncode}:\n{result.stderr[-3000:]}")
        return result.stdout

    def version(self) -> str:
        return self.run("version").strip()


# -- the fleet -------------------------------------------------------------------------------------------------


def create_agents(sandbox: SandboxServer, n: int) -> list[dict[str, Any]]:
    """N agents through the API (``POST /phone``, several at once), in order; the API's answers."""
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def post(i: int) -> dict[str, Any]:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(
                base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
            )
            with lock:
                clients.append(client)
        answer = client.post("/phone", json=api_body(spec(i)))
        expect(answer.status_code == 201, f"POST /phone answered {answer.status_code}: {answer.text[:300]}")
        created: dict[str, Any] = answer.json()
        return created

    try:
        with ThreadPoolExecutor(CREATE_THREADS) as pool:
            return list(pool.map(post, range(n)))
    finally:
        for client in clients:
            client.close()


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


def deployment(
    template: dict[str, Any], stack: str, base_url: str, agents: Sequence[tuple[int, dict[str, Any]]]
) -> dict[str, Any]:
    """``template`` (the export of the empty stack) holding ``agents`` as ``pulumi up`` of the program would."""
    stack_urn = f"urn:pulumi:{stack}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{stack}"
    provider_urn = f"urn:pulumi:{stack}::{PROJECT}::{PROVIDER_TYPE}::default"
    provider_id = f"00000000-0000-4000-8000-{STACKS.index(stack):012d}"
    # The default provider's state holds the stack's oppie:* config (the token as a secret), as an `up` leaves it.
    settings = {"oppie:apiToken": {**SECRET_SIG, "plaintext": json.dumps(TOKEN)}, "oppie:baseUrl": base_url}
    now = _stamp()
    resources: list[dict[str, Any]] = [
        {"urn": stack_urn, "custom": False, "type": "pulumi:pulumi:Stack", "created": now, "modified": now},
        {
            "urn": provider_urn,
            "custom": True,
            "id": provider_id,
            "type": PROVIDER_TYPE,
            "inputs": settings,
            "outputs": settings,
            "created": now,
            "modified": now,
        },
    ]
    pickled = serialize_provider(_PROVIDER)
    # What check fills in: the declared fields, plus every field with a default the API's own.
    filled = [name for name, value in defaults().items() if value is not None]
    for i, agent in agents:
        outputs = outputs_from_agent(agent)
        declared = [*spec(i), *(name for name in filled if name not in spec(i))]
        inputs = {"__provider": pickled, **{name: outputs[name] for name in declared}}
        resources.append(
            {
                "urn": f"urn:pulumi:{stack}::{PROJECT}::{AGENT_TYPE}::agent-{i}",
                "custom": True,
                "id": agent["id"],
                "type": AGENT_TYPE,
                "inputs": inputs,
                "outputs": {"__provider": pickled, **outputs},
                "parent": stack_urn,
                "provider": f"{provider_urn}::{provider_id}",
                "propertyDependencies": {name: [] for name in ["__provider", *spec(i)]},
                "created": now,
                "modified": now,
            }
        )
    document: dict[str, Any] = json.loads(json.dumps(template))
    document["deployment"]["resources"] = resources
    return document


def build_stacks(cli: Cli, sandbox: SandboxServer, agents: Sequence[dict[str, Any]], fleet: Fleet) -> list[int]:
    """The three stacks, each holding its share of ``agents``; returns the state bytes of each (compact JSON)."""
    sizes = []
    for k, stack in enumerate(STACKS):
        cli.run("stack", "init", stack)
        cli.run("config", "set", "--plaintext", "oppie:baseUrl", sandbox.url, "--stack", stack)
        cli.run("config", "set", "--secret", "oppie:apiToken", TOKEN, "--stack", stack)
        template = json.loads(cli.run("stack", "export", "--stack", stack))
        held = [(i, agents[i]) for i in range(k * fleet.per_stack, (k + 1) * fleet.per_stack)]
        document = deployment(template, stack, sandbox.url, held)
        path = cli.dir.parent / f"deployment-{stack}.json"
        path.write_text(json.dumps(document))
        cli.run("stack", "import", "--file", str(path), "--stack", stack)
        exported = json.loads(cli.run("stack", "export", "--stack", stack))
        found = [res for res in exported["deployment"]["resources"] if res["type"] == AGENT_TYPE]
        expect(len(found) == fleet.per_stack, f"stack {stack} holds {len(found)} agents after the import")
        sizes.append(len(json.dumps(exported, separators=(",", ":"))))
    return sizes


def drift_behind_the_stacks(sandbox: SandboxServer, agents: Sequence[dict[str, Any]], fleet: Fleet) -> None:
    """In each stack: the first agents edited in the dashboard, the next ones deleted."""
    with httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        for k in range(len(STACKS)):
            first = k * fleet.per_stack
            for i in range(first, first + fleet.drifted_per_stack):
                edited = client.patch(f"/phone/{agents[i]['id']}", json={"first_message": f"Edited ({i})"})
                expect(edited.status_code == 200, f"PATCH answered {edited.status_code}")
            for i in range(first + fleet.drifted_per_stack, first + fleet.drifted_per_stack + fleet.deleted_per_stack):
                gone = client.delete(f"/phone/{agents[i]['id']}")
                expect(gone.status_code in (200, 204), f"DELETE answered {gone.status_code}")


# -- the runs --------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One review: wall and CPU seconds, the largest process's peak RSS, its exit status, report and API use."""

    seconds: float
    cpu_seconds: float
    peak_rss_kib: int
    status: int
    report: bytes
    stderr: str
    by_route: dict[str, int]
    writes: int


REVIEW_ARGS = ["drift", *(arg for stack in STACKS for arg in ("--stack", stack)), "--format", "json"]


def review(cli: Cli, sandbox: SandboxServer, command: Sequence[str] | None = None) -> Run:
    """``oppie-pulumi drift --stack a --stack b --stack c --format json`` in the project folder, timed."""
    argv = list(command) if command is not None else [str(VENV_BIN / "oppie-pulumi"), *REVIEW_ARGS]
    out_path, err_path = cli.dir.parent / "review.out", cli.dir.parent / "review.err"
    sandbox.reset_stats()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cli.dir, env=cli.env, stdout=out, stderr=err)
        # wait4, not wait: the exit status and the resources of this one child (with the pulumi commands it ran).
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    stats = sandbox.stats()
    writes = sum(1 for write in sandbox.writes() if write["method"] in ("POST", "PATCH", "DELETE"))
    return Run(
        seconds,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss,
        process.returncode,
        out_path.read_bytes(),
        err_path.read_text(errors="replace"),
        dict(stats["by_route"]),
        writes,
    )


def review_python_peak(cli: Cli, sandbox: SandboxServer, tmp: Path) -> int:
    """The review's own Python process's peak RSS (KiB): ``oppie_pulumi.cli.main`` (the ``oppie-pulumi`` entry
    point) in an interpreter that writes its ``RUSAGE_SELF`` at exit, without the pulumi commands it runs."""
    report = tmp / "python-peak.txt"
    code = (
        "import atexit, resource, sys\n"
        f"atexit.register(lambda: open({str(report)!r}, 'w').write("
        "str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))\n"
        "from oppie_pulumi.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    run = review(cli, sandbox, [str(VENV_BIN / "python"), "-c", code, *REVIEW_ARGS])
    expect(run.status == EXIT_FINDINGS, f"the review exited {run.status}: {run.stderr[-2000:]}")
    return int(report.read_text())


def floor(cli: Cli, sandbox: SandboxServer) -> float:
    """What a review through the CLI cannot avoid: the same exports and config reads, one after the other, and
    one list of the fleet; wall seconds."""
    start = time.perf_counter()
    for stack in STACKS:
        cli.run("stack", "export", "--show-secrets", "--stack", stack)
        cli.run("config", "--json", "--show-secrets", "--stack", stack)
    with httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        listed = client.get("/phone")
        expect(listed.status_code == 200, f"GET /phone answered {listed.status_code}")
    return time.perf_counter() - start


def check_run(run: Run, fleet: Fleet) -> dict[str, Any]:
    """The run reviewed what was built: findings (exit 2), the expected verdicts, one list call, no write."""
    expect(run.status == EXIT_FINDINGS, f"the review exited {run.status} (2 expected): {run.stderr[-2000:]}")
    expect(run.by_route == {"GET /phone": 1}, f"the review's API calls: {run.by_route} (one GET /phone expected)")
    expect(run.writes == 0, f"the review wrote to the API {run.writes} time(s)")
    document: dict[str, Any] = json.loads(run.report)
    found = {key: document["summary"][key] for key in fleet.expected}
    expect(found == fleet.expected, f"verdicts {found}, expected {fleet.expected}")
    return document


# -- the report ------------------------------------------------------------------------------------------------


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def rows(
    fleet: Fleet, runs: Sequence[Run], floors: Sequence[float], python_kib: int, document: dict[str, Any]
) -> list[Row]:
    ours = statistics.median(run.seconds for run in runs)
    base = statistics.median(floors)
    spread = f" ({min(r.seconds for r in runs):.2f}-{max(r.seconds for r in runs):.2f})" if len(runs) > 1 else ""
    summary = document["summary"]
    verdicts = ", ".join(
        f"{summary[key]} {key.replace('_', ' ')}" for key in ("in_sync", "drifted", "deleted", "unmanaged")
    )
    report_bytes = len(runs[0].report)
    held = fleet.per_stack * len(STACKS)
    return [
        Row(
            f"review of {fleet.agents:,} agents in {len(STACKS)} stacks (wall, median of {len(runs)})",
            f"{ours:.2f} s{spread}",
            f"{base:.2f} s",
            f"{ours / base:.2f}" if base else "-",
            data={"seconds": [r.seconds for r in runs], "floor_seconds": list(floors)},
            key="wall",
        ),
        Row(
            "beyond the floor: Python, the review, the report",
            f"{ours - base:.2f} s ({(ours - base) / max(summary['agents'], 1) * 1000:.2f} ms per agent listed)",
            data={"seconds": ours - base, "agents": summary["agents"]},
            key="beyond-floor",
        ),
        Row(
            "CPU of a review, its pulumi commands included (median)",
            f"{statistics.median(r.cpu_seconds for r in runs):.2f} s",
            data={"cpu_seconds": [r.cpu_seconds for r in runs]},
            key="cpu",
        ),
        Row(
            "API calls per review",
            ", ".join(f"{count} x {route}" for route, count in runs[0].by_route.items()) + f"; {runs[0].writes} writes",
            goal="1 list, 0 writes",
            met=all(r.by_route == {"GET /phone": 1} and r.writes == 0 for r in runs),
            data={"by_route": [r.by_route for r in runs], "writes": [r.writes for r in runs]},
            key="api",
        ),
        Row(
            "peak RSS, the review's Python process",
            _mib(python_kib),
            data={"kib": python_kib},
            key="rss-python",
        ),
        Row(
            "peak RSS, largest process of a review (wait4)",
            _mib(max(r.peak_rss_kib for r in runs)),
            data={"kib": [r.peak_rss_kib for r in runs]},
            key="rss-tree",
        ),
        Row(
            "verdicts (exit 2)",
            f"{verdicts}; coverage {summary['managed']}/{summary['agents']}",
            data={"summary": summary, "expected": fleet.expected, "held": held},
            key="verdicts",
        ),
        Row(
            "JSON report",
            f"{report_bytes:,} B ({report_bytes / max(summary['agents'], 1):.0f} B per agent)",
            data={"bytes": report_bytes},
            key="json",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="30 agents (9 per stack), one repetition (CI)")
    parser.add_argument("--agents", type=int, metavar="N", help="override the fleet's size (33 %% per stack)")
    parser.add_argument("--reps", type=int, metavar="R", help="override the repetitions")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH")
    args = parser.parse_args(argv)
    fleet = SMOKE if args.smoke else DEFAULT
    if args.agents:
        n = args.agents
        fleet = Fleet(n, n * 33 // 100, max(1, n // 300), max(1, n // 500), fleet.reps)
        expect(fleet.per_stack > fleet.drifted_per_stack + fleet.deleted_per_stack, f"--agents {n} is too few")
    if args.reps:
        fleet = Fleet(fleet.agents, fleet.per_stack, fleet.drifted_per_stack, fleet.deleted_per_stack, args.reps)

    try:
        bin_dir = pulumi_bin()
    except RuntimeError as exc:
        print(f"benchmarks/drift.py needs the Pulumi CLI: {exc}", file=sys.stderr)
        return 2
    host = _report.machine()
    command = " ".join(["python", "benchmarks/drift.py", *(argv if argv is not None else sys.argv[1:])])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="oppie-drift-bench-") as tmp_name:
        tmp = Path(tmp_name)
        cli = Cli(bin_dir, tmp)
        host["pulumi_cli"] = cli.version()
        print(f"oppie-pulumi drift benchmark ({'smoke' if args.smoke else 'default'}): {command}")
        print(
            f"machine: {host['nproc']} CPUs ({host['cpu']}), load {host['load_average_at_start']}, Python "
            f"{host['python']}, pulumi {host['pulumi_cli']} (local file backend)"
        )
        sys.stdout.flush()
        with serve(SandboxConfig(token=TOKEN, db_path=":memory:", rate_limit_per_minute=None)) as sandbox:
            progress(f"creating {fleet.agents} agents through the API")
            agents = create_agents(sandbox, fleet.agents)
            progress(f"writing {len(STACKS)} stacks of {fleet.per_stack} agents (pulumi stack import)")
            state_bytes = build_stacks(cli, sandbox, agents, fleet)
            drift_behind_the_stacks(sandbox, agents, fleet)
            setup = time.perf_counter() - started
            print(
                f"fleet: {fleet.agents} agents; stacks {', '.join(STACKS)} hold {fleet.per_stack} each "
                f"({fleet.agents - fleet.per_stack * len(STACKS)} in none); per stack {fleet.drifted_per_stack} "
                f"edited and {fleet.deleted_per_stack} deleted behind its back; state "
                f"{', '.join(f'{b / 1024:.0f}' for b in state_bytes)} KiB (built in {setup:.0f} s)"
            )
            print(
                "timed: `oppie-pulumi drift --stack a --stack b --stack c --format json`; floor: the same "
                "`pulumi stack export` and `pulumi config` per stack, one after the other, and one GET /phone"
            )
            sys.stdout.flush()
            progress("warming up (one untimed review)")
            check_run(review(cli, sandbox), fleet)
            runs: list[Run] = []
            floors: list[float] = []
            for rep in range(fleet.reps):
                progress(f"repetition {rep + 1} of {fleet.reps}")
                if rep % 2:  # alternating order: neither side always runs on a warmer machine
                    floors.append(floor(cli, sandbox))
                    runs.append(review(cli, sandbox))
                else:
                    runs.append(review(cli, sandbox))
                    floors.append(floor(cli, sandbox))
                document = check_run(runs[-1], fleet)
            progress("the review's own Python process, once more")
            python_kib = review_python_peak(cli, sandbox, tmp)
    table = rows(fleet, runs, floors, python_kib, document)
    print()
    print_table(TABLE_HEADER, [row.cells() for row in table])
    children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    total = time.perf_counter() - started
    print(
        f"\nratio: of medians. RSS in MiB of 1,048,576 B. Largest process of anything this script ran: "
        f"{_mib(children_kib)}. {total:.0f} s in all."
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "command": command,
                    "mode": "smoke" if args.smoke else "default",
                    "machine": host,
                    "fleet": asdict(fleet),
                    "state_bytes": state_bytes,
                    "seconds": total,
                    "rows": [asdict(row) for row in table],
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
