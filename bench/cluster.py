"""Scale-out: ``teleconsult serve`` nodes on one PostgreSQL database and one Redis, against one node without Redis
and against the PeerJS server, in one run on one machine.

Run from the repository root: ``.venv/bin/python bench/cluster.py`` (6-8 minutes on 2 cores; ``--latency-rooms
50 --rooms-per-node 300 --flat-rooms 200 --duration 4 --long-duration 6`` for a quick look). Needs PostgreSQL on
127.0.0.1:5432 (``--postgres`` for another), ``redis-server``, Node.js and npm. Method and last figures:
``docs/performance.md``, section "Cluster".

The bench creates a PostgreSQL database for the run (dropped after), starts one ``redis-server`` of its own on a
free port (nothing saved), seeds every consultation the run needs in a separate process (``bench/signaling.py``'s
seeding: consultations as they stand once the patient has opened the link, a WebSocket ticket per seat), and runs
real ``python -m teleconsult serve`` processes on that database, configured through the environment as an operator
would (``TELECONSULT_REDIS_URL`` for the cluster; a rate limit that does not throttle the load; keepalives off, as
in ``bench/signaling.py``). Clients are ``bench/signaling.py``'s (aiohttp WebSockets; offer, answer and candidate
frames of 3,272 / 3,273 / 250 bytes carrying their send time; the receiver computes the latency; one frame in 64
checked in full), run in load-generator processes of their own (``--child load``), so that every process's CPU
(utime + stime from ``/proc/<pid>/stat``) and RSS are its own: a process may hold only as many sockets as its
descriptor limit allows, and the load generator must hold all the clients.

1. **Same node or split.** One node without Redis (``LocalBus``, the reference), then two cluster nodes A and B:
   ``--latency-rooms`` rooms with both peers on A, as many with the doctor on A (the owner: the doctor's ``hello``
   claimed the room) and the patient on B. Each set paced at ``--rate`` frames/s for ``--duration`` s on its own:
   relay p50/p99, and CPU per relayed frame of the nodes and of Redis.
2. **Two nodes holding many rooms.** Two fresh nodes, ``--rooms-per-node`` rooms owned by each, the sockets spread
   as a reverse proxy without affinity would (room i: doctor on node i mod 2, patient on node (i div 2) mod 2, so
   each node holds half the sockets and half the rooms are split); joined, then paced at ``--rate`` frames/s for
   ``--long-duration`` s. Memory per socket per node: RSS growth over the sockets held (the baseline is taken after
   a few warm-up rooms).
3. **kill -9.** Node A is killed (SIGKILL); each of its clients does what ``web/static/js/signaling.js`` does after
   a dropped socket: waits 0.5 s (+-20 %) and resumes with the token of its last welcome on the surviving node,
   backing off 1, 2, 4, 8 s (+-20 %) between failed attempts (a resume answered with an error other than
   ``unauthorized`` is tried again on a new socket, where signaling.js would wait for the hello timeout;
   ``unauthorized`` is a refusal: the browser would join again with a new ticket, and its room would see it
   leave). Then every room relays one frame. The grace period (30 s) is counted from the kill; the time a client
   took is split into its steps (old socket seen closed, waiting, opening the new one, hello to welcome).
4. **``--workers 2`` against PeerJS, flat out.** One ``teleconsult serve`` process without Redis (what the workers
   cost), ``teleconsult serve --workers 2`` (Redis; the parent hands each socket to the worker its ``?room=`` key
   picks, as the call page sends it, so a room's two sockets are on one worker) and the PeerJS server
   (``bench/peerjs``), ``--flat-rooms`` rooms each, every room keeping one frame in flight for ``--duration`` s.
   The load generator shares the two cores: its share is printed. A fourth server, one process on asyncio's own
   loop (``TELECONSULT_EVENT_LOOP=asyncio``), is set beside uvloop's. Every server is joined first, then they are
   measured in turn for ``--flat-rounds`` rounds: the host drifts over minutes, so the ratio to PeerJS is taken
   within each round and judged on the median one.

Paced windows also list their frames over 10 ms, in bursts (``bench/signaling.py``'s ``stalls``); the servers' logs
are scanned for WARNING and ERROR lines and tracebacks at the end (``--logs DIR`` keeps them).

Descriptors: the bench raises its soft ``RLIMIT_NOFILE`` to the hard limit (children inherit it). Unless
``--rooms-per-node`` is given, the room count of parts 2 and 3 is the most that fits: after the kill the surviving
node holds every socket (4 per room of each node), so ``(hard limit - margin) / 4`` rooms per node.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import gc
import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiohttp import ClientError, ClientSession, ClientWebSocketResponse, TCPConnector, WSMsgType  # noqa: E402

from bench.signaling import (  # noqa: E402
    DRAIN_TIMEOUT_S,
    PEERJS_DIR,
    Generator,
    PeerJS,
    Room,
    Stats,
    Teleconsult,
    ensure_peerjs,
    expect,
    frame_sizes,
    free_port,
    machine,
    machine_busy_s,
    percentile,
    proc_cpu_s,
    proc_rss_kib,
    proc_sockets,
    raise_fd_limit,
    seed,
    stalls,
)

PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
SECRET = "bench-cluster-secret"  # noqa: S105 - the bench's own nodes
READY_TIMEOUT_S = 60.0
#: Rooms joined before a node's baseline (RSS, sockets), so that first-use caches are not per-socket cost.
WARM_ROOMS = 4
#: Descriptors a node needs besides its clients' sockets (listening socket, database pool, Redis, files).
FD_MARGIN = 200
#: What the issue sizes the cluster at.
ISSUE_ROOMS_PER_NODE = 5000
GRACE_S = 30.0
#: signaling.js after a dropped socket: 500 ms, doubling, capped at 8 s, eight attempts (each +-20 %).
BACKOFF_MS = (500, 1000, 2000, 4000, 8000, 8000, 8000, 8000)
RESUME_TIMEOUT_S = 60.0
RELAY_TIMEOUT_S = 30.0

# Targets from issue 17.
TARGET_HOP_P50_MS = 2.0
TARGET_P99_MS = 15.0
TARGET_KIB_PER_SOCKET = 20.0
TARGET_SOCKETS = 20_000
TARGET_WORKERS_VS_PEERJS = 1.3


def now_ns() -> int:
    return time.perf_counter_ns()  # CLOCK_MONOTONIC: the same clock in every process of the machine


async def sleep_until(at_ns: int) -> None:
    await asyncio.sleep(max(0.0, (at_ns - now_ns()) / 1e9))


def fmt_pair(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.2f} / {pair[1]:.2f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# --- processes the bench starts ------------------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid:
                    found.append(int(entry))
    return found


class Server:
    """A server process (a node, ``--workers`` and its workers, Redis, PeerJS), its output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, ready: str, *, count: int = 1, **popen: Any):
        self.name, self.argv, self.log, self.ready, self.count, self.popen = name, list(argv), log, ready, count, popen
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True, **self.popen
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while self.log.read_bytes().count(self.ready.encode()) < self.count:
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start; see {self.log}:\n{self.log.read_text()[-3000:]}")
            await asyncio.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def pids(self) -> list[int]:
        """The process and its children (``--workers``)."""
        return [self.pid, *children_of(self.pid)]

    def cpu_s(self) -> float:
        total = 0.0
        for pid in self.pids:
            with contextlib.suppress(OSError):
                total += proc_cpu_s(pid)
        return total

    def rss_kib(self) -> int:
        return sum(proc_rss_kib(pid) for pid in self.pids)

    def sockets(self) -> int:
        return sum(proc_sockets(pid) for pid in self.pids)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), 20)
        await self.kill()

    def problems(self) -> list[str]:
        """Tracebacks, ERROR and WARNING lines in the log (after the run): a lease handed over, a database
        unavailable (none in a run that goes well)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        lines = [line for line in text.splitlines() if any(word in line for word in ("Traceback", "ERROR", "WARNING"))]
        return lines


def node_env(database_url: str, redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    env |= {
        "TELECONSULT_DATABASE_URL": database_url,
        "TELECONSULT_SECRET_KEY": SECRET,
        "TELECONSULT_LOG_LEVEL": os.environ.get("BENCH_NODE_LOG_LEVEL", "WARNING"),
        "TELECONSULT_RATE_PER_S": "1000000",
        "TELECONSULT_RATE_BURST": "1000000",
        "TELECONSULT_MAX_PENDING_PER_IP": "1000000",
        "TELECONSULT_HEARTBEAT_S": "3600",
    }
    if redis_url:
        env["TELECONSULT_REDIS_URL"] = redis_url
    return env


def teleconsult_node(
    name: str,
    workdir: Path,
    database_url: str,
    redis_url: str | None,
    *,
    workers: int = 1,
    event_loop: str | None = None,
) -> tuple[Server, int]:
    port = free_port()
    argv = [sys.executable, "-m", "teleconsult", "--data-dir", str(workdir / "var"), "serve", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    log = workdir / f"{name}.log"
    env = node_env(database_url, redis_url)
    if event_loop:
        env["TELECONSULT_EVENT_LOOP"] = event_loop
    return Server(name, argv, log, "Teleconsult is running", count=workers, env=env), port


def redis_server(workdir: Path) -> tuple[Server, str]:
    port = free_port()
    directory = workdir / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(directory)]
    return Server("redis", argv, workdir / "redis.log", "Ready to accept connections"), f"redis://127.0.0.1:{port}/0"


async def redis_command(url: str, *words: str) -> bytes:
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"*{len(words)}\r\n".encode() + b"".join(f"${len(w)}\r\n{w}\r\n".encode() for w in words))
        await writer.drain()
        return await reader.readline()
    finally:
        writer.close()


class Postgres:
    """A database of the run's own, dropped at the end."""

    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self.name = f"teleconsult_cluster_{uuid.uuid4().hex[:8]}"
        self.url = admin_url.rsplit("/", 1)[0] + f"/{self.name}"

    async def _admin(self, sql: str) -> None:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    async def create(self) -> None:
        await self._admin(f'CREATE DATABASE "{self.name}"')

    async def drop(self) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    async def version(self) -> str:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(self.admin_url)
        try:
            async with engine.connect() as conn:
                return str((await conn.execute(text("SHOW server_version"))).scalar_one()).split()[0]
        finally:
            await engine.dispose()


# --- the load generator, in processes of its own ------------------------------------------------------------------


@dataclass(eq=False)
class Spot:
    """A room the load generator joins: its group, its tickets, the node of each peer (doctor, patient)."""

    index: int
    group: str
    tickets: tuple[str, str]
    nodes: tuple[int, int]
    room: Room | None = None
    readers: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass
class Outcome:
    """How a client that lost its node came back."""

    welcomed_ns: int | None = None
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    refused: bool = False
    #: The server's words when it refused.
    refusal: str = ""
    changed: str = ""
    #: The room's placement and which peer: "A,A doctor", "A,B patient"…
    where: str = ""
    #: When the old socket was seen closed; the attempt that succeeded: dialled, open (TCP and the WebSocket
    #: upgrade), welcomed.
    closed_ns: int = 0
    dialled_ns: int = 0
    connected_ns: int = 0


class Load(Generator):
    """One load-generator process: ``bench/signaling.py``'s reader and pacer, its rooms spread over the nodes."""

    def __init__(self, config: dict[str, Any], http: ClientSession) -> None:
        args = argparse.Namespace(rate=1, keepalive=False, trace_memory=False, server_gc=None)
        workdir = Path(tempfile.gettempdir())
        self.kind: str = config["kind"]
        target = PeerJS(http, args, workdir) if self.kind == "peerjs" else Teleconsult(http, args, workdir)
        target.port = config["ports"][0]
        super().__init__(target, args)
        self.http = http
        self.ports: list[int] = config["ports"]
        self.spots = [
            Spot(s["index"], s["group"], (s["tickets"][0], s["tickets"][1]), (s["nodes"][0], s["nodes"][1]))
            for s in config["spots"]
        ]
        self.outcomes: dict[tuple[int, int], Outcome] = {}
        self.returning: list[asyncio.Task[None]] = []

    def url(self, node: int, spot: Spot) -> str:
        """As the call page does, the socket names its room (``--workers`` sends a room's sockets to one worker)."""
        return f"http://127.0.0.1:{self.ports[node]}/ws?room={spot.index:08x}"

    async def join_spot(self, spot: Spot) -> Room:
        if self.kind == "peerjs":
            return await self.target.join(spot.index)
        doctor_ticket, patient_ticket = spot.tickets
        doctor = await self.http.ws_connect(self.url(spot.nodes[0], spot))
        await doctor.send_str(json.dumps({"type": "hello", "v": 1, "ticket": doctor_ticket}))
        doctor_welcome = await expect(doctor, "welcome")
        patient = await self.http.ws_connect(self.url(spot.nodes[1], spot))
        await patient.send_str(json.dumps({"type": "hello", "v": 1, "ticket": patient_ticket}))
        patient_welcome = await expect(patient, "welcome")
        lobby = await expect(doctor, "lobby", lambda f: bool(f["waiting"]))
        await doctor.send_str(json.dumps({"type": "admit", "peer_id": lobby["waiting"][0]["peer_id"]}))
        await expect(patient, "admitted")
        await expect(doctor, "peer-joined")
        welcomes = (doctor_welcome, patient_welcome)
        return Room([doctor, patient], [w["peer_id"] for w in welcomes], resume=[w["resume"] for w in welcomes])

    def rooms_of(self, groups: Collection[str]) -> list[Room]:
        return [s.room for s in self.spots if s.group in groups and s.room is not None]

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        match cmd["cmd"]:
            case "join":
                return await self.join_groups(cmd["groups"], cmd["concurrency"])
            case "freeze":
                gc.collect()
                gc.freeze()
                return {}
            case "run":
                return await self.run(cmd)
            case "arm":
                self.arm(cmd["dead"], cmd["survivor"])
                return {}
            case "resumes":
                return await self.resumes(cmd["seconds"])
            case "relay":
                return await self.relay()
            case "quit":
                await self.quit()
                return {}
        raise ValueError(f"unknown command {cmd['cmd']!r}")

    async def join_groups(self, groups: Sequence[str], concurrency: int) -> dict[str, Any]:
        semaphore = asyncio.Semaphore(concurrency)
        problems: list[str] = []

        async def one(spot: Spot) -> None:
            try:
                async with semaphore:
                    spot.room = await self.join_spot(spot)
            except Exception as error:  # counted and reported: a room that did not join
                problems.append(repr(error)[:300])
                return
            self.target.build_frames(spot.room)
            # Read from the start, as bench/signaling.py does.
            spot.readers = [asyncio.create_task(self.read(spot.room, side)) for side in (0, 1)]

        started = now_ns()
        await asyncio.gather(*(one(s) for s in self.spots if s.group in groups))
        return {"secs": (now_ns() - started) / 1e9, "failed": len(problems), "problems": problems[:3]}

    async def run(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Flat out or paced on the rooms of ``groups``; latencies of the frames sent in [t0, t1]."""
        if cmd["mode"] == "flat-c":
            return await self.run_native(cmd)
        self.rooms = self.rooms_of(cmd["groups"])
        stats = self.stats = Stats(flat=cmd["mode"] == "flat")
        stats.window = (cmd["t0"], cmd["t1"])
        self.args.rate = cmd["rate"]
        stop = asyncio.Event()
        pacer: asyncio.Task[None] | None = None
        gc.disable()
        try:
            if stats.flat:
                for room in self.rooms:
                    await room.send_next(stats)
            elif self.rooms:
                pacer = asyncio.create_task(self.pace(stop))
            await sleep_until(cmd["t0"])
            received0 = stats.received
            await sleep_until(cmd["t1"])
            received1 = stats.received
            stats.stop = True
            stop.set()
            if pacer is not None:
                await pacer
            if stats.received < stats.sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stats.drained.wait(), DRAIN_TIMEOUT_S)
        finally:
            gc.enable()
        return {
            "rooms": len(self.rooms),
            "frames": received1 - received0,
            "lost": stats.sent - stats.received,
            "latencies": stats.latencies,
            "bad": stats.bad,
            "verified": stats.verified,
            "problem": stats.first_problem,
            "slow": stats.slow[:20_000],
        }

    async def run_native(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Flat out with ``bench/flatload.c``: the rooms' sockets, joined here, handed to it as they are."""
        rooms = self.rooms_of(cmd["groups"])
        transports = [ws._writer.transport for room in rooms for ws in room.ws]  # the bench reaches into its own client
        for transport in transports:
            transport.pause_reading()  # the sockets are flatload's until it exits
        fds = [transport.get_extra_info("socket").fileno() for transport in transports]
        description = [struct.pack("<I", len(rooms))]
        for index, room in enumerate(rooms):
            description.append(struct.pack("<ii", fds[2 * index], fds[2 * index + 1]))
            for side in (0, 1):
                for head, tail in room.frames[side]:
                    for piece in (head.encode(), tail.encode()):
                        description.append(struct.pack("<I", len(piece)) + piece)
        work = Path(tempfile.mkdtemp(prefix="flatload-"))
        try:
            (work / "rooms").write_bytes(b"".join(description))
            process = await asyncio.create_subprocess_exec(
                cmd["flatload"],
                str(work / "rooms"),
                str(work / "out"),
                str(cmd["t0"]),
                str(cmd["t1"]),
                pass_fds=fds,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await process.communicate()
            latencies = array.array("q", (work / "out").read_bytes() if (work / "out").exists() else b"")
        finally:
            shutil.rmtree(work, ignore_errors=True)
            for transport in transports:
                transport.resume_reading()
        if process.returncode != 0:
            return {
                "rooms": len(rooms),
                "frames": 0,
                "lost": 0,
                "latencies": [],
                "bad": 0,
                "verified": 0,
                "problem": f"flatload: {err.decode(errors='replace')[:300]}",
                "slow": [],
            }
        frames, lost, _sent, _other = (int(x) for x in out.split())
        return {
            "rooms": len(rooms),
            "frames": frames,
            "lost": lost,
            "latencies": latencies.tolist(),
            "bad": 0,
            "verified": 0,
            "problem": err.decode(errors="replace")[:300],
            "slow": [],
        }

    def arm(self, dead: int, survivor: int) -> None:
        """The clients on node ``dead`` will resume on ``survivor`` once their socket closes."""
        self.stats = Stats(stop=True)  # a socket closing is expected now
        for spot in self.spots:
            for side in (0, 1):
                if spot.nodes[side] == dead and spot.room is not None:
                    where = f"{'AB'[spot.nodes[0]]},{'AB'[spot.nodes[1]]} {('doctor', 'patient')[side]}"
                    outcome = self.outcomes[(spot.index, side)] = Outcome(where=where)
                    self.returning.append(asyncio.create_task(self.come_back(spot, side, survivor, outcome)))

    async def come_back(self, spot: Spot, side: int, survivor: int, outcome: Outcome) -> None:
        room = spot.room
        assert room is not None
        await asyncio.gather(spot.readers[side], return_exceptions=True)  # the reader ends when the socket closes
        outcome.closed_ns = now_ns()
        for backoff in BACKOFF_MS:
            await asyncio.sleep(backoff * (0.8 + random.random() * 0.4) / 1000)  # spreading retries, not a secret
            outcome.attempts += 1
            dialled = now_ns()
            try:
                ws = await self.http.ws_connect(self.url(survivor, spot))
            except (ClientError, OSError) as error:
                outcome.errors.append(f"connect: {type(error).__name__}")
                continue
            connected = now_ns()
            frame = await self.hello_resume(ws, room.resume[side])
            answered = now_ns()
            if frame.get("type") == "welcome":
                outcome.welcomed_ns = now_ns()
                outcome.dialled_ns, outcome.connected_ns = dialled, connected
                if frame["peer_id"] != room.ids[side] or frame["state"] != "admitted":
                    outcome.changed = f"came back as {frame['peer_id']} {frame['state']}, was {room.ids[side]}"
                room.ws[side], room.resume[side] = ws, frame["resume"]
                spot.readers[side] = asyncio.create_task(self.read(room, side))
                return
            await ws.close()
            code = str(frame.get("code", frame.get("type")))
            outcome.errors.append(code)
            if code == "unauthorized":
                outcome.refused = True
                # The server's hello deadline runs from its upgrade response: a refusal soon after the hello was
                # sent means this client was slow to send it (its own loop), one 10 s after means the server's.
                outcome.refusal = f"{frame.get('message')} {(answered - connected) / 1e9:.1f} s after the hello"
                return

    @staticmethod
    async def hello_resume(ws: ClientWebSocketResponse, token: str) -> dict[str, Any]:
        await ws.send_str(json.dumps({"type": "hello", "v": 1, "resume": token}))
        try:
            msg = await ws.receive(timeout=RESUME_TIMEOUT_S)
        except TimeoutError:
            return {"type": "timeout"}
        if msg.type is not WSMsgType.TEXT:
            return {"type": f"closed {ws.close_code} {msg.extra or ''}".strip()}
        return dict(json.loads(msg.data))

    async def resumes(self, seconds: float) -> dict[str, Any]:
        if self.returning:
            await asyncio.wait(self.returning, timeout=seconds)
        outcomes = list(self.outcomes.values())
        errors = Counter(e for o in outcomes for e in o.errors)
        return {
            "clients": len(outcomes),
            "welcomed": [o.welcomed_ns for o in outcomes if o.welcomed_ns is not None],
            "steps": [
                (o.closed_ns, o.dialled_ns, o.connected_ns, o.welcomed_ns)
                for o in outcomes
                if o.welcomed_ns is not None
            ],
            "refused": sum(o.refused for o in outcomes),
            "refused_where": dict(Counter(o.where for o in outcomes if o.refused)),
            "refusals": dict(Counter(o.refusal for o in outcomes if o.refused)),
            "errors": dict(errors),
            "retried": sum(1 for o in outcomes if o.welcomed_ns is not None and o.attempts > 1),
            "changed": [o.changed for o in outcomes if o.changed][:3],
            "changed_count": sum(1 for o in outcomes if o.changed),
            "pending": sum(1 for t in self.returning if not t.done()),
        }

    async def relay(self) -> dict[str, Any]:
        """One frame through every room."""
        rooms = self.rooms_of({s.group for s in self.spots})
        stats = self.stats = Stats(stop=True)  # the readers send nothing back
        stats.window = (0, 1 << 62)
        failed = 0
        for room in rooms:
            try:
                await room.send_next(stats)
            except (ClientError, ConnectionError, RuntimeError):
                failed += 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RELAY_TIMEOUT_S):
                while True:
                    stats.drained.clear()  # set by a reader whenever it has caught up with what was sent
                    if stats.received >= stats.sent:
                        break
                    await stats.drained.wait()
        return {"rooms": len(rooms), "relayed": stats.received, "unsent": failed, "problem": stats.first_problem}

    async def quit(self) -> None:
        self.stats.stop = True
        tasks = [t for s in self.spots for t in s.readers] + self.returning
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for room in self.rooms_of({s.group for s in self.spots}):
            for ws in room.ws:
                with contextlib.suppress(Exception):
                    await ws.close()


async def load_child() -> None:
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    config = json.loads(await reader.readline())
    async with ClientSession(connector=TCPConnector(limit=0)) as http:
        load = Load(config, http)
        while line := await reader.readline():
            cmd = json.loads(line)
            try:
                reply = await load.handle(cmd)
            except Exception as error:
                reply = {"error": repr(error)}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
            if cmd["cmd"] == "quit":
                return


class LoadProcess:
    """The parent's handle on one load-generator process (JSON lines on its stdin and stdout)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        self.clients_on: Counter[int] = Counter()

    async def start(self, kind: str, ports: list[int], spots: list[dict[str, Any]]) -> None:
        for spot in spots:
            self.clients_on.update(spot["nodes"])
        with self.log.open("ab") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--child",
                "load",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                limit=1 << 30,
            )
        await self._send({"kind": kind, "ports": ports, "spots": spots})

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()

    async def ask(self, cmd: str, **values: Any) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        await self._send({"cmd": cmd} | values)
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator exited; see {self.log}:\n{self.log.read_text()[-2000:]}")
        reply = dict(json.loads(line))
        if "error" in reply:
            raise RuntimeError(f"load generator, {cmd}: {reply['error']}")
        return reply

    async def close(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ask("quit"), 30)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()


class Loads:
    """Several load-generator processes: a command goes to all at once, the replies come back as a list."""

    def __init__(self, workdir: Path, name: str, count: int) -> None:
        self.procs = [LoadProcess(workdir / f"load-{name}-{i}.log") for i in range(count)]

    async def start(self, kind: str, ports: list[int], spots: list[dict[str, Any]]) -> None:
        count = len(self.procs)
        await asyncio.gather(
            *(p.start(kind, ports, [s for s in spots if s["index"] % count == i]) for i, p in enumerate(self.procs))
        )

    async def ask(self, cmd: str, **values: Any) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(p.ask(cmd, **values) for p in self.procs)))

    def cpu_s(self) -> float:
        """The load processes' CPU, with that of their live children (``flatload``)."""
        total = 0.0
        for proc in self.procs:
            total += proc_cpu_s(proc.pid)
            for child in children_of(proc.pid):
                with contextlib.suppress(OSError):
                    total += proc_cpu_s(child)
        return total

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self.procs))

    async def join(self, groups: list[str], concurrency: int) -> float:
        """Join the rooms of ``groups`` in every process; raises if any room failed to join; returns seconds."""
        each = max(1, concurrency // len(self.procs))
        replies = await self.ask("join", groups=groups, concurrency=each)
        failed = sum(r["failed"] for r in replies)
        if failed:
            problems = [p for r in replies for p in r["problems"]]
            raise RuntimeError(f"{failed} rooms did not join: {problems[:3]}")
        return max(float(r["secs"]) for r in replies)


# --- one measured window ------------------------------------------------------------------------------------------


@dataclass
class Window:
    label: str
    rooms: int
    mode: str
    seconds: float
    frames: int
    lost: int
    p50_ms: float
    p99_ms: float
    node_cpu_s: float
    redis_cpu_s: float
    gen_cpu_s: float
    other_cpu_s: float
    problem: str = ""
    #: Frames over 10 ms, in bursts (bench/signaling.py's ``stalls``).
    stalls: str = ""
    #: Part 4: the round the window was measured in.
    round: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds

    def per_frame_us(self, cpu_s: float) -> float:
        return cpu_s / max(1, self.frames) * 1e6

    def pct(self, cpu_s: float) -> float:
        """Of one core."""
        return cpu_s / self.seconds * 100


WINDOW_HEADER = (
    f"  {'setup':<40}{'rooms':>6} {'mode':<6}{'secs':>5}{'p50 ms':>8}{'p99 ms':>8}{'frames/s':>9}"
    f"{'node us/f':>10}{'redis us/f':>11}{'node cpu':>9}{'redis':>6}{'gen cpu':>8}{'other':>6}{'lost':>6}"
)


def window_row(w: Window) -> str:
    redis_us = f"{w.per_frame_us(w.redis_cpu_s):>11.1f}" if w.redis_cpu_s else f"{'-':>11}"
    redis_pct = f"{w.pct(w.redis_cpu_s):>5.0f}%" if w.redis_cpu_s else f"{'-':>6}"
    return (
        f"  {w.label:<40}{w.rooms:>6} {w.mode:<6}{w.seconds:>5.0f}{w.p50_ms:>8.2f}{w.p99_ms:>8.2f}{w.fps:>9.0f}"
        f"{w.per_frame_us(w.node_cpu_s):>10.1f}{redis_us}{w.pct(w.node_cpu_s):>8.0f}%{redis_pct}"
        f"{w.pct(w.gen_cpu_s):>7.0f}%{w.pct(w.other_cpu_s):>5.0f}%{w.lost:>6}"
    )


# --- the run --------------------------------------------------------------------------------------------------------


@dataclass
class Tickets:
    """The seeded (doctor, patient) tickets, handed out in order: a ticket opens a seat once."""

    pairs: list[tuple[str, str]]
    taken: int = 0

    def spots(self, group: str, placements: Sequence[tuple[int, int]], first_index: int) -> list[dict[str, Any]]:
        out = []
        for i, nodes in enumerate(placements):
            out.append({"index": first_index + i, "group": group, "tickets": self.pairs[self.taken], "nodes": nodes})
            self.taken += 1
        return out


def build_flatload(workdir: Path) -> Path:
    """``bench/flatload.c`` compiled for this run (gcc, -O2)."""
    binary = workdir / "flatload"
    source = Path(__file__).resolve().parent / "flatload.c"
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(binary), str(source)], check=True)
    return binary


def spread(rooms: int) -> list[tuple[int, int]]:
    """As a reverse proxy without affinity spreads sockets: room i has its doctor on node i mod 2 (the owner) and its
    patient on node (i div 2) mod 2; each node owns half the rooms and holds half the sockets; half the rooms are
    split."""
    return [(i % 2, (i // 2) % 2) for i in range(rooms)]


#: The warm-up rooms of a two-node cluster: one of each placement.
WARM_PLACEMENTS = [(0, 0), (1, 1), (0, 1), (1, 0)]
SAME, SPLIT, LOCAL = "cluster, both peers on node A", "cluster, doctor on A, patient on B", "one node, LocalBus (ref.)"
WORKERS, PEERJS = "teleconsult serve --workers 2", "PeerJS server (one process)"
SINGLE = "teleconsult serve, one process"
SINGLE_ASYNCIO = "teleconsult serve, asyncio loop"
#: A server of part 4: its label, process, load generator, the modes it is measured in, and whether Redis counts.
FlatSetup = tuple[str, "Server", "Loads", tuple[str, ...], bool]
#: The label suffix of a window whose load is bench/flatload.c.
NATIVE = ", C load"


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, db: Postgres, redis: Server, redis_url: str) -> None:
        self.args, self.tmp, self.db, self.redis, self.redis_url = args, tmp, db, redis, redis_url
        self.tickets = Tickets([])
        self.latency: list[Window] = []
        self.held: dict[str, Any] = {}
        self.kill: dict[str, Any] = {}
        self.flat: list[Window] = []
        self.server_problems: list[str] = []
        self.flatload = build_flatload(tmp)

    def node(
        self, name: str, *, cluster: bool = True, workers: int = 1, event_loop: str | None = None
    ) -> tuple[Server, int]:
        redis_url = self.redis_url if cluster else None
        return teleconsult_node(name, self.tmp, self.db.url, redis_url, workers=workers, event_loop=event_loop)

    def collect(self, *servers: Server) -> None:
        self.server_problems += [f"{s.name}: {line}" for s in servers for line in s.problems()]

    async def window(
        self,
        label: str,
        loads: Loads,
        nodes: Sequence[Server],
        *,
        groups: list[str],
        mode: str = "paced",
        duration: float | None = None,
        warmup: float = 1.0,
        with_redis: bool = True,
    ) -> Window:
        """Every load process runs ``mode`` on the rooms of ``groups``; CPU read at both ends of the window."""
        args = self.args
        t0 = now_ns() + int(warmup * 1e9)
        t1 = t0 + int((duration or args.duration) * 1e9)
        each = max(1, args.rate // len(loads.procs))
        asked = asyncio.create_task(
            loads.ask("run", groups=groups, mode=mode, rate=each, t0=t0, t1=t1, flatload=str(self.flatload))
        )

        def sample() -> tuple[float, float, float, float]:
            redis = self.redis.cpu_s() if with_redis else 0.0
            return sum(n.cpu_s() for n in nodes), redis, loads.cpu_s(), machine_busy_s()

        await sleep_until(t0)
        before = sample()
        await sleep_until(t1)
        after = sample()
        replies = await asyncio.wait_for(asked, DRAIN_TIMEOUT_S + 60)
        node, redis, gen, busy = (b - a for a, b in zip(before, after, strict=True))
        latencies = sorted(x for r in replies for x in r["latencies"])
        slow = [(sent, late) for r in replies for sent, late in r["slow"]]
        problems = [r["problem"] for r in replies if r["problem"]]
        problems += [f"{r['bad']} frames failed the check" for r in replies if r["bad"]]
        w = Window(
            label=label,
            rooms=sum(r["rooms"] for r in replies),
            mode=mode,
            seconds=(t1 - t0) / 1e9,
            frames=sum(r["frames"] for r in replies),
            lost=sum(r["lost"] for r in replies),
            p50_ms=percentile(latencies, 0.50),
            p99_ms=percentile(latencies, 0.99),
            node_cpu_s=node,
            redis_cpu_s=redis,
            gen_cpu_s=gen,
            other_cpu_s=busy - node - redis - gen,
            problem=f"{label}: {'; '.join(problems)[:300]}" if problems else "",
            stalls=stalls(slow, None, t0) if mode == "paced" else "",
        )
        print(window_row(w), flush=True)
        if mode == "paced":
            print(f"    {w.stalls}", flush=True)
        return w

    # --- 1. same node or split ---------------------------------------------------------------------------------

    async def part_latency(self) -> None:
        args, n = self.args, self.args.latency_rooms
        print(f"\n1. same node or split: {n} rooms per set, paced at {args.rate} frames/s, {args.duration:g} s each")
        print(WINDOW_HEADER, flush=True)
        local, port = self.node("local", cluster=False)
        loads = Loads(self.tmp, "local", 1)
        try:
            await local.start()
            await loads.start(
                "teleconsult",
                [port],
                self.tickets.spots("warm", [(0, 0)] * 2, 0) + self.tickets.spots("local", [(0, 0)] * n, 2),
            )
            await loads.join(["warm"], args.join_concurrency)
            await loads.join(["local"], args.join_concurrency)
            await loads.ask("freeze")
            self.latency.append(await self.window(LOCAL, loads, [local], groups=["local"], with_redis=False))
        finally:
            await loads.close()
            await local.stop()
            self.collect(local)
        a, port_a = self.node("latency-a")
        b, port_b = self.node("latency-b")
        loads = Loads(self.tmp, "latency", 1)
        try:
            await asyncio.gather(a.start(), b.start())
            spots = self.tickets.spots("warm", WARM_PLACEMENTS, 0)
            spots += self.tickets.spots("same", [(0, 0)] * n, 4) + self.tickets.spots("split", [(0, 1)] * n, 4 + n)
            await loads.start("teleconsult", [port_a, port_b], spots)
            await loads.join(["warm"], args.join_concurrency)
            await loads.join(["same", "split"], args.join_concurrency)
            await loads.ask("freeze")
            self.latency.append(await self.window(SAME, loads, [a, b], groups=["same"]))
            self.latency.append(await self.window(SPLIT, loads, [a, b], groups=["split"]))
        finally:
            await loads.close()
            await asyncio.gather(a.stop(), b.stop())
            self.collect(a, b)

    # --- 2. two nodes holding many rooms, 3. kill -9 of one --------------------------------------------------------

    async def part_held_and_kill(self) -> None:
        args, n = self.args, self.args.rooms_per_node
        total = 2 * n
        print(
            f"\n2. two nodes, {n} rooms owned by each, {2 * total} sockets spread without affinity (half the rooms"
            f" split), {args.generators} load-generator processes; paced at {args.rate} frames/s, "
            f"{args.long_duration:g} s",
            flush=True,
        )
        await redis_command(self.redis_url, "FLUSHALL")
        a, port_a = self.node("node-a")
        b, port_b = self.node("node-b")
        nodes = [a, b]
        loads = Loads(self.tmp, "held", args.generators)
        held = self.held
        try:
            await asyncio.gather(a.start(), b.start())
            spots = self.tickets.spots("warm", WARM_PLACEMENTS, 0) + self.tickets.spots("main", spread(total), 4)
            await loads.start("teleconsult", [port_a, port_b], spots)
            await loads.join(["warm"], args.join_concurrency)
            await asyncio.sleep(1.0)
            base = [(s.rss_kib(), s.sockets()) for s in nodes]
            cpu0, redis0 = [s.cpu_s() for s in nodes], self.redis.cpu_s()
            join_s = await loads.join(["main"], args.join_concurrency)
            join_cpu = sum(s.cpu_s() - c for s, c in zip(nodes, cpu0, strict=True))
            await asyncio.sleep(1.0)
            await loads.ask("freeze")
            grown = [(s.rss_kib() - r, s.sockets() - k) for s, (r, k) in zip(nodes, base, strict=True)]
            held |= {
                "rooms": total,
                "join_s": join_s,
                "join_cpu_ms": join_cpu / total * 1000,
                "join_redis_ms": (self.redis.cpu_s() - redis0) / total * 1000,
                "sockets": [k for _r, k in grown],
                "idle_kib": [r / max(1, k) for r, k in grown],
                "rss_mib": [s.rss_kib() / 1024 for s in nodes],
            }
            print(
                f"  joined {total} rooms in {join_s:.0f} s ({total / join_s:.0f} rooms/s): {held['join_cpu_ms']:.1f}"
                f" ms of node CPU and {held['join_redis_ms']:.2f} ms of Redis CPU per room; sockets held (A, B)"
                f" {held['sockets'][0]} + {held['sockets'][1]}; RSS {held['rss_mib'][0]:.0f} / "
                f"{held['rss_mib'][1]:.0f} MiB; KiB per socket once joined {held['idle_kib'][0]:.1f} / "
                f"{held['idle_kib'][1]:.1f}",
                flush=True,
            )
            print(WINDOW_HEADER)
            held["window"] = await self.window(
                "two nodes, spread", loads, nodes, groups=["main"], duration=args.long_duration
            )
            held["load_kib"] = [
                (s.rss_kib() - r) / max(1, k) for s, (r, _k), k in zip(nodes, base, held["sockets"], strict=True)
            ]
            print(
                f"  KiB per socket after the paced phase (A / B): {held['load_kib'][0]:.1f} / "
                f"{held['load_kib'][1]:.1f}",
                flush=True,
            )
            await self.kill_a(loads, a, b, base[1][1])
        finally:
            await loads.close()
            await asyncio.gather(a.stop(), b.stop())
            self.collect(a, b)

    async def kill_a(self, loads: Loads, a: Server, b: Server, b_base_sockets: int) -> None:
        print("\n3. kill -9 of node A; its clients resume on node B (warm-up rooms included)", flush=True)
        await loads.ask("arm", dead=0, survivor=1)
        b_cpu0 = b.cpu_s()
        killed = now_ns()
        await a.kill()
        back = await loads.ask("resumes", seconds=GRACE_S * 4)
        b_cpu = b.cpu_s() - b_cpu0
        welcomed = sorted(t - killed for r in back for t in r["welcomed"])
        steps = [step for r in back for step in r["steps"]]

        def spread_s(values: list[int]) -> tuple[float, float]:
            ordered = sorted(values)
            return percentile(ordered, 0.5) / 1000, percentile(ordered, 0.99) / 1000

        noticed = spread_s([closed - killed for closed, _d, _c, _w in steps])
        waited = spread_s([dialled - closed for closed, dialled, _c, _w in steps])
        connect = spread_s([connected - dialled for _c, dialled, connected, _w in steps])
        hello = spread_s([welcomed - connected for _c, _d, connected, welcomed in steps])
        relay = await loads.ask("relay")
        errors: Counter[str] = Counter()
        refused_where: Counter[str] = Counter()
        refusals: Counter[str] = Counter()
        for r in back:
            errors.update(r["errors"])
            refused_where.update(r["refused_where"])
            refusals.update(r["refusals"])
        clients = sum(r["clients"] for r in back)
        k = self.kill = {
            "clients": clients,
            "resumed": len(welcomed),
            "first_s": welcomed[0] / 1e9 if welcomed else float("nan"),
            "p50_s": percentile(welcomed, 0.5) / 1000,
            "p99_s": percentile(welcomed, 0.99) / 1000,
            "last_s": welcomed[-1] / 1e9 if welcomed else float("nan"),
            "late": clients - sum(1 for t in welcomed if t <= GRACE_S * 1e9),
            "refused": sum(r["refused"] for r in back),
            "refused_where": dict(refused_where),
            "refusals": dict(refusals),
            "retried": sum(r["retried"] for r in back),
            "errors": dict(errors),
            "changed": sum(r["changed_count"] for r in back),
            "changed_examples": [c for r in back for c in r["changed"]][:3],
            "pending": sum(r["pending"] for r in back),
            "rooms": sum(r["rooms"] for r in relay),
            "relaying": sum(r["relayed"] for r in relay),
            "unsent": sum(r["unsent"] for r in relay),
            "relay_problem": "; ".join(r["problem"] for r in relay if r["problem"])[:300],
            "b_cpu_ms": b_cpu / max(1, len(welcomed)) * 1000,
            "b_sockets": b.sockets() - b_base_sockets,
            "steps": {"noticed": noticed, "waited": waited, "connect": connect, "hello": hello},
        }
        print(
            f"  {k['clients']} clients were on A; resumed on B: {k['resumed']}, first {k['first_s']:.2f} s, p50"
            f" {k['p50_s']:.2f} s, p99 {k['p99_s']:.2f} s, last {k['last_s']:.2f} s after the kill\n"
            f"  not back within the {GRACE_S:.0f} s grace: {k['late']}; refused (unauthorized): {k['refused']}"
            + (f" (by room placement doctor,patient and peer: {k['refused_where']})" if k["refused_where"] else "")
            + (f" (the server said: {k['refusals']})" if k["refusals"] else "")
            + ";"
            f" back after more than one attempt: {k['retried']}; answers other than welcome: {k['errors'] or 'none'}\n"
            f"  same peer id and admission: {k['resumed'] - k['changed']} of {k['resumed']}; rooms relaying again:"
            f" {k['relaying']} of {k['rooms']}; node B: {k['b_cpu_ms']:.1f} ms of CPU per client resumed,"
            f" {k['b_sockets']} client sockets held after\n  where the time went, p50 / p99 (s): the old socket seen"
            f" closed {fmt_pair(k['steps']['noticed'])} after the kill; then waiting before the attempt that worked"
            f" {fmt_pair(k['steps']['waited'])}; opening the socket (TCP, upgrade) {fmt_pair(k['steps']['connect'])};"
            f" hello to welcome {fmt_pair(k['steps']['hello'])}",
            flush=True,
        )
        for extra in (
            k["changed_examples"],
            k["pending"] and f"{k['pending']} clients still trying",
            k["unsent"] and f"{k['unsent']} rooms could not send",
            k["relay_problem"],
        ):
            if extra:
                print(f"  {extra}")

    # --- 4. --workers 2 against PeerJS, flat out -------------------------------------------------------------------

    async def part_flat(self) -> None:
        """Every server is started and joined first, then measured in turn, round after round: the host's speed
        drifts by tens of percent over minutes here, and a ratio of two windows a minute apart measured the drift."""
        args, n = self.args, self.args.flat_rooms
        print(
            f"\n4. flat out: {n} rooms, {args.duration:g} s, {args.flat_generators} load-generator process(es),"
            f" {args.flat_rounds} rounds, each server in turn"
        )
        async with contextlib.AsyncExitStack() as stack:
            setups = [
                await self.flat_setup(stack, "single", SINGLE, ("flat", "flat-c"), cluster=False),
                await self.flat_setup(
                    stack, "asyncio", SINGLE_ASYNCIO, ("flat-c",), cluster=False, event_loop="asyncio"
                ),
                await self.flat_setup(stack, "workers", WORKERS, ("flat", "flat-c"), workers=2),
                await self.flat_peerjs(stack),
            ]
            print(WINDOW_HEADER, flush=True)
            for round_ in range(args.flat_rounds):
                for label, server, loads, modes, with_redis in setups:
                    for mode in modes:
                        suffix = NATIVE if mode == "flat-c" else ""
                        window = await self.window(
                            label + suffix,
                            loads,
                            [server],
                            groups=["flat"],
                            mode=mode,
                            warmup=2.0,
                            with_redis=with_redis,
                        )
                        window.round = round_
                        self.flat.append(window)

    async def flat_setup(
        self,
        stack: contextlib.AsyncExitStack,
        name: str,
        label: str,
        modes: tuple[str, ...],
        *,
        cluster: bool = True,
        workers: int = 1,
        event_loop: str | None = None,
    ) -> FlatSetup:
        """A Teleconsult server with its rooms joined and its load generator waiting (stopped by ``stack``)."""
        server, port = self.node(name, cluster=cluster, workers=workers, event_loop=event_loop)
        stack.push_async_callback(self.stop_and_collect, server)
        await server.start()
        spots = self.tickets.spots("warm", [(0, 0)] * WARM_ROOMS, 0)
        spots += self.tickets.spots("flat", [(0, 0)] * self.args.flat_rooms, WARM_ROOMS)
        loads = await self.flat_joined(stack, name, "teleconsult", port, spots)
        return label, server, loads, modes, cluster

    async def flat_peerjs(self, stack: contextlib.AsyncExitStack) -> FlatSetup:
        ensure_peerjs()
        port = free_port()
        argv = ["node", "server.js", str(port), str(24 * 3600 * 1000)]
        peerjs = Server("peerjs", argv, self.tmp / "peerjs.log", "ready", cwd=PEERJS_DIR)
        stack.push_async_callback(peerjs.stop)
        await peerjs.start()
        groups = ["warm"] * WARM_ROOMS + ["flat"] * self.args.flat_rooms
        spots = [{"index": i, "group": g, "tickets": ("", ""), "nodes": (0, 0)} for i, g in enumerate(groups)]
        loads = await self.flat_joined(stack, "peerjs", "peerjs", port, spots)
        return PEERJS, peerjs, loads, ("flat", "flat-c"), False

    async def flat_joined(
        self, stack: contextlib.AsyncExitStack, name: str, kind: str, port: int, spots: list[dict[str, Any]]
    ) -> Loads:
        """The load generator of one part-4 server, its rooms joined, waiting for the rounds (closed by ``stack``)."""
        loads = Loads(self.tmp, name, self.args.flat_generators)
        stack.push_async_callback(loads.close)
        await loads.start(kind, [port], spots)
        await loads.join(["warm", "flat"], self.args.join_concurrency)
        await loads.ask("freeze")
        return loads

    async def stop_and_collect(self, server: Server) -> None:
        await server.stop()
        self.collect(server)

    # --- the figures against the issue's targets ----------------------------------------------------------------

    def report(self) -> None:
        args = self.args
        cores = os.cpu_count() or 1
        flat = median_windows(self.flat)
        windows = [*self.latency, *([self.held["window"]] if "window" in self.held else []), *flat]
        print(f"\nsummary (part 4: each server's median round of {args.flat_rounds})")
        print(WINDOW_HEADER)
        for w in windows:
            print(window_row(w))
        print(
            "  node us/f: CPU of the Teleconsult (or PeerJS) processes per relayed frame, every node or worker"
            " together;\n  redis us/f: redis-server's; cpu columns: % of one core; gen: the load generator's"
            " processes; other: the rest of the machine"
        )
        print(f"\ntargets (issue 17); {cores} cores shared by the nodes, Redis, PostgreSQL and the load generator:")
        by = {w.label: w for w in self.latency}
        if SAME in by and SPLIT in by:
            same, split = by[SAME], by[SPLIT]
            hop = split.p50_ms - same.p50_ms
            local = f"; one node without Redis: {by[LOCAL].p50_ms:.2f} ms" if LOCAL in by else ""
            print(
                f"  the cross-node hop adds under {TARGET_HOP_P50_MS:g} ms at p50: split {split.p50_ms:.2f} ms, both on"
                f" one node {same.p50_ms:.2f} ms: {hop:+.2f} ms{local}: {verdict(hop < TARGET_HOP_P50_MS)}"
            )
            p99s = [(f"split {split.p99_ms:.2f} ms", split.p99_ms)]
            if "window" in self.held:
                p99s.append(
                    (
                        f"two nodes holding {self.held['rooms']} rooms {self.held['window'].p99_ms:.2f} ms",
                        self.held["window"].p99_ms,
                    )
                )
            worst = max(p for _t, p in p99s)
            print(
                f"  p99 under {TARGET_P99_MS:g} ms paced: {', '.join(t for t, _p in p99s)}:"
                f" {verdict(worst < TARGET_P99_MS)}"
            )
        if self.held:
            h = self.held
            sockets = sum(h["sockets"])
            kib = max(*h["idle_kib"], *h.get("load_kib", []))
            light = kib < TARGET_KIB_PER_SOCKET
            size = (
                f"{verdict(light)} at this size; {TARGET_SOCKETS} sockets NOT held (the descriptor limit, above)"
                if sockets < TARGET_SOCKETS
                else verdict(light)
            )
            print(
                f"  {TARGET_SOCKETS} sockets held under {TARGET_KIB_PER_SOCKET:g} KiB per socket per node: {sockets}"
                f" held; A / B {h['idle_kib'][0]:.1f} / {h['idle_kib'][1]:.1f} KiB once joined, "
                + (f"{h['load_kib'][0]:.1f} / {h['load_kib'][1]:.1f} after the paced phase" if "load_kib" in h else "")
                + f": {size}"
            )
        if self.kill:
            k = self.kill
            ok = k["resumed"] == k["clients"] and k["late"] == 0 and k["refused"] == 0
            print(
                f"  after kill -9 of a node owning {args.rooms_per_node} rooms, every client resumed within the grace"
                f" period with none refused: {k['resumed']} of {k['clients']}, the last {k['last_s']:.2f} s after the"
                f" kill, {k['late']} late, {k['refused']} refused: {verdict(ok)}; rooms relaying again"
                f" {k['relaying']} of {k['rooms']}"
            )
        for suffix, generator in (("", "the Python load generator"), (NATIVE, "the C load generator (flatload)")):
            report_workers_row(self.flat, suffix, generator, cores)
        report_event_loops(self.flat)
        problems = [w.problem for w in windows if w.problem]
        if problems:
            print("\nproblems seen by the load generator:")
            for problem in problems:
                print(f"  {problem}")
        if self.server_problems:
            print(f"\nservers' logs: {len(self.server_problems)} WARNING, ERROR or Traceback lines; the first:")
            for line in self.server_problems[:8]:
                print(f"  {line[:200]}")


def median_windows(windows: Sequence[Window]) -> list[Window]:
    """Each label's window of its median round by frames/s, labels in the order first measured."""
    by: dict[str, list[Window]] = {}
    for w in windows:
        by.setdefault(w.label, []).append(w)
    return [sorted(rounds, key=lambda w: w.fps)[len(rounds) // 2] for rounds in by.values()]


def rounds_of(windows: Sequence[Window], label: str) -> dict[int, Window]:
    return {w.round: w for w in windows if w.label == label}


def report_workers_row(windows: Sequence[Window], suffix: str, generator: str, cores: int) -> None:
    """The --workers target against PeerJS, with one load generator: the ratio of each round (the two servers
    measured one after the other), judged on their median."""
    workers_by, peerjs_by = rounds_of(windows, WORKERS + suffix), rounds_of(windows, PEERJS + suffix)
    ratios = sorted(
        (workers_by[r].fps / peerjs_by[r].fps, r) for r in workers_by if r in peerjs_by and peerjs_by[r].fps
    )
    if not ratios:
        return
    ratio, median_round = ratios[len(ratios) // 2]
    workers, peerjs = workers_by[median_round], peerjs_by[median_round]
    one = rounds_of(windows, SINGLE + suffix).get(median_round)

    def share(w: Window, cpu_s: float) -> str:
        return f"{cpu_s / w.seconds / cores * 100:.0f}%"

    each = ", ".join(f"{workers_by[r].fps / peerjs_by[r].fps:.2f}x" for r in sorted(workers_by) if r in peerjs_by)
    met = sum(1 for x, _r in ratios if x >= TARGET_WORKERS_VS_PEERJS)
    print(
        f"  --workers 2 relays at least {TARGET_WORKERS_VS_PEERJS}x PeerJS's frames/s flat out, with {generator}:"
        f" rounds {each} (met in {met} of {len(ratios)}); the median round {workers.fps:.0f} against"
        f" {peerjs.fps:.0f}, {ratio:.2f}x: {verdict(ratio >= TARGET_WORKERS_VS_PEERJS)}"
        f"\n    share of the {cores} cores: against --workers 2,"
        f" the load generator {share(workers, workers.gen_cpu_s)},"
        f" the workers {share(workers, workers.node_cpu_s)}, Redis {share(workers, workers.redis_cpu_s)};"
        f" against PeerJS, the load generator {share(peerjs, peerjs.gen_cpu_s)}, PeerJS"
        f" {share(peerjs, peerjs.node_cpu_s)}"
    )
    if one is not None and one.fps:
        print(
            f"    one process without Redis: {one.fps:.0f} frames/s, {one.per_frame_us(one.node_cpu_s):.0f} µs of"
            f" CPU per frame; --workers 2: {workers.fps / one.fps:.2f}x its frames/s,"
            f" {workers.per_frame_us(workers.node_cpu_s):.0f} µs of worker CPU per frame"
            f" (+{workers.per_frame_us(workers.redis_cpu_s):.0f} µs of Redis)"
        )


def report_event_loops(windows: Sequence[Window]) -> None:
    """One process on uvloop (the default) and on asyncio's own loop, with the C load, round by round."""
    uv, plain = rounds_of(windows, SINGLE + NATIVE), rounds_of(windows, SINGLE_ASYNCIO + NATIVE)
    pairs = [(uv[r], plain[r]) for r in sorted(uv) if r in plain]
    if not pairs:
        return
    each = "; ".join(
        f"{u.per_frame_us(u.node_cpu_s):.0f} / {a.per_frame_us(a.node_cpu_s):.0f} µs ({u.fps:.0f} / {a.fps:.0f}"
        " frames/s)"
        for u, a in pairs
    )
    print(f"  event loop, one process, C load: CPU per frame on uvloop / asyncio, round by round: {each}")


async def bench(args: argparse.Namespace) -> None:
    raise_fd_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fits = (hard - FD_MARGIN) // 4
    if args.rooms_per_node is None:
        args.rooms_per_node = min(ISSUE_ROOMS_PER_NODE, fits)
    db = Postgres(args.postgres)
    versions = await asyncio.create_subprocess_exec("redis-server", "--version", stdout=asyncio.subprocess.PIPE)
    redis_version = (await versions.communicate())[0].decode().split()[2].removeprefix("v=")
    print(f"Teleconsult cluster bench: {machine()}; PostgreSQL {await db.version()}; Redis {redis_version}")
    print(f"frames (offer/answer/candidate): {frame_sizes()}")
    print(
        f"descriptors: {soft} soft, {hard} hard per process (soft raised to hard; no higher here): the node that takes"
        f" the other's clients over holds 4 sockets per room of each node, so {fits} rooms per node fit"
        f" (the issue: {ISSUE_ROOMS_PER_NODE}); this run: {args.rooms_per_node}"
    )
    print(
        f"sizes: part 1 {args.latency_rooms} rooms per set, {args.duration:g} s; parts 2-3 {args.rooms_per_node} rooms"
        f" per node, {args.long_duration:g} s paced; part 4 {args.flat_rooms} rooms, {args.duration:g} s; paced at"
        f" {args.rate} frames/s; keepalives off; load {os.getloadavg()[0]:.2f} (1 min) before the run",
        flush=True,
    )
    # Part 1: 2 warm-up rooms and n on the reference node, 4 and 2n on the cluster; part 2: 4 and 2N;
    # part 4: 4 and F for each of its three Teleconsult servers.
    needed = 2 + 3 * args.latency_rooms + WARM_ROOMS + WARM_ROOMS + 2 * args.rooms_per_node
    needed += 3 * (WARM_ROOMS + args.flat_rooms)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="teleconsult-cluster-") as name:
        tmp = Path(name)
        await db.create()
        redis, redis_url = redis_server(tmp)
        run = Bench(args, tmp, db, redis, redis_url)
        try:
            await redis.start()
            out = tmp / "tickets.json"
            argv = ["--child", "seed", "--data-dir", str(tmp / "seed"), "--database-url", db.url]
            seeding = await asyncio.create_subprocess_exec(
                sys.executable, __file__, *argv, "--seed-rooms", str(needed), "--out", str(out)
            )
            if await seeding.wait() != 0:
                raise RuntimeError("seeding failed")
            run.tickets = Tickets([(d, p) for d, p in json.loads(out.read_text())])
            print(f"seeded {needed} consultations in {time.perf_counter() - started:.0f} s", flush=True)
            if "latency" in args.parts:
                await run.part_latency()
            if "held" in args.parts:
                await run.part_held_and_kill()
            if "flat" in args.parts:
                await run.part_flat()
        finally:
            await redis.stop()
            await db.drop()
            if args.logs:
                copy_logs(tmp, args.logs)
    run.report()
    print(f"\nwall clock: {time.perf_counter() - started:.0f} s")


def copy_logs(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for log in source.glob("*.log"):
        shutil.copy(log, target / log.name)


def child(args: argparse.Namespace) -> None:
    if args.child == "seed":
        args.data_dir.mkdir(parents=True, exist_ok=True)
        pairs = asyncio.run(seed(args.data_dir, args.seed_rooms, args.database_url))
        args.out.write_text(json.dumps(pairs))
        return
    asyncio.run(load_child())


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-rooms", type=int, default=200, help="part 1: rooms per set (default 200)")
    parser.add_argument("--rooms-per-node", type=int, help="parts 2-3: rooms owned by each node (default: what fits)")
    parser.add_argument("--flat-rooms", type=int, default=1000, help="part 4: rooms (default 1000)")
    parser.add_argument("--duration", type=float, default=10.0, help="parts 1 and 4: seconds measured (default 10)")
    parser.add_argument("--long-duration", type=float, default=20.0, help="part 2: seconds paced (default 20)")
    parser.add_argument("--rate", type=int, default=2000, help="paced: frames/s in total (default 2000)")
    parser.add_argument(
        "--generators",
        type=int,
        default=4,
        help="parts 2-3: load-generator processes (default 4: with 2, their loops lag 10 s in the kill storm)",
    )
    parser.add_argument("--flat-generators", type=int, default=1, help="part 4: load-generator processes (default 1)")
    parser.add_argument("--flat-rounds", type=int, default=3, help="part 4: rounds over every server (default 3)")
    parser.add_argument("--join-concurrency", type=int, default=32, help="rooms joining at once (default 32)")
    parser.add_argument("--parts", default="latency,held,flat", help="any of latency, held, flat (default all)")
    parser.add_argument("--postgres", default=PG_ADMIN, help=f"PostgreSQL admin URL (default {PG_ADMIN})")
    parser.add_argument("--logs", type=Path, help="copy the servers' and load generators' logs into this directory")
    parser.add_argument("--child", choices=("seed", "load"), help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--seed-rooms", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := set(args.parts) - {"latency", "held", "flat"}:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    return args


if __name__ == "__main__":
    arguments = parse()
    if arguments.child:
        child(arguments)
    else:
        asyncio.run(bench(arguments))
