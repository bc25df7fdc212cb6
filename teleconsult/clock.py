"""What time it is: the one place services ask (a leaf, so tests can move time for expiry and retention).

``now()`` is aware UTC. ``Clock`` is the injectable form: services that must be tested across time take one;
``SYSTEM`` is the real one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


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


#: Where French practices bill: a consultation's day, and a month's bounds, are Paris days.
PARIS = ZoneInfo("Europe/Paris")


def paris_date(moment: datetime) -> date:
    """The day ``moment`` (aware) falls on in Europe/Paris."""
    return moment.astimezone(PARIS).date()


def paris_day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """The UTC instants ``[start, end)`` covering the Paris days ``first`` to ``last``, both included."""
    start = datetime.combine(first, time(0), PARIS).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), PARIS).astimezone(UTC)
    return start, end
