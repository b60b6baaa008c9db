"""``_ratelimit.RateLimiter``: at most the API's requests a minute, each counted from its answer, a refused one
giving its place back, shared safely by threads. A fake clock makes the waits exact, not measured.
"""

from __future__ import annotations

import threading
import time

from oppie_pulumi._ratelimit import RateLimiter


class FakeTime:
    """A clock that only moves when the limiter sleeps (or a test says so): waits are exact, not measured."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_window_is_the_apis_60_seconds() -> None:
    """Regression: the limiter tests set the window on the object, so a 1 s window passed the whole suite."""
    time_ = FakeTime()
    limiter = RateLimiter(2, clock=time_.clock, sleep=time_.sleep)
    for _ in range(2):
        limiter.settle(limiter.acquire())
    assert time_.slept == []
    third = limiter.acquire()
    assert time_.slept == [60.0] and third.waited == 60.0


def test_rate_limiter_sends_the_first_window_at_once_then_waits_for_the_oldest_answer() -> None:
    time_ = FakeTime()
    limiter = RateLimiter(3, clock=time_.clock, sleep=time_.sleep)
    slots = [limiter.acquire() for _ in range(3)]
    assert [slot.waited for slot in slots] == [0.0, 0.0, 0.0]
    time_.now += 5.0  # the answers come back 5 s later
    for slot in slots:
        limiter.settle(slot)
    fourth = limiter.acquire()
    assert fourth.waited == 60.0 and time_.slept == [60.0]


def test_rate_limiter_counts_a_request_from_its_answer_not_its_start() -> None:
    time_ = FakeTime()
    limiter = RateLimiter(1, clock=time_.clock, sleep=time_.sleep)
    first = limiter.acquire()
    time_.now += 20.0  # the answer takes 20 s: the API may have counted it late
    limiter.settle(first)
    # counted from its start, the place would free 40 s from now; from its answer, 60 s
    assert limiter.acquire().waited == 60.0


def test_a_request_refused_with_429_gives_its_place_back() -> None:
    time_ = FakeTime()
    limiter = RateLimiter(1, clock=time_.clock, sleep=time_.sleep)
    limiter.release(limiter.acquire())
    assert limiter.acquire().waited == 0.0  # without the release: 60 s
    assert time_.slept == []


def test_rate_limiter_zero_is_off() -> None:
    limiter = RateLimiter(0)
    assert all(limiter.acquire().waited == 0.0 for _ in range(1000))


def test_rate_limiter_shared_by_threads_never_lets_more_than_the_limit_into_a_window() -> None:
    limiter = RateLimiter(10, window=0.25)
    sent: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            limiter.settle(limiter.acquire())
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(6)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sent) == 30
    assert time.monotonic() - started >= 0.5  # 30 requests at 10 per window: at least two full windows
    sent.sort()
    for i, at in enumerate(sent):
        assert sum(1 for other in sent[i:] if other < at + 0.25 - 0.01) <= 10
