"""The client-side rate limit: at most N requests in any window, across every thread of a process.

Kept apart from ``_client`` because it knows nothing of HTTP: it hands out places in a sliding window, and says
how long a caller is about to wait before it blocks (``acquire(announce=...)``), which is how the plugin shows
"waiting 12 s for the rate limit" and gives up at a deadline instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter", "Slot"]


class Slot:
    """One request's place in the rate limiter's window: when it counts from, and how long it waited."""

    __slots__ = ("at", "waited")

    def __init__(self, at: float, waited: float) -> None:
        self.at = at
        self.waited = waited


class RateLimiter:
    """At most ``per_window`` requests in any ``window`` seconds (60: the API's per-minute limit), across threads.

    A sliding window rather than a token bucket with a burst: it never exceeds the API's limit whichever of the
    two the API enforces, and still sends the first ``per_window`` at once.

    The API counts a request from when it arrives, which we cannot see; we count it from when its answer came
    back (``settle``), which is never earlier. A request the API refused with a 429 was not counted by the API,
    so it gives its place back (``release``).
    """

    def __init__(
        self,
        per_window: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        window: float = 60.0,
    ) -> None:
        self._limit = int(per_window)
        self._clock = clock
        self._sleep = sleep
        self.window = window
        self._slots: list[Slot] = []
        self._lock = threading.Lock()

    def acquire(self, announce: Callable[[float], None] | None = None) -> Slot:
        """Block until a request may be sent, and hold a place for it in the window.

        ``announce(seconds)`` is called before each wait; it may raise to give up (no place is then held).
        """
        started = self._clock()
        while True:
            with self._lock:
                now = self._clock()
                if self._limit <= 0:
                    return Slot(now, 0.0)
                self._slots = [slot for slot in self._slots if slot.at > now - self.window]
                if len(self._slots) < self._limit:
                    slot = Slot(now, now - started)
                    self._slots.append(slot)
                    return slot
                # The place frees when enough of the oldest requests leave the window.
                times = sorted(slot.at for slot in self._slots)
                wait = max(times[len(times) - self._limit] + self.window - now, 0.001)
            if announce is not None:
                announce(wait)
            self._sleep(wait)

    def settle(self, slot: Slot) -> None:
        """The request got its answer: it counts from now."""
        with self._lock:
            slot.at = self._clock()

    def release(self, slot: Slot) -> None:
        """The API refused the request without counting it (429): give its place back."""
        with self._lock:
            if slot in self._slots:
                self._slots.remove(slot)
