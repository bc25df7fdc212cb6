"""The audit chain: verifying a million entries, on SQLite and PostgreSQL, in constant memory.

Run from the repository root: ``.venv/bin/python bench/audit.py`` (``--entries 100000`` for a quick look,
``--backends sqlite`` for one backend).

For each backend: a fresh database is migrated, ``--entries`` chained entries are written straight into
``audit_events`` (hashed exactly as ``add_event`` hashes them, in batches of 10,000, outside the timing), then
``teleconsult.store.audit.verify`` walks the whole chain. Printed: entries per second, the wall time, and the
process's resident memory before and after the walk (``VmHWM``, the peak, against ``VmRSS`` before): the walk reads
``VERIFY_BATCH`` entries at a time, so the growth must stay flat whatever the length.

Also timed: appends through the real code path (``add_event`` in its own transaction each, the chain's lock taken
on every commit), ``--appends`` of them.

Target (issue 16): one million entries verified in under 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from teleconsult.store import Database, audit
from teleconsult.store.models import AuditEvent

PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
WRITE_BATCH = 10_000
ACTIONS = ("participant.joined", "participant.admitted", "document.uploaded", "mail.sent", "consultation.ended")


def memory_kib() -> tuple[int, int]:
    """(VmHWM, VmRSS) of this process, in KiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM back to the current RSS (Linux)


async def fill(database: Database, count: int) -> None:
    """``count`` chained entries written in batches, as if appended one by one."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    prev_hash, seq = audit.GENESIS, 0
    while seq < count:
        rows = []
        for _ in range(min(WRITE_BATCH, count - seq)):
            seq += 1
            values = {
                "at": start + timedelta(microseconds=seq * 1_337),
                "consultation_id": f"c_{seq // 12:012d}",
                "actor": f"patient:u_{seq % 997:08d}",
                "action": ACTIONS[seq % len(ACTIONS)],
                "detail": json.dumps({"participant": f"u_{seq % 997:08d}", "n": seq}, sort_keys=True),
            }
            digest = audit.entry_hash(prev_hash, seq=seq, **values)
            rows.append({"seq": seq, "prev_hash": prev_hash, "hash": digest, **values})
            prev_hash = digest
        async with database.transaction() as tx:
            await tx.execute(insert(AuditEvent), rows)


async def run(backend: str, entries: int, appends: int, sqlite_file: Path) -> None:
    if backend == "sqlite":
        url, drop = f"sqlite+aiosqlite:///{sqlite_file}", None
    else:
        name = f"teleconsult_bench_audit_{uuid.uuid4().hex[:8]}"
        admin = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        url, drop = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", name
    database = Database(url)
    try:
        await database.upgrade()
        started = time.perf_counter()
        await fill(database, entries)
        print(f"{backend}: {entries:,} entries written in {time.perf_counter() - started:.1f} s (not timed below)")
        if backend == "postgresql":
            async with database.engine.begin() as conn:
                await conn.execute(text("ANALYZE audit_events"))
        reset_peak()
        _, before = memory_kib()
        started = time.perf_counter()
        check = await audit.verify(database)
        took = time.perf_counter() - started
        peak, _ = memory_kib()
        assert check.intact and check.count == entries, check
        print(
            f"{backend}: verified {check.count:,} entries in {took:.1f} s ({check.count / took:,.0f}/s); "
            f"RSS {before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB (+{(peak - before) / 1024:.0f} MiB)"
        )
        started = time.perf_counter()
        for i in range(appends):
            async with database.transaction() as tx:
                await audit.add_event(tx, action="bench.appended", actor="system", detail={"i": i})
        took = time.perf_counter() - started
        print(f"{backend}: {appends:,} appends through add_event in {took:.2f} s ({appends / took:,.0f}/s)")
        assert (await audit.verify(database)).count == entries + appends
    finally:
        await database.close()
        if drop is not None:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)'))
            await admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=2_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    sqlite_file = args.tmp / f"audit-bench-{uuid.uuid4().hex[:8]}.db"
    try:
        for backend in args.backends.split(","):
            asyncio.run(run(backend, args.entries, args.appends, sqlite_file))
    finally:
        for leftover in args.tmp.glob(sqlite_file.name + "*"):
            leftover.unlink()


if __name__ == "__main__":
    main()
