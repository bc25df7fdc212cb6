"""JSON views of domain objects for the HTTP API (times in UTC ISO 8601)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from teleconsult.domain import BillingRecord, Consultation, Doctor, Invitation, Mail, Participant


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else None


def doctor_json(doctor: Doctor) -> dict[str, Any]:
    return {"id": doctor.id, "email": doctor.email, "name": doctor.name, "rpps": doctor.rpps}


def participant_json(participant: Participant) -> dict[str, Any]:
    return {
        "id": participant.id,
        "role": participant.role,
        "name": participant.name,
        "consent_at": iso(participant.consent_at),
        "joined_at": iso(participant.joined_at),
        "admitted_at": iso(participant.admitted_at),
        "left_at": iso(participant.left_at),
    }


def billing_json(record: BillingRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "id": record.id,
        "consultation_id": record.consultation_id,
        "revision": record.revision,
        "corrects": record.corrects,
        "status": record.status.value,
        "reason": record.reason,
        "act_date": record.act_date.isoformat(),
        "doctor": {"id": record.doctor_id, "name": record.doctor_name, "rpps": record.doctor_rpps},
        "patient_name": record.patient_name,
        "patient_birth_date": record.patient_birth_date.isoformat() if record.patient_birth_date else None,
        "patient_nir": record.patient_nir,
        "nurse": (
            {"name": record.nurse.name, "number": record.nurse.number, "place": record.nurse.place}
            if record.nurse
            else None
        ),
        "scheduled_at": iso(record.scheduled_at),
        "started_at": iso(record.started_at),
        "ended_at": iso(record.ended_at),
        "duration_s": record.duration_s,
        "video_connected": record.video_connected,
        "acts": [
            {
                "role": a.role,
                "performer": a.performer_name,
                "act_code": a.act_code,
                "amount_cents": a.amount_cents,
                "tariff_from": a.tariff_from.isoformat(),
                "modifiers": [
                    {"code": m.code, "amount_cents": m.amount_cents, "tariff_from": m.tariff_from.isoformat()}
                    for m in a.modifiers
                ],
                "total_cents": a.total_cents,
            }
            for a in record.acts
        ],
        "total_cents": record.total_cents,
        "currency": record.currency,
        "recorded_at": iso(record.recorded_at),
        "recorded_by": record.recorded_by,
    }


def invitations_json(consultation: Consultation, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per invited participant: the state of their newest link, of the mail that carried it, and of the
    cancellation notice if the consultation was cancelled."""
    now = now or datetime.now(UTC)
    views = []
    for participant in consultation.participants:
        if participant.role == "doctor":
            continue
        invitation = next((i for i in reversed(consultation.invitations) if i.participant_id == participant.id), None)
        views.append(
            {
                "participant_id": participant.id,
                "role": participant.role,
                "name": participant.name,
                "email": participant.email,
                "link": _link_state(invitation, now),
                "mail": _mail_json(_latest(consultation.mails, participant.id, "invitation")),
                "cancellation": _mail_json(_latest(consultation.mails, participant.id, "cancellation")),
            }
        )
    return views


def _latest(mails: tuple[Mail, ...], participant_id: str, kind: str) -> Mail | None:
    return next((m for m in reversed(mails) if m.participant_id == participant_id and m.kind == kind), None)


def _mail_json(mail: Mail | None) -> dict[str, Any] | None:
    if mail is None:
        return None
    return {
        "status": mail.status,
        "attempts": mail.attempts,
        "created_at": iso(mail.created_at),
        "sent_at": iso(mail.sent_at),
        "failed_at": iso(mail.failed_at),
        "error": mail.last_error if mail.status != "sent" else None,
        "reason": _reason(mail),
    }


def _reason(mail: Mail) -> str | None:
    """A stable code pages can translate: rejected (a 5xx), gave_up, superseded, or retrying (still queued)."""
    if mail.status == "sent" or not mail.last_error:
        return None
    if mail.status == "queued":
        return "retrying"
    for prefix, code in (("superseded", "superseded"), ("gave up", "gave_up"), ("SMTP 5", "rejected")):
        if mail.last_error.startswith(prefix):
            return code
    return "failed"


def _link_state(invitation: Invitation | None, now: datetime) -> str:
    if invitation is None:
        return "none"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= now:
        return "expired"
    return "used" if invitation.redeemed_at is not None else "active"


def consultation_json(consultation: Consultation, *, detail: bool = False) -> dict[str, Any]:
    patient, nurse = consultation.seat("patient"), consultation.seat("nurse")
    body: dict[str, Any] = {
        "id": consultation.id,
        "status": consultation.status,
        "patient_name": patient.name if patient else None,
        "nurse_name": nurse.name if nurse else None,
        "scheduled_at": iso(consultation.scheduled_at),
        "created_at": iso(consultation.created_at),
        "started_at": iso(consultation.started_at),
        "ended_at": iso(consultation.ended_at),
        "language": consultation.language,
        "billing": billing_json(consultation.billing),
        "invitations": invitations_json(consultation),
        "documents_count": len(consultation.documents),
    }
    if detail:
        body["reason"] = consultation.reason
        body["participants"] = [participant_json(p) for p in consultation.participants]
        body["documents"] = [
            {
                "id": d.id,
                "name": d.name,
                "mime": d.mime,
                "size": d.size,
                "kind": d.kind,
                "created_at": iso(d.created_at),
            }
            for d in consultation.documents
        ]
    return body
