"""Values checked at the edge: display names, email addresses, appointment times. The only home of email_validator.

A name is display text: it is shown on pages and written into mail headers as an encoded phrase, never parsed for
an address. So it may hold commas, angle brackets and any letter, but no character that changes how text is laid
out or read by a machine: control characters (CR, LF, NUL...), Unicode line and paragraph separators, and the
invisible format characters (bidirectional overrides, zero-width joiners) that make a name read differently on
screen than in the database. An address is one mailbox: no display part, no second address, no quoted local part,
no IP literal, an internationalised domain turned into its ASCII form.

Every refusal is a ``TeleconsultError`` with the field and a ``detail`` code that the pages and the API translate
(``error.detail.<detail>`` in ``web/locales``).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta

import email_validator

from teleconsult.errors import ErrorCode, TeleconsultError

NAME_MAX = 200
EMAIL_MAX = 254
#: Unicode categories a display name may not contain: controls, format characters, line and paragraph
#: separators, surrogates, private use and unassigned code points.
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
#: Appointments further ahead than this are refused (a typo in the year, not a plan).
LATEST_APPOINTMENT = timedelta(days=2 * 366)
#: A time this far past is refused: its link would be nearly dead on arrival. Less is allowed (the doctor types
#: "10:00" at 10:20 for a patient already waiting).
PAST_TOLERANCE = timedelta(hours=1)


def invalid(field: str, detail: str, message: str) -> TeleconsultError:
    return TeleconsultError(ErrorCode.BAD_REQUEST, message, field=field, detail=detail)


def display_name(value: str, *, field: str, max_length: int = NAME_MAX) -> str:
    """A name as it will be shown: NFC, trimmed, non-empty, at most ``max_length``, nothing invisible in it."""
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise invalid(field, "name_required", "A name is required.")
    if len(text) > max_length:
        raise invalid(field, "name_too_long", f"A name has at most {max_length} characters.")
    if any(unicodedata.category(c) in FORBIDDEN_CATEGORIES for c in text):
        raise invalid(field, "name_characters", "A name may not contain control or invisible characters.")
    return " ".join(text.split())  # no runs of spaces or tabs either


def shown(value: str) -> str:
    """A stored name made safe to display whatever it holds (rows older than these checks): the characters
    ``display_name`` refuses are dropped rather than refused."""
    return " ".join("".join(c for c in value if unicodedata.category(c) not in FORBIDDEN_CATEGORIES).split())


def optional_text(value: str | None, *, field: str, max_length: int) -> str | None:
    """Free text (a reason for the visit): line breaks and tabs allowed, other controls refused."""
    if value is None:
        return None
    text = unicodedata.normalize("NFC", value).strip()
    if len(text) > max_length:
        raise invalid(field, "text_too_long", f"At most {max_length} characters.")
    if any(unicodedata.category(c) in FORBIDDEN_CATEGORIES and c not in "\n\t" for c in text):
        raise invalid(field, "text_characters", "The text may not contain control or invisible characters.")
    return text or None


def mailbox(value: str, *, field: str) -> str:
    """One email address, strictly: the ASCII form, lower-cased. Refuses display names, lists, quoted local parts,
    IP literals and local parts outside ASCII (not every mail server accepts SMTPUTF8)."""
    text = value.strip()
    if not text or len(text) > EMAIL_MAX:
        raise invalid(field, "email_invalid", "The email address is invalid.")
    try:
        checked = email_validator.validate_email(
            text,
            check_deliverability=False,
            allow_smtputf8=False,
            allow_display_name=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
        )
    except email_validator.EmailNotValidError:
        raise invalid(field, "email_invalid", "The email address is invalid.") from None
    address = (checked.ascii_email or checked.normalized).lower()
    if len(address) > EMAIL_MAX:
        raise invalid(field, "email_invalid", "The email address is invalid.")
    return address


def appointment(value: datetime | None, *, field: str, now: datetime) -> datetime | None:
    """An appointment time: with an offset, in UTC, not already past, not years ahead."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise invalid(field, "time_zone_required", "The time needs a time zone offset.")
    try:
        moment = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise invalid(field, "time_out_of_range", "This date is out of range.") from None
    if moment > now + LATEST_APPOINTMENT:
        raise invalid(field, "time_out_of_range", "This date is too far ahead.")
    if moment < now - PAST_TOLERANCE:
        raise invalid(field, "time_past", "This time is already past.")
    return moment


def birth_date(value: date) -> date:
    """A patient's birth date: not in the future, not before 1900."""
    if not date(1900, 1, 1) <= value <= datetime.now(UTC).date():
        raise invalid("patient_birth_date", "birth_date_out_of_range", "This birth date is not possible.")
    return value


#: A NIR (numéro de sécurité sociale): sex, year, month, département (2A/2B for Corsica), commune, order, key.
_NIR_SHAPE = re.compile(r"[12378]\d{2}(0[1-9]|1[0-2]|[2-9]\d)(\d{2}|2A|2B)\d{6}\d{2}")


def nir(value: str) -> str:
    """A NIR of 15 characters (13 and its 2-digit key; spaces allowed), whose key is 97 - (number mod 97), with
    Corsica's 2A and 2B counted as 19 and 18. Returned without spaces."""
    compact = value.replace(" ", "").upper()
    if not _NIR_SHAPE.fullmatch(compact):
        raise invalid("patient_nir", "nir_malformed", "A NIR has 13 digits and a 2-digit key.")
    number = compact[:13].replace("2A", "19").replace("2B", "18")
    if 97 - int(number) % 97 != int(compact[13:]):
        raise invalid("patient_nir", "nir_bad_key", "This NIR's key does not match its number.")
    return compact
