"""The mails patients, nurses and guests receive: composed from Jinja2 templates, French first.

A mail says only what the recipient needs: who invites them, when (Paris time), the link, how to prepare, how to
reach the practice. Never the reason for the visit or anything medical.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlsplit

from teleconsult.calendar import Appointment, ics
from teleconsult.clock import now
from teleconsult.config import MailSettings
from teleconsult.domain import Consultation, Doctor, Participant
from teleconsult.i18n import DEFAULT_LANGUAGE, LANGUAGES, format_paris
from teleconsult.templates import MailTemplates
from teleconsult.validation import shown


@dataclass(frozen=True, slots=True)
class Letter:
    """What a template needs to know."""

    kind: str  # invitation | cancellation
    consultation: Consultation
    doctor: Doctor
    participant: Participant
    link: str | None
    sequence: int = 0


def recipient_of(letter: Letter) -> str:
    """The one address the mail goes to: the participant's, validated when it was stored."""
    if not letter.participant.email:
        raise ValueError("a letter needs the participant's address")
    return letter.participant.email


class Notifier:
    def __init__(self, templates: MailTemplates, mail: MailSettings, base_url: str):
        self._templates = templates
        self._mail_from = mail.mail_from
        self._base_url = base_url
        self._domain = urlsplit(base_url).hostname or "teleconsult.localhost"

    def compose(self, letter: Letter) -> EmailMessage:
        lang = letter.consultation.language if letter.consultation.language in LANGUAGES else DEFAULT_LANGUAGE
        context = self._context(letter, lang)
        message = EmailMessage()
        message["Subject"] = self._render(f"mail/{letter.kind}.subject.{lang}.txt", context).strip()
        message["From"] = self._mail_from
        # Built from parts, never from a string parsed back: a name is an encoded phrase whatever it holds.
        message["To"] = Address(display_name=shown(letter.participant.name), addr_spec=recipient_of(letter))
        message["Reply-To"] = Address(display_name=shown(letter.doctor.name), addr_spec=letter.doctor.email)
        message["Date"] = format_datetime(now())
        message["Message-ID"] = make_msgid(domain=self._domain)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(self._render(f"mail/{letter.kind}.{lang}.txt", context))
        message.add_alternative(self._render(f"mail/{letter.kind}.{lang}.html", context), subtype="html")
        if letter.consultation.scheduled_at is not None:
            message.add_attachment(
                self._calendar(letter, context),  # text: sent with charset=utf-8
                subtype="calendar",
                filename="teleconsultation.ics",
                params={"method": "CANCEL" if letter.kind == "cancellation" else "REQUEST"},
            )
        message["Content-Language"] = lang  # last: set_content() drops earlier Content-* headers
        return message

    def _context(self, letter: Letter, lang: str) -> dict[str, Any]:
        patient = letter.consultation.seat("patient")
        return {
            "lang": lang,
            "role": letter.participant.role,
            "name": letter.participant.name,
            "patient_name": patient.name if patient else "",
            "doctor_name": letter.doctor.name,
            "doctor_email": letter.doctor.email,
            "doctor_phone": letter.doctor.phone,
            "when": format_paris(letter.consultation.scheduled_at, lang),
            "link": letter.link,
        }

    def _calendar(self, letter: Letter, context: dict[str, Any]) -> str:
        start = letter.consultation.scheduled_at
        assert start is not None
        return ics(
            Appointment(
                uid=f"{letter.consultation.id}.{letter.participant.id}@{self._domain}",
                start=start,
                summary=self._render(f"mail/calendar.summary.{context['lang']}.txt", context).strip(),
                description=letter.link or "",
                url=letter.link or self._base_url,
                organizer_name=letter.doctor.name,
                organizer_email=letter.doctor.email,
                attendee_email=letter.participant.email or "",
                sequence=letter.sequence,
                cancelled=letter.kind == "cancellation",
            )
        )

    def _render(self, name: str, context: dict[str, Any]) -> str:
        return self._templates.render(name, context)
