"""Lists of the organisation's agents shared between the threads of one client.

The API has no ``GET /phone/{id}``: every read is a list of the whole organisation, and a provider host runs
four calls at once. ``SharedLists`` keeps the latest lists and the one in flight, so that callers that can use
the same list share one call: reads within ``max_age`` seconds of the client's last write, and a create's
baseline (``agents.reconcile``), which must be a list whose request went out after the create began. It knows
nothing of HTTP: the client gives it the call that fetches a list.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Agents", "SharedLists"]

# What GET /phone answers.
Agents = list[dict[str, Any]]


@dataclass
class _Listing:
    """A list call in flight: the client's write generation when it began, and when its request last went out
    (not yet: whoever begins before it is sent may share it, a create's baseline included)."""

    generation: int
    sent_at: float = math.inf


@dataclass
class _Snapshot:
    generation: int
    fetched_at: float  # when its request went out
    agents: Agents


class SharedLists:
    """The latest lists and the one in flight; ``written()`` after each write of the client's own."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._generation = 0
        self._snapshot: _Snapshot | None = None  # the latest list, while no write of ours has happened since
        self._latest: _Snapshot | None = None  # the latest list, writes or not (baselines: ``since``)
        self._listing: _Listing | None = None  # the list call in flight, if any

    def written(self) -> None:
        """The client wrote: lists taken before no longer serve reads (a baseline may still use them)."""
        with self._lock:
            self._generation += 1
            self._snapshot = None

    def fresh(self, max_age: float, fetch: Callable[[Callable[[], None]], Agents]) -> Agents:
        """A list taken within ``max_age`` seconds after the client's last write, or the one in flight (if
        ``max_age`` allows any sharing), or a new one from ``fetch``."""

        def usable(snap: _Snapshot) -> bool:
            return snap.generation == self._generation and time.monotonic() - snap.fetched_at <= max_age

        def joinable(listing: _Listing) -> bool:
            return max_age > 0 and listing.generation == self._generation

        return self._shared(usable, joinable, fetch, queue=False)

    def since(self, moment: float, fetch: Callable[[Callable[[], None]], Agents]) -> Agents:
        """A list whose request went out at or after ``moment`` (``time.monotonic()``), whatever the client wrote
        meanwhile: one taken or in flight and not yet sent, else a new one from ``fetch``."""
        # A list sent before ``moment`` cannot serve, but is waited for (``queue``): the next one then serves
        # every caller that began meanwhile, instead of one list each.
        return self._shared(
            lambda snap: snap.fetched_at >= moment, lambda listing: listing.sent_at >= moment, fetch, queue=True
        )

    def _shared(
        self,
        usable: Callable[[_Snapshot], bool],
        joinable: Callable[[_Listing], bool],
        fetch: Callable[[Callable[[], None]], Agents],
        *,
        queue: bool,
    ) -> Agents:
        """A ``usable`` list already taken, or the one in flight if ``joinable`` (any, if ``queue``: then the
        next one), or a new one. ``fetch`` is given the callback to call as each attempt's request goes out."""
        with self._lock:
            while True:
                for snap in (self._snapshot, self._latest):
                    if snap is not None and usable(snap):
                        return snap.agents
                listing = self._listing
                if listing is not None and (queue or joinable(listing)):
                    self._lock.wait()
                    continue
                listing = self._listing = _Listing(self._generation)
                break

        def sent() -> None:
            with self._lock:
                listing.sent_at = time.monotonic()

        try:
            data = fetch(sent)
            with self._lock:
                snap = _Snapshot(listing.generation, listing.sent_at, data)
                if self._latest is None or self._latest.fetched_at <= snap.fetched_at:
                    self._latest = snap
                if listing.generation == self._generation:
                    self._snapshot = snap
            return data
        finally:
            with self._lock:
                if self._listing is listing:
                    self._listing = None
                self._lock.notify_all()
