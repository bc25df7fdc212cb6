"""The billing ledger's exports at scale, against the databases' own CSV output, and the audit chain verified.

Run from the repository root: ``.venv/bin/python bench/billing.py`` (``--sizes 100000`` for a quick look,
``--no-postgres`` for SQLite alone).

For each backend (SQLite in a temporary file; PostgreSQL in a temporary database created and dropped on
``127.0.0.1:5432``) and each size N:
1. the real schema (the migrations), then N consultations over the year 2026 written straight into it in bulk
   (SQLAlchemy core, executemany, outside the timing): each with its ledger entry, 1 in 100 corrected (a second
   revision, so the export must pick the current one), 1 in 20 no-shows and 1 in 20 interrupted (no act), the
   others a TCG, one in five with a nurse's TLS, one in ten with a majoration;
2. the year exported as CSV and as FHIR through ``BillingService.export`` (what ``GET /api/billing/export`` and
   ``teleconsult billing export`` run), written to /dev/null, each in a subprocess of its own so that its peak
   memory (``VmHWM``) is its own: records per second, and the peak's growth over the RSS before the export;
3. the floor: the database's own CSV of the same rows (the current entries of the year joined to their acts, in
   the export's order): ``COPY (SELECT …) TO STDOUT WITH CSV`` through ``psql``, and ``sqlite3 -csv``.

Then an audit chain of ``--audit`` entries (1,000,000 by default), hashed with the store's own ``entry_hash`` and
written in bulk, is walked by ``teleconsult.store.audit.verify`` in a subprocess.

Targets (issue 16): a million records to CSV in under 20 s with RSS flat (under 100 MiB growth) and within 3x of
the database's own COPY; FHIR within 3x of CSV; the million-entry audit chain verified in under 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from teleconsult.acts import ActCatalog
from teleconsult.billing import BillingService
from teleconsult.billing.exports import ExportFormat
from teleconsult.store import Database, audit
from teleconsult.store.models import AuditEvent, BillingEntry, BillingEntryAct, Consultation, Doctor

PG_HOST = "127.0.0.1:5432"
PG_ADMIN = f"postgresql+asyncpg://postgres@{PG_HOST}/postgres"
PARIS = ZoneInfo("Europe/Paris")
FIRST, LAST = date(2026, 1, 1), date(2026, 12, 31)
DOCTORS = 50
WRITE_BATCH = 10_000
MIB = 1024

# The floor's query: what the export reads (the current entry of each consultation of the range, its acts), in
# the export's order, as the database's own CSV.
FLOOR_SQL = (
    "SELECT e.act_date, e.consultation_id, e.id, e.revision, e.corrects, e.status, e.reason, e.doctor_name,"
    " e.doctor_rpps, e.patient_name, e.patient_birth_date, e.patient_nir, e.nurse_name, e.nurse_number,"
    " e.nurse_place, a.role, a.performer_name, a.code, a.amount_cents, a.tariff_from, a.modifiers,"
    " e.scheduled_at, e.started_at, e.ended_at, e.duration_s, e.video_connected"
    " FROM billing_entries e LEFT JOIN billing_entry_acts a ON a.entry_id = e.id"
    " WHERE e.act_date >= '2026-01-01' AND e.act_date <= '2026-12-31'"
    " AND NOT EXISTS (SELECT 1 FROM billing_entries n WHERE n.consultation_id = e.consultation_id"
    " AND n.revision > e.revision)"
    " ORDER BY e.act_date, e.consultation_id, a.position"
)


def memory_kib() -> tuple[int, int]:
    """(VmHWM, VmRSS) of this process, in KiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


# --- the data ----------------------------------------------------------------------------------------------------


def _doctor_rows(now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": f"d_bench{j:04d}",
            "email": f"dr{j}@bench.example",
            "name": f"Dr Médecin {j}",
            "rpps": f"{10000000000 + j}",
            "password_hash": "-",
            "phone": None,
            "address": None,
            "profession": "generalist",
            "created_at": now,
        }
        for j in range(DOCTORS)
    ]


def _rows(i: int, count: int) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Consultation ``i`` of ``count``: its row, its ledger entries (one, or two when corrected) and their acts."""
    day = FIRST + timedelta(days=i * 365 // count)
    start = datetime.combine(day, day_time(8), PARIS) + timedelta(seconds=(i * 37) % (10 * 3600))
    start = start.astimezone(UTC)
    end = start + timedelta(seconds=600 + i % 900)
    doctor = i % DOCTORS
    cid = f"c_{i:012d}"
    kind = i % 20
    no_show, interrupted = kind == 0, kind == 1
    started = None if no_show else start
    consultation = {
        "id": cid,
        "doctor_id": f"d_bench{doctor:04d}",
        "status": "no_show" if no_show else "ended",
        "reason": None,
        "language": "fr",
        "scheduled_at": start if i % 3 == 0 else None,
        "created_at": start - timedelta(days=1),
        "started_at": started,
        "ended_at": end,
        "video_at": None if no_show or interrupted else start,
    }
    nurse = not no_show and i % 5 == 2
    entry = {
        "id": f"b_{i:012d}r0",
        "consultation_id": cid,
        "revision": 0,
        "corrects": None,
        "status": "no_show" if no_show else "interrupted" if interrupted else "completed",
        "reason": "patient_never_joined" if no_show else "video_not_connected" if interrupted else None,
        "act_date": day,
        "doctor_id": f"d_bench{doctor:04d}",
        "doctor_name": f"Dr Médecin {doctor}",
        "doctor_rpps": f"{10000000000 + doctor}",
        "patient_name": f"Patient·e n° {i}" if i % 7 else f"Élodie Lefèvre-{i}",
        "patient_birth_date": date(1950 + i % 60, 1 + i % 12, 1 + i % 28) if i % 4 == 0 else None,
        "patient_nir": None,
        "nurse_name": f"Infirmière {i % 300}" if nurse else None,
        "nurse_number": f"{20000000000 + i % 300}" if nurse and i % 2 else None,
        "nurse_place": "planned_visit" if nurse else None,
        "scheduled_at": consultation["scheduled_at"],
        "started_at": started,
        "ended_at": end,
        "duration_s": 0 if no_show else int((end - start).total_seconds()),
        "video_connected": not (no_show or interrupted),
        "total_cents": 0,
        "currency": "EUR",
        "recorded_at": end,
        "recorded_by": f"doctor:d_bench{doctor:04d}",
    }
    entries, acts = [entry], []
    if entry["status"] == "completed":
        majoration = i % 10 == 3
        acts = _acts(entry["id"], entry, nurse=nurse, majoration=majoration)
        entry["total_cents"] = 2500 + (1000 if nurse else 0) + (500 if majoration else 0)
        if i % 100 == 7:  # corrected: a majoration added, as a new revision
            corrected = dict(entry, id=f"b_{i:012d}r1", revision=1, corrects=entry["id"], recorded_at=end)
            corrected["total_cents"] = entry["total_cents"] + (0 if majoration else 500)
            entries.append(corrected)
            acts += _acts(corrected["id"], corrected, nurse=nurse, majoration=True)
    return consultation, entries, acts


def _acts(entry_id: str, entry: dict[str, Any], *, nurse: bool, majoration: bool) -> list[dict[str, Any]]:
    modifiers = [{"code": "MEG", "amount_cents": 500, "from": "2018-09-15"}] if majoration else []
    acts = [
        {
            "entry_id": entry_id,
            "position": 0,
            "role": "doctor",
            "performer_name": entry["doctor_name"],
            "code": "TCG",
            "amount_cents": 2500,
            "tariff_from": date(2018, 9, 15),
            "modifiers": json.dumps(modifiers),
        }
    ]
    if nurse:
        acts.append(
            {
                "entry_id": entry_id,
                "position": 1,
                "role": "nurse",
                "performer_name": entry["nurse_name"],
                "code": "TLS",
                "amount_cents": 1000,
                "tariff_from": date(2020, 1, 1),
                "modifiers": "[]",
            }
        )
    return acts


async def fill(database: Database, count: int) -> None:
    """``count`` consultations with their ledger entries and acts, in batches (one transaction each)."""
    async with database.engine.begin() as conn:
        await conn.execute(insert(Doctor), _doctor_rows(datetime(2025, 12, 1, tzinfo=UTC)))
    for offset in range(0, count, WRITE_BATCH):
        consultations, entries, acts = [], [], []
        for i in range(offset, min(offset + WRITE_BATCH, count)):
            consultation, its_entries, its_acts = _rows(i, count)
            consultations.append(consultation)
            entries += its_entries
            acts += its_acts
        async with database.engine.begin() as conn:
            await conn.execute(insert(Consultation), consultations)
            originals = [e for e in entries if e["revision"] == 0]
            await conn.execute(insert(BillingEntry), originals)
            corrections = [e for e in entries if e["revision"] > 0]
            if corrections:
                await conn.execute(insert(BillingEntry), corrections)
            await conn.execute(insert(BillingEntryAct), acts)


async def fill_audit(database: Database, count: int) -> None:
    """``count`` chained audit entries, hashed as ``add_event``'s commit hashes them, written in batches."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    prev_hash, seq = audit.GENESIS, 0
    while seq < count:
        rows = []
        for _ in range(min(WRITE_BATCH, count - seq)):
            seq += 1
            values = {
                "at": start + timedelta(microseconds=seq * 1_337),
                "consultation_id": f"c_{seq // 8:012d}",
                "actor": f"doctor:d_bench{seq % DOCTORS:04d}",
                "action": "billing.recorded" if seq % 8 == 0 else "participant.joined",
                "detail": json.dumps({"entry": f"b_{seq // 8:012d}r0", "total_cents": 2500}, sort_keys=True),
            }
            digest = audit.entry_hash(prev_hash, seq=seq, **values)
            rows.append({"seq": seq, "prev_hash": prev_hash, "hash": digest, **values})
            prev_hash = digest
        async with database.engine.begin() as conn:
            await conn.execute(insert(AuditEvent), rows)


# --- the measures, each in a process of its own ------------------------------------------------------------------


async def child_export(url: str, fmt: str) -> dict[str, Any]:
    database = Database(url)
    service = BillingService(database, ActCatalog.load())
    async with database.transaction() as tx:  # the connection made before the baseline
        await tx.execute(text("SELECT 1"))
    _, before = memory_kib()
    out = os.open(os.devnull, os.O_WRONLY)
    size = lines = 0
    started, cpu = time.perf_counter(), time.process_time()
    try:
        async for chunk in service.export(FIRST, LAST, ExportFormat(fmt)):
            os.write(out, chunk)
            size += len(chunk)
            lines += chunk.count(b"\r\n")
    finally:
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
        os.close(out)
        await database.close()
    peak, _ = memory_kib()
    found = {"seconds": took, "cpu_s": cpu, "bytes": size, "rows": lines - 1}
    return found | {"rss_before_kib": before, "hwm_kib": peak}


async def child_audit(url: str) -> dict[str, Any]:
    database = Database(url)
    async with database.transaction() as tx:
        await tx.execute(text("SELECT 1"))
    _, before = memory_kib()
    started = time.perf_counter()
    try:
        check = await audit.verify(database)
    finally:
        took = time.perf_counter() - started
        await database.close()
    peak, _ = memory_kib()
    assert check.broken is None, check
    return {"seconds": took, "count": check.count, "rss_before_kib": before, "hwm_kib": peak}


def measure(*args: str) -> dict[str, Any]:
    """Run this file as a child with ``--child …`` and read back the JSON line it prints."""
    command = [sys.executable, __file__, "--child", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr}")
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def floor(command: list[str]) -> float:
    """Wall time of the database's own CSV, written to /dev/null."""
    with open(os.devnull, "wb") as sink:
        started = time.perf_counter()
        subprocess.run(command, stdout=sink, check=True)
        return time.perf_counter() - started


# --- the run -----------------------------------------------------------------------------------------------------


class Backend:
    def __init__(self, kind: str, workdir: Path):
        self.kind = kind
        self.workdir = workdir
        self.name = f"teleconsult_bench_{uuid.uuid4().hex[:8]}"
        if kind == "sqlite":
            self.file = workdir / f"{self.name}.db"
            self.url = f"sqlite+aiosqlite:///{self.file}"
        else:
            self.url = PG_ADMIN.rsplit("/", 1)[0] + f"/{self.name}"

    async def create(self) -> None:
        if self.kind == "postgresql":
            admin = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            try:
                async with admin.connect() as conn:
                    await conn.execute(text(f'CREATE DATABASE "{self.name}"'))
            finally:
                await admin.dispose()
        database = Database(self.url)
        try:
            await database.upgrade()
        finally:
            await database.close()

    async def drop(self) -> None:
        if self.kind == "sqlite":
            for leftover in self.workdir.glob(self.file.name + "*"):
                leftover.unlink()
            return
        admin = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        finally:
            await admin.dispose()

    async def analyze(self) -> None:
        database = Database(self.url)
        try:
            async with database.engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
        finally:
            await database.close()

    def floor_command(self) -> list[str]:
        if self.kind == "sqlite":
            return ["sqlite3", "-csv", str(self.file), FLOOR_SQL]
        host, port = PG_HOST.split(":")
        copy = f"COPY ({FLOOR_SQL}) TO STDOUT WITH CSV"
        return ["psql", "-X", "-q", "-h", host, "-p", port, "-U", "postgres", "-d", self.name, "-c", copy]


async def postgres_reachable() -> str | None:
    engine = create_async_engine(PG_ADMIN)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return type(exc).__name__
    finally:
        await engine.dispose()
    return None


def _mib(kib: float) -> str:
    return f"{kib / MIB:.0f} MiB"


def run_size(backend: Backend, count: int, results: list[dict[str, Any]]) -> None:
    asyncio.run(backend.create())
    try:

        async def generate() -> None:
            database = Database(backend.url)
            try:
                await fill(database, count)
            finally:
                await database.close()

        started = time.perf_counter()
        asyncio.run(generate())
        asyncio.run(backend.analyze())
        print(f"{backend.kind} {count:,}: written in {time.perf_counter() - started:.1f} s (not timed below)")
        floor_s = floor(backend.floor_command())
        print(
            f"  floor ({'COPY … TO STDOUT WITH CSV' if backend.kind == 'postgresql' else 'sqlite3 -csv'}): "
            f"{floor_s:.2f} s, {count / floor_s:,.0f} records/s"
        )
        row: dict[str, Any] = {"backend": backend.kind, "count": count, "floor_s": floor_s}
        for fmt in ("csv", "fhir"):
            found = measure("export", backend.url, fmt)
            growth = found["hwm_kib"] - found["rss_before_kib"]
            row[fmt] = found | {"growth_kib": growth}
            print(
                f"  {fmt:4}: {found['seconds']:.2f} s (CPU {found['cpu_s']:.2f} s), "
                f"{count / found['seconds']:,.0f} records/s, "
                f"{found['bytes'] / 1024 / 1024:,.0f} MiB written, RSS {_mib(found['rss_before_kib'])} before, "
                f"peak {_mib(found['hwm_kib'])} (+{_mib(growth)})"
                + (f", {found['rows']:,} rows" if fmt == "csv" else "")
            )
        results.append(row)
    finally:
        asyncio.run(backend.drop())


def run_audit(backend: Backend, count: int) -> dict[str, Any]:
    asyncio.run(backend.create())
    try:

        async def generate() -> None:
            database = Database(backend.url)
            try:
                await fill_audit(database, count)
            finally:
                await database.close()

        started = time.perf_counter()
        asyncio.run(generate())
        asyncio.run(backend.analyze())
        print(f"{backend.kind} audit chain: {count:,} entries written in {time.perf_counter() - started:.1f} s")
        found = measure("audit", backend.url)
        growth = found["hwm_kib"] - found["rss_before_kib"]
        print(
            f"  verify: {found['count']:,} entries in {found['seconds']:.2f} s "
            f"({found['count'] / found['seconds']:,.0f}/s), RSS +{_mib(growth)}"
        )
        return {"backend": backend.kind} | found
    finally:
        asyncio.run(backend.drop())


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def targets(results: list[dict[str, Any]], audits: list[dict[str, Any]]) -> None:
    print("\nTargets (issue 16):")
    for row in results:
        where = f"{row['backend']} {row['count']:,}"
        csv_s, fhir_s = row["csv"]["seconds"], row["fhir"]["seconds"]
        scaled = csv_s * 1_000_000 / row["count"]
        label = "1M to CSV < 20 s" if row["count"] == 1_000_000 else f"CSV < 20 s per million (here {scaled:.1f} s/M)"
        print(f"  {where}: {label}: {csv_s:.2f} s -> {verdict(scaled < 20)}")
        growth = max(row["csv"]["growth_kib"], row["fhir"]["growth_kib"])
        print(f"  {where}: RSS growth < 100 MiB: +{_mib(growth)} -> {verdict(growth < 100 * MIB)}")
        ratio = csv_s / row["floor_s"]
        print(f"  {where}: CSV within 3x of the database's own CSV: {ratio:.2f}x -> {verdict(ratio <= 3)}")
        ratio = fhir_s / csv_s
        print(f"  {where}: FHIR within 3x of CSV: {ratio:.2f}x -> {verdict(ratio <= 3)}")
    for found in audits:
        scaled = found["seconds"] * 1_000_000 / found["count"]
        print(
            f"  {found['backend']} audit chain of {found['count']:,} verified < 30 s per million: "
            f"{found['seconds']:.2f} s -> {verdict(scaled < 30)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated record counts")
    parser.add_argument("--audit", type=int, default=1_000_000, help="audit chain length (0: skip)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, url, *rest = args.child
        found = asyncio.run(child_export(url, rest[0]) if what == "export" else child_audit(url))
        print(json.dumps(found))
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    kinds = ["sqlite"]
    if shutil.which("sqlite3") is None:
        sys.exit("bench: the sqlite3 command line is missing (apt-get install sqlite3)")
    if not args.no_postgres:
        problem = asyncio.run(postgres_reachable())
        if problem is None and shutil.which("psql"):
            kinds.append("postgresql")
        else:
            print(f"PostgreSQL skipped: not reachable at {PG_HOST} ({problem or 'no psql'})")
    sqlite_version = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout.split()[0]
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, SQLite CLI {sqlite_version}"
        f"{', PostgreSQL ' + pg_version() if 'postgresql' in kinds else ''}"
    )
    results: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    for count in sizes:
        for kind in kinds:
            run_size(Backend(kind, args.tmp), count, results)
    if args.audit:
        for kind in kinds:
            audits.append(run_audit(Backend(kind, args.tmp), args.audit))
    targets(results, audits)


def pg_version() -> str:
    host, port = PG_HOST.split(":")
    found = subprocess.run(
        ["psql", "-X", "-At", "-h", host, "-p", port, "-U", "postgres", "-c", "SHOW server_version"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip().split()[0] if found.returncode == 0 else "?"


if __name__ == "__main__":
    main()
