"""Billing over HTTP, for the consultation's doctor: the proposal shown before ending, the ledger entries of a
consultation and their corrections, a month's summary, and the exports."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from teleconsult.acts import NursePlace, Tariff
from teleconsult.api.auth import require_doctor
from teleconsult.api.bodies import BillingBody, read_body
from teleconsult.api.keys import BILLING
from teleconsult.api.middlewares import LANG_COOKIE
from teleconsult.api.serialize import billing_json
from teleconsult.billing import BillingChoice, MonthSummary, Proposal
from teleconsult.domain import BillingStatus
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.i18n import negotiate

routes = web.RouteTableDef()


def choice_of(body: BillingBody | None) -> BillingChoice | None:
    if body is None:
        return None
    return BillingChoice(
        status=BillingStatus(body.status) if body.status else None,
        doctor_act=body.doctor_act,
        majorations=tuple(body.majorations),
        nurse_place=NursePlace(body.nurse_place) if body.nurse_place else None,
        nurse_number=body.nurse_number,
        reason=body.reason,
        patient_birth_date=body.patient_birth_date,
        patient_nir=body.patient_nir,
    )


@routes.get("/api/consultations/{id}/billing/proposal")
async def proposal(request: web.Request) -> web.Response:
    """What ending now would bill, and what the doctor may choose instead."""
    doctor = await require_doctor(request)
    found = await request.app[BILLING].proposal(doctor, request.match_info["id"])
    return web.json_response(proposal_json(found, _language(request)))


@routes.get("/api/consultations/{id}/billing")
async def entries(request: web.Request) -> web.Response:
    """Every ledger entry of the consultation, the original first, then each correction."""
    doctor = await require_doctor(request)
    found = await request.app[BILLING].entries(doctor, request.match_info["id"])
    return web.json_response({"items": [billing_json(entry) for entry in found]})


@routes.post("/api/consultations/{id}/billing/corrections")
async def correct(request: web.Request) -> web.Response:
    """A new entry replacing the current one; nothing is overwritten."""
    doctor = await require_doctor(request)
    body = await read_body(request, BillingBody)
    choice = choice_of(body)
    assert choice is not None
    entry = await request.app[BILLING].correct(doctor, request.match_info["id"], choice)
    return web.json_response(billing_json(entry), status=201)


@routes.get("/api/billing/summary")
async def summary(request: web.Request) -> web.Response:
    """``?month=2026-11``: the doctor's consultations of that month by status, their acts and the total."""
    doctor = await require_doctor(request)
    first, last = month_bounds(request.query.get("month", ""))
    found = await request.app[BILLING].month(doctor, first, last)
    return web.json_response(summary_json(found))


def month_bounds(raw: str) -> tuple[date, date]:
    try:
        year, month = (int(part) for part in raw.split("-"))
        first = date(year, month, 1)
    except ValueError:
        raise TeleconsultError(ErrorCode.BAD_REQUEST, "Give the month as YYYY-MM.", field="month") from None
    following = date(year + month // 12, month % 12 + 1, 1)
    return first, date.fromordinal(following.toordinal() - 1)


def _language(request: web.Request) -> str:
    cookie = request.cookies.get(LANG_COOKIE)
    return negotiate(request.query.get("lang"), cookie, request.headers.get("Accept-Language"))


def tariff_json(tariff: Tariff, language: str) -> dict[str, Any]:
    return {
        "code": tariff.code,
        "label": tariff.label(language),
        "amount_cents": tariff.amount_cents,
        "tariff_from": tariff.valid_from.isoformat(),
    }


def proposal_json(found: Proposal, language: str) -> dict[str, Any]:
    return {
        "proposed": billing_json(found.draft),
        "statuses": [status.value for status in found.statuses],
        "doctor_acts": [tariff_json(t, language) for t in found.doctor_acts],
        "majorations": [tariff_json(t, language) for t in found.majorations],
        "nurse_acts": [{"place": place.value, **tariff_json(t, language)} for place, t in found.nurse_acts],
    }


def summary_json(found: MonthSummary) -> dict[str, Any]:
    return {
        "from": found.first.isoformat(),
        "to": found.last.isoformat(),
        "statuses": found.statuses,
        "acts": [
            {"code": code, "count": count, "total_cents": cents} for code, (count, cents) in sorted(found.acts.items())
        ],
        "total_cents": found.total_cents,
        "currency": "EUR",
    }
