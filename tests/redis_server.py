"""A Redis server of the test's own on a free loopback port (so a test may stop and restart it), or the machine's."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import free_port, unavailable

MACHINE_REDIS = ("127.0.0.1", 6379)


def answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """``redis-server`` in ``directory`` on a free port, nothing saved to disk; ``stop`` and ``start`` again on the
    same port (a restart loses every key, as a Redis without persistence does)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not answers(self.port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None


def own_redis(directory: Path) -> RedisServer:
    """A started server of the test's own; skipped (failed under CI) without ``redis-server``."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed: the test needs a Redis it may stop")
    server = RedisServer(directory)
    server.start()
    return server


def redis_url(directory: Path) -> tuple[str, RedisServer | None]:
    """A Redis for a test that does not stop it: its own when ``redis-server`` is there, else the machine's."""
    if shutil.which("redis-server") is not None:
        server = own_redis(directory)
        return server.url, server
    if answers(MACHINE_REDIS[1]):
        return f"redis://{MACHINE_REDIS[0]}:{MACHINE_REDIS[1]}/0", None
    unavailable("no Redis: redis-server is not installed and nothing answers on 127.0.0.1:6379")
    raise AssertionError("unreachable")
