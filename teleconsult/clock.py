"""What time it is: the one place services ask (a leaf, so tests can move time for expiry and retention).

``now()`` is aware UTC. ``Clock`` is the injectable form: services that must be tested across time take one;
``SYSTEM`` is the real one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """The wall clock, with an offset tests may move forward (``advance``)."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, by: timedelta) -> None:
        self._offset += by


SYSTEM = Clock()


def now() -> datetime:
    """Aware UTC now, on the system clock."""
    return SYSTEM.now()
