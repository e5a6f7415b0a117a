"""Brute-force protection for logins: failures counted per user name and per client address.

``max_failures`` failures inside ``window`` seconds lock that key for ``lockout`` seconds (the
login answers 429 with Retry-After, even for the right password, so guessing gains nothing).
A success clears the user's count. Per-user locking lets a stranger lock an account out for
the lockout time; that is the usual trade against unlimited guessing, and per-IP counting alone
would not stop a botnet. In memory (per process): a restart forgets, which is acceptable for
windows of minutes.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

MAX_KEYS = 100_000  # bound the memory a flood of distinct names or addresses can take


class FailureLimiter:
    def __init__(
        self,
        max_failures: int,
        window: float,
        lockout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again; 0 when it may now."""
        with self._lock:
            until = self._locked_until.get(key)
            if until is None:
                return 0
            left = until - self._clock()
            if left <= 0:
                del self._locked_until[key]
                return 0
            return max(1, math.ceil(left))

    def fail(self, key: str) -> None:
        now = self._clock()
        with self._lock:
            times = self._failures.setdefault(key, deque())
            times.append(now)
            while times and times[0] < now - self.window:
                times.popleft()
            if len(times) >= self.max_failures:
                self._locked_until[key] = now + self.lockout
                times.clear()
            if len(self._failures) > MAX_KEYS:
                self._prune(now)

    def succeed(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in [k for k, t in self._failures.items() if not t or t[-1] < now - self.window]:
            del self._failures[key]
        for key in [k for k, until in self._locked_until.items() if until <= now]:
            del self._locked_until[key]
        while len(self._failures) > MAX_KEYS:  # still too many: forget the oldest entries
            del self._failures[next(iter(self._failures))]
