"""The sandbox's settings (`SandboxConfig`) and the runtime state of one app (`SandboxState`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._faults import Faults, FaultState, RateLimiter
from ._stats import Stats
from ._store import AgentStore, utc_timestamp


@dataclass
class SandboxConfig:
    """How a sandbox app starts.

    `db_path` ":memory:" keeps nothing once the app is gone; a file path (its folders are created) keeps
    the agents across restarts. `rate_limit_per_minute` None or 0 turns the limit off; the real API
    documents 100 requests per minute. `rate_window_seconds` is the window that limit counts over (60; benchmarks
    shorten it to time-scale a rate-limited run, with the provider's `oppie:rateLimitWindowSeconds`).
    """

    token: str = "sandbox-token"
    db_path: str = ".oppie-sandbox/agents.db"
    rate_limit_per_minute: int | None = 100
    rate_window_seconds: float = 60.0
    org_id: str = "org_sandbox"
    faults: Faults = field(default_factory=Faults)


class SandboxState:
    """Everything one app holds at runtime, exposed as `app.state.sandbox`."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.fault_state = FaultState(config.faults)
        self.store = AgentStore(config.db_path, config.org_id, clock=self._stamp)
        self.stats = Stats()
        self.rate_limiter = RateLimiter(config.rate_limit_per_minute, config.rate_window_seconds)

    def _stamp(self) -> str:
        faults = self.fault_state.faults
        return utc_timestamp(faults.clock_offset_ms, faults.whole_second_stamps)

    @property
    def faults(self) -> Faults:
        """The live faults: assign a new `Faults` or change one of its fields; both take effect at once."""
        return self.fault_state.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self.fault_state.faults = faults

    def reset(self) -> None:
        """Delete every agent and go back to the startup faults, with stats and rate limit counted anew."""
        self.store.clear()
        self.stats.reset()
        self.rate_limiter.reset()
        self.fault_state.reset()

    def close(self) -> None:
        """Release the database connection."""
        self.store.close()
