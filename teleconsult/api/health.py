"""``GET /healthz`` (liveness, reachability, background loops) and ``GET /metrics`` (Prometheus text).

The health check tells anyone whether the node can serve, and nothing about its traffic. The metrics (sockets,
rooms, frames, requests: ``teleconsult/metrics.py``) are answered only to the addresses of ``metrics_from``
(loopback by default), judged on the client address after the trusted proxies: an outside client coming through
the proxy is refused.
"""

from __future__ import annotations

from aiohttp import web

from teleconsult.api.clients import client_ip
from teleconsult.api.keys import HEALTH, METRICS, SETTINGS
from teleconsult.forwarding import in_networks
from teleconsult.metrics import CONTENT_TYPE

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
    return web.Response(body=await request.app[METRICS].scrape(), headers={"Content-Type": CONTENT_TYPE})
