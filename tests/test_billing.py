"""What a consultation bills, as pure rules (``teleconsult.billing.proposal``) on the shipped act catalog."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from teleconsult.acts import ActCatalog, BilledBy, NursePlace
from teleconsult.billing import BillingChoice, propose
from teleconsult.domain import BillingStatus, Consultation, ConsultationCore, Doctor, Participant
from teleconsult.errors import TeleconsultError
from teleconsult.ids import ConsultationId, DoctorId, ParticipantId
from teleconsult.validation import nir

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DOCTOR = Doctor(DoctorId("d_1"), "dr@example.org", "Dr Alice Martin", "10101010101", None)
CATALOG = ActCatalog.load()


def seat(role: str, name: str, *, admitted: bool = True, joined: bool = True) -> Participant:
    return Participant(
        id=ParticipantId(f"u_{role}"),
        consultation_id=ConsultationId("c_1"),
        role=role,
        name=name,
        email=None,
        consent_at=None,
        joined_at=START if joined else None,
        admitted_at=START if admitted else None,
        left_at=None,
        pre_admitted=False,
        peer_id=None,
        away_since=None,
        created_at=START,
    )


def consultation(*participants: Participant, started_at: datetime | None = START, video: bool = True) -> Consultation:
    core = ConsultationCore(
        id=ConsultationId("c_1"),
        doctor_id=DOCTOR.id,
        status="in_progress" if started_at else "waiting",
        reason=None,
        language="fr",
        scheduled_at=None,
        created_at=START,
        started_at=started_at,
        ended_at=None,
        video_at=started_at if video and started_at else None,
    )
    return Consultation.of(core, participants=participants, invitations=(), mails=(), billing=None)


def bill(found: Consultation, choice: BillingChoice | None = None, *, ended: datetime | None = None) -> object:
    return propose(
        CATALOG, found, DOCTOR, ended_at=ended or START + timedelta(minutes=10), choice=choice, recorded_by="t"
    ).draft


def test_a_generalist_with_video_bills_a_tcg_for_the_time_spent() -> None:
    record = propose(
        CATALOG,
        consultation(seat("patient", "Jeanne Dupont")),
        DOCTOR,
        ended_at=START + timedelta(minutes=12, seconds=34.6),
        recorded_by="doctor:d_1",
    ).draft
    assert record.status is BillingStatus.COMPLETED and record.reason is None
    assert [(a.role, a.act_code, a.amount_cents, a.performer_name) for a in record.acts] == [
        ("doctor", "TCG", 2500, "Dr Alice Martin")
    ]
    assert record.acts[0].tariff_from == date(2018, 9, 15)
    assert record.total_cents == 2500 and record.currency == "EUR" and record.duration_s == 755
    assert record.patient_name == "Jeanne Dupont" and record.doctor_rpps == "10101010101"
    assert record.video_connected and record.act_date == date(2026, 3, 2) and record.revision == 0


@pytest.mark.parametrize(
    ("place", "code", "cents"),
    [
        (NursePlace.PLANNED_VISIT, "TLS", 1000),
        (NursePlace.DEDICATED_PLACE, "TLL", 1200),
        (NursePlace.HOME, "TLD", 1500),
    ],
)
def test_an_admitted_nurse_bills_the_act_of_where_she_was(place: NursePlace, code: str, cents: int) -> None:
    people = (seat("patient", "Jeanne"), seat("nurse", "Inès Robert"))
    record = propose(
        CATALOG,
        consultation(*people),
        DOCTOR,
        ended_at=START,
        choice=BillingChoice(nurse_place=place, nurse_number="123456789"),
        recorded_by="t",
    ).draft
    assert [a.act_code for a in record.acts] == ["TCG", code]
    assert record.acts[1].performer_name == "Inès Robert" and record.total_cents == 2500 + cents
    assert record.nurse is not None and record.nurse.place == place.value and record.nurse.number == "123456789"


def test_the_nurse_is_billed_for_a_planned_visit_unless_the_doctor_says_otherwise() -> None:
    record = bill(consultation(seat("patient", "Jeanne"), seat("nurse", "Inès")))
    assert [a.act_code for a in record.acts] == ["TCG", "TLS"]  # type: ignore[attr-defined]


def test_a_nurse_who_was_never_admitted_is_not_billed() -> None:
    record = bill(consultation(seat("patient", "Jeanne"), seat("nurse", "Inès", admitted=False)))
    assert [a.act_code for a in record.acts] == ["TCG"]  # type: ignore[attr-defined]
    assert record.nurse is None  # type: ignore[attr-defined]


def test_a_patient_who_never_joined_is_a_no_show_that_bills_nothing_and_says_why() -> None:
    record = propose(
        CATALOG,
        consultation(seat("patient", "Jeanne", admitted=False, joined=False), started_at=None),
        DOCTOR,
        ended_at=START,
        choice=BillingChoice(status=BillingStatus.COMPLETED),
        recorded_by="t",
    ).draft
    assert record.status is BillingStatus.NO_SHOW and record.reason == "patient_never_joined"
    assert record.acts == () and record.total_cents == 0 and record.duration_s == 0


def test_a_patient_left_in_the_waiting_room_is_a_no_show_too() -> None:
    record = bill(consultation(seat("patient", "Jeanne", admitted=False), started_at=None))
    assert record.status is BillingStatus.NO_SHOW and record.reason == "patient_never_admitted"  # type: ignore[attr-defined]


def test_without_video_it_is_interrupted_and_cannot_be_billed_as_completed() -> None:
    found = consultation(seat("patient", "Jeanne"), video=False)
    record = bill(found)
    assert record.status is BillingStatus.INTERRUPTED and record.reason == "video_not_connected"  # type: ignore[attr-defined]
    assert record.acts == ()  # type: ignore[attr-defined]
    with pytest.raises(TeleconsultError) as refused:
        bill(found, BillingChoice(status=BillingStatus.COMPLETED))
    assert refused.value.detail == "video_not_connected"


def test_the_doctor_marks_it_not_billable_with_a_reason_or_interrupted() -> None:
    found = consultation(seat("patient", "Jeanne"))
    record = bill(found, BillingChoice(status=BillingStatus.NOT_BILLABLE, reason="acte gratuit"))
    assert record.status is BillingStatus.NOT_BILLABLE and record.reason == "acte gratuit"  # type: ignore[attr-defined]
    assert record.total_cents == 0  # type: ignore[attr-defined]
    with pytest.raises(TeleconsultError, match="why"):
        bill(found, BillingChoice(status=BillingStatus.NOT_BILLABLE))
    interrupted = bill(found, BillingChoice(status=BillingStatus.INTERRUPTED))
    assert interrupted.reason == "technical_failure" and interrupted.acts == ()  # type: ignore[attr-defined]


def test_a_doctor_may_bill_only_their_professions_acts_and_the_majorations_of_that_act() -> None:
    found = consultation(seat("patient", "Jeanne"))
    with pytest.raises(TeleconsultError, match="profession"):
        bill(found, BillingChoice(doctor_act="TLD"))
    with pytest.raises(TeleconsultError, match="majoration"):
        bill(found, BillingChoice(majorations=("TLS",)))
    majorations = CATALOG.majorations_for("TCG", date(2026, 3, 2))
    if majorations:
        first = majorations[0]
        record = bill(found, BillingChoice(majorations=(first.code,)))
        act = record.acts[0]  # type: ignore[attr-defined]
        assert [m.code for m in act.modifiers] == [first.code]
        assert record.total_cents == 2500 + first.amount_cents  # type: ignore[attr-defined]


def test_the_amount_is_the_one_in_force_on_the_consultations_day() -> None:
    """Ending on a day the catalog changes bills the amount of the day the consultation took place (Paris)."""
    text = """
[[code]]
code = "TCG"
kind = "act"
billed_by = "generalist"
label_fr = "Téléconsultation"
label_en = "Teleconsultation"

[[code.amount]]
amount = "25.00"
from = 2018-09-15
source = "test"

[[code.amount]]
amount = "30.00"
from = 2026-03-03
source = "test"
"""
    catalog = ActCatalog.load(text)
    late_evening = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)  # 23:30 in Paris, the day before the change
    found = replace(consultation(seat("patient", "Jeanne")), started_at=late_evening, video_at=late_evening)
    before = propose(catalog, found, DOCTOR, ended_at=late_evening + timedelta(hours=1), recorded_by="t").draft
    assert before.act_date == date(2026, 3, 2) and before.total_cents == 2500
    after_midnight = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # 00:30 in Paris: the day of the change
    found = replace(found, started_at=after_midnight)
    after = propose(catalog, found, DOCTOR, ended_at=after_midnight, recorded_by="t").draft
    assert after.act_date == date(2026, 3, 3) and after.total_cents == 3000
    assert after.acts[0].tariff_from == date(2026, 3, 3)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("1 85 05 78 006 084 91", True),  # the key is 97 - (1850578006084 mod 97) = 91
        ("185057800608437", False),
        ("2 69 05 2A 123 456 ", False),
        ("18505780060843", False),
    ],
)
def test_a_nir_is_checked_with_its_key(value: str, ok: bool) -> None:
    if ok:
        assert nir(value) == value.replace(" ", "")
    else:
        with pytest.raises(TeleconsultError):
            nir(value)


def test_corsican_nirs_count_2a_as_19() -> None:
    number = "1850" + "52A" + "123456"
    key = 97 - int(number.replace("2A", "19")) % 97
    assert nir(f"{number}{key:02d}") == f"{number}{key:02d}"


def test_a_specialist_without_a_confirmed_act_ends_not_billable_and_says_why() -> None:
    specialist = replace(DOCTOR, profession="specialist")
    draft = propose(CATALOG, consultation(seat("patient", "Jeanne")), specialist, ended_at=START, recorded_by="t").draft
    assert draft.status is BillingStatus.NOT_BILLABLE and draft.reason == "no_act_in_force" and draft.acts == ()
    unconfirmed_allowed = [
        t.code for t in CATALOG.acts_for(BilledBy.SPECIALIST, START.date(), include_unconfirmed=True)
    ]
    assert "TC" in unconfirmed_allowed  # known, but not proposed until an amount is confirmed
