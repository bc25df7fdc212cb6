"""``GET /healthz`` (liveness, reachability, background loops) and ``GET /metrics`` (Prometheus text).

The health check tells anyone whether the node can serve, and nothing about its traffic. The metrics (sessions,
rooms, sockets) are answered only to the addresses of ``metrics_from`` (loopback by default), judged on the client
address after the trusted proxies: an outside client coming through the proxy is refused.
"""

from __future__ import annotations

from aiohttp import web

from teleconsult.api.clients import client_ip
from teleconsult.api.keys import HEALTH, SETTINGS, SIGNALING, SOCKETS
from teleconsult.forwarding import in_networks

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    report = await request.app[HEALTH].check()
    body = {
        "status": "ok" if report.healthy else "degraded",
        "database": report.database,
        "bus": report.bus,
        "loops": report.loops,
    }
    return web.json_response(body, status=200 if report.healthy else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    if not in_networks(client_ip(request), request.app[SETTINGS].server.metrics_networks):
        raise web.HTTPNotFound()
    signaling = request.app[SIGNALING]
    loops = request.app[HEALTH].chores.running()
    lines = [
        "# HELP teleconsult_sessions Peers seated in a room on this node (connected or within their grace).",
        "# TYPE teleconsult_sessions gauge",
        f"teleconsult_sessions {signaling.session_count}",
        "# HELP teleconsult_rooms Consultation rooms live on this node.",
        "# TYPE teleconsult_rooms gauge",
        f"teleconsult_rooms {signaling.room_count}",
        "# HELP teleconsult_sockets Open WebSockets on this node.",
        "# TYPE teleconsult_sockets gauge",
        f"teleconsult_sockets {len(request.app[SOCKETS])}",
        "# HELP teleconsult_loop_up Whether a background loop is running (1) or not (0).",
        "# TYPE teleconsult_loop_up gauge",
        *(f'teleconsult_loop_up{{loop="{name}"}} {int(up)}' for name, up in sorted(loops.items())),
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")
