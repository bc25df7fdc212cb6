"""Command line: ``teleconsult serve | create-doctor | keys … | acts list | billing export | db upgrade``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import getpass
import logging
import os
import secrets
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from teleconsult import acts as acts_catalog
from teleconsult import clock, loops
from teleconsult.api.keys import DOCTORS
from teleconsult.app import catalog_of, certificate_authority, create_app, server_secret
from teleconsult.audit import AuditTrail
from teleconsult.billing import BillingService
from teleconsult.billing.exports import ExportFormat
from teleconsult.config import ConfigError, Settings, load_settings
from teleconsult.crypto.age import Identity
from teleconsult.crypto.keyring import KeyRing
from teleconsult.crypto.tls import server_ssl_context
from teleconsult.doctor_keys import DoctorKeys
from teleconsult.doctors import DoctorService
from teleconsult.documents.files import DocumentFiles
from teleconsult.documents.rewrap import RewrapReport, rewrap_documents
from teleconsult.domain import ChainCheck
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.files import FILE_MODE, private_directory, write_private
from teleconsult.i18n import PARIS
from teleconsult.logging import SERVER_ADDRESS, setup_logging
from teleconsult.store import Database, audit
from teleconsult.workers import adopt_connections, run_workers

log = logging.getLogger("teleconsult")

#: Connections waiting to be accepted (the kernel caps it at net.core.somaxconn): a node that takes another's clients
#: over gets thousands at once.
LISTEN_BACKLOG = 4096
#: How long a stopping server waits for requests under way.
SHUTDOWN_TIMEOUT_S = 10
DEMO_EMAIL = "demo@teleconsult.localhost"
DEMO_NAME = "Dr Camille Martin"
DEMO_RPPS = "10001234567"
DEMO_PHONE = "05 61 00 00 00"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(_overrides(args), config_file=args.config)
    except ConfigError as exc:
        print(f"teleconsult: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.server.log_level)
    try:
        result: int = args.func(settings, args)
    except (ConfigError, TeleconsultError) as exc:
        print(f"teleconsult: {exc}", file=sys.stderr)
        return 2
    return result


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """``--config``, ``--data-dir`` and ``--database-url``, accepted before or after the subcommand (DESIGN.md)."""
    parser.add_argument("--config", type=Path, default=default, help="TOML file with settings")
    parser.add_argument("--data-dir", type=Path, default=default)
    parser.add_argument("--database-url", default=default)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teleconsult", description="Teleconsultation server")
    _global_options(parser, None)
    # After the subcommand, a given option overrides the one before it; an absent one leaves it alone.
    after = argparse.ArgumentParser(add_help=False)
    _global_options(after, argparse.SUPPRESS)
    sub = parser.add_subparsers(required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, parents=[after])

    serve = command("serve", "run the server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--demo", action="store_true", default=None, help="create a demo doctor and print its login")
    serve.add_argument("--tls-cert", type=Path)
    serve.add_argument("--tls-key", type=Path)
    serve.add_argument("--self-signed", action="store_true", default=None)
    serve.add_argument("--behind-proxy", action="store_true", default=None)
    serve.add_argument("--public-url")
    serve.add_argument(
        "--workers", type=int, default=1, help="server processes on one port (SO_REUSEPORT); more than one needs Redis"
    )
    serve.set_defaults(func=_serve)

    doctor = command("create-doctor", "create a doctor account")
    doctor.add_argument("--email", required=True)
    doctor.add_argument("--name", required=True)
    doctor.add_argument("--rpps", required=True)
    doctor.add_argument("--password", help="prompted for when absent")
    doctor.add_argument("--phone", help="the practice's phone number, given to patients in mails and pages")
    doctor.add_argument("--address", help="the practice's address, printed on prescriptions")
    doctor.add_argument(
        "--profession",
        choices=["generalist", "specialist"],
        default="generalist",
        help="which teleconsultation act they bill (TCG for a generalist)",
    )
    doctor.set_defaults(func=_create_doctor)

    doctors = command("doctors", "doctor accounts")
    doctors_sub = doctors.add_subparsers(required=True)
    export_key = doctors_sub.add_parser(
        "export-key",
        help="print a doctor's document key (AGE-SECRET-KEY-1…) to hand to them: age -d -i opens their documents",
        parents=[after],
    )
    export_key.add_argument("--email", required=True)
    export_key.set_defaults(func=_doctors_export_key)

    keys = command("keys", "the document key ring")
    keys_sub = keys.add_subparsers(required=True)
    rotate = keys_sub.add_parser(
        "rotate",
        help="add a service key; new documents use it, stored ones gain it in their headers (contents untouched)",
        parents=[after],
    )
    rotate.set_defaults(func=_keys_rotate)
    listing = keys_sub.add_parser("list", help="the keys: ids, public halves, which is active", parents=[after])
    listing.set_defaults(func=_keys_list)

    acts = command("acts", "the billable acts and their amounts (teleconsult/data/acts.toml)")
    acts_sub = acts.add_subparsers(required=True)
    acts_list = acts_sub.add_parser("list", help="the acts and amounts in force on a date", parents=[after])
    acts_list.add_argument("--on", type=_day, help="YYYY-MM-DD (default: today in Europe/Paris)")
    acts_list.add_argument("--all", action="store_true", help="also the unconfirmed ones, marked as such")
    acts_list.set_defaults(func=_acts_list)

    billing = command("billing", "the billing ledger")
    billing_sub = billing.add_subparsers(required=True)
    exporting = billing_sub.add_parser(
        "export",
        help="the current ledger entries of a range, as CSV or FHIR, to a file or stdout (as GET /api/billing/export)",
        parents=[after],
    )
    exporting.add_argument("--from", dest="first", type=_day, required=True, help="first day, YYYY-MM-DD (Paris)")
    exporting.add_argument("--to", dest="last", type=_day, required=True, help="last day, YYYY-MM-DD, included")
    exporting.add_argument("--format", choices=[f.value for f in ExportFormat], default=ExportFormat.CSV.value)
    exporting.add_argument("--doctor", metavar="RPPS", help="one doctor's entries (default: every doctor's)")
    exporting.add_argument("--out", type=Path, help="the file to write, mode 0600 (default: stdout)")
    exporting.set_defaults(func=_billing_export)

    trail = command("audit", "the audit trail")
    trail_sub = trail.add_subparsers(required=True)
    verify = trail_sub.add_parser(
        "verify", help="walk the hash chain; name the first broken entry; log the last hash", parents=[after]
    )
    verify.add_argument(
        "--anchor", type=_anchor, help="SEQ:HASH from an earlier anchor: the chain must still hold that entry"
    )
    verify.set_defaults(func=_audit_verify)

    db = command("db", "database maintenance")
    db_sub = db.add_subparsers(required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply migrations", parents=[after])
    upgrade.set_defaults(func=_db_upgrade)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = (
        "host",
        "port",
        "data_dir",
        "database_url",
        "demo",
        "tls_cert",
        "tls_key",
        "self_signed",
        "behind_proxy",
        "public_url",
    )
    return {name: getattr(args, name, None) for name in names}


#: The collector's young-generation threshold for the server. With thousands of live sockets, default passes every
#: 700 allocations scan them over and over: bench/signaling.py measured p99 40 ms at 5,000 rooms paced at 2,000
#: frames/s with the default, 0.86 ms with 50,000 (docs/performance.md).
GC_YOUNG_THRESHOLD = 50_000


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    settings.server.check_serving()
    workers: int = args.workers
    if workers < 1:
        raise ConfigError("--workers: at least 1")
    if workers == 1:
        return _serve_one(settings)
    if not settings.bus.redis_url:
        raise ConfigError(
            f"--workers {workers} needs redis_url (TELECONSULT_REDIS_URL): the workers are nodes of a cluster and "
            "share their rooms through Redis"
        )

    async def migrate() -> None:  # once, before any worker starts
        database = Database(settings.database_url)
        try:
            private_directory(settings.server.data_dir)
            server_secret(settings)  # made once, not raced by the workers
            await database.upgrade()
        finally:
            await database.close()

    asyncio.run(migrate())
    listener = socket.create_server(
        (settings.server.host, settings.server.port),
        family=socket.AF_INET6 if ":" in settings.server.host else socket.AF_INET,
        backlog=LISTEN_BACKLOG,
    )
    # The demo doctor is made by the first worker only.
    only_first = replace(settings, server=replace(settings.server, demo=False))
    return run_workers(
        workers, listener, lambda index, inbox: _serve_worker(settings if index == 0 else only_first, inbox)
    )


def _serve_one(settings: Settings) -> int:
    ssl_context, app, banner = _prepare_serving(settings)
    # aiohttp calls ``print`` once the sockets listen: the banner never announces a server that cannot answer yet.
    web.run_app(
        app,
        loop=loops.loop_factory(settings.server.event_loop)(),
        host=settings.server.host,
        port=settings.server.port,
        ssl_context=ssl_context,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        access_log=None,
        print=lambda _text: print("".join(banner), flush=True),
        handle_signals=True,
        backlog=LISTEN_BACKLOG,
    )
    return 0


def _serve_worker(settings: Settings, inbox: socket.socket) -> int:
    """One of ``--workers``: the whole server, on the connections the parent hands it (``workers.py``)."""
    ssl_context, app, banner = _prepare_serving(settings)

    async def serve() -> None:
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log=None)
        await runner.setup()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        assert runner.server is not None
        orphaned: asyncio.Future[Any] = adopt_connections(inbox, runner.server, ssl_context)
        stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        print("".join(banner), flush=True)
        try:
            await asyncio.wait([stopped, orphaned], return_when=asyncio.FIRST_COMPLETED)  # a signal, or no parent
        finally:
            stopped.cancel()
            await runner.cleanup()

    loops.run(serve(), settings.server.event_loop)
    return 0


async def _say_event_loop(_app: web.Application) -> None:
    """The loop actually running (``server.event_loop``): ``uvloop`` or ``asyncio``."""
    log.info("event loop: %s", type(asyncio.get_running_loop()).__module__.split(".")[0])


def _prepare_serving(settings: Settings) -> tuple[ssl.SSLContext | None, web.Application, list[str]]:
    """The TLS context, the application and its banner (completed at start-up with the demo account, if any)."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    ssl_context = server_ssl_context(settings.server)
    app = create_app(settings)
    banner = [f"\n  Teleconsult is running: {settings.server.base_url}/login\n"]
    if settings.server.demo:

        async def demo(app: web.Application) -> None:
            email, password = await ensure_demo_doctor(settings, app[DOCTORS])
            # The one place a secret is printed: the developer's own terminal, for the demo account only.
            banner.append(f"  Demo doctor: {email}\n  Password:    {password}\n")

        app.on_startup.append(demo)
    app.on_startup.append(_say_event_loop)
    log.info(
        "Teleconsult serving %s (listening on %s port %d)",
        settings.server.base_url,
        settings.server.host,
        settings.server.port,
        extra={SERVER_ADDRESS: True},
    )
    return ssl_context, app, banner


async def ensure_demo_doctor(settings: Settings, service: DoctorService) -> tuple[str, str]:
    """Create the demo doctor on first start (with their keys, as any account); its password is kept in the data
    directory (mode 0600)."""
    secret_file = settings.server.data_dir / "demo-login.txt"
    if await service.doctor_by_email(DEMO_EMAIL) is not None and secret_file.exists():
        return DEMO_EMAIL, secret_file.read_text().strip()
    password = secrets.token_urlsafe(12)
    if await service.doctor_by_email(DEMO_EMAIL) is None:
        await service.create_doctor(
            email=DEMO_EMAIL, name=DEMO_NAME, rpps=DEMO_RPPS, password=password, phone=DEMO_PHONE
        )
        write_private(secret_file, password)
        return DEMO_EMAIL, password
    return DEMO_EMAIL, "(unknown: delete the database to reset the demo doctor)"


def _create_doctor(settings: Settings, args: argparse.Namespace) -> int:
    password = args.password or getpass.getpass("Password: ")

    async def run() -> None:
        database = Database(settings.database_url)
        try:
            await _prepare(database, settings)
            service = DoctorService(database, settings.access, doctor_keys(settings, database))
            doctor = await service.create_doctor(
                email=args.email,
                name=args.name,
                rpps=args.rpps,
                profession=args.profession,
                password=password,
                phone=args.phone,
                address=args.address,
            )
            print(f"created doctor {doctor.id}")
        finally:
            await database.close()

    asyncio.run(run())
    return 0


def _db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    async def run() -> None:
        database = Database(settings.database_url)
        try:
            await database.upgrade()
        finally:
            await database.close()

    asyncio.run(run())
    print("database is up to date")
    return 0


def key_ring(settings: Settings) -> KeyRing:
    """The document key ring in the data directory, sealed under the server secret."""
    private_directory(settings.server.data_dir)
    return KeyRing.open(
        settings.server.data_dir / "keys", server_secret(settings), settings.documents.escrow_recipients
    )


def doctor_keys(settings: Settings, database: Database, ring: KeyRing | None = None) -> DoctorKeys:
    """The doctors' own keys as the server makes them: certificates of the data directory's CA, document keys
    sealed by its key ring."""
    secret = server_secret(settings)
    return DoctorKeys(database, certificate_authority(settings, secret), ring or key_ring(settings))


def _doctors_export_key(settings: Settings, args: argparse.Namespace) -> int:
    """The doctor's document key on stdout, in the form ``age -i`` reads; an audit event."""

    async def run() -> Identity:
        database = Database(settings.database_url)
        try:
            await _prepare(database, settings)
            keys = doctor_keys(settings, database)
            doctor = await DoctorService(database, settings.access, keys).doctor_by_email(args.email)
            if doctor is None:
                raise TeleconsultError(ErrorCode.NOT_FOUND, "No doctor has this email address.")
            return await keys.export(doctor, actor="cli")
        finally:
            await database.close()

    identity = asyncio.run(run())
    print(f"# Teleconsult document key {identity.key_id}: opens the documents of this doctor's consultations")
    print(f"# public key: {identity.recipient()}")
    print(identity)
    print("teleconsult: keep this key private; whoever holds it reads this doctor's documents", file=sys.stderr)
    return 0


def _keys_rotate(settings: Settings, _args: argparse.Namespace) -> int:
    ring = key_ring(settings)
    entry = ring.rotate()

    async def rewrap() -> RewrapReport:  # the rotation and the rewrapping are audit events
        database = Database(settings.database_url)
        try:
            await _prepare(database, settings)
            async with database.transaction() as tx:
                await audit.add_event(tx, action="keys.rotated", actor="cli", detail={"key": entry.key_id})
            files = DocumentFiles(settings.server.data_dir / "documents")
            report = await rewrap_documents(database, files, ring, doctor_keys(settings, database, ring))
            async with database.transaction() as tx:
                detail = {"key": entry.key_id, "rewrapped": report.rewrapped, "skipped": list(report.skipped)}
                await audit.add_event(tx, action="documents.rewrapped", actor="cli", detail=detail)
            return report
        finally:
            await database.close()

    report = asyncio.run(rewrap())
    print(f"new active key {entry.key_id} ({entry.public}); older keys stay for the documents they open")
    print(
        f"{report.rewrapped} stored documents gained it in their headers (contents untouched), "
        f"{report.unchanged} already had it"
    )
    if report.skipped:
        skipped = " ".join(report.skipped)
        print(f"teleconsult: skipped, their files do not match their records: {skipped}", file=sys.stderr)
    return 0


def _keys_list(settings: Settings, _args: argparse.Namespace) -> int:
    ring = key_ring(settings)

    async def doctors() -> list[tuple[str, str]]:
        database = Database(settings.database_url)
        try:
            await _prepare(database, settings)
            return await doctor_keys(settings, database, ring).public_keys()
        finally:
            await database.close()

    for entry in ring.entries():
        if entry.kind == "escrow":
            role = "escrow: every document is also encrypted for it (private half kept offline)"
        elif entry.active:
            role = "active: new documents are encrypted for it; opens every document since it was made"
        else:
            role = "decrypt-only: opens the documents made before the next rotation"
        print(f"{entry.key_id}\t{entry.public}\t{role}")
    for key_id, public in asyncio.run(doctors()):
        role = "doctor: opens the documents of this doctor's consultations (private half sealed in the database)"
        print(f"{key_id}\t{public}\t{role}")
    return 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _acts_list(_settings: Settings, args: argparse.Namespace) -> int:
    """The acts and majorations in force on a day, from the packaged catalog: one row each, amounts the French way."""
    day: date = args.on or clock.now().astimezone(ZoneInfo(PARIS)).date()
    tariffs = acts_catalog.packaged().in_force(day, include_unconfirmed=args.all)
    if not tariffs:
        print(f"no act in force on {day.isoformat()}")
        return 0
    header = ["code", "kind", "billed by", "amount", "since", *(["confirmed"] if args.all else []), "label"]
    rows = [
        [
            t.code,
            f"{t.kind} ({', '.join(t.applies_to)})" if t.applies_to else t.kind,
            ", ".join(t.billed_by),
            acts_catalog.format_euros(t.amount_cents),
            t.valid_from.isoformat(),
            *(["yes" if t.confirmed else "NO"] if args.all else []),
            t.label_fr,
        ]
        for t in tariffs
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print(f"Acts in force on {day.isoformat()} (Europe/Paris)")
    for row in [header, *rows]:
        cells = [
            cell.rjust(width) if i == 3 else cell.ljust(width)  # amounts right-aligned
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    if not all(t.confirmed for t in tariffs):
        print("Unconfirmed (confirmed: NO): never proposed for billing; docs/billing.md says what is missing.")
    return 0


def _billing_export(settings: Settings, args: argparse.Namespace) -> int:
    """The ledger of ``--from`` to ``--to`` streamed to ``--out`` (written beside it, then renamed: never a file
    that looks complete and is not) or to stdout; the same bytes as the HTTP export for that doctor and range."""
    if args.first > args.last:
        print("teleconsult: --to is before --from", file=sys.stderr)
        return 2

    async def run(write: Callable[[bytes], object]) -> None:
        database = Database(settings.database_url)
        try:
            await _prepare(database, settings)
            service = BillingService(database, catalog_of(settings))
            scope = f"rpps:{args.doctor}" if args.doctor else "all"
            await service.exported(actor="cli", first=args.first, last=args.last, fmt=args.format, scope=scope)
            chunks = service.export(args.first, args.last, ExportFormat(args.format), rpps=args.doctor)
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    write(chunk)
        finally:
            await database.close()

    if args.out is None:
        try:
            asyncio.run(run(sys.stdout.buffer.write))
            sys.stdout.buffer.flush()
        except BrokenPipeError:  # the reader stopped (| head): not an error of ours
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        return 0
    partial = args.out.with_name(args.out.name + ".part")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    os.fchmod(descriptor, FILE_MODE)  # whatever the umask, and if the file was there already
    try:
        with os.fdopen(descriptor, "wb") as out:
            asyncio.run(run(out.write))
        os.replace(partial, args.out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return 0


def _anchor(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not (seq.isdigit() and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise argparse.ArgumentTypeError(f"{text!r} is not SEQ:HASH (a number, a colon, 64 hex digits)")
    return int(seq), digest


def _audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    """Walk the chain; say it is intact (count, last hash) or name the first broken entry; log the last hash."""

    async def run() -> ChainCheck:
        database = Database(settings.database_url)
        try:
            await _prepare(database, settings)
            trail = AuditTrail(database)
            check = await trail.verify(anchor=args.anchor)
            await trail.anchor()
            return check
        finally:
            await database.close()

    check = asyncio.run(run())
    if check.broken is None:
        print(f"audit trail intact: {check.count} entries, last hash {check.last_hash}")
        return 0
    broken = check.broken
    entry = f"entry seq {broken.seq}" + (f" (id {broken.id})" if broken.id is not None else "")
    print(f"audit trail broken at {entry}: {broken.fault.value}: {broken.reason}")
    print(f"the {check.count} entries before it hold (last hash {check.last_hash})")
    return 1


async def _prepare(database: Database, settings: Settings) -> None:
    private_directory(settings.server.data_dir)
    if database.is_sqlite:
        await database.upgrade()
