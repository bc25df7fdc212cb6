"""Rate limiting as pure code: a token bucket, and a per-key counter of sockets not yet welcomed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second up to ``burst``; ``take`` spends one if there is one."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _stamp: float = field(init=False)
    #: When the bucket first ran dry in the current streak of refusals (None while frames are allowed).
    _dry_since: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._tokens = self.burst
        self._stamp = self.clock()

    def take(self) -> bool:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            self._dry_since = None
            return True
        if self._dry_since is None:
            self._dry_since = now
        return False

    def dry_for(self) -> float:
        """How long the sender has kept sending into an empty bucket (0 if it has not)."""
        return 0.0 if self._dry_since is None else self.clock() - self._dry_since


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
