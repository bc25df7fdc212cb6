"""A throwaway PostgreSQL server of the test's own (so that a test may stop and start it under a live call), never
the machine's on 5432, which other tests use.

PostgreSQL refuses to run as root: as root the server is made and run as the ``postgres`` OS user (``runuser``), in
a directory that user can reach (under its home: the test's own temporary directories are root's alone)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import free_port, unavailable

OS_USER = "postgres"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """``initdb`` into a fresh directory (trust authentication), then ``pg_ctl start`` on a free loopback port;
    ``stop`` (fast: every connection is cut) and ``start`` again on the same port and data."""

    def __init__(self, bin_dir: Path, user: pwd.struct_passwd):
        self._bin = bin_dir
        self._user = user
        self.base = Path(tempfile.mkdtemp(prefix="teleconsult-pg-", dir=user.pw_dir))
        os.chown(self.base, user.pw_uid, user.pw_gid)
        self.data = self.base / "data"
        self.port = free_port()
        self._frozen: list[int] = []
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self._bin / tool), *args]
        if os.geteuid() != self._user.pw_uid:
            command = ["runuser", "-u", self._user.pw_name, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise AssertionError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}\n{log}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "30", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def _pids(self) -> list[int]:
        """The postmaster and every process it started (backends, checkpointer, walwriter...)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        return [postmaster, *map(int, children)]

    def freeze(self) -> None:
        """Every process of the server stopped (SIGSTOP): connections are accepted by the kernel and never
        answered, as when the database's host is cut off the network."""
        self._frozen = self._pids()
        for pid in self._frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._frozen = []

    def remove(self) -> None:
        self.thaw()
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(AssertionError):
                self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def own_postgres() -> PostgresServer:
    """A started server of the test's own; skipped (failed under CI) when one cannot be made here."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        unavailable("no PostgreSQL server binaries under /usr/lib/postgresql: the test needs one it may stop")
    assert bin_dir is not None
    try:
        user = pwd.getpwnam(OS_USER)
    except KeyError:
        unavailable("no postgres OS user to run a PostgreSQL server of the test's own")
        raise
    if os.geteuid() not in (0, user.pw_uid):
        unavailable("a PostgreSQL server of the test's own needs root (runuser) or the postgres user")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unavailable("runuser is missing: cannot run a PostgreSQL server of the test's own as root")
    server = PostgresServer(bin_dir, user)
    try:
        server.start()
    except BaseException:
        server.remove()
        raise
    return server
