"""Consultation lifecycle (DESIGN.md): scheduled -> waiting -> in_progress -> ended | cancelled | no_show. Pure."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    SCHEDULED = "scheduled"
    WAITING = "waiting"
    IN_PROGRESS = "in_progress"
    ENDED = "ended"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


OPEN = frozenset({Status.SCHEDULED, Status.WAITING, Status.IN_PROGRESS})
CLOSED = frozenset({Status.ENDED, Status.CANCELLED, Status.NO_SHOW})

#: Legal moves; the store applies them with a conditional UPDATE so racing callers cannot both win.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.WAITING: frozenset({Status.SCHEDULED}),
    Status.IN_PROGRESS: frozenset({Status.SCHEDULED, Status.WAITING}),
    Status.ENDED: frozenset({Status.IN_PROGRESS}),
    Status.NO_SHOW: frozenset({Status.SCHEDULED, Status.WAITING}),
    Status.CANCELLED: frozenset({Status.SCHEDULED, Status.WAITING}),
}


def sources(target: Status) -> frozenset[Status]:
    return TRANSITIONS.get(target, frozenset())


def closing_status(started: bool) -> Status:
    """Ending a consultation that really took place bills it; one where the patient never came is a no-show."""
    return Status.ENDED if started else Status.NO_SHOW
