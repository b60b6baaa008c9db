"""Fault injection and rate limiting: the ways the sandbox misbehaves on purpose.

`Faults` is the switchboard (settable at startup through `SandboxConfig.faults` and at runtime through
`SandboxServer.set_faults` or `PATCH /_sandbox/faults`). `FaultState` holds the live switchboard and draws
the per-request decisions from it; `RateLimiter` is the API's documented per-minute limit.
"""

from __future__ import annotations

import enum
import math
import random
import threading
import time
from collections import deque
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Faults(BaseModel):
    """What the sandbox should get wrong, and how often. Every fault is off by default.

    Counters ending in `_next` are consumed one per affected request, which makes bursts deterministic:
    `fail_next=2` fails exactly the next two API requests and then stops by itself.
    """

    # Typos must fail loudly: a misspelt fault that silently does nothing makes a test pass for nothing.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency_ms: int = Field(default=0, ge=0, description="Sleep this long before handling each API request.")
    error_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of API requests answered `fail_status` before applying anything.",
    )
    seed: int | None = Field(default=None, description="Seed of the random draws behind `error_rate` (None: unseeded).")
    fail_next: int = Field(default=0, ge=0, description="The next N API requests answer `fail_status`, unapplied.")
    fail_status: int = Field(default=503, ge=400, le=599, description="Status used by `error_rate` and `fail_next`.")
    html_errors: bool = Field(
        default=False, description="Failures carry an HTML page (as a gateway would) instead of the JSON envelope."
    )
    rate_limit_next: int = Field(default=0, ge=0, description="The next N API requests answer 429 with Retry-After.")
    retry_after_s: float = Field(default=1.0, ge=0.0, description="The Retry-After sent by `rate_limit_next`.")
    drop_after_apply: int = Field(
        default=0,
        ge=0,
        description="The next N successful mutating requests are committed, then the connection is dropped "
        "mid-response.",
    )
    delay_after_apply_ms: int = Field(
        default=0, ge=0, description="Mutating requests are committed, then their answer is held back this long."
    )
    post_status_200: bool = Field(default=False, description="Create answers 200 instead of 201 (newer API).")
    patch_empty_body: bool = Field(default=False, description="PATCH answers 200 with an empty body (older API).")
    language_as_list: bool = Field(default=False, description='Responses carry `language` as a list: "en" -> ["en"].')
    extra_fields: bool = Field(default=False, description="Responses add the fields newer API versions return.")
    malformed_json_next: int = Field(
        default=0, ge=0, description="The next N API requests answer 200 with truncated JSON, unapplied."
    )
    fail_after_apply_next: int = Field(
        default=0,
        ge=0,
        description="The next N successful writes are applied, then answered `fail_status` (a gateway that gave up "
        "waiting for the answer): the client sees a 5xx for a write that happened.",
    )
    late_apply_next: int = Field(
        default=0,
        ge=0,
        description="The next N writes are held `late_apply_ms` before being applied, whether or not the client is "
        "still waiting: a client that gives up first finds nothing, and the write lands afterwards.",
    )
    late_apply_ms: int = Field(default=1000, ge=0, description="How long `late_apply_next` holds a write back.")
    clock_offset_ms: int = Field(
        default=0,
        description="The API's clock runs this far from real time (negative: behind) in the stamps it writes "
        "(`created_at`, `updated_at`).",
    )
    whole_second_stamps: bool = Field(
        default=False,
        description="Stamps are cut to whole seconds but still written with milliseconds (`...:07.000Z`), as a "
        "DATETIME column read back by JavaScript gives them.",
    )
    truncate_next: int = Field(
        default=0,
        ge=0,
        description="The next N successful answers (any method) are sent complete at the HTTP level but with their "
        "body cut in half (an empty body becomes a cut-off JSON fragment), after the request was applied.",
    )
    truncate_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of successful answers cut in half like `truncate_next` (drawn with `seed`).",
    )
    writes_only: bool = Field(
        default=False,
        description="`rate_limit_next`, `fail_next`, `error_rate` and `malformed_json_next` hit only writes (POST, "
        "PATCH, DELETE); reads pass. A create lists the agents before its POST (its baseline), so a fault meant "
        "for the POST says so.",
    )
    enforce_retry_after: bool = Field(
        default=False,
        description="After a 429 the sandbox sent, API requests arriving before its Retry-After has passed are "
        "answered 429 too, as a real limiter would: a client that ignores Retry-After meets more 429s.",
    )


class Injected(enum.Enum):
    """A fault chosen for one request, answered instead of the real handler."""

    RATE_LIMITED = "rate_limited"
    FAILED = "failed"
    MALFORMED = "malformed"


class FaultState:
    """The live `Faults` of one app, shared by the event loop and the threads that reconfigure it."""

    def __init__(self, initial: Faults) -> None:
        self._initial = initial.model_copy(deep=True)
        self._lock = threading.Lock()
        self._faults = initial.model_copy(deep=True)
        self._rng = random.Random(self._faults.seed)
        self._rng_seed = self._faults.seed
        self._closed_until = 0.0

    @property
    def faults(self) -> Faults:
        """The live faults; mutating the returned model changes the sandbox's behaviour at once."""
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults.model_copy(deep=True)
            # Setting faults anew replays the same draws for the same seed, which is what a test expects.
            self._reseed()

    def update(self, **changes: Any) -> Faults:
        """Change the named faults and keep the others; unknown names or bad values raise ValidationError."""
        with self._lock:
            merged = Faults.model_validate({**self._faults.model_dump(), **changes})
            self._faults = merged
            if "seed" in changes:
                self._reseed()
            return merged

    def reset(self) -> Faults:
        """Go back to the faults the app was created with."""
        self.faults = self._initial
        with self._lock:
            self._closed_until = 0.0
        return self._faults

    def next_injection(self, write: bool = True) -> Injected | None:
        """Decide whether the current API request (a ``write`` or not) is answered by a fault instead of the API.

        Bursts are consumed before random failures so that `fail_next` stays deterministic even while an
        `error_rate` is set.
        """
        with self._lock:
            faults = self._faults
            if faults.writes_only and not write:
                return None
            if faults.rate_limit_next > 0:
                faults.rate_limit_next -= 1
                return Injected.RATE_LIMITED
            if faults.fail_next > 0:
                faults.fail_next -= 1
                return Injected.FAILED
            if faults.error_rate > 0 and self._draw() < faults.error_rate:
                return Injected.FAILED
            if faults.malformed_json_next > 0:
                faults.malformed_json_next -= 1
                return Injected.MALFORMED
            return None

    def take_drop(self) -> bool:
        """Consume one `drop_after_apply`, if any is left."""
        return self._take("drop_after_apply")

    def take_fail_after_apply(self) -> bool:
        """Consume one `fail_after_apply_next`, if any is left."""
        return self._take("fail_after_apply_next")

    def take_late_apply(self) -> bool:
        """Consume one `late_apply_next`, if any is left."""
        return self._take("late_apply_next")

    def take_truncate(self) -> bool:
        """Whether this successful answer is cut short: `truncate_next` first, then a `truncate_rate` draw."""
        if self._take("truncate_next"):
            return True
        with self._lock:
            return self._faults.truncate_rate > 0 and self._draw() < self._faults.truncate_rate

    def close_for(self, seconds: float) -> None:
        """A 429 asked the client to wait `seconds`: with `enforce_retry_after`, refuse API requests until then."""
        with self._lock:
            self._closed_until = max(self._closed_until, time.monotonic() + seconds)

    def retry_after_remaining(self) -> float:
        """Seconds left of the last Retry-After sent (0 when it has passed)."""
        with self._lock:
            return max(0.0, self._closed_until - time.monotonic())

    def _take(self, counter: str) -> bool:
        with self._lock:
            left = getattr(self._faults, counter)
            if left > 0:
                setattr(self._faults, counter, left - 1)
                return True
            return False

    def _draw(self) -> float:
        # The seed may have been assigned on the live model directly, bypassing the setter.
        if self._faults.seed != self._rng_seed:
            self._reseed()
        return self._rng.random()

    def _reseed(self) -> None:
        self._rng = random.Random(self._faults.seed)
        self._rng_seed = self._faults.seed


class RateLimiter:
    """A sliding window of `limit` requests per `window` seconds (a minute) for each token; `limit` None or 0 turns
    it off."""

    def __init__(self, limit: int | None, window: float = 60.0) -> None:
        self.limit = limit or None
        self.window = window
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}

    def acquire(self, key: str) -> int | None:
        """Count one request for `key`; return None if allowed, else the seconds until a slot frees (>= 1)."""
        if self.limit is None:
            return None
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                # Refused requests are not counted: a client that waits Retry-After does get through.
                return max(1, math.ceil(hits[0] + self.window - now))
            hits.append(now)
            return None

    def reset(self) -> None:
        """Forget every request counted so far."""
        with self._lock:
            self._hits.clear()


def format_retry_after(seconds: float) -> str:
    """Retry-After as an integer when whole ("1"), else as given ("0.5")."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
