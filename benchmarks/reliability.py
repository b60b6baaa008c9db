"""Nothing lost: fault scenarios against the sandbox, through the real provider host.

    python benchmarks/reliability.py            # every scenario, prints the table
    python benchmarks/reliability.py --quick    # leaves out the minute-long rate-limit scenario

Each scenario starts a sandbox with a fault, then runs `pulumi up` (create), `up` again with a change
(update), `refresh` and `destroy` the way the engine does (one provider host per command, 10 operations
at once), and after every command compares the agents on the server with the agents in state:

- lost: in state but gone from the server;
- orphaned: on the server but in no state (a paid phone number nobody manages);
- duplicated: two agents on the server for one resource;
- failed: operations that failed although a retry was allowed.

All four must be zero. tests/test_reliability.py runs the same scenarios and asserts exactly that.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from oppie_pulumi import PhoneAgent
from oppie_pulumi.sandbox import SandboxConfig, SandboxServer, serve
from oppie_pulumi.testing import Engine, ProviderHost, Registration, StateEntry, Summary, run_program

TOKEN = "tok_reliability_5c1d9e"


@dataclass
class Scenario:
    name: str
    faults: dict[str, Any]
    agents: int = 30
    sandbox_limit: int | None = None
    config: dict[str, str] = field(default_factory=dict)
    describe: str = ""
    # Each further command would wait out another minute; the creates are the point of the scenario.
    limit_only_first_step: bool = False


SCENARIOS = [
    Scenario("5xx bursts", {"error_rate": 0.3, "seed": 7}, describe="30% of requests answer 503, unapplied"),
    Scenario(
        "429 storm",
        {"rate_limit_next": 80, "retry_after_s": 0.05},
        describe="the next 80 requests answer 429 with Retry-After",
    ),
    Scenario(
        "answers after the timeout",
        {"delay_after_apply_ms": 700},
        agents=10,
        config={"timeoutSeconds": "0.3", "maxRetries": "2"},
        describe="writes are applied, then answered 0.7 s later; the client times out at 0.3 s",
    ),
    Scenario(
        "connection dropped after apply",
        {"drop_after_apply": 25},
        describe="25 writes are applied, then the connection drops mid-answer",
    ),
    Scenario(
        "30+ parallel creates, low rate limit",
        {},
        agents=32,
        sandbox_limit=20,
        config={"maxRequestsPerMinute": "20"},
        describe="sandbox enforces 20 requests/min on the creates; provider limited to the same",
        limit_only_first_step=True,
    ),
]
SLOW = {"30+ parallel creates, low rate limit"}


@dataclass
class Outcome:
    scenario: Scenario
    operations: int = 0
    failed: list[str] = field(default_factory=list)
    lost: int = 0
    orphaned: int = 0
    duplicated: int = 0
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    faults_left: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.failed or self.lost or self.orphaned or self.duplicated)


def program(count: int, first_message: str) -> list[Registration]:
    def declare() -> None:
        for i in range(count):
            PhoneAgent(f"agent-{i:03d}", name=f"Agent {i:03d}", first_message=first_message)

    return run_program(declare)


def _audit(outcome: Outcome, state: dict[str, StateEntry], sandbox: SandboxServer) -> None:
    remote = sandbox.agents()
    remote_ids = {a["id"] for a in remote}
    state_ids = {e.id for e in state.values()}
    outcome.lost += len(state_ids - remote_ids)
    outcome.orphaned += len(remote_ids - state_ids)
    outcome.duplicated += sum(n - 1 for n in Counter(a["name"] for a in remote).values() if n > 1)


def run(scenario: Scenario) -> Outcome:
    """Run one scenario on a fresh sandbox; the outcome counts every loss, orphan, duplicate and failure."""
    outcome = Outcome(scenario)
    started = time.monotonic()
    config = SandboxConfig(token=TOKEN, db_path=":memory:", rate_limit_per_minute=scenario.sandbox_limit)
    with serve(config) as sandbox:
        sandbox.set_faults(**scenario.faults)
        state: dict[str, StateEntry] = {}
        settings = {"oppie:apiToken": TOKEN, "oppie:baseUrl": sandbox.url, "oppie:maxRequestsPerMinute": "0"}
        settings.update({f"oppie:{k}": v for k, v in scenario.config.items()})
        steps: list[tuple[str, Callable[[Engine], Summary]]] = [
            ("up", lambda e: e.up(program(scenario.agents, "Hello"))),
            ("update", lambda e: e.up(program(scenario.agents, "Hello again"))),
            ("refresh", lambda e: e.refresh()),
            ("destroy", lambda e: e.destroy()),
        ]
        for step, action in steps:
            with ProviderHost() as host:
                host.configure(settings)
                summary = action(Engine(host, state, parallel=10))
            outcome.operations += summary.changes + len(summary.same) + len(summary.failed)
            outcome.failed += [f"{step} {name}: {message}" for name, message in summary.failed.items()]
            _audit(outcome, state, sandbox)
            if scenario.limit_only_first_step:
                sandbox.state.rate_limiter.limit = None
                settings["oppie:maxRequestsPerMinute"] = "0"
        outcome.faults_left = sandbox.state.faults.model_dump()
        stats = sandbox.stats()
        outcome.requests = stats["requests"]
        outcome.statuses = dict(sorted(stats["by_status"].items()))
    outcome.seconds = time.monotonic() - started
    return outcome


def table(outcomes: list[Outcome]) -> str:
    head = ("scenario", "fault injected", "ops", "failed", "lost", "dup", "orphaned", "requests by status", "s")
    rows = [
        (
            o.scenario.name,
            o.scenario.describe,
            str(o.operations),
            str(len(o.failed)),
            str(o.lost),
            str(o.duplicated),
            str(o.orphaned),
            " ".join(f"{k}:{v}" for k, v in o.statuses.items()),
            f"{o.seconds:.1f}",
        )
        for o in outcomes
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the minute-long rate-limit scenario")
    args = parser.parse_args()
    outcomes = [run(s) for s in SCENARIOS if not (args.quick and s.name in SLOW)]
    print(table(outcomes))
    for outcome in outcomes:
        for failure in outcome.failed:
            print(f"FAILED {outcome.scenario.name}: {failure}")
    total = sum(o.lost + o.duplicated + o.orphaned + len(o.failed) for o in outcomes)
    print(f"\nagents lost, duplicated or orphaned, and failed operations, in all: {total}")
    return 0 if total == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
