"""A consultation's audit trail, for its doctor: ``GET /api/consultations/{id}/audit``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from teleconsult.api.auth import require_doctor
from teleconsult.api.keys import AUDIT
from teleconsult.api.serialize import iso
from teleconsult.domain import AuditEntry

routes = web.RouteTableDef()


@routes.get("/api/consultations/{id}/audit")
async def consultation_trail(request: web.Request) -> web.Response:
    doctor = await require_doctor(request)
    entries = await request.app[AUDIT].events_for(request.match_info["id"], doctor)
    return web.json_response({"items": [entry_json(entry) for entry in entries]})


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": iso(entry.at),
        "action": entry.action,
        "actor_role": entry.actor_role,
        "detail": entry.detail or {},
    }
