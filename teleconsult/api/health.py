"""``GET /healthz``: liveness plus database and bus reachability (503 when either is down)."""

from __future__ import annotations

from aiohttp import web

from teleconsult.api.keys import BUS, DATABASE, SIGNALING

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    database = await request.app[DATABASE].ping()
    bus = await request.app[BUS].ping()
    signaling = request.app[SIGNALING]
    body = {
        "status": "ok" if database and bus else "degraded",
        "database": database,
        "bus": bus,
        "sessions": signaling.session_count,
        "rooms": signaling.room_count,
    }
    return web.json_response(body, status=200 if database and bus else 503)
