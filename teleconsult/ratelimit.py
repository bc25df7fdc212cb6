"""Rate limiting as pure code: a token bucket, and a per-key counter of sockets not yet welcomed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second up to ``burst``; ``take`` spends one if there is one.

    A sender is *flooding* when, within a window of ``window_s``, more of its frames were refused than the rate
    allows in that window (it sent at least twice what it may, for that long).
    """

    rate: float
    burst: float
    window_s: float = 2.0
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _stamp: float = field(init=False)
    _window_start: float = field(init=False)
    _refused: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._tokens = self.burst
        self._stamp = self._window_start = self.clock()

    def take(self) -> bool:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        if now - self._window_start > self.window_s:
            self._window_start, self._refused = now, 0
        self._refused += 1
        return False

    @property
    def flooding(self) -> bool:
        return self._refused > self.rate * self.window_s


class PendingPerKey:
    """Counts sockets per client address that have not said hello yet, up to ``limit`` each."""

    def __init__(self, limit: int):
        self.limit = limit
        self._counts: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        count = self._counts.get(key, 0)
        if count >= self.limit:
            return False
        self._counts[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self._counts.get(key, 0) - 1
        if count > 0:
            self._counts[key] = count
        else:
            self._counts.pop(key, None)

    def __len__(self) -> int:
        return sum(self._counts.values())


class RatePerKey:
    """At most ``per_minute`` events a minute per key, in bursts of up to ``per_minute`` (GCRA: one float per key).

    ``take`` answers 0 when the event may go ahead (and counts it), else the seconds to wait. Idle keys are
    forgotten when the table grows past ``max_keys``, so a flood of addresses cannot grow it without bound.
    """

    def __init__(self, per_minute: float, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000):
        self._interval = 60.0 / per_minute
        self._tolerance = 60.0 - self._interval  # the burst: per_minute events at once
        self._clock = clock
        self._max_keys = max_keys
        self._due: dict[str, float] = {}

    def take(self, key: str) -> float:
        now = self._clock()
        due = max(self._due.get(key, now), now)
        wait = due - now - self._tolerance
        if wait > 0:
            return wait
        self._due[key] = due + self._interval
        if len(self._due) > self._max_keys:
            self._forget_idle(now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, due in self._due.items() if due <= now]:
            del self._due[key]
