"""Rate limit, backoff and the bounded pool, on a fake clock and counted calls."""

from __future__ import annotations

import random
import threading
import time

import pytest

from eolabels.acquisition.pool import Backoff, LocationFailed, RateLimiter, Transient, run_pool, with_retries


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_rate_limiter_spaces_requests_by_hand():
    clock = FakeClock()
    limiter = RateLimiter(120, clock=clock, sleep=clock.sleep)  # 120/min → one slot per 0.5 s
    for _ in range(3):
        limiter.acquire()
    assert clock.slept == [0.5, 1.0]  # slots at 100.0, 100.5, 101.0 requested at t = 100
    clock.now = 110.0  # idle for a while: the next request goes at once, no burst credit kept
    limiter.acquire()
    assert clock.slept == [0.5, 1.0]
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_backoff_doubles_with_bounded_jitter():
    b = Backoff(base=1.0, cap=10.0, attempts=5)
    rng = random.Random(0)
    for attempt, full in enumerate([1, 2, 4, 8, 10, 10]):
        d = b.delay(attempt, rng)
        assert full / 2 <= d <= full


def test_with_retries_transient_then_success_and_give_up():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise Transient("HTTP 429")
        return "ok"
    assert with_retries(flaky, Backoff(base=1, cap=8, attempts=4), "loc x", sleep=sleeps.append,
                        rng=random.Random(1)) == "ok"
    assert len(calls) == 3 and len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1 and 1 <= sleeps[1] <= 2

    def storm():
        raise Transient("HTTP 429: quota")
    with pytest.raises(LocationFailed, match="loc y: gave up after 4 attempts: HTTP 429: quota"):
        with_retries(storm, Backoff(attempts=4), "loc y", sleep=lambda s: None)

    permanent = []

    def bad():
        permanent.append(1)
        raise LocationFailed("loc z: HTTP 400: no such asset")
    with pytest.raises(LocationFailed, match="no such asset"):
        with_retries(bad, Backoff(attempts=4), "loc z", sleep=lambda s: None)
    assert len(permanent) == 1


def test_pool_bounds_concurrency_and_reports_each_error():
    running, peak, lock = [0], [0], threading.Lock()

    def work(i: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        if i == 5:
            raise LocationFailed("location 5: broken")
        return i * i

    out = {i: (r, e) for i, r, e in run_pool(range(20), work, workers=3)}
    assert peak[0] <= 3 and len(out) == 20
    assert out[4] == (16, None) and str(out[5][1]) == "location 5: broken"
