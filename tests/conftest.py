"""Shared fixtures: real SQLite and PostgreSQL databases, a running app, clients for each participant."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401 - loaded here, at a shallow stack: CPython 3.11.7 ast.parse fails when
import pytest  # pytest rewrites hypothesis lazily deep inside session teardown
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from teleconsult.api.keys import DOCTORS
from teleconsult.app import create_app
from teleconsult.config import Settings, build_settings
from teleconsult.logging import QUIET_LOGGERS
from teleconsult.store import Database
from teleconsult.store.models import Base

# As `setup_logging` does for the server: a test that sets the root logger to DEBUG (caplog) would otherwise have
# aiosqlite's worker threads log every operation, some after pytest has closed the stream they write to.
# aiosmtpd's SMTP server thread (tests/smtp.py) likewise logs each client's EOF at INFO on "mail.log".
for _name in (*QUIET_LOGGERS, "mail.log"):
    logging.getLogger(_name).setLevel(logging.WARNING)

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get("TELECONSULT_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
DOCTOR_EMAIL = "dr.martin@example.org"
DOCTOR_PASSWORD = "correct horse battery"
DOCTOR_RPPS = "10101010101"


def unavailable(reason: str) -> None:
    """Skip with one line saying why; under CI a missing service is a failure, never a skip."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this test must run)")
    pytest.skip(reason)


# --- PostgreSQL -------------------------------------------------------------------------------------------------


async def _pg_admin(sql: str) -> None:
    engine = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def in_thread(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run set-up work on its own loop (session fixtures may be first requested from inside a running loop)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database for this test session, migrated once; dropped at the end."""
    name = f"teleconsult_test_{uuid.uuid4().hex[:10]}"
    try:
        in_thread(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, DBAPIError) as exc:
        unavailable(f"PostgreSQL not reachable at {PG_URL.split('@')[-1]}: {type(exc).__name__}")
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"

    async def migrate() -> None:
        database = Database(url)
        try:
            await database.upgrade()
        finally:
            await database.close()

    in_thread(migrate())
    yield url
    in_thread(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def truncate_all(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both backends, for the tests that must hold on each."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    url: str = request.getfixturevalue("postgres_url")
    await truncate_all(url)
    return url


# --- the app ----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(tmp_path: Path, **values: Any) -> Settings:
    defaults: dict[str, Any] = {"data_dir": tmp_path / "var", "port": free_port(), "secret_key": "test-secret"}
    return build_settings(defaults | values)


@dataclass
class Running:
    """A server on a real port, with a doctor account."""

    app: web.Application
    server: TestServer
    settings: Settings

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    doctor_email: str = DOCTOR_EMAIL
    doctor_password: str = DOCTOR_PASSWORD


async def start_server(settings: Settings, *, with_doctor: bool = True) -> Running:
    app = create_app(settings)
    server = TestServer(app, host="127.0.0.1", port=settings.server.port)
    await server.start_server()
    if with_doctor:
        await app[DOCTORS].create_doctor(
            email=DOCTOR_EMAIL, name="Dr Alice Martin", rpps=DOCTOR_RPPS, password=DOCTOR_PASSWORD
        )
    return Running(app, server, settings)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    """The server on SQLite (the embedded default)."""
    live = await start_server(make_settings(tmp_path))
    yield live
    await live.server.close()


@pytest.fixture
async def running_any_db(tmp_path: Path, database_url: str) -> AsyncIterator[Running]:
    """The server on SQLite and then on PostgreSQL."""
    live = await start_server(make_settings(tmp_path, database_url=database_url))
    yield live
    await live.server.close()


@pytest.fixture
async def live_server(running: Running) -> Running:
    return running


@pytest.fixture
async def clients(running: Running) -> AsyncIterator[Any]:
    """A factory of independent HTTP clients (own cookie jars) on the running server."""
    made: list[TestClient[Any, Any]] = []

    async def make() -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(running.server)
        await client.start_server()
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
def chromium_path() -> str:
    path = "/usr/bin/chromium"
    if not os.path.exists(path):
        unavailable("Debian's chromium is not installed at /usr/bin/chromium")
    return path


@pytest.fixture
async def server_with(tmp_path: Path) -> AsyncIterator[Any]:
    """A factory: a server with the given settings, and a client factory for it. Everything is closed after."""
    servers: list[Running] = []
    made: list[TestClient[Any, Any]] = []

    async def start(*, with_doctor: bool = True, **values: Any) -> tuple[Running, Any]:
        """``with_doctor=False`` for a second node on a database that has the doctor already."""
        live = await start_server(make_settings(tmp_path / f"s{len(servers)}", **values), with_doctor=with_doctor)
        servers.append(live)

        async def client() -> TestClient[Any, Any]:
            made_client: TestClient[Any, Any] = TestClient(live.server)
            await made_client.start_server()
            made.append(made_client)
            return made_client

        return live, client

    yield start
    for client in made:
        await client.close()
    for live in servers:
        await live.server.close()


@pytest.fixture
def smtp() -> Iterator[Any]:
    """A real SMTP server on loopback, started; tests may stop and restart it."""
    from tests.smtp import SmtpServer

    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


# --- the bus ----------------------------------------------------------------------------------------------------


@pytest.fixture(params=["local", "redis"])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """Both buses, for the tests that must hold on each: the in-process one and Redis (a server of the test's own)."""
    from teleconsult.bus import LocalBus
    from teleconsult.bus.redis import RedisBus
    from tests.redis_server import redis_url

    if request.param == "local":
        yield LocalBus()
        return
    url, server = redis_url(tmp_path / "redis")
    redis_bus = RedisBus(url)
    redis_bus.start()
    await asyncio.wait_for(redis_bus.connected.wait(), 10)
    yield redis_bus
    await redis_bus.close()
    if server is not None:
        server.stop()
