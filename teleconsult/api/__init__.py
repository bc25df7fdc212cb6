"""The HTTP layer: aiohttp handlers, the WebSocket endpoint and middlewares."""

from __future__ import annotations

from aiohttp import web

from teleconsult.api import audit, auth, billing, consultations, documents, health, join, pages, prescriptions, ws


def setup_routes(app: web.Application) -> None:
    for module in (auth, consultations, audit, billing, documents, prescriptions, join, ws, pages, health):
        app.router.add_routes(module.routes)
