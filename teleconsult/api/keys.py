"""Typed application keys: everything that outlives a request hangs off the app under one of these."""

from __future__ import annotations

from aiohttp import web

from teleconsult.api.connection import WsConnection
from teleconsult.bus import Bus
from teleconsult.chores import Chores
from teleconsult.config import Settings
from teleconsult.consultations import ConsultationService
from teleconsult.doctors import DoctorService
from teleconsult.i18n import Catalogs
from teleconsult.invitations import InvitationService
from teleconsult.outbox import Outbox
from teleconsult.ratelimit import PendingPerKey, RatePerKey
from teleconsult.signaling import SignalingService
from teleconsult.store import Database

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
BUS = web.AppKey("bus", Bus)
DOCTORS = web.AppKey("doctors", DoctorService)
CONSULTATIONS = web.AppKey("consultations", ConsultationService)
INVITATIONS = web.AppKey("invitations", InvitationService)
SIGNALING = web.AppKey("signaling", SignalingService)
CATALOGS = web.AppKey("catalogs", Catalogs)
SECRET = web.AppKey("secret", bytes)
#: Open WebSockets (each handler adds its own and discards it when it returns): the heartbeat's round, and closed
#: at shutdown.
SOCKETS: web.AppKey[set[WsConnection]] = web.AppKey("sockets")
PENDING_HELLOS = web.AppKey("pending_hellos", PendingPerKey)
#: Requests to the link endpoints (/j/{token}, /api/join) per client address.
LINK_RATE = web.AppKey("link_rate", RatePerKey)
OUTBOX = web.AppKey("outbox", Outbox)
#: The background loops, for the health check.
CHORES = web.AppKey("chores", Chores)
