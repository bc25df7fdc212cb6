"""Calendar invitations (``.ics``) for scheduled consultations: the only home of icalendar."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event, vCalAddress, vText

PRODUCT = "-//Teleconsult//Teleconsultation//FR"
DEFAULT_LENGTH = timedelta(minutes=20)


@dataclass(frozen=True, slots=True)
class Appointment:
    uid: str
    start: datetime
    summary: str
    description: str
    url: str
    organizer_name: str
    organizer_email: str
    attendee_email: str
    sequence: int = 0
    cancelled: bool = False


def ics(appointment: Appointment) -> str:
    """A REQUEST (or, once cancelled, a CANCEL) that calendar apps add, update or remove by its UID."""
    calendar = Calendar()
    calendar.add("prodid", PRODUCT)
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if appointment.cancelled else "REQUEST")
    event = Event()
    event.add("uid", appointment.uid)
    event.add("dtstamp", datetime.now(UTC))
    start = appointment.start.astimezone(UTC)  # never a floating or offset-only time: calendars need UTC or a TZID
    event.add("dtstart", start)
    event.add("dtend", start + DEFAULT_LENGTH)
    event.add("summary", appointment.summary)
    event.add("description", appointment.description)
    event.add("url", appointment.url)
    event.add("sequence", appointment.sequence)
    event.add("status", "CANCELLED" if appointment.cancelled else "CONFIRMED")
    organizer = vCalAddress(f"mailto:{appointment.organizer_email}")
    organizer.params["cn"] = vText(appointment.organizer_name)
    event["organizer"] = organizer
    event.add("attendee", vCalAddress(f"mailto:{appointment.attendee_email}"))
    calendar.add_component(event)
    return bytes(calendar.to_ical()).decode("utf-8")
