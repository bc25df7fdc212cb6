"""Typed application keys for what the HTTP layer uses: the services, the settings, the live sockets.

What only the composition root and the tests reach (the database, the bus, the mail sender, the background loops)
has its keys in ``teleconsult/app.py``: the HTTP layer never touches the store.
"""

from __future__ import annotations

from aiohttp import web

from teleconsult.api.connection import WsConnection
from teleconsult.audit import AuditTrail
from teleconsult.billing import BillingService
from teleconsult.config import Settings
from teleconsult.consultations import ConsultationService
from teleconsult.doctors import DoctorService
from teleconsult.documents.service import DocumentService
from teleconsult.health import HealthService
from teleconsult.i18n import Catalogs
from teleconsult.invitations import InvitationService
from teleconsult.metrics import Metrics
from teleconsult.prescriptions.service import PrescriptionService
from teleconsult.ratelimit import PendingPerKey, RatePerKey
from teleconsult.seats import SeatService
from teleconsult.signaling import SignalingService

SETTINGS = web.AppKey("settings", Settings)
DOCTORS = web.AppKey("doctors", DoctorService)
CONSULTATIONS = web.AppKey("consultations", ConsultationService)
SEATS = web.AppKey("seats", SeatService)
INVITATIONS = web.AppKey("invitations", InvitationService)
SIGNALING = web.AppKey("signaling", SignalingService)
HEALTH = web.AppKey("health", HealthService)
DOCUMENTS = web.AppKey("documents", DocumentService)
PRESCRIPTIONS = web.AppKey("prescriptions", PrescriptionService)
AUDIT = web.AppKey("audit", AuditTrail)
BILLING = web.AppKey("billing", BillingService)
CATALOGS = web.AppKey("catalogs", Catalogs)
METRICS = web.AppKey("metrics", Metrics)
SECRET = web.AppKey("secret", bytes)
#: Open WebSockets (each handler adds its own and discards it when it returns): the heartbeat's round, and closed
#: at shutdown.
SOCKETS: web.AppKey[set[WsConnection]] = web.AppKey("sockets")
PENDING_HELLOS = web.AppKey("pending_hellos", PendingPerKey)
#: Requests to the link endpoints (/j/{token}, /api/join) per client address.
LINK_RATE = web.AppKey("link_rate", RatePerKey)
