"""Signaling: N rooms of two peers relaying offer/answer/candidate-sized frames through Teleconsult, through the
PeerJS server (npm package ``peer``) and through a bare aiohttp relay, in the same run, on the same machine.

Run from the repository root: ``.venv/bin/python bench/signaling.py`` (about 10 minutes; ``--rooms 100,1000
--duration 4`` for a quick look). Method and last figures: ``docs/performance.md``.

Every server runs in its own process, so its CPU time (utime + stime of all its threads, ``/proc/<pid>/stat``) and
its resident memory (``VmRSS``) are its own; this process is the load generator (aiohttp client WebSockets, one
event loop) and shares the two cores with it. For each room count and server it:

1. starts the server on 127.0.0.1: Teleconsult from a fresh SQLite data directory, seeded beforehand by a separate
   process (N consultations as they stand once the patient has opened the link, and a WebSocket ticket per seat), so
   seeding leaves nothing in the server's memory; PeerJS as ``node bench/peerjs/server.js`` with its client limit
   raised; the bare relay as ``--child bare`` (stdlib json, no rooms, auth or checks),
2. joins a few warm-up rooms (they relay a little, then stay), then takes the baseline (RSS, open sockets),
3. joins N rooms (Teleconsult: doctor ``hello`` with a ticket, patient ``hello``, lobby, ``admit``, ``admitted``;
   PeerJS: two sockets that get ``OPEN``), and notes the RSS per socket once joined,
4. flat out: every room keeps one frame in flight (the receiver answers with the next one) for ``--duration``,
5. paced: ``--rate`` frames/s in total, rooms in turn, open loop; ``--long-duration`` at the largest room count,
   long enough for the collector's slow passes to show,
6. Teleconsult at the largest room count only: paced again with the collector's young threshold back at Python's
   700 instead of what ``teleconsult serve`` sets (``paced+gc700``), then the same with everything frozen once
   (``paced+freeze``).

Frames go alternately from the doctor and from the patient, cycling offer (3,000-character SDP), answer (same),
candidate (a 250-byte frame); each carries its send time (``~ts=<perf_counter_ns>;``) and the receiving client
computes the latency. One received frame in 64 is parsed in full and checked (type, sender, recipient). The load
generator freezes its own collector after the joins and disables it during measured windows, so its pauses are not
charged to the servers; the ``other`` column is the machine's CPU used by anything else in the window (noise).

Keepalives are off by default (Teleconsult ``heartbeat_s=3600``; PeerJS clients send no HEARTBEAT and
``alive_timeout`` is a day), so the CPU per frame is the relay's; ``--keepalive`` runs each with its own (Teleconsult's
15 s WebSocket ping, a PeerJS HEARTBEAT every 5 s per socket). Diagnosis: ``--trace-memory`` (where Teleconsult's
memory goes per socket, with tracemalloc), ``--server-gc`` (collector settings in the Teleconsult process),
``BENCH_GC_DIAGNOSE=1`` (slow young collections, logged by the Teleconsult process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiohttp import ClientSession, ClientWebSocketResponse, TCPConnector, WSMsgType, web  # noqa: E402

PEERJS_DIR = ROOT / "bench" / "peerjs"
SERVERS = ("teleconsult", "peerjs", "bare")
MARK = "~ts="
PLACEHOLDER = "@@TS@@"
SDP_CHARS = 3000
CANDIDATE_FRAME_BYTES = 250
VERIFY_EVERY = 64
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
READY_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 10.0
JOIN_TIMEOUT_S = 30.0
SLOW_NS = 10_000_000
#: Rooms joined (and relaying for a moment) before the baseline, so that first-use caches are not per-socket cost.
WARM_ROOMS = 4
#: Python's own young-generation threshold, tried at the largest room count against what `serve` sets.
PYTHON_YOUNG_THRESHOLD = 700

# Targets from the issue, for one node on this machine.
TARGET_KIB_PER_SOCKET = 20.0
TARGET_P99_MS = 15.0
TARGET_CPU_VS_BARE = 1.3


# --- payloads ---------------------------------------------------------------------------------------------------


def _sdp() -> str:
    """A 3,000-character SDP (audio + video, Chrome-like lines); the send time goes into ``s=``."""
    head = [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        f"s={MARK}{PLACEHOLDER};",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS stream",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 103 104 9 0 8 106 105 13 110 112 113 126",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:Rk3q",
        "a=ice-pwd:0xE7w8z3GQ1n6yYb1dU2kP7aVf",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 " + ":".join(f"{(i * 37) % 256:02X}" for i in range(32)),
        "a=setup:actpass",
        "a=mid:0",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107 108 109 127 125 39 40 45 46 98 99 100 101",
        "c=IN IP4 0.0.0.0",
        "a=mid:1",
    ]
    lines, pt = list(head), 96
    while sum(len(line) + 2 for line in lines) < SDP_CHARS:
        lines += [f"a=rtpmap:{pt} VP8/90000", f"a=rtcp-fb:{pt} nack pli", f"a=fmtp:{pt} max-fs=12288;max-fr=60"]
        pt += 1
    text = "\r\n".join(lines) + "\r\n"
    text = text[: SDP_CHARS - 2]
    return text + "\r\n"


def _candidate_text(pad: int) -> str:
    return (
        "candidate:1467250027 1 udp 2122260223 127.0.0.1 54321 typ host generation 0 ufrag Rk3q network-id 1 "
        f"{MARK}{PLACEHOLDER};" + "x" * pad
    )


def _split(frame: dict[str, Any]) -> tuple[str, str]:
    head, tail = json.dumps(frame, separators=(",", ":")).split(PLACEHOLDER)
    return head, tail


def _candidate_pad(envelope: Callable[[str], dict[str, Any]]) -> int:
    """Padding that makes the Teleconsult candidate frame 250 bytes with a typical timestamp."""
    probe = json.dumps(envelope(_candidate_text(0)), separators=(",", ":"))
    typical = len(str(time.perf_counter_ns()))
    return max(0, CANDIDATE_FRAME_BYTES - (len(probe) - len(PLACEHOLDER) + typical))


SDP = _sdp()
KINDS = ("offer", "answer", "candidate")


# --- the load generator's view of a room -------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Room:
    """Two connected, admitted peers; ``frames[side][kind]`` is the (head, tail) of a frame ``side`` sends."""

    ws: list[ClientWebSocketResponse]
    ids: list[str]
    frames: list[list[tuple[str, str]]] = field(default_factory=list)
    seq: int = 0
    #: Teleconsult: each side's resume token, from its welcome (bench/resume.py comes back with them).
    resume: list[str] = field(default_factory=list)

    async def send_next(self, stats: Stats) -> None:
        """Frame ``seq``: from the doctor (even) or the patient (odd), offer/answer/candidate in turn."""
        seq = self.seq
        self.seq = seq + 1
        head, tail = self.frames[seq & 1][seq % 3]
        stats.sent += 1
        await self.ws[seq & 1].send_str(f"{head}{time.perf_counter_ns()}{tail}")


@dataclass(slots=True)
class Stats:
    sent: int = 0
    received: int = 0
    other: int = 0
    verified: int = 0
    bad: int = 0
    first_problem: str = ""
    flat: bool = False
    stop: bool = False
    window: tuple[int, int] = (1 << 62, 1 << 62)
    latencies: list[int] = field(default_factory=list)
    #: (send time, latency) of the frames over ``SLOW_NS``, to tell stalls from steady queueing.
    slow: list[tuple[int, int]] = field(default_factory=list)
    drained: asyncio.Event = field(default_factory=asyncio.Event)


Verify = Callable[[dict[str, Any], Room, int], bool]


class Target:
    """One server under test: how to start it, join a room, and what a relayed frame looks like."""

    name = ""

    def __init__(self, http: ClientSession, args: argparse.Namespace, workdir: Path) -> None:
        self.http = http
        self.args = args
        self.workdir = workdir
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, rooms: int) -> None:
        raise NotImplementedError

    async def join(self, index: int) -> Room:
        raise NotImplementedError

    @staticmethod
    def envelope(kind: str, to: str, body: str) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def verify(frame: dict[str, Any], room: Room, side: int) -> bool:
        raise NotImplementedError

    async def server_stats(self, **query: str) -> dict[str, Any]:
        return {}

    async def keepalive(self, rooms: Sequence[Room], stop: asyncio.Event) -> None:
        """Client keepalives the server expects (none by default)."""

    def build_frames(self, room: Room) -> None:
        pad = _candidate_pad(lambda text: self.envelope("candidate", room.ids[1], text))
        candidate = _candidate_text(pad)
        room.frames = [
            [
                _split(self.envelope(kind, room.ids[1 - side], candidate if kind == "candidate" else SDP))
                for kind in KINDS
            ]
            for side in (0, 1)
        ]

    async def launch(self, *argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        log = self.workdir / f"{self.name}-{self.port}.log"
        with open_log(log) as stderr:
            self.process = await asyncio.create_subprocess_exec(
                *argv, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=stderr, start_new_session=True
            )
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                while line := await self.process.stdout.readline():
                    if line.startswith(b"ready"):
                        return
        except TimeoutError:
            pass
        raise RuntimeError(f"{self.name} did not start; see {log}")

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()


async def recv_json(ws: ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=JOIN_TIMEOUT_S)
    if msg.type is not WSMsgType.TEXT:
        raise RuntimeError(f"expected a text frame, got {msg.type} {msg.data!r} (close code {ws.close_code})")
    return dict(json.loads(msg.data))


async def expect(ws: ClientWebSocketResponse, kind: str, test: Callable[[dict[str, Any]], bool] | None = None) -> Any:
    while True:
        frame = await recv_json(ws)
        if frame.get("type") == "error":
            raise RuntimeError(f"server error while waiting for {kind}: {frame}")
        if frame.get("type") == kind and (test is None or test(frame)):
            return frame


class Teleconsult(Target):
    name = "teleconsult"

    async def start(self, rooms: int) -> None:
        data = self.workdir / f"teleconsult-{self.port}"
        tickets = data / "tickets.json"
        argv = [
            "--child",
            "seed",
            "--data-dir",
            str(data),
            "--seed-rooms",
            str(rooms + WARM_ROOMS),
            "--out",
            str(tickets),
        ]
        seed = await asyncio.create_subprocess_exec(sys.executable, __file__, *argv)
        if await seed.wait() != 0:
            raise RuntimeError("seeding failed")
        self.tickets = json.loads(tickets.read_text())
        self.data_dir = data
        await self.launch_server()

    async def launch_server(self) -> None:
        """Start the server process on the seeded data directory (again, after a restart)."""
        data = self.data_dir
        argv = [sys.executable, __file__, "--child", "teleconsult", "--data-dir", str(data), "--port", str(self.port)]
        env = os.environ | ({"PYTHONTRACEMALLOC": "1"} if self.args.trace_memory else {})
        if self.args.keepalive:
            argv.append("--keepalive")
        if self.args.server_gc:
            argv += ["--server-gc", self.args.server_gc]
        await self.launch(*argv, env=env)

    async def join(self, index: int) -> Room:
        url = f"http://127.0.0.1:{self.port}/ws"
        doctor_ticket, patient_ticket = self.tickets[index]
        doctor = await self.http.ws_connect(url)
        await doctor.send_str(json.dumps({"type": "hello", "v": 1, "ticket": doctor_ticket}))
        doctor_welcome = await expect(doctor, "welcome")
        patient = await self.http.ws_connect(url)
        await patient.send_str(json.dumps({"type": "hello", "v": 1, "ticket": patient_ticket}))
        patient_welcome = await expect(patient, "welcome")
        lobby = await expect(doctor, "lobby", lambda f: bool(f["waiting"]))
        await doctor.send_str(json.dumps({"type": "admit", "peer_id": lobby["waiting"][0]["peer_id"]}))
        await expect(patient, "admitted")
        await expect(doctor, "peer-joined")
        welcomes = (doctor_welcome, patient_welcome)
        return Room([doctor, patient], [w["peer_id"] for w in welcomes], resume=[w["resume"] for w in welcomes])

    @staticmethod
    def envelope(kind: str, to: str, body: str) -> dict[str, Any]:
        if kind == "candidate":
            return {"type": kind, "to": to, "candidate": {"candidate": body, "sdpMid": "0", "sdpMLineIndex": 0}}
        return {"type": kind, "to": to, "sdp": body}

    @staticmethod
    def verify(frame: dict[str, Any], room: Room, side: int) -> bool:
        body = frame.get("candidate", {}).get("candidate") if frame.get("type") == "candidate" else frame.get("sdp")
        return frame.get("type") in KINDS and frame.get("from") == room.ids[1 - side] and isinstance(body, str)

    async def server_stats(self, **query: str) -> dict[str, Any]:
        """From the bench launcher's own route; a connection of its own, closed after, so no socket is counted."""
        async with (
            ClientSession(connector=TCPConnector(force_close=True)) as http,
            http.get(f"http://127.0.0.1:{self.port}/_bench/stats", params=query) as response,
        ):
            return dict(await response.json())


class Bare(Teleconsult):
    """A bare aiohttp relay: no rooms, no auth, no validation (``--child bare``); Teleconsult's frames."""

    name = "bare"

    async def start(self, rooms: int) -> None:
        await self.launch(sys.executable, __file__, "--child", "bare", "--port", str(self.port))

    async def join(self, index: int) -> Room:
        ids = [f"d{index}", f"p{index}"]
        ws = [await self.http.ws_connect(f"http://127.0.0.1:{self.port}/ws?id={peer}") for peer in ids]
        return Room(ws, ids)

    async def server_stats(self, **query: str) -> dict[str, Any]:
        return {}


class PeerJS(Target):
    name = "peerjs"

    async def start(self, rooms: int) -> None:
        ensure_peerjs()
        alive = 90_000 if self.args.keepalive else 24 * 3600 * 1000
        await self.launch("node", "server.js", str(self.port), str(alive), cwd=PEERJS_DIR)

    async def join(self, index: int) -> Room:
        ids = [f"doctor-{index}-{random.getrandbits(32):08x}", f"patient-{index}-{random.getrandbits(32):08x}"]
        sockets = []
        for peer in ids:
            url = f"http://127.0.0.1:{self.port}/peerjs?key=peerjs&id={peer}&token={random.getrandbits(48):x}"
            ws = await self.http.ws_connect(url)
            opened = await recv_json(ws)
            if opened.get("type") != "OPEN":
                raise RuntimeError(f"PeerJS refused {peer}: {opened}")
            sockets.append(ws)
        return Room(sockets, ids)

    @staticmethod
    def envelope(kind: str, to: str, body: str) -> dict[str, Any]:
        """What the PeerJS browser client sends for a media connection."""
        if kind == "candidate":
            payload: dict[str, Any] = {"candidate": {"candidate": body, "sdpMid": "0", "sdpMLineIndex": 0}}
        else:
            payload = {"sdp": {"type": kind, "sdp": body}}
        payload |= {"type": "media", "connectionId": "mc_" + "k3Jq9ZxW2b7L"}
        return {"type": kind.upper(), "dst": to, "payload": payload}

    @staticmethod
    def verify(frame: dict[str, Any], room: Room, side: int) -> bool:
        return (
            frame.get("type") in ("OFFER", "ANSWER", "CANDIDATE")
            and frame.get("src") == room.ids[1 - side]
            and frame.get("dst") == room.ids[side]
            and isinstance(frame.get("payload"), dict)
        )

    async def keepalive(self, rooms: Sequence[Room], stop: asyncio.Event) -> None:
        """The PeerJS client sends ``{"type":"HEARTBEAT"}`` every 5 s per socket: spread evenly here."""
        sockets = [ws for room in rooms for ws in room.ws]
        beat, period = '{"type":"HEARTBEAT"}', 5.0
        loop = asyncio.get_running_loop()
        start, done = loop.time(), 0
        while not stop.is_set():
            due = int((loop.time() - start) * len(sockets) / period) - done
            for _ in range(due):
                ws = sockets[done % len(sockets)]
                done += 1
                if not ws.closed:
                    await ws.send_str(beat)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.02)


def ensure_peerjs() -> None:
    if (PEERJS_DIR / "node_modules" / "peer").is_dir():
        return
    if shutil.which("npm") is None:
        raise RuntimeError("PeerJS needs Node.js and npm (apt-get install nodejs npm)")
    print("installing the PeerJS server: npm ci in bench/peerjs", flush=True)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEERJS_DIR, check=True, stdout=subprocess.DEVNULL)


# --- measuring ---------------------------------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime, stime (fields 14 and 15)


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def proc_sockets(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return count


def open_log(path: Path) -> Any:
    return path.open("wb")


def machine_busy_s() -> float:
    """CPU seconds spent by everything on the machine (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICK


def stalls(slow: list[tuple[int, int]], gc_events: list[list[float]] | None, window_start: int | None = None) -> str:
    """Frames over 10 ms, grouped into bursts (send times less than 100 ms apart), and the server's collections
    (gen1/gen2, or gen0 over 5 ms; start and duration on the same monotonic clock) that overlap a burst."""
    if not slow:
        return "no frame over 10 ms"
    slow.sort()
    bursts: list[tuple[int, int, int]] = []  # first send, last send, worst latency
    for sent, latency in slow:
        if bursts and sent - bursts[-1][1] < 100_000_000:
            first, _last, worst = bursts[-1]
            bursts[-1] = (first, sent, max(worst, latency))
        else:
            bursts.append((sent, sent, latency))

    def collection(first: int, last: int) -> str:
        for gen, start, took in gc_events or ():
            if start - 0.2 <= last / 1e9 and start + took >= first / 1e9:
                return f" gen{gen:.0f} {took * 1000:.0f} ms"
        return ""

    origin = slow[0][0] if window_start is None else window_start
    worst = sorted(bursts, key=lambda b: -b[2])[:6]
    detail = ", ".join(f"t+{(f - origin) / 1e9:.1f}s {w / 1e6:.0f} ms{collection(f, la)}" for f, la, w in worst)
    during_gc = sum(bool(collection(f, la)) for f, la, _w in bursts)
    text = f"{len(slow)} frames over 10 ms in {len(bursts)} burst(s)"
    text += f" ({during_gc} during a server collection)" if gc_events is not None else ""
    return f"{text}; worst: {detail}"


def self_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def percentile(ordered: Sequence[int], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


@dataclass
class Row:
    server: str
    rooms: int
    mode: str
    seconds: float
    sockets: int
    #: RSS growth per socket: once every room has joined (idle), and at the end of this phase (after load).
    idle_kib: float
    kib_per_socket: float
    cpu_us_per_frame: float
    server_cpu_pct: float
    gen_cpu_pct: float
    other_cpu_pct: float
    p50_ms: float
    p99_ms: float
    frames_per_s: float
    lost: int
    notes: str = ""


class Generator:
    def __init__(self, target: Target, args: argparse.Namespace) -> None:
        self.target = target
        self.args = args
        self.stats = Stats()
        self.rooms: list[Room] = []
        self.readers: list[asyncio.Task[None]] = []
        self.base_rss = 0
        self.base_sockets = 0
        self.join_cpu_ms = 0.0
        self.idle_kib = 0.0

    async def read(self, room: Room, side: int) -> None:
        ws, verify = room.ws[side], self.target.verify
        while True:
            msg = await ws.receive()
            stats = self.stats
            if msg.type is not WSMsgType.TEXT:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    if not stats.stop and not stats.first_problem:
                        stats.first_problem = f"socket closed: {msg.type} {msg.data!r}"
                    return
                continue
            data: str = msg.data
            at = data.find(MARK)
            if at < 0:
                stats.other += 1
                if '"error"' in data[:40] and not stats.first_problem:
                    stats.first_problem = data[:300]
                continue
            now = time.perf_counter_ns()
            start = at + len(MARK)
            sent = int(data[start : data.index(";", start)])
            stats.received += 1
            if stats.window[0] <= sent <= stats.window[1]:
                stats.latencies.append(now - sent)
                if now - sent > SLOW_NS:
                    stats.slow.append((sent, now - sent))
            if stats.received % VERIFY_EVERY == 0:
                if verify(json.loads(data), room, side):
                    stats.verified += 1
                else:
                    stats.bad += 1
                    stats.first_problem = stats.first_problem or data[:300]
            if stats.stop:
                if stats.received >= stats.sent:
                    stats.drained.set()
            elif stats.flat:
                await room.send_next(stats)

    async def join_all(self, rooms: int) -> float:
        """Join the warm-up rooms, take the baseline, then join ``rooms`` rooms; returns joins (rooms) per second."""
        self.stats.flat = True
        for index in range(WARM_ROOMS):
            warm = await self.target.join(index)
            self.target.build_frames(warm)
            self.readers += [asyncio.create_task(self.read(warm, side)) for side in (0, 1)]
            await warm.send_next(self.stats)
        await asyncio.sleep(0.5)
        self.stats = Stats()
        await asyncio.sleep(1.0)
        self.base_rss = proc_rss_kib(self.target.pid)
        self.base_sockets = proc_sockets(self.target.pid)
        if self.args.trace_memory:
            await self.target.server_stats(snapshot="base")
        semaphore = asyncio.Semaphore(self.args.join_concurrency)

        async def one(index: int) -> Room:
            async with semaphore:
                room = await self.target.join(index)
            # Read from the start: an aiohttp client answers the server's pings only while it reads, and joining
            # thousands of rooms takes longer than Teleconsult's heartbeat lets a silent socket live.
            self.target.build_frames(room)
            self.readers += [asyncio.create_task(self.read(room, side)) for side in (0, 1)]
            return room

        started, cpu = time.perf_counter(), proc_cpu_s(self.target.pid)
        self.rooms = list(await asyncio.gather(*(one(i) for i in range(WARM_ROOMS, WARM_ROOMS + rooms))))
        elapsed = time.perf_counter() - started
        self.join_cpu_ms = (proc_cpu_s(self.target.pid) - cpu) / rooms * 1000
        await asyncio.sleep(1.0)  # let the trailing lobby frames arrive
        if self.args.trace_memory and (top := (await self.target.server_stats(snapshot="diff")).get("top")):
            print(f"  where the server's memory went during the joins, per socket ({2 * rooms} sockets):")
            for size, count, where in top:
                print(f"    {size / 2 / rooms:8.0f} B {count / 2 / rooms:6.1f} blocks  {where}")
        gc.collect()
        gc.freeze()
        return rooms / elapsed

    async def phase(self, mode: str, duration: float, warmup: float) -> Row:
        rooms, target = self.rooms, self.target
        if self.args.trace_memory:
            await target.server_stats(snapshot="base")
        stats = self.stats = Stats(flat=mode == "flat")
        stop_pacer = asyncio.Event()
        background: list[asyncio.Task[None]] = []
        if self.args.keepalive:
            background.append(asyncio.create_task(target.keepalive(rooms, stop_pacer)))
        gc.disable()
        try:
            if stats.flat:
                for room in rooms:
                    await room.send_next(stats)
            else:
                background.append(asyncio.create_task(self.pace(stop_pacer)))
            await asyncio.sleep(warmup)
            await target.server_stats(reset="1")
            busy0 = machine_busy_s()
            cpu0, gen0, rx0, t0 = proc_cpu_s(target.pid), self_cpu_s(), stats.received, time.perf_counter_ns()
            stats.window = (t0, 1 << 62)
            await asyncio.sleep(duration)
            cpu1, gen1, rx1, t1 = proc_cpu_s(target.pid), self_cpu_s(), stats.received, time.perf_counter_ns()
            busy1 = machine_busy_s()
            stats.window = (t0, t1)
            server1 = await target.server_stats()
            stats.stop = True
            stop_pacer.set()
            await asyncio.gather(*background)
            if stats.received < stats.sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stats.drained.wait(), DRAIN_TIMEOUT_S)
        finally:
            gc.enable()
        if self.args.trace_memory and (top := (await target.server_stats(snapshot="diff")).get("top")):
            print(f"  where the server's memory went during the {mode} phase, per socket ({2 * len(rooms)} sockets):")
            for size, count, where in top:
                print(f"    {size / 2 / len(rooms):8.0f} B {count / 2 / len(rooms):6.1f} blocks  {where}")
        elapsed = (t1 - t0) / 1e9
        frames = rx1 - rx0
        ordered = sorted(stats.latencies)
        sockets = proc_sockets(target.pid) - self.base_sockets
        rss = proc_rss_kib(target.pid) - self.base_rss
        notes = []
        if server1:
            pauses = server1["gc"]
            notes.append(
                f"server gc in window: gen2 x{pauses['count'][2]} (max {pauses['max_ms'][2]:.0f} ms), "
                f"gen1 x{pauses['count'][1]} (max {pauses['max_ms'][1]:.1f} ms), gen0 x{pauses['count'][0]}; "
                f"{server1['sessions']} sessions"
            )
        notes.append(stalls(stats.slow, server1["gc"]["events"] if server1 else None, t0))
        if stats.bad or stats.first_problem:
            notes.append(f"{stats.bad} frames failed the check; first problem: {stats.first_problem}")
        notes.append(f"checked {stats.verified} frames in full; {stats.other} other frames")
        return Row(
            server=target.name,
            rooms=len(rooms),
            mode=mode,
            seconds=elapsed,
            sockets=sockets,
            idle_kib=self.idle_kib,
            kib_per_socket=rss / max(1, sockets),
            cpu_us_per_frame=(cpu1 - cpu0) / max(1, frames) * 1e6,
            server_cpu_pct=(cpu1 - cpu0) / elapsed * 100,
            gen_cpu_pct=(gen1 - gen0) / elapsed * 100,
            other_cpu_pct=((busy1 - busy0) - (cpu1 - cpu0) - (gen1 - gen0)) / elapsed * 100,
            p50_ms=percentile(ordered, 0.50),
            p99_ms=percentile(ordered, 0.99),
            frames_per_s=frames / elapsed,
            lost=stats.sent - stats.received,
            notes="; ".join(notes),
        )

    async def pace(self, stop: asyncio.Event) -> None:
        """Open loop: ``rate`` frames a second in total, rooms in turn, whatever the replies do."""
        rooms, stats, rate = self.rooms, self.stats, self.args.rate
        loop = asyncio.get_running_loop()
        start, done, count = loop.time(), 0, len(rooms)
        while not stop.is_set():
            due = int((loop.time() - start) * rate) - done
            for _ in range(due):
                await rooms[done % count].send_next(stats)
                done += 1
            await asyncio.sleep(0.001)

    async def close(self) -> None:
        self.stats.stop = True
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        gc.unfreeze()


async def run_target(cls: type[Target], rooms: int, args: argparse.Namespace, workdir: Path) -> list[Row]:
    connector = TCPConnector(limit=0)
    async with ClientSession(connector=connector) as http:
        target = cls(http, args, workdir)
        try:
            await target.start(rooms)
            generator = Generator(target, args)
            try:
                joins = await generator.join_all(rooms)
                idle_rss = proc_rss_kib(target.pid) - generator.base_rss
                held = proc_sockets(target.pid) - generator.base_sockets
                generator.idle_kib = idle_rss / max(1, held)
                print(
                    f"  {target.name}, {rooms} rooms: {held} sockets held; {joins:.0f} rooms joined a second,"
                    f" {generator.join_cpu_ms:.1f} ms of server CPU per room; idle {idle_rss / max(1, held):.1f} KiB"
                    " per socket",
                    flush=True,
                )
                # At the largest room count the paced phase runs longer: long enough for full collections.
                paced = args.long_duration if rooms == max(args.rooms) else args.duration
                rows = [await generator.phase("flat", args.duration, warmup=2.0)]
                rows.append(await generator.phase("paced", paced, warmup=1.0))
                if target.name == "teleconsult" and rooms == max(args.rooms) and not args.no_freeze:
                    # The collector as Python sets it (young threshold 700), then the same with everything frozen
                    # once, every socket open: what `serve`'s threshold buys, and the alternative.
                    served = await target.server_stats(tune=f"threshold={PYTHON_YOUNG_THRESHOLD},10,10")
                    print(f"  teleconsult: served with the collector's thresholds at {served['served_threshold']}")
                    rows.append(await generator.phase("paced+gc700", paced, warmup=1.0))
                    frozen = await target.server_stats(freeze="1")
                    print(f"  teleconsult: gc.freeze() moved {frozen['frozen']:,} objects out of the collector's way")
                    rows.append(await generator.phase("paced+freeze", paced, warmup=1.0))
                for row in rows:
                    print(f"    {fmt_row(row)}", flush=True)
                return rows
            finally:
                await generator.close()
        finally:
            await target.stop()


# --- report ------------------------------------------------------------------------------------------------------

HEADER = (
    f"{'server':<12}{'rooms':>6} {'mode':<13}{'secs':>5}{'sockets':>8}{'KiB idle':>9}{'KiB load':>9}"
    f"{'us/frame':>9}{'srv cpu':>8}{'gen cpu':>8}{'other':>6}{'p50 ms':>8}{'p99 ms':>8}{'frames/s':>9}{'lost':>6}"
)


def fmt_row(row: Row) -> str:
    return (
        f"{row.server:<12}{row.rooms:>6} {row.mode:<13}{row.seconds:>5.0f}{row.sockets:>8}{row.idle_kib:>9.1f}"
        f"{row.kib_per_socket:>9.1f}{row.cpu_us_per_frame:>9.1f}{row.server_cpu_pct:>7.0f}%{row.gen_cpu_pct:>7.0f}%"
        f"{row.other_cpu_pct:>5.0f}%{row.p50_ms:>8.2f}{row.p99_ms:>8.2f}{row.frames_per_s:>9.0f}{row.lost:>6}"
    )


def frame_sizes() -> str:
    parts = []
    for name, build in (("teleconsult", Teleconsult.envelope), ("peerjs", PeerJS.envelope)):
        to, typical = "p_0123456789abcdef", len(str(time.perf_counter_ns()))
        candidate = _candidate_text(_candidate_pad(lambda text, build=build, to=to: build("candidate", to, text)))
        frames = [build(kind, to, candidate if kind == "candidate" else SDP) for kind in KINDS]
        sizes = [len(json.dumps(f, separators=(",", ":"))) - len(PLACEHOLDER) + typical for f in frames]
        parts.append(f"{name} {'/'.join(map(str, sizes))} B")
    return "; ".join(parts)


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    peer = ws = "?"
    with contextlib.suppress(OSError, ValueError):
        peer = json.loads((PEERJS_DIR / "node_modules/peer/package.json").read_text())["version"]
        ws = json.loads((PEERJS_DIR / "node_modules/ws/package.json").read_text())["version"]
    return (
        f"{os.cpu_count()} cores ({model}), {os.sysconf('SC_PHYS_PAGES') * PAGE_KIB // 1024 // 1024} GiB, "
        f"Linux {platform.release()}; Python {platform.python_version()}, aiohttp {version('aiohttp')}, "
        f"msgspec {version('msgspec')}; Node {node}, peer {peer}, ws {ws}"
    )


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def report(rows: list[Row], args: argparse.Namespace) -> None:
    print()
    print(HEADER)
    for row in rows:
        print(fmt_row(row))
    print()
    print("notes:")
    for row in rows:
        print(f"  {row.server} {row.rooms} {row.mode}: {row.notes}")
    by = {(r.server, r.rooms, r.mode): r for r in rows}
    for other in ("peerjs", "bare"):
        pairs = [(r, by.get((other, r.rooms, r.mode))) for r in rows if r.server == "teleconsult"]
        pairs = [(t, o) for t, o in pairs if o is not None]
        if not pairs:
            continue
        print()
        print(f"Teleconsult / {other}:")
        print(
            f"  {'rooms':>6} {'mode':<13}{'us/frame':>10}{'KiB idle':>10}{'KiB load':>10}{'p50':>8}{'p99':>8}"
            f"{'frames/s':>10}"
        )
        for t, o in pairs:
            assert o is not None
            print(
                f"  {t.rooms:>6} {t.mode:<13}{ratio(t.cpu_us_per_frame, o.cpu_us_per_frame):>10}"
                f"{ratio(t.idle_kib, o.idle_kib):>10}"
                f"{ratio(t.kib_per_socket, o.kib_per_socket):>10}{ratio(t.p50_ms, o.p50_ms):>8}"
                f"{ratio(t.p99_ms, o.p99_ms):>8}{ratio(t.frames_per_s, o.frames_per_s):>10}"
            )
    targets(by, args)


def targets(by: dict[tuple[str, int, str], Row], args: argparse.Namespace) -> None:
    most = max(args.rooms)
    tele = [r for (s, _, _), r in by.items() if s == "teleconsult"]
    if not tele:
        return
    print()
    print(f"targets (one Teleconsult process, {most} rooms):")
    held = [r for r in tele if r.rooms == most]
    idle, loaded = held[0].idle_kib, max(r.kib_per_socket for r in held)
    verdict = "met" if idle < TARGET_KIB_PER_SOCKET and held[0].sockets >= 2 * most else "NOT met"
    print(
        f"  {2 * most} sockets held under {TARGET_KIB_PER_SOCKET:.0f} KiB each: {idle:.1f} KiB once joined: {verdict}"
        f" ({loaded:.1f} KiB after the load phases)"
    )
    for mode in ("paced", "paced+gc700", "paced+freeze"):
        row = by.get(("teleconsult", most, mode))
        if row:
            ok = "met" if row.p99_ms < TARGET_P99_MS else "NOT met"
            print(f"  p99 under {TARGET_P99_MS:.0f} ms at {args.rate} frames/s ({mode}): {row.p99_ms:.2f} ms: {ok}")
    cells = [(r, by.get(("bare", r.rooms, r.mode))) for r in tele]
    worst_ratio = max((t.cpu_us_per_frame / b.cpu_us_per_frame for t, b in cells if b), default=None)
    if worst_ratio is not None:
        ok = "met" if worst_ratio <= TARGET_CPU_VS_BARE else "NOT met"
        print(f"  server CPU per frame within {TARGET_CPU_VS_BARE}x of the bare relay: worst {worst_ratio:.2f}x: {ok}")
    flat = [(r, by.get(("peerjs", r.rooms, "flat"))) for r in tele if r.mode == "flat"]
    worst_fps = min((t.frames_per_s / p.frames_per_s for t, p in flat if p), default=None)
    if worst_fps is not None:
        ok = "met" if worst_fps >= 1.0 else "NOT met"
        print(f"  relayed frames/s at least PeerJS's (flat out, one process): worst {worst_fps:.2f}x: {ok}")


async def bench(args: argparse.Namespace) -> None:
    raise_fd_limit()
    classes = {"teleconsult": Teleconsult, "peerjs": PeerJS, "bare": Bare}
    print(f"Teleconsult signaling bench: {machine()}")
    print(
        f"rooms {', '.join(map(str, args.rooms))}; {args.duration:g} s per phase; paced at {args.rate} frames/s; "
        f"keepalives {'on' if args.keepalive else 'off'}; frames (offer/answer/candidate): {frame_sizes()}"
    )
    print(f"load: {os.getloadavg()[0]:.2f} (1 min) before the run", flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="teleconsult-signaling-") as tmp:
        for rooms in args.rooms:
            for name in args.servers:
                rows += await run_target(classes[name], rooms, args, Path(tmp))
    report(rows, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=1))


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- child processes: seeding, the Teleconsult server, the bare relay --------------------------------------------


def bench_settings(data_dir: Path, port: int, keepalive: bool) -> Any:
    from teleconsult.config import build_settings

    return build_settings(
        {
            "data_dir": data_dir,
            "port": port,
            "secret_key": "bench-secret",
            "log_level": "WARNING",
            "rate_per_s": 1e6,
            "rate_burst": 1_000_000,
            "max_pending_per_ip": 1_000_000,
            "ticket_ttl_s": 24 * 3600,
            "heartbeat_s": 15.0 if keepalive else 3600.0,
        }
    )


async def seed(data_dir: Path, rooms: int, database_url: str | None = None) -> list[tuple[str, str]]:
    """N consultations (doctor + patient seats) and one WebSocket ticket per seat, straight into the store (the
    data directory's SQLite file, or ``database_url``: bench/cluster.py seeds PostgreSQL)."""
    from datetime import timedelta

    from teleconsult.ids import hash_token, new_id, new_token
    from teleconsult.lifecycle import Status
    from teleconsult.store import Database
    from teleconsult.store.models import Consultation, Doctor, Invitation, OutgoingMail, Participant, utcnow
    from teleconsult.tickets import issue_ticket

    settings = bench_settings(data_dir, 0, False)
    db = Database(database_url or settings.database_url)
    await db.upgrade()
    now = utcnow()
    doctor = Doctor(
        id=new_id("d"),
        email="bench.doctor@example.org",
        name="Dr Bench",
        rpps="10101010101",
        password_hash="!",  # noqa: S106
    )
    async with db.transaction() as tx:
        tx.add(doctor)
    tickets: list[tuple[str, str]] = []
    for first in range(0, rooms, 500):
        async with db.transaction() as tx:
            batch = []
            for i in range(first, min(rooms, first + 500)):
                consultation = Consultation(
                    id=new_id("c"), doctor_id=doctor.id, status=Status.SCHEDULED.value, language="fr", created_at=now
                )
                seat = {"consultation_id": consultation.id, "id": new_id("u")}
                doctor_seat = Participant(
                    **seat, role="doctor", name=doctor.name, email=doctor.email, doctor_id=doctor.id
                )
                seat = {"consultation_id": consultation.id, "id": new_id("u")}
                patient = Participant(**seat, role="patient", name=f"Patient {i}", email=f"patient{i}@example.org")
                # As after /api/join: consent given, a participant credential issued.
                patient.consent_at, patient.credential_hash = now, hash_token(new_token())
                tx.add_all([consultation, doctor_seat, patient])
                batch.append((consultation, doctor_seat, patient))
            await tx.flush()
            for consultation, doctor_seat, patient in batch:
                # What a consultation holds once its patient has opened the emailed link: a redeemed invitation
                # and a delivered (wiped) invitation mail; the server loads both with the consultation.
                invitation = Invitation(
                    id=new_id("i"),
                    consultation_id=consultation.id,
                    participant_id=patient.id,
                    role="patient",
                    token_hash=hash_token(new_token()),
                    created_at=now,
                    expires_at=now + timedelta(days=7),
                    redeemed_at=now,
                )
                tx.add(invitation)
                mail = OutgoingMail(id=new_id("ml"), consultation_id=consultation.id, participant_id=patient.id)
                mail.invitation_id, mail.kind, mail.recipient_role = invitation.id, "invitation", "patient"
                mail.status, mail.attempts, mail.next_attempt_at, mail.sent_at = "sent", 1, now, now
                tx.add(mail)
                doctor_ticket = await issue_ticket(tx, settings.access, doctor_seat.id, now)
                tickets.append((doctor_ticket, await issue_ticket(tx, settings.access, patient.id, now)))
    await db.close()
    return tickets


class GcWatch:
    """Counts the server's collections and their pauses, per generation, between two reads."""

    def __init__(self, diagnose: bool = False) -> None:
        self.diagnose = diagnose
        self._young: list[tuple[int, str]] = []
        self.count = [0, 0, 0]
        self.total = [0.0, 0.0, 0.0]
        self.max = [0.0, 0.0, 0.0]
        self.events: list[tuple[int, float, float]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            if self.diagnose and info["generation"] < 2:
                # The young containers with the most references: what makes a young collection slow.
                sizes = ((len(gc.get_referents(o)), type(o).__qualname__) for o in gc.get_objects(info["generation"]))
                self._young = sorted(sizes, reverse=True)[:3]
            self._start = time.perf_counter()
            return
        generation, took = info["generation"], time.perf_counter() - self._start
        if self.diagnose and took > 0.02 and generation < 2:
            print(
                f"slow gen{generation} collection, {took * 1000:.0f} ms; biggest young: {self._young}", file=sys.stderr
            )
        self.count[generation] += 1
        self.total[generation] += took
        self.max[generation] = max(self.max[generation], took)
        if generation or took > 0.005:
            self.events.append((generation, self._start, took))

    def read(self, reset: bool) -> dict[str, Any]:
        out = {
            "count": list(self.count),
            "total_ms": [t * 1000 for t in self.total],
            "max_ms": [t * 1000 for t in self.max],
            "events": list(self.events),
        }
        if reset:
            self.count, self.total, self.max = [0, 0, 0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
            self.events = []
        return out


async def serve_teleconsult(data_dir: Path, port: int, keepalive: bool, server_gc: str | None) -> None:
    from teleconsult import cli
    from teleconsult.api.keys import SIGNALING, SOCKETS
    from teleconsult.app import create_app

    settings = bench_settings(data_dir, port, keepalive)
    app = create_app(settings)
    # What `teleconsult serve` does to the collector before it serves (in the versions that tune it).
    young = getattr(cli, "GC_YOUNG_THRESHOLD", None)
    if young:
        gc.set_threshold(young, *gc.get_threshold()[1:])
    served_threshold = gc.get_threshold()
    watch = GcWatch(diagnose=bool(os.environ.get("BENCH_GC_DIAGNOSE")))
    gc.callbacks.append(watch)
    chores: dict[str, asyncio.Task[None]] = {}

    def tune(knobs: str) -> None:
        for knob in knobs.split(";"):
            name, _, value = knob.partition("=")
            if name == "threshold":
                gc.set_threshold(*(int(v) for v in value.split(",")))
            elif name == "freeze_every":
                if "freeze" in chores:
                    chores.pop("freeze").cancel()
                if float(value) > 0:
                    chores["freeze"] = asyncio.create_task(freeze_every(float(value)))
            elif name == "unfreeze":
                gc.unfreeze()
            elif name:
                raise ValueError(f"unknown --server-gc knob {name!r}")

    tune(server_gc or "")
    snapshots: dict[str, tracemalloc.Snapshot] = {}

    async def stats(request: web.Request) -> web.Response:
        """Bench-only: the server's collections since the last reset; ``freeze=1`` freezes the collector."""
        body: dict[str, Any] = {}
        if request.query.get("snapshot") == "base" and tracemalloc.is_tracing():
            snapshots["base"] = tracemalloc.take_snapshot()
        if request.query.get("snapshot") == "diff" and "base" in snapshots:
            diff = tracemalloc.take_snapshot().compare_to(snapshots["base"], "lineno")
            body["top"] = [(d.size_diff, d.count_diff, str(d.traceback)) for d in diff[:40]]
        if request.query.get("freeze"):
            gc.collect()
            gc.freeze()
        if request.query.get("tune"):
            tune(request.query["tune"])
        body |= {
            "gc": watch.read(bool(request.query.get("reset"))),
            "sessions": request.app[SIGNALING].session_count,
            "sockets": len(request.app[SOCKETS]),
            "threshold": gc.get_threshold(),
            "served_threshold": served_threshold,
            "frozen": gc.get_freeze_count(),
            "tracked": len(gc.get_objects()) if request.query.get("count") else None,
        }
        return web.json_response(body)

    app.router.add_get("/_bench/stats", stats)
    await serve(app, port)


async def freeze_every(seconds: float) -> None:
    """Experiment: move whatever survived into the permanent generation, periodically."""
    while True:
        await asyncio.sleep(seconds)
        gc.freeze()


async def serve_bare(port: int) -> None:
    """The floor: a relay any aiohttp developer would write first (stdlib json, no rooms, auth or checks)."""
    peers: dict[str, web.WebSocketResponse] = {}

    async def relay(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        me = request.query["id"]
        peers[me] = ws
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    frame = json.loads(msg.data)
                    target = peers.get(frame.pop("to", None))
                    if target is not None:
                        frame["from"] = me
                        await target.send_str(json.dumps(frame))
        finally:
            peers.pop(me, None)
        return ws

    app = web.Application()
    app.router.add_get("/ws", relay)
    await serve(app, port)


async def serve(app: web.Application, port: int) -> None:
    raise_fd_limit()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def child(args: argparse.Namespace) -> None:
    if args.child == "seed":
        args.data_dir.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(asyncio.run(seed(args.data_dir, args.seed_rooms))))
        return
    runs: dict[str, Callable[[], Awaitable[None]]] = {
        "teleconsult": lambda: serve_teleconsult(args.data_dir, args.port, args.keepalive, args.server_gc),
        "bare": lambda: serve_bare(args.port),
    }
    asyncio.run(runs[args.child]())


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", default="100,1000,5000", help="room counts, comma-separated (default 100,1000,5000)")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per phase (default 8)")
    parser.add_argument(
        "--long-duration", type=float, default=30.0, help="paced phases at the largest room count (default 30)"
    )
    parser.add_argument("--rate", type=int, default=2000, help="paced phase: frames/s in total (default 2000)")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"any of {', '.join(SERVERS)} (default all)")
    parser.add_argument("--keepalive", action="store_true", help="each server's own keepalives (see above)")
    parser.add_argument("--no-freeze", action="store_true", help="skip the paced run with Teleconsult's gc frozen")
    parser.add_argument("--join-concurrency", type=int, default=32, help="rooms joining at once (default 32)")
    parser.add_argument(
        "--trace-memory", action="store_true", help="diagnosis: trace Teleconsult's allocations (slows it down)"
    )
    parser.add_argument(
        "--server-gc",
        help="experiment: collector settings in the Teleconsult process, e.g. 'threshold=50000,20,100;freeze_every=30'",
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this file (e.g. bench/out/signaling.json)")
    # Child processes (used by the bench itself).
    parser.add_argument("--child", choices=("seed", "teleconsult", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed-rooms", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is None:
        args.rooms = [int(n) for n in args.rooms.split(",") if n.strip()]
        args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
        if not args.rooms or min(args.rooms) < 1:
            parser.error("--rooms needs positive numbers")
        if unknown := set(args.servers) - set(SERVERS):
            parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
        args.servers = [s for s in SERVERS if s in args.servers]
    return args


if __name__ == "__main__":
    arguments = parse()
    if arguments.child:
        child(arguments)
    else:
        asyncio.run(bench(arguments))
