"""The composition root: ``create_app(settings)`` builds the stores, the bus, the services and the routes."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp_jinja2
from aiohttp import WSCloseCode, web

from teleconsult import housekeeping
from teleconsult.acts import ActCatalog
from teleconsult.api import setup_routes
from teleconsult.api.connection import close_all, heartbeat
from teleconsult.api.keys import (
    AUDIT,
    BILLING,
    CATALOGS,
    CONSULTATIONS,
    DOCTORS,
    DOCUMENTS,
    HEALTH,
    INVITATIONS,
    LINK_RATE,
    METRICS,
    PENDING_HELLOS,
    PRESCRIPTIONS,
    SEATS,
    SECRET,
    SETTINGS,
    SIGNALING,
    SOCKETS,
)
from teleconsult.api.middlewares import csrf, errors, security_headers, timed
from teleconsult.audit import AuditTrail
from teleconsult.background import BackgroundLoops
from teleconsult.billing import BillingService
from teleconsult.bus import Bus, LocalBus
from teleconsult.bus.redis import RedisBus, RedisLeases
from teleconsult.config import Settings
from teleconsult.consultations import ConsultationService
from teleconsult.crypto.keyring import KeyRing
from teleconsult.crypto.pki import CertificateAuthority
from teleconsult.crypto.sealing import Sealer
from teleconsult.doctor_keys import DoctorKeys
from teleconsult.doctors import DoctorService
from teleconsult.documents.files import DocumentFiles
from teleconsult.documents.service import DocumentService
from teleconsult.files import private_directory, write_private
from teleconsult.health import HealthService
from teleconsult.i18n import Catalogs
from teleconsult.ids import new_id
from teleconsult.invitations import InvitationService, Links
from teleconsult.mail import transport_for
from teleconsult.metrics import Metrics, Sources
from teleconsult.notifications import Notifier
from teleconsult.outbox import Outbox
from teleconsult.prescriptions.service import PrescriptionService
from teleconsult.ratelimit import PendingPerKey, RatePerKey
from teleconsult.seats import SeatService
from teleconsult.signaling import Cluster, SignalingService
from teleconsult.store import Database
from teleconsult.templates import MailTemplates, page_loader

log = logging.getLogger(__name__)

# What only the composition root (and tests) reach: the HTTP layer never touches the store.
DATABASE = web.AppKey("database", Database)
BUS = web.AppKey("bus", Bus)
OUTBOX = web.AppKey("outbox", Outbox)
CHORES = web.AppKey("chores", BackgroundLoops)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
MAX_REQUEST_BYTES = 1024 * 1024
HOUSEKEEPING_EVERY_S = 600.0
NO_SHOW_EVERY_S = 60.0
#: How long shutdown waits for sockets to close after telling their clients to reconnect.
SHUTDOWN_CLOSE_S = 2.0
#: How long shutdown waits for a background step under way (a mail being sent, a purge) before cancelling it.
CHORES_STOP_S = 3.0


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[timed, security_headers, errors, csrf], client_max_size=MAX_REQUEST_BYTES)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[CATALOGS] = Catalogs(WEB_DIR / "locales")
    app[SOCKETS] = set()
    app[PENDING_HELLOS] = PendingPerKey(settings.signaling.max_pending_per_ip)
    app[LINK_RATE] = RatePerKey(settings.access.link_rate_per_min)
    aiohttp_jinja2.setup(app, loader=page_loader(WEB_DIR / "templates"), autoescape=True)
    app.router.add_static("/static", WEB_DIR / "static", append_version=False)
    setup_routes(app)
    app.cleanup_ctx.append(_resources)
    app.on_shutdown.append(_close_sockets)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    private_directory(settings.server.data_dir)
    app[SECRET] = server_secret(settings)
    database = Database(settings.database_url, bounded=True)  # a database that does not answer: 503, not a hang
    if database.is_sqlite:
        await database.upgrade()
    bus = bus_for(settings)
    notifier = Notifier(MailTemplates(WEB_DIR / "templates"), settings.mail, settings.server.base_url)
    outbox = Outbox(
        database,
        settings.mail,
        notifier,
        transport_for(settings.mail, settings.server.data_dir),
        Sealer(app[SECRET], "outbox"),
    )
    links = Links(settings.access, settings.server.base_url)
    seats = SeatService(database, settings.access, settings.signaling)
    billing = app[BILLING] = BillingService(database, catalog_of(settings))
    consultations = ConsultationService(database, links, outbox, billing, guest_seats=settings.signaling.guest_seats)
    invitations = InvitationService(database, links, outbox)
    chores = app[CHORES] = BackgroundLoops()
    app[DATABASE] = database
    app[BUS] = bus
    keys = KeyRing.open(settings.server.data_dir / "keys", app[SECRET], settings.documents.escrow_recipients)
    authority = certificate_authority(settings, app[SECRET])
    own_keys = DoctorKeys(database, authority, keys)
    app[DOCTORS] = DoctorService(database, settings.access, own_keys)
    app[SEATS] = seats
    app[CONSULTATIONS] = consultations
    app[INVITATIONS] = invitations
    # A cluster when the bus is Redis: rooms held by lease, frames routed to each room's owner (node id random).
    cluster = Cluster(new_id("n"), RedisLeases(bus)) if isinstance(bus, RedisBus) else None
    app[SIGNALING] = SignalingService(seats, consultations, invitations, bus, settings.signaling, cluster=cluster)
    app[OUTBOX] = outbox
    app[HEALTH] = HealthService(database, bus, chores)
    trail = app[AUDIT] = AuditTrail(database)
    files = DocumentFiles(settings.server.data_dir / "documents")
    documents = DocumentService(
        database, files, keys, own_keys, settings.documents, app[SIGNALING].document_added, metrics=app[METRICS]
    )
    app[DOCUMENTS] = documents
    app[PRESCRIPTIONS] = PrescriptionService(
        database, authority, own_keys, files, documents, settings.server.base_url, app[SIGNALING].document_added
    )
    sockets = app[SOCKETS]
    chores.start("housekeeping", housekeeping.run(database, HOUSEKEEPING_EVERY_S, chores))
    chores.start("outbox", outbox.run(chores))
    grace = timedelta(seconds=settings.billing.no_show_after_s)
    chores.start("no-shows", housekeeping.close_no_shows(app[SIGNALING], grace, NO_SHOW_EVERY_S, chores))
    chores.start("heartbeat", heartbeat(sockets, settings.signaling.heartbeat_s, chores))
    chores.start("audit-anchor", trail.run(settings.audit.audit_anchor_interval_s, chores))
    watch(app[METRICS], app, database)
    yield
    await chores.stop(within_s=CHORES_STOP_S)
    await app[METRICS].close()
    await bus.close()
    await database.close()


async def _close_sockets(app: web.Application) -> None:
    """Graceful shutdown: clients are told to reconnect (and resume) before their sockets close."""
    await app[SIGNALING].shutdown()
    sockets = app[SOCKETS]
    await close_all(sockets, WSCloseCode.GOING_AWAY, "server shutdown", within_s=SHUTDOWN_CLOSE_S)


def watch(metrics: Metrics, app: web.Application, database: Database) -> None:
    """What the scrape-time gauges read (the counters are counted where things happen)."""
    signaling, sockets, health = app[SIGNALING], app[SOCKETS], app[HEALTH]
    metrics.watch(
        Sources(
            sockets=lambda: len(sockets),
            sessions=lambda: signaling.session_count,
            rooms=lambda: signaling.room_count,
            admitted_peers=lambda: admitted_peers(signaling),
            loops=lambda: {name: float(up) for name, up in health.chores.running().items()},
            pool=database.pool_status,
            mail_queue=app[OUTBOX].queued,
            bus_round_trip=health.bus_round_trip,
        )
    )


def admitted_peers(signaling: SignalingService) -> int:
    """Counted when scraped, from the sessions this node holds."""
    return sum(
        1 for peer_id in signaling.peer_ids() if (s := signaling.session(peer_id)) is not None and s.peer.admitted
    )


def bus_for(settings: Settings) -> Bus:
    """Redis between nodes when ``redis_url`` is set (it connects, and reconnects, in the background); the
    in-process bus otherwise."""
    if not settings.bus.redis_url:
        return LocalBus()
    bus = RedisBus(settings.bus.redis_url)
    bus.start()
    return bus


def catalog_of(settings: Settings) -> ActCatalog:
    """The acts shipped with the package, or the operator's own file."""
    if settings.billing.acts_file is None:
        return ActCatalog.load()
    return ActCatalog.load(settings.billing.acts_file.read_text(encoding="utf-8"))


def certificate_authority(settings: Settings, secret: bytes) -> CertificateAuthority:
    """The server's CA in the data directory (made on first use), its key sealed under the server secret."""
    return CertificateAuthority.open(settings.server.data_dir / "pki", secret)


def server_secret(settings: Settings) -> bytes:
    """The HMAC key: from settings, or generated once into the data directory (mode 0600)."""
    if settings.server.secret_key:
        return settings.server.secret_key.encode()
    path = settings.server.data_dir / "secret_key"
    if not path.exists():
        write_private(path, secrets.token_hex(32))
    return path.read_text().strip().encode()
