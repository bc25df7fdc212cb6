"""Rows into domain values: the ORM never leaves ``store/`` (``teleconsult/domain.py``)."""

from __future__ import annotations

import json
from datetime import date

from teleconsult import domain
from teleconsult.ids import (
    BillingRecordId,
    ConsultationId,
    DoctorId,
    DocumentId,
    InvitationId,
    MailId,
    ParticipantId,
    PeerId,
)
from teleconsult.store import models


def doctor(row: models.Doctor) -> domain.Doctor:
    return domain.Doctor(
        id=DoctorId(row.id),
        email=row.email,
        name=row.name,
        rpps=row.rpps,
        phone=row.phone,
        address=row.address,
        profession=row.profession,
    )


def participant(row: models.Participant) -> domain.Participant:
    return domain.Participant(
        id=ParticipantId(row.id),
        consultation_id=ConsultationId(row.consultation_id),
        role=row.role,
        name=row.name,
        email=row.email,
        consent_at=row.consent_at,
        joined_at=row.joined_at,
        admitted_at=row.admitted_at,
        left_at=row.left_at,
        pre_admitted=bool(row.pre_admitted),
        peer_id=PeerId(row.peer_id) if row.peer_id else None,
        away_since=row.away_since,
        created_at=row.created_at,
    )


def invitation(row: models.Invitation) -> domain.Invitation:
    return domain.Invitation(
        id=InvitationId(row.id),
        consultation_id=ConsultationId(row.consultation_id),
        participant_id=ParticipantId(row.participant_id),
        role=row.role,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        redeemed_at=row.redeemed_at,
    )


def mail(row: models.OutgoingMail) -> domain.Mail:
    return domain.Mail(
        id=MailId(row.id),
        consultation_id=ConsultationId(row.consultation_id),
        participant_id=ParticipantId(row.participant_id) if row.participant_id else None,
        invitation_id=InvitationId(row.invitation_id) if row.invitation_id else None,
        kind=row.kind,
        recipient_role=row.recipient_role,
        recipient=row.recipient,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        sent_at=row.sent_at,
        failed_at=row.failed_at,
        last_error=row.last_error,
    )


def billing_record(row: models.BillingEntry) -> domain.BillingRecord:
    nurse = (
        domain.Nurse(name=row.nurse_name, number=row.nurse_number, place=row.nurse_place or "")
        if row.nurse_name is not None
        else None
    )
    return domain.BillingRecord(
        id=BillingRecordId(row.id),
        consultation_id=ConsultationId(row.consultation_id),
        revision=row.revision,
        corrects=BillingRecordId(row.corrects) if row.corrects else None,
        status=domain.BillingStatus(row.status),
        reason=row.reason,
        act_date=row.act_date,
        doctor_id=DoctorId(row.doctor_id),
        doctor_name=row.doctor_name,
        doctor_rpps=row.doctor_rpps,
        patient_name=row.patient_name,
        patient_birth_date=row.patient_birth_date,
        patient_nir=row.patient_nir,
        nurse=nurse,
        scheduled_at=row.scheduled_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        duration_s=row.duration_s,
        video_connected=bool(row.video_connected),
        total_cents=row.total_cents,
        currency=row.currency,
        acts=tuple(billing_act(act) for act in row.acts),
        recorded_at=row.recorded_at,
        recorded_by=row.recorded_by,
    )


def billing_act(row: models.BillingEntryAct) -> domain.BillingAct:
    return domain.BillingAct(
        role=row.role,
        performer_name=row.performer_name,
        act_code=row.code,
        amount_cents=row.amount_cents,
        tariff_from=row.tariff_from,
        modifiers=tuple(
            domain.Modifier(
                code=m["code"], amount_cents=int(m["amount_cents"]), tariff_from=date.fromisoformat(m["from"])
            )
            for m in json.loads(row.modifiers)
        ),
    )


def consultation_core(row: models.Consultation) -> domain.ConsultationCore:
    return domain.ConsultationCore(
        id=ConsultationId(row.id),
        doctor_id=DoctorId(row.doctor_id),
        status=row.status,
        reason=row.reason,
        language=row.language,
        scheduled_at=row.scheduled_at,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        video_at=row.video_at,
    )


def consultation(row: models.Consultation) -> domain.Consultation:
    """With its relationships, which the query must have loaded (``selectin`` does)."""
    return domain.Consultation.of(
        consultation_core(row),
        participants=tuple(participant(p) for p in row.participants),
        invitations=tuple(invitation(i) for i in row.invitations),
        mails=tuple(mail(m) for m in row.mails),
        billing=billing_record(row.billing[-1]) if row.billing else None,
        documents=tuple(document(d) for d in row.documents),
    )


def document(row: models.Document) -> domain.Document:
    return domain.Document(
        id=DocumentId(row.id),
        consultation_id=ConsultationId(row.consultation_id),
        uploaded_by=ParticipantId(row.uploaded_by),
        kind=row.kind,
        name=row.name,
        mime=row.mime,
        size=row.size,
        sealed_size=row.sealed_size,
        sha256=row.sha256,
        key_ids=tuple(k for k in row.key_ids.split(",") if k),
        created_at=row.created_at,
    )


def prescription(row: models.Prescription) -> domain.Prescription:
    return domain.Prescription(
        id=row.id,
        document_id=DocumentId(row.document_id),
        consultation_id=ConsultationId(row.consultation_id),
        doctor_id=DoctorId(row.doctor_id),
        number=row.number,
        doctor_name=row.doctor_name,
        rpps=row.rpps,
        patient_initials=row.patient_initials,
        signed_sha256=row.signed_sha256,
        signed_size=row.signed_size,
        issued_at=row.issued_at,
        revoked_at=row.revoked_at,
    )
