"""Concurrency for one shard: a bounded worker pool, a requests-per-minute limit, exponential
backoff with jitter. Shared by the Earth Engine and WMS clients."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Transient(Exception):
    """A failure worth retrying: HTTP 429, a 5xx, a timeout, a dropped connection."""


class LocationFailed(Exception):
    """One location cannot be acquired; the message names it and says why (the server's words)."""


class RateLimiter:
    """At most ``per_minute`` request starts per minute across all threads, evenly spaced.

    Each caller reserves the next free slot under a lock and sleeps until it, so a burst of workers
    is smoothed to the configured rate instead of tripping the server's quota.
    """

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive, got {per_minute}")
        self.interval, self.clock, self.sleep = 60.0 / per_minute, clock, sleep
        self.next_slot = -float("inf")
        self.lock = threading.Lock()

    def acquire(self) -> None:
        with self.lock:
            now = self.clock()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
        if slot > now:
            self.sleep(slot - now)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt k waits uniform(½, 1) × min(cap, base · 2^k) seconds."""

    base: float = 1.0
    cap: float = 60.0
    attempts: int = 6

    def delay(self, attempt: int, rng: random.Random) -> float:
        return min(self.cap, self.base * 2 ** attempt) * rng.uniform(0.5, 1.0)


def with_retries(call: Callable[[], R], backoff: Backoff, where: str, limiter: RateLimiter | None = None,
                 rng: random.Random | None = None, sleep: Callable[[float], None] = time.sleep) -> R:
    """Run ``call`` (after the rate limiter) until it succeeds, retrying :class:`Transient` failures
    with backoff; after ``backoff.attempts`` tries it raises :class:`LocationFailed` naming ``where``."""
    rng = rng or random.Random()
    for attempt in range(backoff.attempts):
        if limiter is not None:
            limiter.acquire()
        try:
            return call()
        except Transient as err:
            last = err
            if attempt + 1 < backoff.attempts:
                sleep(backoff.delay(attempt, rng))
    raise LocationFailed(f"{where}: gave up after {backoff.attempts} attempts: {last}")


def run_pool(items: Iterable[T], work: Callable[[T], R], workers: int) -> Iterator[tuple[T, R | None, Exception | None]]:
    """Run ``work`` on every item with at most ``workers`` in flight; yield (item, result, error) as
    each finishes. Items are submitted lazily, so memory stays bounded by ``workers``."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    pending: dict[Future, T] = {}
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers) as executor:
        while True:
            while len(pending) < workers:
                item = next(source, _END)
                if item is _END:
                    break
                pending[executor.submit(work, item)] = item
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                item = pending.pop(future)
                err = future.exception()
                yield item, (None if err else future.result()), err  # type: ignore[misc]


_END = object()
