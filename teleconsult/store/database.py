"""The database handle: engine, transactions and migrations (the only place that opens connections)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import QueuePool

from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.files import private_file

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"

#: A serving node's bounds on a PostgreSQL that does not answer (its host gone, the network cut, the server frozen):
#: a connection not made within this, or a statement not answered within this, is ``unavailable`` (the request gets
#: its 503, the frame its error) instead of a hang. asyncpg's own defaults are 60 s to connect and no limit at all.
CONNECT_TIMEOUT_S = 5.0
STATEMENT_TIMEOUT_S = 5.0
#: How long the health check waits for its ping; one ping at a time, never cancelled (it ends within the bounds).
PING_WAIT_S = 2.0

#: The transaction handle services pass to store functions.
Tx = AsyncSession


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """The connection pool now: connections in use, the pool's size, and how many it may open at most."""

    checked_out: int
    size: int
    limit: int


class Database:
    def __init__(self, url: str, *, echo: bool = False, bounded: bool = False) -> None:
        """``bounded``: a serving node's database, whose connections and statements are bounded in time (see
        ``CONNECT_TIMEOUT_S``); the CLI's batch work (migrations, exports, the chain's verification) is not."""
        self.url = url
        self._ping: asyncio.Task[bool] | None = None
        self.is_sqlite = url.startswith("sqlite")
        self._max_overflow = 0 if self.is_sqlite else 20
        if self.is_sqlite:
            _private_sqlite_file(url)
            self.engine: AsyncEngine = create_async_engine(
                url,
                echo=echo,
                connect_args={"timeout": 30},
                pool_size=1,
                max_overflow=self._max_overflow,
                pool_timeout=300,
                hide_parameters=True,  # error text never carries a name or a reason for the visit
            )
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_async_engine(
                url,
                echo=echo,
                pool_size=10,
                max_overflow=self._max_overflow,
                pool_pre_ping=True,
                hide_parameters=True,
                connect_args=_bounds(url) if bounded else {},
            )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    def pool_status(self) -> PoolStatus:
        """The pool's use now, for the metrics: cheap, no connection taken."""
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return PoolStatus(checked_out=0, size=0, limit=0)
        return PoolStatus(checked_out=pool.checkedout(), size=pool.size(), limit=pool.size() + self._max_overflow)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """One unit of work: committed when the block ends, rolled back on any exception.

        A database that cannot be reached becomes ``unavailable`` (HTTP 503), never a crash.
        """
        try:
            async with self._sessions() as session, session.begin():
                yield session
        except (OperationalError, DBAPIError, OSError) as exc:
            if isinstance(exc, DBAPIError) and not exc.connection_invalidated and not _is_connectivity(exc):
                raise
            log.error("database unavailable: %s", type(exc).__name__)
            raise TeleconsultError(ErrorCode.UNAVAILABLE, "The database is unavailable.") from exc

    async def ping(self) -> bool:
        """Whether the database answers a ``SELECT 1`` within ``PING_WAIT_S``. A ping still under way (a database
        that does not answer) is waited for again rather than started anew, so pings never pile up."""
        if self._ping is None or self._ping.done():
            self._ping = asyncio.create_task(self._ping_once(), name="database-ping")
        done, _ = await asyncio.wait({self._ping}, timeout=PING_WAIT_S)
        return bool(done) and self._ping.result()

    async def _ping_once(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def upgrade(self) -> None:
        """Apply every Alembic migration up to head."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        if self._ping is not None:
            await asyncio.wait({self._ping}, timeout=CONNECT_TIMEOUT_S + STATEMENT_TIMEOUT_S)
        await self.engine.dispose()


def _private_sqlite_file(url: str) -> None:
    """Create the database file 0600 in a 0700 directory before SQLite does (its WAL and shared-memory files
    then take the same mode)."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        private_file(Path(database))


def _bounds(url: str) -> dict[str, float]:
    """The driver's own time limits for a serving node (asyncpg: ``timeout`` to connect, ``command_timeout`` for
    each statement, the pool's pre-ping and ``BEGIN`` included)."""
    if make_url(url).get_driver_name() != "asyncpg":
        return {}
    return {"timeout": CONNECT_TIMEOUT_S, "command_timeout": STATEMENT_TIMEOUT_S}


#: SQLSTATEs that say the server cannot serve now: class 08 (connection exceptions), the server shutting down
#: (57P01 admin_shutdown, 57P02 crash_shutdown) or not yet started (57P03 cannot_connect_now: "the database system is
#: starting up" / "is shutting down"), too many connections (53300).
UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def _is_connectivity(exc: DBAPIError) -> bool:
    if isinstance(exc, OperationalError) or "connect" in type(exc.orig).__name__.lower():
        return True
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(state, str) and (state.startswith("08") or state in UNAVAILABLE_STATES)


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _upgrade(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
