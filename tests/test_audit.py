"""The audit trail: an append-only hash chain that names its first broken entry, safe under concurrent writers,
with no update or delete path, holding ids and codes only; the CLI, the anchor and a consultation's trail."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import itertools
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from teleconsult import housekeeping
from teleconsult.api.keys import DOCTORS
from teleconsult.app import CHORES, DATABASE
from teleconsult.audit import AuditTrail
from teleconsult.domain import AuditEntry, ChainFault
from teleconsult.ids import ConsultationId
from teleconsult.store import Database, audit
from teleconsult.store.database import alembic_config
from teleconsult.store.models import AuditEvent
from tests.conftest import DOCTOR_PASSWORD, PG_URL, unavailable
from tests.helpers import connect, doctor_in_room, join, login

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "teleconsult"
MIGRATION_0007 = PACKAGE / "store" / "migrations" / "versions" / "0007_audit_chain.py"


async def append(database: Database, count: int, *, per_transaction: int = 1, **values: Any) -> None:
    for start in range(0, count, per_transaction):
        async with database.transaction() as tx:
            for i in range(start, min(count, start + per_transaction)):
                await audit.add_event(
                    tx,
                    action=values.get("action", "test.appended"),
                    actor=values.get("actor", "system"),
                    consultation_id=values.get("consultation_id", "c_audit"),
                    detail={"i": i, "note": "é"},
                )


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await db.upgrade()
    yield db
    await db.close()


async def sql(database: Database, statement: str, **params: Any) -> list[Any]:
    """Raw SQL, as someone with access to the database (not the code) would run it."""
    async with database.engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


async def row_id(database: Database, seq: int) -> int:
    return int((await sql(database, "SELECT id FROM audit_events WHERE seq = :seq", seq=seq))[0][0])


# --- the chain ---------------------------------------------------------------------------------------------------


async def test_a_chain_appended_in_many_transactions_verifies_intact(database: Database) -> None:
    await append(database, 10)
    await append(database, 13, per_transaction=4)  # several entries in one transaction
    for batch in (1, 7, 23, 1000):  # keyset pages that end on, before and after the last entry
        check = await audit.verify(database, batch=batch)
        assert check.intact and check.count == 23 and check.last_seq == 23, (batch, check)
    rows = await sql(database, "SELECT seq, prev_hash, hash FROM audit_events ORDER BY seq")
    assert [r[0] for r in rows] == list(range(1, 24))
    assert rows[0][1] == "0" * 64
    assert all(later[1] == earlier[2] for earlier, later in itertools.pairwise(rows))
    assert check.last_hash == rows[-1][2]
    async with database.transaction() as tx:
        head = await audit.head(tx)
    assert (head.count, head.seq, head.hash) == (23, 23, rows[-1][2])


async def test_an_empty_chain_is_intact(database: Database) -> None:
    check = await audit.verify(database)
    assert check.intact and check.count == 0 and check.last_hash == "0" * 64


async def test_a_rolled_back_transaction_appends_nothing(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.transaction() as tx:
            await audit.add_event(tx, action="test.lost", actor="system")
            raise RuntimeError
    await append(database, 2)
    check = await audit.verify(database)
    assert check.intact and check.count == 2
    assert await sql(database, "SELECT count(*) FROM audit_events WHERE action = 'test.lost'") == [(0,)]


def test_the_hash_is_sha256_of_prev_hash_and_the_canonical_content() -> None:
    import hashlib

    at = datetime(2026, 11, 3, 9, 15, 0, 120, tzinfo=timezone(timedelta(hours=1)))
    content = audit.canonical(
        seq=7, at=at, consultation_id="c_1", actor="doctor:d_1", action="x.y", detail='{"b": 1, "a": "é"}'
    )
    assert content == (
        '{"action":"x.y","actor":"doctor:d_1","at":"2026-11-03T08:15:00.000120+00:00",'
        '"consultation_id":"c_1","detail":{"a":"é","b":1},"seq":7}'
    )
    prev = "ab" * 32
    expected = hashlib.sha256((prev + content).encode()).hexdigest()
    assert audit.entry_hash(prev, seq=7, at=at, consultation_id="c_1", actor="doctor:d_1", action="x.y",
                            detail='{"a": "é", "b": 1}') == expected  # fmt: skip


def test_the_migration_hashes_existing_events_exactly_as_the_store_does() -> None:
    spec = importlib.util.spec_from_file_location("migration_0007", MIGRATION_0007)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    for at in (datetime(2026, 1, 2, 3, 4, 5, 6), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)):  # SQLite: naive UTC
        for detail in (None, '{"key": "service:v2"}', '{"z": [1, 2], "a": "ü"}'):
            values: dict[str, Any] = {"seq": 3, "at": at, "consultation_id": None, "actor": "cli", "action": "a.b"}
            assert migration._entry_hash("f" * 64, detail=detail, **values) == audit.entry_hash(
                "f" * 64, detail=detail, **values
            )
    assert migration.GENESIS == audit.GENESIS


@pytest.fixture
async def fresh_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database (no migration applied) on the same backend."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"teleconsult_audit_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except (OSError, DBAPIError) as exc:
        unavailable(f"PostgreSQL: {type(exc).__name__}")
    finally:
        await admin.dispose()


async def test_the_migration_chains_the_events_already_written_in_id_order(fresh_url: str) -> None:
    database = Database(fresh_url)
    try:

        def to_0006(connection: Any) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "0006")

        async with database.engine.begin() as conn:
            await conn.run_sync(to_0006)
            for n in range(5):
                await conn.execute(
                    text(
                        "INSERT INTO audit_events (at, consultation_id, actor, action, detail) "
                        "VALUES (:at, 'c_old', 'cli', 'old.event', :detail)"
                    ),
                    {"at": datetime(2026, 1, 1, 12, 0, n, 123456), "detail": f'{{"n": {n}}}' if n % 2 else None},
                )
        await database.upgrade()
        rows = await sql(database, "SELECT id, seq FROM audit_events ORDER BY id")
        assert [seq for _, seq in rows] == [1, 2, 3, 4, 5]
        await append(database, 2)  # new entries go on from the migrated head
        check = await audit.verify(database)
        assert check.intact and check.count == 7, check
    finally:
        await database.close()


# --- tampering, detected and named -------------------------------------------------------------------------------


async def test_an_entry_edited_in_the_database_is_named_as_changed(database: Database) -> None:
    await append(database, 8)
    victim = await row_id(database, 5)
    await sql(database, "UPDATE audit_events SET actor = 'doctor:d_someone_else' WHERE seq = 5")
    check = await audit.verify(database, batch=3)
    assert check.broken is not None
    assert (check.broken.seq, check.broken.id, check.broken.fault) == (5, victim, ChainFault.CHANGED)
    assert (check.count, check.last_seq) == (4, 4)


async def test_an_entry_whose_detail_is_no_longer_json_is_changed(database: Database) -> None:
    await append(database, 3)
    await sql(database, "UPDATE audit_events SET detail = 'not json' WHERE seq = 2")
    check = await audit.verify(database)
    assert check.broken is not None and (check.broken.seq, check.broken.fault) == (2, ChainFault.CHANGED)


async def test_an_entry_deleted_in_the_database_is_named_as_removed(database: Database) -> None:
    await append(database, 8)
    after = await row_id(database, 6)
    await sql(database, "DELETE FROM audit_events WHERE seq = 5")
    check = await audit.verify(database, batch=5)
    assert check.broken is not None
    assert (check.broken.seq, check.broken.id, check.broken.fault) == (6, after, ChainFault.REMOVED)
    assert "seq 5" in check.broken.reason


async def test_an_entry_inserted_in_the_database_is_named_as_inserted(database: Database) -> None:
    await append(database, 4)
    await sql(
        database,
        "INSERT INTO audit_events (seq, at, actor, action, prev_hash, hash) "
        "VALUES (5, :at, 'doctor:d_forger', 'consultation.ended', :prev, :hash)",
        at=datetime(2026, 1, 1, 12, 0, 0),
        prev="1" * 64,
        hash="2" * 64,
    )
    forged = await row_id(database, 5)
    await append(database, 2)  # the code goes on appending after it
    check = await audit.verify(database)
    assert check.broken is not None
    assert (check.broken.seq, check.broken.id, check.broken.fault) == (5, forged, ChainFault.INSERTED)


async def test_an_entry_inserted_before_the_first_is_named(database: Database) -> None:
    await append(database, 2)
    first = await sql(database, "SELECT hash FROM audit_events WHERE seq = 1")
    await sql(
        database,
        "INSERT INTO audit_events (seq, at, actor, action, prev_hash, hash) "
        "VALUES (0, :at, 'system', 'forged', :prev, :hash)",
        at=datetime(2026, 1, 1),
        prev="0" * 64,
        hash=first[0][0],
    )
    check = await audit.verify(database)
    assert check.broken is not None and (check.broken.seq, check.broken.fault) == (0, ChainFault.INSERTED)


async def test_the_address_and_browser_are_outside_the_chain(database: Database) -> None:
    """They are personal data with a shorter life than the trail (docs/audit.md): blanking them keeps it intact."""
    async with database.transaction() as tx:
        await audit.add_event(tx, action="invitation.redeemed", actor="patient:u_1", ip="192.0.2.1", user_agent="UA")
    await sql(database, "UPDATE audit_events SET ip = NULL, user_agent = NULL")
    assert (await audit.verify(database)).intact


async def test_an_anchor_catches_a_cut_end_and_a_rewritten_chain(database: Database) -> None:
    await append(database, 6)
    anchor = (6, (await audit.verify(database)).last_hash)
    assert (await audit.verify(database, anchor=anchor)).intact
    await sql(database, "DELETE FROM audit_events WHERE seq = 6")  # the end cut: the chain alone still holds
    assert (await audit.verify(database)).intact
    check = await audit.verify(database, anchor=anchor)
    assert check.broken is not None and (check.broken.seq, check.broken.fault) == (6, ChainFault.REMOVED)

    # Rewritten by someone who knows the algorithm: entry 3 changed and every hash after it recomputed.
    await sql(database, "UPDATE audit_events SET action = 'rewritten' WHERE seq = 3")
    rows = await sql(database, "SELECT seq, at, consultation_id, actor, action, detail FROM audit_events ORDER BY seq")
    prev = audit.GENESIS
    for seq, at, consultation_id, actor, action, detail in rows:
        at = datetime.fromisoformat(at) if isinstance(at, str) else at
        digest = audit.entry_hash(
            prev, seq=seq, at=at, consultation_id=consultation_id, actor=actor, action=action, detail=detail
        )
        await sql(database, "UPDATE audit_events SET prev_hash = :p, hash = :h WHERE seq = :s", p=prev, h=digest, s=seq)
        prev = digest
    assert (await audit.verify(database)).intact  # only an anchor kept outside can tell
    early = (await audit.verify(database)).last_hash
    check = await audit.verify(database, anchor=(5, "9" * 64))
    assert check.broken is not None and (check.broken.seq, check.broken.fault) == (5, ChainFault.CHANGED)
    assert (await audit.verify(database, anchor=(5, early))).intact


# --- concurrent writers ------------------------------------------------------------------------------------------

WRITER = """
import asyncio, sys, time
from pathlib import Path
from teleconsult.store import Database, audit

async def main(url, count, name, go):
    database = Database(url)
    async with database.transaction() as tx:  # connected before the start
        pass
    while not Path(go).exists():
        await asyncio.sleep(0.005)
    started = time.time()
    for i in range(count):
        async with database.transaction() as tx:
            await audit.add_event(tx, action="test.concurrent", actor="system", detail={"writer": name, "i": i})
    print(started, time.time())
    await database.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]))
"""


async def test_two_processes_appending_at_once_keep_one_unbroken_chain(database: Database, tmp_path: Path) -> None:
    await append(database, 1)  # the chain exists; both writers read and extend its head
    script, go = tmp_path / "writer.py", tmp_path / "go"
    script.write_text(WRITER)
    writers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            database.url,
            "200",
            name,
            str(go),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for name in ("a", "b")
    ]
    await asyncio.sleep(1.0)
    go.touch()
    spans = []
    for writer in writers:
        stdout, stderr = await asyncio.wait_for(writer.communicate(), timeout=110)
        assert writer.returncode == 0, stderr.decode()[-2000:]
        spans.append([float(x) for x in stdout.split()])
    (a_start, a_end), (b_start, b_end) = spans
    assert a_start < b_end and b_start < a_end, "the two writers did not run at the same time"
    check = await audit.verify(database)
    assert check.intact and check.count == 401, check
    seqs = await sql(database, "SELECT seq FROM audit_events ORDER BY seq")
    assert [s for (s,) in seqs] == list(range(1, 402))  # no duplicate, no gap
    by_writer = await sql(
        database, "SELECT count(*) FROM audit_events WHERE action = 'test.concurrent' GROUP BY detail LIKE '%\"a\"%'"
    )
    assert sorted(n for (n,) in by_writer) == [200, 200]
    if not database.is_sqlite:  # PostgreSQL grants the lock in turn: the appends interleave, entry by entry
        order = await sql(database, "SELECT detail FROM audit_events WHERE action = 'test.concurrent' ORDER BY seq")
        switches = sum(1 for x, y in itertools.pairwise(order) if ('"a"' in x[0]) != ('"a"' in y[0]))
        assert switches > 2, "the two writers ran one after the other"


async def test_many_tasks_appending_at_once_keep_one_chain(database: Database) -> None:
    async def task(n: int) -> None:
        for i in range(10):
            async with database.transaction() as tx:
                await audit.add_event(tx, action="test.task", actor="system", detail={"task": n, "i": i})
                if i % 3 == 0:
                    await audit.add_event(tx, action="test.task.extra", actor="system", detail={"task": n})

    await asyncio.gather(*(task(n) for n in range(40)))
    check = await audit.verify(database)
    assert check.intact and check.count == 40 * 14, check
    assert await sql(database, "SELECT count(DISTINCT seq), max(seq) FROM audit_events") == [(560, 560)]


# --- append only -------------------------------------------------------------------------------------------------

#: The only files that may change audit rows: the table's creation (its downgrade drops it) and the migration that
#: numbered and chained the rows written before the chain existed (its downgrade drops the chain's columns).
MAY_CHANGE_AUDIT_ROWS = {
    PACKAGE / "store" / "migrations" / "versions" / "0001_initial_schema.py",
    MIGRATION_0007,
}
_SQL_CHANGE = re.compile(
    r"\b(update\s+[\"'`]?audit_events|delete\s+from\s+[\"'`]?audit_events|truncate\b[^;\"']*audit_events|"
    r"drop\s+table\s+[\"'`]?audit_events|drop_table\(\s*[\"']audit_events|replace\s+into\s+[\"'`]?audit_events|"
    r"insert\s+or\s+replace\s+into\s+[\"'`]?audit_events|on\s+conflict\b[^;]*do\s+update)",
    re.IGNORECASE,
)
_AUDIT_NAMES = {"AuditEvent", "audit_events", "_events"}


def changes_to_audit_rows(source: str) -> list[str]:
    """Every way this source could update or delete an audit row: SQL text against audit_events, SQLAlchemy
    ``update``/``delete`` of ``AuditEvent`` (or its table), a session ``delete``/``merge``, or a row's attribute
    assigned after it was loaded."""
    found = [match.group(0) for match in _SQL_CHANGE.finditer(source) if "audit_events" in match.group(0).lower()]
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        mentioned = {n.id for a in node.args for n in ast.walk(a) if isinstance(n, ast.Name)} | {
            n.attr for a in node.args for n in ast.walk(a) if isinstance(n, ast.Attribute)
        }
        if isinstance(func, ast.Attribute):
            mentioned |= {n.id for n in ast.walk(func.value) if isinstance(n, ast.Name)}
            mentioned |= {n.attr for n in ast.walk(func.value) if isinstance(n, ast.Attribute)}
            mentioned |= {
                n.value for n in ast.walk(func.value) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            }
        mentioned |= {n.value for a in node.args for n in ast.walk(a) if isinstance(n, ast.Constant)} - {None}
        if name in {"update", "delete", "merge", "bulk_update_mappings"} and mentioned & _AUDIT_NAMES:
            found.append(ast.unparse(node))
    return found


def test_the_scanner_finds_each_way_of_changing_an_audit_row() -> None:
    for forbidden in (
        "update(AuditEvent).where(AuditEvent.id == 1).values(actor='x')",
        "delete(AuditEvent)",
        "sa.delete(models.AuditEvent)",
        "AuditEvent.__table__.update()",
        "tx.execute(text('DELETE FROM audit_events WHERE id = 1'))",
        "conn.execute('update audit_events set hash = 1')",
        "op.execute('TRUNCATE TABLE audit_events')",
        "op.drop_table('audit_events')",
    ):
        assert changes_to_audit_rows(forbidden), forbidden
    assert not changes_to_audit_rows("tx.add(AuditEvent(seq=1))\nselect(AuditEvent).where(AuditEvent.seq > 1)")


def test_no_code_updates_or_deletes_audit_rows() -> None:
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in PACKAGE.rglob("*.py")
        if path not in MAY_CHANGE_AUDIT_ROWS and (found := changes_to_audit_rows(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_only_the_audit_store_touches_audit_rows_and_nothing_cascades_into_them() -> None:
    users = {
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts and re.search(r"\bAuditEvent\b", path.read_text(encoding="utf-8"))
    }
    assert users == {"teleconsult/store/audit.py", "teleconsult/store/models.py"}
    assert not AuditEvent.__table__.foreign_keys  # deleting a consultation or a doctor cannot take entries along
    assert "audit" not in (PACKAGE / "housekeeping.py").read_text(encoding="utf-8")


async def test_housekeeping_purges_no_audit_entry(database: Database) -> None:
    await append(database, 5)
    await housekeeping.purge(database)
    check = await audit.verify(database)
    assert check.intact and check.count == 5


# --- the service, the anchor, the command line --------------------------------------------------------------------


async def test_the_anchor_logs_count_seq_and_last_hash(database: Database, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="teleconsult.audit")
    await append(database, 3)
    head = await AuditTrail(database).anchor()
    last = (await audit.verify(database)).last_hash
    assert (head.count, head.seq, head.hash) == (3, 3, last)
    assert f"audit anchor: 3 entries, last seq 3, last hash {last}" in caplog.text


def test_actor_roles_come_from_the_actor() -> None:
    def role(actor: str) -> str:
        return AuditEntry(1, datetime.now(UTC), ConsultationId("c_1"), actor, "a", None).actor_role

    assert [role(a) for a in ("doctor:d_1", "patient:u_1", "nurse:u_2", "guest:u_3", "cli", "public", "x:y")] == [
        "doctor",
        "patient",
        "nurse",
        "guest",
        "cli",
        "public",
        "system",
    ]


def run_cli(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    command_line = [sys.executable, "-m", "teleconsult", "audit", "verify", *args]
    command_line += ["--data-dir", str(tmp_path / "var"), "--database-url", database_url]
    return subprocess.run(command_line, capture_output=True, text=True, timeout=100, env=env, check=False)


async def test_the_command_line_says_intact_or_names_the_broken_entry(database: Database, tmp_path: Path) -> None:
    await append(database, 12)
    last = (await audit.verify(database)).last_hash
    intact = await asyncio.to_thread(run_cli, tmp_path, database.url)
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.strip() == f"audit trail intact: 12 entries, last hash {last}"
    assert f"audit anchor: 12 entries, last seq 12, last hash {last}" in intact.stderr  # anchored in the log
    anchored = await asyncio.to_thread(run_cli, tmp_path, database.url, "--anchor", f"12:{last}")
    assert anchored.returncode == 0, anchored.stderr

    victim = await row_id(database, 7)
    await sql(database, "UPDATE audit_events SET detail = '{\"i\": 70}' WHERE seq = 7")
    broken = await asyncio.to_thread(run_cli, tmp_path, database.url)
    assert broken.returncode == 1
    assert broken.stdout.startswith(f"audit trail broken at entry seq 7 (id {victim}): changed")
    assert "audit anchor: 12 entries" in broken.stderr

    await sql(database, "DELETE FROM audit_events WHERE seq IN (3, 4)")
    removed = await asyncio.to_thread(run_cli, tmp_path, database.url)
    assert removed.returncode == 1
    assert removed.stdout.startswith(f"audit trail broken at entry seq 5 (id {await row_id(database, 5)}): removed")

    bad = await asyncio.to_thread(run_cli, tmp_path, database.url, "--anchor", "twelve")
    assert bad.returncode == 2 and "SEQ:HASH" in bad.stderr


# --- a consultation's trail over HTTP, and what the trail never holds -----------------------------------------------

PATIENT_NAME = "Zéphyrine Quintavalle"
PATIENT_EMAIL = "zephyrine.quintavalle@example.org"
NURSE_NAME = "Ondine Barberousse"
NURSE_EMAIL = "ondine.barberousse@example.org"
REASON = "douleurs xiphoïdiennes persistantes"


async def trail(client: Any, consultation_id: str) -> tuple[int, Any]:
    response = await client.get(f"/api/consultations/{consultation_id}/audit")
    return response.status, await response.json()


async def test_the_doctor_sees_the_whole_trail_and_it_names_no_one(server_with: Any, database_url: str) -> None:
    live, clients = await server_with(database_url=database_url)
    doctor_http, _csrf, created, doctor = await doctor_in_room(
        clients,
        patient_name=PATIENT_NAME,
        patient_email=PATIENT_EMAIL,
        nurse_name=NURSE_NAME,
        nurse_email=NURSE_EMAIL,
        reason=REASON,
    )
    patient_http = await clients()
    joined = await join(patient_http, created["patient_link"])
    patient = await connect(patient_http, joined["ticket"])
    await patient.expect("waiting")
    lobby = await doctor.expect("lobby", waiting=bool)
    await doctor.send(type="admit", peer_id=lobby["waiting"][0]["peer_id"])
    await patient.expect("admitted")
    await patient.send(type="leave")
    await doctor.expect("peer-left")
    await doctor.send(type="end")
    await doctor.expect("ended")

    actions: list[str] = []
    for _ in range(200):  # the mails are sent by the background sender
        status, body = await trail(doctor_http, created["id"])
        assert status == 200, body
        actions = [item["action"] for item in body["items"]]
        if actions.count("mail.sent") == 2:
            break
        await asyncio.sleep(0.05)
    for expected in (
        "consultation.created",
        "invitation.issued",
        "mail.sent",
        "invitation.redeemed",
        "participant.joined",
        "participant.admitted",
        "consultation.started",
        "participant.left",
        "consultation.ended",
    ):
        assert expected in actions, (expected, actions)
    assert actions.count("invitation.issued") == 2 and actions.count("participant.joined") == 2
    items = body["items"]
    assert [i["seq"] for i in items] == sorted(i["seq"] for i in items)
    assert set(items[0]) == {"seq", "at", "action", "actor_role", "detail"}
    roles = {i["action"]: i["actor_role"] for i in items}
    assert roles["consultation.created"] == "doctor" and roles["invitation.redeemed"] == "patient"
    assert roles["participant.admitted"] == "doctor" and roles["mail.sent"] == "system"
    assert roles["participant.left"] == "patient"
    left = next(i for i in items if i["action"] == "participant.left")
    admitted = next(i for i in items if i["action"] == "participant.admitted")
    assert left["detail"] == {"participant": admitted["detail"]["participant"], "reason": "left"}
    sent = next(i for i in items if i["action"] == "mail.sent")
    assert set(sent["detail"]) == {"mail", "kind"} and sent["detail"]["kind"] == "invitation"
    assert all(i["at"].endswith("Z") for i in items)

    # The whole table, every column: no name, address or reason, whole or in part.
    async with live.app[DATABASE].engine.connect() as conn:
        dump = repr((await conn.execute(text("SELECT * FROM audit_events"))).all()).casefold()
    for personal in (PATIENT_NAME, PATIENT_EMAIL, NURSE_NAME, NURSE_EMAIL, REASON):
        for part in re.split(r"[ @.]", personal.casefold()):
            if len(part) > 4 and part not in {"example"}:
                assert part not in dump, part
    assert (await AuditTrail(live.app[DATABASE]).verify()).intact


async def test_another_doctor_gets_not_found(server_with: Any) -> None:
    live, clients = await server_with()
    own_http, _csrf, created, _doctor = await doctor_in_room(clients)
    await live.app[DOCTORS].create_doctor(
        email="dr.other@example.org", name="Dr Other", rpps="20202020202", password=DOCTOR_PASSWORD
    )
    other_http = await clients()
    await login(other_http, "dr.other@example.org")
    status, body = await trail(other_http, created["id"])
    unknown_status, unknown = await trail(other_http, "c_doesnotexist")
    assert status == unknown_status == 404
    assert body == unknown  # the same answer as for a consultation that does not exist
    assert (await other_http.get(f"/api/consultations/{created['id']}")).status == 404
    assert (await trail(own_http, created["id"]))[0] == 200
    anonymous = await clients()
    assert (await trail(anonymous, created["id"]))[0] == 401


async def test_the_server_anchors_periodically(server_with: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="teleconsult.audit")
    live, _clients = await server_with(audit_anchor_interval_s=0.05)
    assert live.app[CHORES].running()["audit-anchor"] is True
    for _ in range(100):
        if caplog.text.count("audit anchor:") >= 3:
            break
        await asyncio.sleep(0.05)
    assert caplog.text.count("audit anchor:") >= 3


@pytest.mark.browser
async def test_the_dashboard_shows_a_consultations_trail_in_french_and_english(
    chromium_path: str, live_server: Any, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    from tests.test_browser import CHROMIUM_ARGS, DESKTOP, PageErrors, browser_env, log_in, new_context

    watcher = PageErrors()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS, env=browser_env(tmp_path)
        )
        try:
            context = await new_context(browser, live_server.url, DESKTOP)
            doctor = watcher.watch(await context.new_page(), "doctor")
            await log_in(doctor, live_server.doctor_email, live_server.doctor_password)
            await doctor.get_by_test_id("new-patient-name").fill(PATIENT_NAME)
            await doctor.get_by_test_id("new-patient-email").fill(PATIENT_EMAIL)
            await doctor.get_by_test_id("new-submit").click()
            row = doctor.get_by_test_id("consultation-row").first
            await expect(row).to_contain_text(PATIENT_NAME)
            toggle = row.get_by_test_id("consultation-audit-toggle")
            await expect(toggle).to_have_text("Journal")
            await toggle.click()
            await expect(toggle).to_have_attribute("aria-expanded", "true")
            entries = row.get_by_test_id("consultation-audit-entry")
            await expect(entries.first).to_contain_text("Invitation créée")
            await expect(row.locator('[data-audit="consultation.created"]')).to_contain_text("Consultation créée")
            await expect(row.locator('[data-audit="consultation.created"]')).to_contain_text("Médecin")
            await expect(row.locator('[data-audit="mail.sent"]')).to_have_count(1, timeout=15_000)  # once it is sent
            await expect(row.locator('[data-audit="mail.sent"]')).to_contain_text("Serveur · invitation")
            await toggle.click()
            await expect(row.get_by_test_id("consultation-audit")).to_have_count(0)

            await doctor.goto("/doctor?lang=en")
            row = doctor.get_by_test_id("consultation-row").first
            toggle = row.get_by_test_id("consultation-audit-toggle")
            await expect(toggle).to_have_text("Audit trail")
            await toggle.click()
            await expect(row.locator('[data-audit="consultation.created"]')).to_contain_text("Consultation created")
            await expect(row.locator('[data-audit="mail.sent"]')).to_contain_text("Server · invitation")
        finally:
            await browser.close()
    assert watcher.errors == []
