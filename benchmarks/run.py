#!/usr/bin/env python
"""How close the provider comes to the phone-agent API's own limits, measured against the local sandbox.

Run it with ``make bench`` or ``.venv/bin/python benchmarks/run.py [--smoke | --full] [--json PATH]``. It
prints the machine and one table (measurement, provider, raw/floor, ratio, goal, met?); ``--json`` also
writes every figure. The default run takes about 2.5 minutes, most of it the real-time rate-limited run
(point 8); ``--smoke`` takes seconds (tiny sizes, time-scaled rate run); ``--full`` takes more samples and
larger stacks; ``--only latency,refresh`` runs a subset. Nothing here asserts on time: CI runs ``--smoke``
only to prove that the script works (``tests/test_benchmarks_smoke.py``).

What is measured, and the decisions behind each figure
------------------------------------------------------
The sandbox runs as its own process (``python -m oppie_pulumi.sandbox``, SQLite in memory, no artificial
latency), as the real API would: the process that measures then spends its CPU on the client alone, and
its stats (``/_sandbox/stats``, admin routes that are never counted) are the API's view of every figure.

1. Per-operation latency in-process. ``PhoneAgentProvider.create/read/update/delete`` after ``configure``
   (client rate limit off), against the raw floor: one ``httpx.Client`` with keep-alive sending the same
   request with the same body and decoding the JSON answer (any client must). One cycle is create ->
   update -> read -> read again -> delete, for the provider and for the raw client, alternating which goes
   first, after a warm-up; the sandbox keeps ``--agents`` other agents, so every list has the same size for
   both. ``read`` is measured with a fresh ``GET /phone`` each time (the provider is configured with
   ``oppie:listCacheSeconds`` 0); the snapshot case is a second provider with the default (2 s): a read that
   reuses the list its previous read took, reported on its own against the same floor. Ratios are of medians
   (p95 beside).
2. The same cycle through the real provider host (``python -m pulumi.dynamic`` over gRPC, via
   ``oppie_pulumi_testing.ProviderHost``), one call at a time, reads fresh (the host is configured with
   ``oppie:listCacheSeconds`` 0). No goal: it shows what the host and the wire format add.
3. A stack's worth of operations through ``Engine`` (``pulumi up``'s call order) with ``parallel=10``: the
   CLI's ``--parallel`` is unbounded by default, 10 stands for "more than the host's 4 gRPC workers".
   ``up`` (create) / ``up`` (update) / ``refresh`` / ``destroy`` of ``--stack`` agents against a raw client
   with 10 threads. These 4 x 50 = 200 operations are also the connection count through the host.
4. TCP connections opened for 200 operations: the sandbox counts the distinct client (host, port) pairs of
   the API requests it answered since its stats were reset, i.e. the TCP connections the client opened
   (an ephemeral port is not reused within a run). In-process: 200 sequential operations on a client built
   fresh for it (distinct settings); through the host: the 200 operations of (3), in a fresh host.
5. State bytes: the pickled provider as stored in every resource (``__provider``, base64 of dill, in both
   inputs and outputs), and one agent's whole state entry (urn, id, type, inputs, outputs) as compact JSON.
   Pulumi's own per-resource fields (parent, provider reference, timestamps) come on top and do not depend
   on the provider.
6. The CPU cost of a preview: ``check`` then ``diff`` of an unchanged agent, in-process, pairs per second;
   and ``Engine.preview`` of ``--preview`` agents through the host. The preview's state is built directly
   from agents created in the sandbox (inputs = ``check`` of the declared spec, outputs = the API's agent),
   because a preview only calls Check and Diff; the registrations come from ``run_program`` (Pulumi's
   mock monitor).
7. Refresh of 100 and 500 agents (a fresh host each, as ``pulumi refresh`` starts one) under the API's
   documented limit: the sandbox answering the refresh enforces 100 requests/minute and the provider keeps
   its default client limit of 100/minute. The agents are created through a second, unlimited sandbox
   process on the same SQLite file (the same organisation behind two gateways), so that populating does not
   spend the limited one's budget. Figures: API calls (the sandbox's count) and wall time, against the floor
   of one ``GET /phone`` of as many agents.
8. 300 creates through the host (``Engine.up``, parallel 10) with the sandbox's 100/minute limit on and the
   provider's limit at 100/minute. The floor: a 60-second sliding window lets 100 through at t=0, 100 at
   t=60 and 100 at t=120, so 120 s. Both limiters use a fixed 60-second window, so a shorter test cannot be
   had by raising the limit; the default run is therefore the real one (a little over 2 minutes).
   ``--smoke`` time-scales it instead: both windows shortened to 1 s through their declared settings (the
   sandbox's ``--rate-window``, the provider's ``oppie:rateLimitWindowSeconds``), 30 creates at 10 per window,
   floor 2 s. Scaling is not neutral: in
   1-second windows the keep-alive connections of one window are still open in the next (httpx drops idle
   ones after 5 s), so the latency of a window's first requests differs, and the sandbox's ``Retry-After``
   is whole seconds, a whole scaled window. The scaled run exercises the path and shows the limiter's
   sensitivity to latency; only the real run gives the figure.
9. (default and ``--full``) A program declaring 1,000 agents, registered in one process, as ``pulumi up``
   does, measured in a subprocess. Pulumi 3.x's ``serialize_provider`` (``pulumi/dynamic/dynamic.py``)
   wraps ``pickle._Pickler._batch_setitems`` anew on every call and never unwraps it, which made the n-th
   dynamic resource pickle n functions deep and failed near 970 resources with ``RecursionError``;
   ``PhoneAgent`` now restores the pickler after each registration, and this row checks that it does.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import _report  # benchmarks/_report.py: the table, the agent and the checks engine.py shares
import httpx
from _report import Row, expect, goals_line, p95, print_table, progress, spec
from oppie_pulumi_testing import Engine, ProviderHost, Registration, StateEntry, Summary, run_program
from pulumi.dynamic import Config, ConfigureRequest

from oppie_pulumi import PhoneAgent
from oppie_pulumi._models import api_body, outputs_from_agent
from oppie_pulumi.phone_agent import PhoneAgentProvider

HERE = Path(__file__).resolve().parent
TOKEN = "bench-token-5e1f"
PROVIDER_KEY = "__provider"
ENGINE_PARALLEL = 10
TABLE_HEADER = ("measurement", "provider", "raw/floor", "ratio", "goal", "met?")

# Pulumi's serialize_provider leaves a wrapper on these per call (see the module docstring, point 9).


@dataclass(frozen=True)
class Sizes:
    """How much each measurement does, per mode."""

    cycles: int  # per-operation cycles in-process (each: create, update, read, read, delete)
    warmup: int
    host_cycles: int
    agents: int  # other agents in the sandbox during the per-operation cycles
    stack: int  # agents per Engine phase (4 phases: the 200 operations of the connection count)
    connection_ops: int  # in-process operations for the connection count
    check_diff_seconds: float
    preview: int
    refresh: tuple[int, ...]
    rate_creates: int
    rate_limit: int  # requests per window, provider and sandbox alike
    rate_window: float  # seconds; 60 unless time-scaled
    declare_in_one_program: int  # 0: skip point 9


SMOKE = Sizes(
    cycles=12,
    warmup=3,
    host_cycles=6,
    agents=5,
    stack=5,
    connection_ops=20,
    check_diff_seconds=0.2,
    preview=40,
    refresh=(10, 30),
    rate_creates=30,
    rate_limit=10,
    rate_window=1.0,
    declare_in_one_program=0,
)
DEFAULT = Sizes(
    cycles=300,
    warmup=30,
    host_cycles=150,
    agents=20,
    stack=50,
    connection_ops=200,
    check_diff_seconds=2.0,
    preview=1000,
    refresh=(100, 500),
    rate_creates=300,
    rate_limit=100,
    rate_window=60.0,
    declare_in_one_program=1000,
)
FULL = Sizes(
    cycles=1000,
    warmup=50,
    host_cycles=500,
    agents=20,
    stack=50,
    connection_ops=200,
    check_diff_seconds=5.0,
    preview=2000,
    refresh=(100, 500, 2000),
    rate_creates=300,
    rate_limit=100,
    rate_window=60.0,
    declare_in_one_program=1000,
)


# -- results ---------------------------------------------------------------------------------------------


def summary_ms(samples_ns: Sequence[int]) -> dict[str, float]:
    values = [ns / 1e6 for ns in samples_ns]
    return {"median_ms": statistics.median(values), "p95_ms": p95(values), "n": len(values)}


def latency_row(measurement: str, provider_ns: Sequence[int], raw_ns: Sequence[int], goal: float | None) -> Row:
    """A per-operation row: median / p95 of each side and their ratios (the goal judges the median)."""
    prov, raw = summary_ms(provider_ns), summary_ms(raw_ns)
    ratio = prov["median_ms"] / raw["median_ms"]
    ratio_p95 = prov["p95_ms"] / raw["p95_ms"]
    return Row(
        measurement,
        f"{prov['median_ms']:.3f} / {prov['p95_ms']:.3f} ms",
        f"{raw['median_ms']:.3f} / {raw['p95_ms']:.3f} ms",
        f"{ratio:.2f} (p95 {ratio_p95:.2f})",
        "-" if goal is None else f"<= {goal:g}",
        None if goal is None else ratio <= goal,
        {"provider": prov, "raw": raw, "ratio_median": ratio, "ratio_p95": ratio_p95},
    )


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {**_report.machine(), "pulumi": metadata.version("pulumi"), "httpx": metadata.version("httpx")}


# -- the sandbox, as its own process ---------------------------------------------------------------------


def plain_env() -> dict[str, str]:
    """Our environment without OPPIE_* variables: the processes started here see only the settings given."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OPPIE_")}


class Sandbox:
    """``python -m oppie_pulumi.sandbox`` on a free port; stats and reset through its admin routes."""

    def __init__(self, *, rate_limit: int = 0, window: float = 60.0, db: str = ":memory:") -> None:
        # Kept open for the process's lifetime (its stderr), closed in close().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        command = [sys.executable, "-m", "oppie_pulumi.sandbox", "--port", "0", "--token", TOKEN]
        command += ["--db", db, "--rate-limit", str(rate_limit), "--rate-window", str(window)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=plain_env()
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = re.search(r"listening on (http://\S+)", line)
        if found is None:
            self.process.kill()
            self.process.wait()
            self._stderr.seek(0)
            raise RuntimeError(f"the sandbox did not start: {line!r} {self._stderr.read().decode()[-2000:]}")
        self.url = found.group(1)
        self.admin = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def stats(self) -> dict[str, Any]:
        """``{"requests", "by_route", "by_status", "connections"}`` since the last reset."""
        response = self.admin.get("/_sandbox/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def reset_stats(self) -> None:
        self.admin.post("/_sandbox/reset-stats").raise_for_status()

    def reset(self) -> None:
        """Delete every agent; stats and the rate limit count anew."""
        self.admin.post("/_sandbox/reset").raise_for_status()

    def close(self) -> None:
        self.admin.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def raw_client(url: str) -> httpx.Client:
    """The floor: a plain keep-alive client, with the headers every request needs."""
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)


def populate(url: str, specs: Sequence[dict[str, Any]], threads: int = 4) -> list[dict[str, Any]]:
    """Create one agent per spec (Python names) through the API; returns the agents in spec order."""
    with raw_client(url) as client, ThreadPoolExecutor(threads) as pool:

        def post(spec: dict[str, Any]) -> dict[str, Any]:
            response = client.post("/phone", json=api_body(spec))
            response.raise_for_status()
            agent: dict[str, Any] = response.json()
            return agent

        return list(pool.map(post, specs))


# -- programs and state ----------------------------------------------------------------------------------


def declare(specs: Sequence[dict[str, Any]], prefix: str = "agent") -> list[Registration]:
    """What a program declaring one ``PhoneAgent`` per spec registers (names ``{prefix}-{i}``)."""

    def program() -> None:
        for i, agent_spec in enumerate(specs):
            PhoneAgent(f"{prefix}-{i}", **agent_spec)

    registrations = run_program(program)
    # The mock monitor captures registrations as they complete, which need not be declaration order.
    registrations.sort(key=lambda reg: int(reg.name.rsplit("-", 1)[1]))
    expect([reg.name for reg in registrations] == [f"{prefix}-{i}" for i in range(len(specs))], "registrations")
    return registrations


def state_from_agents(
    provider: PhoneAgentProvider, registrations: Sequence[Registration], agents: Sequence[dict[str, Any]]
) -> dict[str, StateEntry]:
    """The state ``pulumi up`` would have written for these agents, without going through ``up``."""
    state = {}
    for reg, agent in zip(registrations, agents, strict=True):
        serialized = reg.inputs[PROVIDER_KEY]
        inputs = dict(provider.check({}, reg.inputs).inputs, **{PROVIDER_KEY: serialized})
        outputs = dict(outputs_from_agent(agent), **{PROVIDER_KEY: serialized})
        state[reg.urn] = StateEntry(reg.urn, reg.type, reg.name, agent["id"], inputs, outputs)
    return state


def configured_provider(url: str, **extra: str) -> PhoneAgentProvider:
    """A provider configured in-process as the host would configure it (client rate limit off)."""
    provider = PhoneAgentProvider()
    config = {"oppie:apiToken": TOKEN, "oppie:baseUrl": url, "oppie:maxRequestsPerMinute": "0"}
    config.update({f"oppie:{key}": value for key, value in extra.items()})
    provider.configure(ConfigureRequest(Config(config, "bench")))
    return provider


@contextlib.contextmanager
def provider_host(url: str, **extra: str) -> Iterator[ProviderHost]:
    """A real provider host configured for the sandbox at ``url`` (client rate limit off unless given)."""
    config = {"oppie:apiToken": TOKEN, "oppie:baseUrl": url, "oppie:maxRequestsPerMinute": "0"}
    config.update({f"oppie:{key}": value for key, value in extra.items()})
    with ProviderHost(env=plain_env()) as host:
        host.configure(config)
        yield host


def timed(fn: Callable[[], Any]) -> tuple[int, Any]:
    start = time.perf_counter_ns()
    result = fn()
    return time.perf_counter_ns() - start, result


# -- 1 and 2: per-operation latency ----------------------------------------------------------------------


class RawCycle:
    """The floor of one cycle: the same requests through a plain keep-alive ``httpx.Client``."""

    def __init__(self, client: httpx.Client, body: dict[str, Any]) -> None:
        self.client = client
        self.body = body

    def run(self, i: int, samples: dict[str, list[int]]) -> None:
        client = self.client
        ns, response = timed(lambda: client.post("/phone", json=self.body).json())
        samples["post"].append(ns)
        # A create's floor: the list any clock-free reconciling create needs first (its baseline, issue 21), then
        # the POST. The POST alone is reported beside it.
        ns_list, _ = timed(lambda: client.get("/phone").json())
        samples["create"].append(ns + ns_list)
        agent_id = response["id"]
        patch = {"first_message": f"Hello {i}"}
        ns, _ = timed(lambda: client.patch(f"/phone/{agent_id}", json=patch).json())
        samples["update"].append(ns)

        def read() -> dict[str, Any] | None:
            return next((a for a in client.get("/phone").json() if a["id"] == agent_id), None)

        ns, found = timed(read)
        expect(found is not None and found["first_message"] == f"Hello {i}", "raw read missed the update")
        samples["read"].append(ns)
        ns, response = timed(lambda: client.delete(f"/phone/{agent_id}"))
        expect(response.status_code == 200, f"raw delete answered {response.status_code}")
        samples["delete"].append(ns)


class ProviderCycle:
    """One cycle through ``PhoneAgentProvider`` in-process. ``provider`` (default settings) writes and reads twice,
    the second read reusing the list of the first; ``fresh`` (``listCacheSeconds`` 0) reads with a fresh list."""

    def __init__(self, provider: PhoneAgentProvider, fresh: PhoneAgentProvider, inputs: dict[str, Any]) -> None:
        self.provider = provider
        self.fresh = fresh
        self.inputs = inputs

    def run(self, i: int, samples: dict[str, list[int]]) -> None:
        provider = self.provider
        ns, created = timed(lambda: provider.create(self.inputs))
        samples["create"].append(ns)
        agent_id, outs = created.id, created.outs
        news = dict(self.inputs, first_message=f"Hello {i}")
        ns, updated = timed(lambda: provider.update(agent_id, outs, news))
        samples["update"].append(ns)
        outs = updated.outs
        ns, fresh = timed(lambda: self.fresh.read(agent_id, outs))  # a fresh GET /phone, like the floor's
        expect(fresh.id == agent_id and fresh.outs["first_message"] == f"Hello {i}", "read missed the update")
        samples["read"].append(ns)
        provider.read(agent_id, outs)  # takes the list the next read reuses (the update invalidated the last)
        ns, cached = timed(lambda: provider.read(agent_id, outs))
        expect(cached.id == agent_id, "snapshot read lost the agent")
        samples["read_snapshot"].append(ns)
        ns, _ = timed(lambda: provider.delete(agent_id, outs))
        samples["delete"].append(ns)


class HostCycle:
    """One cycle through the provider host over gRPC, as the engine calls it."""

    def __init__(self, host: ProviderHost, reg: Registration) -> None:
        self.host = host
        self.urn = reg.urn
        self.inputs, failures = host.check(reg.urn, {}, reg.inputs)
        expect(not failures, f"check failed: {failures}")

    def run(self, i: int, samples: dict[str, list[int]]) -> None:
        host, urn = self.host, self.urn
        ns, (agent_id, outs) = timed(lambda: host.create(urn, self.inputs))
        samples["create"].append(ns)
        news = dict(self.inputs, first_message=f"Hello {i}")
        ns, outs = timed(lambda: host.update(agent_id, urn, outs, news))
        samples["update"].append(ns)
        ns, (read_id, read_outs, _) = timed(lambda: host.read(agent_id, urn, outs, news))
        expect(read_id == agent_id and read_outs["first_message"] == f"Hello {i}", "host read missed the update")
        samples["read"].append(ns)
        ns, _ = timed(lambda: host.delete(agent_id, urn, outs))
        samples["delete"].append(ns)


def interleave(
    side_a: Callable[[int, dict[str, list[int]]], None],
    side_b: Callable[[int, dict[str, list[int]]], None],
    cycles: int,
    warmup: int,
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Run both sides ``cycles`` times after ``warmup``, alternating which goes first (cancels drift)."""
    a: dict[str, list[int]] = {k: [] for k in ("create", "post", "update", "read", "read_snapshot", "delete")}
    b: dict[str, list[int]] = {k: [] for k in a}
    scratch: dict[str, list[int]] = {k: [] for k in a}
    for i in range(warmup):
        side_a(i, scratch)
        side_b(i, scratch)
    for i in range(cycles):
        if i % 2:
            side_b(i, b)
            side_a(i, a)
        else:
            side_a(i, a)
            side_b(i, b)
    return a, b


def bench_latency(sandbox: Sandbox, sizes: Sizes, rows: list[Row]) -> None:
    sandbox.reset()
    populate(sandbox.url, [spec(i) for i in range(sizes.agents)])
    [reg] = declare([spec(0, name="Latency probe")], prefix="latency")
    provider = configured_provider(sandbox.url)
    inputs = provider.check({}, reg.inputs).inputs
    with raw_client(sandbox.url) as client:
        raw = RawCycle(client, api_body(inputs))
        cycle = ProviderCycle(provider, configured_provider(sandbox.url, listCacheSeconds="0"), inputs)
        prov, floor = interleave(cycle.run, raw.run, sizes.cycles, sizes.warmup)
        for op in ("create", "read", "update", "delete"):
            # A create against a raw list + POST (its baseline and its POST; issue 21), at most 1.15x: the
            # lost-answer bookkeeping is its cost. 1.25 for the rest.
            rows.append(latency_row(f"{op}, in-process", prov[op], floor[op], 1.15 if op == "create" else 1.25))
        rows.append(latency_row("create, in-process, against a raw POST alone", prov["create"], floor["post"], None))
        rows[-1].data["note"] = (
            "issue 18's goal (<= 1.15x a raw POST) predates the baseline list a create takes first (issue 21)"
        )
        rows.append(latency_row("read, in-process, snapshot reused", prov["read_snapshot"], floor["read"], None))
        rows[-1].data["note"] = "second read within listCacheSeconds: no request; floor is a fresh GET /phone"

        with provider_host(sandbox.url, listCacheSeconds="0") as host:
            through_host, floor = interleave(
                HostCycle(host, reg).run, raw.run, sizes.host_cycles, max(3, sizes.warmup // 3)
            )
        for op in ("create", "read", "update", "delete"):
            rows.append(latency_row(f"{op}, through host (gRPC)", through_host[op], floor[op], None))
    expect(len(sandbox_agents(sandbox.url)) == sizes.agents, "the cycles left agents behind")


def sandbox_agents(url: str) -> list[dict[str, Any]]:
    with raw_client(url) as client:
        response = client.get("/phone")
        response.raise_for_status()
        agents: list[dict[str, Any]] = response.json()
        return agents


# -- 3, 4, 5: a stack through the engine, connections, state bytes ---------------------------------------


def raw_parallel(url: str, fn: Callable[[httpx.Client, Any], Any], items: Sequence[Any]) -> tuple[float, list[Any]]:
    """Seconds for ``fn(client, item)`` over ``items`` with ENGINE_PARALLEL threads on one keep-alive client."""
    with raw_client(url) as client, ThreadPoolExecutor(ENGINE_PARALLEL) as pool:
        client.get("/phone")  # connect outside the clock, as the host's first call is not in it either
        start = time.perf_counter()
        results = list(pool.map(lambda item: fn(client, item), items))
        return time.perf_counter() - start, results


def bench_stack(sandbox: Sandbox, sizes: Sizes, rows: list[Row]) -> None:
    sandbox.reset()
    n = sizes.stack
    registrations = declare([spec(i) for i in range(n)], prefix="stack")
    changed = declare([spec(i, first_message="Hello again") for i in range(n)], prefix="stack")
    phases: dict[str, float] = {}
    state: dict[str, StateEntry] = {}
    with provider_host(sandbox.url) as host:
        engine = Engine(host, state, parallel=ENGINE_PARALLEL)
        expect(engine.preview(registrations[:1]).created == [registrations[0].name], "warm-up preview")
        sandbox.reset_stats()
        steps: list[tuple[str, Callable[[], Summary], str]] = [
            ("up (create)", lambda: engine.up(registrations), "created"),
            ("up (update)", lambda: engine.up(changed), "updated"),
            ("refresh", engine.refresh, "same"),
        ]
        for phase, step, key in steps:
            start = time.perf_counter()
            summary = step()
            phases[phase] = time.perf_counter() - start
            expect(len(getattr(summary, key)) == n and not summary.failed, f"{phase}: {summary}")
        entry = next(iter(state.values()))
        state_copy = dict(state)
        start = time.perf_counter()
        summary = engine.destroy()
        phases["destroy"] = time.perf_counter() - start
        expect(len(summary.deleted) == n and not summary.failed, f"destroy: {summary}")
        stats = sandbox.stats()

    # The raw floor of each phase: the same requests with the same parallelism.
    body = api_body(spec(0))
    floors: dict[str, float] = {}
    floors["up (create)"], agents = raw_parallel(sandbox.url, lambda c, _: c.post("/phone", json=body).json(), range(n))
    ids = [agent["id"] for agent in agents]
    floors["up (update)"], _ = raw_parallel(
        sandbox.url, lambda c, i: c.patch(f"/phone/{i}", json={"first_message": "x"}).json(), ids
    )
    floors["refresh"], _ = raw_parallel(sandbox.url, lambda c, _: c.get("/phone").json(), range(1))
    floors["destroy"], _ = raw_parallel(sandbox.url, lambda c, i: c.delete(f"/phone/{i}"), ids)
    for phase, seconds in phases.items():
        rows.append(
            Row(
                f"engine {phase}, {n} agents, parallel {ENGINE_PARALLEL}",
                f"{seconds * 1000:.0f} ms",
                f"{floors[phase] * 1000:.0f} ms",
                f"{seconds / floors[phase]:.2f}",
                data={"seconds": seconds, "floor_seconds": floors[phase]},
            )
        )

    connections = stats["connections"]
    operations = 4 * n
    rows.append(
        Row(
            f"TCP connections, {operations} ops through host (parallel {ENGINE_PARALLEL})",
            str(connections),
            "-",
            "-",
            "<= 4",
            connections <= 4,
            {"operations": operations, "api_requests": stats["requests"], "by_route": stats["by_route"]},
        )
    )

    # In-process: a client built for this count alone (distinct settings -> its own pool).
    provider = configured_provider(sandbox.url, timeoutSeconds="29.5")
    inputs = provider.check({}, registrations[0].inputs).inputs
    sandbox.reset_stats()
    done = 0
    while done < sizes.connection_ops:
        created = provider.create(inputs)
        outs = provider.update(created.id, created.outs or {}, dict(inputs, first_message=f"n{done}")).outs or {}
        expect(provider.read(created.id, outs).id == created.id, "read lost the agent")
        provider.delete(created.id, outs)
        done += 4
    stats = sandbox.stats()
    rows.append(
        Row(
            f"TCP connections, {done} ops in-process",
            str(stats["connections"]),
            "1",
            "-",
            "<= 4",
            stats["connections"] <= 4,
            {"operations": done, "api_requests": stats["requests"]},
        )
    )

    # State: what every resource carries.
    serialized = entry.inputs[PROVIDER_KEY]
    pickled = len(base64.b64decode(serialized))
    rows.append(
        Row(
            "pickled provider per resource",
            f"{pickled} B ({len(serialized)} B base64)",
            goal="<= 512 B",
            met=pickled <= 512,
            data={"pickle_bytes": pickled, "base64_bytes": len(serialized), "in_inputs_and_outputs": True},
        )
    )
    document = {
        "urn": entry.urn,
        "custom": True,
        "id": entry.id,
        "type": entry.type,
        "inputs": entry.inputs,
        "outputs": entry.outputs,
    }
    total = len(json.dumps(document, separators=(",", ":")))
    without = {**document, "inputs": _without_provider(entry.inputs), "outputs": _without_provider(entry.outputs)}
    rows.append(
        Row(
            "state bytes per agent (compact JSON)",
            f"{total} B",
            f"{len(json.dumps(without, separators=(',', ':')))} B without __provider",
            data={"bytes": total, "provider_bytes": 2 * len(serialized), "agents_in_state": len(state_copy)},
        )
    )


def _without_provider(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k != PROVIDER_KEY}


# -- 6: the CPU cost of a preview ------------------------------------------------------------------------


def check_diff_rate(provider: PhoneAgentProvider, reg: Registration, agent: dict[str, Any], seconds: float) -> float:
    """Unchanged check+diff pairs per second in-process (median of five rounds)."""
    olds_inputs = provider.check({}, reg.inputs).inputs
    olds_outputs = outputs_from_agent(agent)
    news = reg.inputs
    agent_id = agent["id"]
    expect(not provider.diff(agent_id, olds_outputs, olds_inputs).changes, "an unchanged agent shows a diff")
    rates = []
    for _ in range(5):
        count, start = 0, time.perf_counter()
        deadline = start + seconds / 5
        while True:
            for _ in range(100):
                checked = provider.check(olds_inputs, news).inputs
                provider.diff(agent_id, olds_outputs, checked)
            count += 100
            now = time.perf_counter()
            if now >= deadline:
                break
        rates.append(count / (now - start))
    return statistics.median(rates)


def bench_preview(sandbox: Sandbox, sizes: Sizes, rows: list[Row]) -> None:
    sandbox.reset()
    n = sizes.preview
    specs = [spec(i) for i in range(n)]
    start = time.perf_counter()
    registrations = declare(specs, prefix="preview")
    declare_seconds = time.perf_counter() - start
    agents = populate(sandbox.url, specs)
    provider = configured_provider(sandbox.url)

    rate = check_diff_rate(provider, registrations[0], agents[0], sizes.check_diff_seconds)
    rows.append(
        Row(
            "check+diff pairs per second, in-process",
            f"{rate:,.0f}/s",
            goal=">= 60,000/s",
            met=rate >= 60_000,
            data={"pairs_per_second": rate, "us_per_pair": 1e6 / rate},
        )
    )

    state = state_from_agents(provider, registrations, agents)
    with provider_host(sandbox.url) as host:
        engine = Engine(host, state, parallel=ENGINE_PARALLEL)
        engine.preview(registrations[:1])  # the host unpickles and configures the provider once
        sandbox.reset_stats()
        start = time.perf_counter()
        summary = engine.preview(registrations)
        seconds = time.perf_counter() - start
    calls = sandbox.stats()["requests"]
    expect(len(summary.same) == n and not summary.failed, f"preview of an unchanged stack: {summary.changes} changes")
    floor = n / rate
    rows.append(
        Row(
            f"preview of {n:,} agents through host (parallel {ENGINE_PARALLEL})",
            f"{seconds:.2f} s, {calls} API calls",
            f"{floor:.3f} s in-process",
            f"{seconds / floor:.0f}",
            data={
                "seconds": seconds,
                "per_agent_ms": seconds * 1000 / n,
                "api_calls": calls,
                "floor_seconds_in_process": floor,
                "declare_seconds_mock_monitor": declare_seconds,
            },
        )
    )


# -- 7: refresh under the API's limit --------------------------------------------------------------------


def bench_refresh(sizes: Sizes, rows: list[Row]) -> None:
    with tempfile.TemporaryDirectory(prefix="oppie-bench-") as folder:
        db = str(Path(folder) / "agents.db")
        with Sandbox(db=db) as filler, Sandbox(db=db, rate_limit=100) as limited:
            provider = configured_provider(filler.url)
            made: list[dict[str, Any]] = []
            for n in sizes.refresh:
                made += populate(filler.url, [spec(i) for i in range(len(made), n)])
                registrations = declare([spec(i) for i in range(n)], prefix="refresh")
                state = state_from_agents(provider, registrations, made)
                with raw_client(filler.url) as client:
                    client.get("/phone")
                    floor = statistics.median(timed(lambda: client.get("/phone").json())[0] for _ in range(5)) / 1e9
                # A fresh host, as `pulumi refresh` starts one; the provider's default limit of 100/minute.
                with provider_host(limited.url, maxRequestsPerMinute="100") as host:
                    # The host imports and configures the provider on its first call: not the refresh's cost.
                    host.check(registrations[0].urn, {}, registrations[0].inputs)
                    limited.reset_stats()
                    start = time.perf_counter()
                    summary = Engine(host, state, parallel=ENGINE_PARALLEL).refresh()
                    seconds = time.perf_counter() - start
                stats = limited.stats()
                expect(not summary.failed and len(summary.same) + len(summary.updated) == n, f"refresh: {summary}")
                calls = stats["requests"]
                rows.append(
                    Row(
                        f"refresh {n} agents: API calls (100/min limit on)",
                        f"{calls} ({', '.join(f'{v} {k}' for k, v in stats['by_route'].items())})",
                        "1",
                        f"{calls:.2f}",
                        "<= 5",
                        calls <= 5 and stats["by_status"].get("429", 0) == 0,
                        {"api_calls": calls, "by_route": stats["by_route"], "by_status": stats["by_status"]},
                    )
                )
                rows.append(
                    Row(
                        f"refresh {n} agents: wall time (parallel {ENGINE_PARALLEL})",
                        f"{seconds * 1000:.0f} ms",
                        f"{floor * 1000:.1f} ms (one GET /phone)",
                        f"{seconds / floor:.1f}",
                        data={
                            "seconds": seconds,
                            "floor_seconds_one_list": floor,
                            "unchanged": len(summary.same),
                            "drift_reported": len(summary.updated),
                        },
                    )
                )


# -- 8: creates at the API's limit -----------------------------------------------------------------------


def bench_rate_limited(sizes: Sizes, rows: list[Row]) -> None:
    n, limit, window = sizes.rate_creates, sizes.rate_limit, sizes.rate_window
    registrations = declare([spec(i) for i in range(n)], prefix="burst")
    with Sandbox(rate_limit=limit, window=window) as sandbox:
        limits = {"maxRequestsPerMinute": str(limit), "rateLimitWindowSeconds": str(window)}
        with provider_host(sandbox.url, **limits) as host:
            engine = Engine(host, {}, parallel=ENGINE_PARALLEL)
            engine.preview(registrations[:1])  # unpickle and configure outside the clock; no API call
            start = time.perf_counter()
            summary = engine.up(registrations)
            seconds = time.perf_counter() - start
        stats = sandbox.stats()
    failures = len(summary.failed)
    pace = f"{limit}/min" if window == 60.0 else f"{limit} per {window:g} s window (time-scaled)"
    throttled = stats["by_status"].get("429", 0)
    # The floor: the windows the requests made need at the limit. Each create POSTs once and shares a baseline
    # list with the creates that begin with it (agents.reconcile, issue 21); the lists are counted, not hidden.
    requests = stats["requests"] - throttled
    lists = stats["by_route"].get("GET /phone", 0)
    floor = (math.ceil(requests / limit) - 1) * window
    floor_posts_only = (math.ceil(n / limit) - 1) * window
    rows.append(
        Row(
            f"{n} creates through host at {pace}",
            f"{seconds:.1f} s, {failures} failed, {throttled} x 429, {lists} lists",
            f"{floor:.1f} s ({requests} requests)",
            f"{seconds / floor:.3f}" if floor else "-",
            "<= 1.10, 0 failed",
            seconds <= 1.10 * floor and failures == 0 and len(summary.created) == n,
            {
                "seconds": seconds,
                "floor_seconds": floor,
                "floor_seconds_posts_only": floor_posts_only,
                "lists": lists,
                "created": len(summary.created),
                "failed": summary.failed,
                "by_status": stats["by_status"],
                "api_requests": stats["requests"],
                "window_seconds": window,
                "limit_per_window": limit,
            },
        )
    )


# -- 9: a large program ----------------------------------------------------------------------------------

_DECLARE_PROBE = """
import sys
from oppie_pulumi import PhoneAgent
from oppie_pulumi_testing import run_program

n = int(sys.argv[1])
count = 0

def program():
    global count
    for i in range(n):
        PhoneAgent(f"agent-{i}", name=f"Agent {i}")
        count = i + 1

try:
    run_program(program)
except RecursionError:
    print(f"RecursionError after {count} agents")
else:
    print(f"ok {count}")
"""


def bench_declare(sizes: Sizes, rows: list[Row]) -> None:
    n = sizes.declare_in_one_program
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_DECLARE_PROBE), str(n)],
        capture_output=True,
        text=True,
        timeout=600,
        env=plain_env(),
    )
    seconds = time.perf_counter() - start
    outcome = (result.stdout.strip().splitlines() or [f"exit {result.returncode}: {result.stderr[-300:]}"])[-1]
    ok = outcome == f"ok {n}"
    rows.append(
        Row(
            f"declare {n:,} agents in one program (mock monitor)",
            f"{seconds:.1f} s" if ok else outcome,
            goal="registers",
            met=ok,
            data={"outcome": outcome, "seconds": seconds},
        )
    )


# -- main ------------------------------------------------------------------------------------------------

SECTIONS = ("latency", "stack", "preview", "refresh", "rate", "declare")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="tiny sizes, under a minute (what CI runs)")
    mode.add_argument("--full", action="store_true", help="more samples and larger stacks")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH")
    parser.add_argument(
        "--only", metavar="SECTIONS", help=f"comma-separated subset of: {', '.join(SECTIONS)} (default: all)"
    )
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL if args.full else DEFAULT
    mode_name = "smoke" if args.smoke else "full" if args.full else "default"
    chosen = SECTIONS if not args.only else tuple(s.strip() for s in args.only.split(","))
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if not sizes.declare_in_one_program:
        chosen = tuple(s for s in chosen if s != "declare")

    host = machine()
    command = " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"oppie-pulumi benchmarks ({mode_name}): {command}")
    print(
        f"machine: {host['nproc']} CPUs ({host['cpu']}), Python {host['python']}, {host['platform']}, "
        f"pulumi {host['pulumi']}, httpx {host['httpx']}"
    )
    print("latencies: median / p95; ratio = provider / raw floor (of medians, p95 beside)")
    sys.stdout.flush()

    rows: list[Row] = []
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with Sandbox() as sandbox:
        shared: list[tuple[str, Callable[[], None]]] = [
            ("latency", lambda: bench_latency(sandbox, sizes, rows)),
            ("stack", lambda: bench_stack(sandbox, sizes, rows)),
            ("preview", lambda: bench_preview(sandbox, sizes, rows)),
        ]
        for name, run in shared:
            if name in chosen:
                progress(name)
                start = time.perf_counter()
                run()
                timings[name] = time.perf_counter() - start
    own: list[tuple[str, Callable[[], None]]] = [
        ("refresh", lambda: bench_refresh(sizes, rows)),
        ("rate", lambda: bench_rate_limited(sizes, rows)),
        ("declare", lambda: bench_declare(sizes, rows)),
    ]
    for name, run in own:
        if name in chosen:
            progress(name)
            start = time.perf_counter()
            run()
            timings[name] = time.perf_counter() - start

    print()
    print_table(TABLE_HEADER, [row.cells() for row in rows])
    total = time.perf_counter() - started
    print(f"\n{goals_line(rows, total)}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "command": command,
                    "mode": mode_name,
                    "sizes": asdict(sizes),
                    "machine": host,
                    "section_seconds": timings,
                    "rows": [asdict(row) for row in rows],
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
