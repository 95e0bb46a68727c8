"""Counting failures per key in a sliding window, to refuse guessing before it gets anywhere.

Used for web sign-ins (per username and per client address); reusable for anything that must stop
after N failures in T seconds. Only failures count: a person who signs in correctly is never slowed.
State is per process: behind several API replicas each replica counts alone, so the effective limit
is N per replica (still bounded; a shared counter in Redis or the catalog would make it global).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from chartvault.errors import Unavailable

MAX_KEYS = 10_000  # keys kept before a sweep drops the ones whose failures have aged out


class TooManyAttempts(Unavailable):
    """Too many recent failures for this key: refused without trying, until the window moves on."""

    code = "too_many_attempts"


class FailureThrottle:
    """At most ``limit`` failures per key within ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0 when it may try now)."""
        with self._lock:
            recent = self._prune(key)
            if recent is None or len(recent) < self.limit:
                return 0.0
            return max(0.0, recent[-self.limit] + self.window_s - self._clock())

    def check(self, *keys: str) -> None:
        """Raise TooManyAttempts if any key is over its limit."""
        wait = max((self.retry_after(key) for key in keys), default=0.0)
        if wait > 0:
            raise TooManyAttempts(
                "too many failed attempts; try again later", retry_after_s=max(1, math.ceil(wait))
            )

    def fail(self, *keys: str) -> None:
        """Record one failure against every key."""
        now = self._clock()
        with self._lock:
            if len(self._failures) > MAX_KEYS:  # many names sprayed: drop whatever has aged out
                for stale in list(self._failures):
                    self._prune(stale)
            for key in keys:
                recent = self._prune(key)
                if recent is None:
                    recent = self._failures[key] = deque()
                recent.append(now)

    def _prune(self, key: str) -> deque[float] | None:
        """The key's failures still inside the window, None when none is; caller holds the lock."""
        recent = self._failures.get(key)
        if recent is None:
            return None
        cutoff = self._clock() - self.window_s
        while recent and recent[0] <= cutoff:
            recent.popleft()
        if not recent:
            del self._failures[key]  # idle keys do not accumulate
            return None
        return recent
