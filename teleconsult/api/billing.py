"""Billing over HTTP, for the consultation's doctor: the proposal shown before ending, the ledger entries of a
consultation and their corrections, a month's summary, and the exports."""

from __future__ import annotations

import contextlib
import logging
import re
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
from teleconsult.billing.exports import MEDIA_TYPES, ExportFormat, file_name
from teleconsult.domain import BillingStatus
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.i18n import negotiate

log = logging.getLogger(__name__)
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


# --- exports -------------------------------------------------------------------------------------------------------

#: The longest range one request may export (a year, leap day included); the CLI has no such bound.
EXPORT_MAX_DAYS = 366


@routes.get("/api/billing/export")
async def export(request: web.Request) -> web.StreamResponse:
    """``?from=2026-11-01&to=2026-11-30&format=csv|fhir``: the doctor's own ledger (the current entry of each
    consultation of those Paris days), streamed as it is read; the same bytes as ``teleconsult billing export``."""
    doctor = await require_doctor(request)
    first, last = export_range(request.query.get("from", ""), request.query.get("to", ""))
    fmt = export_format(request.query.get("format", ExportFormat.CSV.value))
    await request.app[BILLING].exported(
        actor=f"doctor:{doctor.id}", first=first, last=last, fmt=fmt.value, scope=f"rpps:{doctor.rpps}"
    )
    chunks = request.app[BILLING].export(first, last, fmt, doctor=doctor)
    async with contextlib.aclosing(chunks):
        opening = await anext(chunks, b"")  # the first page read before the status is sent: a failure is JSON
        response = web.StreamResponse(
            headers={
                "Content-Type": MEDIA_TYPES[fmt],
                "Content-Disposition": f'attachment; filename="{file_name(first, last, fmt)}"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            }
        )
        await response.prepare(request)
        try:
            await response.write(opening)
            async for chunk in chunks:
                await response.write(chunk)
        except ConnectionResetError:  # the client went away: stop reading the ledger
            return response
        except TeleconsultError as error:  # the database went away mid-stream: never end as if complete
            log.warning("billing export cut short: %s", error.code.value)
            if request.transport is not None:
                request.transport.abort()
            return response
    await response.write_eof()
    return response


def export_range(raw_first: str, raw_last: str) -> tuple[date, date]:
    """``from`` and ``to`` as days (both included), checked: real dates, in order, a year at most."""
    first = _day(raw_first, "from")
    last = _day(raw_last, "to")
    if first > last:
        raise TeleconsultError(ErrorCode.BAD_REQUEST, "The range ends before it starts.", field="to")
    if (last - first).days + 1 > EXPORT_MAX_DAYS:
        raise TeleconsultError(ErrorCode.BAD_REQUEST, f"Export at most {EXPORT_MAX_DAYS} days at a time.", field="to")
    return first, last


def export_format(raw: str) -> ExportFormat:
    try:
        return ExportFormat(raw)
    except ValueError:
        raise TeleconsultError(ErrorCode.BAD_REQUEST, "The format is csv or fhir.", field="format") from None


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _day(raw: str, field: str) -> date:
    try:
        if not _DAY.fullmatch(raw):  # fromisoformat alone takes 20261101 and 2026-W44-7 too
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise TeleconsultError(ErrorCode.BAD_REQUEST, "Give the day as YYYY-MM-DD.", field=field) from None
