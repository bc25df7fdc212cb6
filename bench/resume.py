"""A restart under load: N rooms in call, the server stopped with SIGTERM and started again, every client resuming.

Run from the repository root: ``.venv/bin/python bench/resume.py`` (``--rooms 100,1000,5000`` by default, a few
minutes). Method and last figures: ``docs/performance.md``.

For each room count it seeds a fresh SQLite data directory (as ``bench/signaling.py`` does), starts ``teleconsult``
in its own process and joins N rooms of two admitted peers (doctor and patient), 32 rooms at a time: that first
join is the reference the resume is compared with. Then:

1. SIGTERM: the server tells every client ``reconnect``, marks every seat away and exits; the bench notes how long
   that takes (the server must be gone within 10 s) and how many clients were told before their socket closed;
2. the server is started again on the same data directory and port, as a supervisor would;
3. every client behaves as ``web/static/js/signaling.js`` does: it waits ``after_ms`` (+-20 %) after ``reconnect``,
   then connects and sends ``hello`` with its resume token, backing off 0.5, 1, 2, 4, 8 s (+-20 %) while the port
   refuses; the bench notes when each gets ``welcome``, and whether it has its old peer id and state;
4. one offer per room goes from the doctor to the patient: every room relays again.

A peer's grace period (30 s by default) runs from the shutdown: a client not back by then loses its seat and would
join again with a fresh ticket (its room would see it leave and come back). The figures say how far from it we are.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiohttp import ClientError, ClientSession, ClientWebSocketResponse, TCPConnector, WSMsgType  # noqa: E402

from bench.signaling import (  # noqa: E402
    WARM_ROOMS,
    Teleconsult,
    expect,
    machine,
    percentile,
    proc_cpu_s,
    raise_fd_limit,
)

GRACE_S = 30.0
#: signaling.js: the back-off while the server cannot be reached, capped at 8 s, eight attempts.
BACKOFF_MS = (500, 1000, 2000, 4000, 8000, 8000, 8000, 8000)
RESUME_TIMEOUT_S = 120.0


@dataclass
class Client:
    """One browser tab: its socket, its peer id, its state and the resume token of its last welcome."""

    role: str
    peer_id: str
    state: str
    token: str
    ws: ClientWebSocketResponse | None = None
    told_at: float | None = None
    after_ms: int = 1000
    closed_at: float | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    welcomed_at: float | None = None
    attempts: int = 0
    problem: str = ""


@dataclass
class Pair:
    doctor: Client
    patient: Client


async def join(target: Teleconsult, index: int) -> Pair:
    """A room as ``bench/signaling.py`` joins it: the doctor admits the patient; both keep their resume tokens."""
    room = await target.join(index)
    doctor, patient = (
        Client(role, room.ids[side], "admitted", room.resume[side], room.ws[side])
        for side, role in enumerate(("doctor", "patient"))
    )
    return Pair(doctor, patient)


async def listen(client: Client) -> None:
    """Until the socket closes: note the ``reconnect`` frame and when the socket went."""
    assert client.ws is not None
    while True:
        msg = await client.ws.receive()
        if msg.type is WSMsgType.TEXT:
            frame = json.loads(msg.data)
            if frame.get("type") == "reconnect":
                client.told_at, client.after_ms = time.perf_counter(), int(frame["after_ms"])
            elif frame.get("type") in ("peer-left", "error"):
                client.problem = client.problem or msg.data[:200]
            continue
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            client.closed_at, client.ws = time.perf_counter(), None
            client.closed.set()
            return


def jitter(ms: float) -> float:
    return ms * (0.8 + random.random() * 0.4) / 1000  # spreading retries, not a secret


async def come_back(http: ClientSession, port: int, client: Client) -> None:
    """signaling.js after a restart: wait, then resume with the last token, backing off while the port refuses."""
    await client.closed.wait()
    await asyncio.sleep(jitter(client.after_ms))
    url = f"http://127.0.0.1:{port}/ws"
    for backoff in BACKOFF_MS:
        client.attempts += 1
        try:
            ws = await http.ws_connect(url)
        except (ClientError, OSError):
            await asyncio.sleep(jitter(backoff))
            continue
        await ws.send_str(json.dumps({"type": "hello", "v": 1, "resume": client.token}))
        msg = await ws.receive(timeout=RESUME_TIMEOUT_S)
        frame = json.loads(msg.data) if msg.type is WSMsgType.TEXT else {"type": str(msg.type)}
        if frame.get("type") != "welcome":
            client.problem = f"resume refused: {frame}"
            await ws.close()
            return
        client.welcomed_at = time.perf_counter()
        if frame["peer_id"] != client.peer_id or frame["state"] != client.state:
            client.problem = f"came back as {frame['peer_id']} {frame['state']}, was {client.peer_id} {client.state}"
        client.ws, client.token = ws, frame["resume"]
        return
    client.problem = "gave up: the server never answered"


async def relays_again(pair: Pair) -> bool:
    """One offer from the doctor reaches the patient, from the doctor's (resumed) peer id."""
    if pair.doctor.ws is None or pair.patient.ws is None:
        return False
    await pair.doctor.ws.send_str(json.dumps({"type": "offer", "to": pair.patient.peer_id, "sdp": "v=0 bench"}))
    offer = await expect(pair.patient.ws, "offer")
    return bool(offer["from"] == pair.doctor.peer_id)


@dataclass
class Figures:
    rooms: int
    join_s: float
    join_cpu_ms: float
    told: int
    stop_s: float
    start_s: float
    resumed: int
    first_s: float
    p50_s: float
    p99_s: float
    last_s: float
    resume_cpu_ms: float
    late: int
    relaying: int
    problems: list[str]


async def run(rooms: int, args: argparse.Namespace, workdir: Path) -> Figures:
    async with ClientSession(connector=TCPConnector(limit=0)) as http:
        target = Teleconsult(http, args, workdir)
        await target.start(rooms)
        try:
            return await measure(target, http, rooms, args)
        finally:
            await target.stop()


async def measure(target: Teleconsult, http: ClientSession, rooms: int, args: argparse.Namespace) -> Figures:
    semaphore = asyncio.Semaphore(32)

    async def one(index: int) -> Pair:
        async with semaphore:
            return await join(target, index)

    cpu, started = proc_cpu_s(target.pid), time.perf_counter()
    pairs = list(await asyncio.gather(*(one(i) for i in range(WARM_ROOMS, WARM_ROOMS + rooms))))
    join_s, join_cpu_ms = time.perf_counter() - started, (proc_cpu_s(target.pid) - cpu) / rooms * 1000
    clients = [c for pair in pairs for c in (pair.doctor, pair.patient)]
    listeners = [asyncio.create_task(listen(c)) for c in clients]
    returns = [asyncio.create_task(come_back(http, target.port, c)) for c in clients]
    await asyncio.sleep(0.5)

    assert target.process is not None
    stopped_at = time.perf_counter()
    target.process.send_signal(signal.SIGTERM)
    await target.process.wait()
    stop_s = time.perf_counter() - stopped_at
    await asyncio.gather(*listeners)
    told = sum(1 for c in clients if c.told_at is not None)

    launched = time.perf_counter()
    await target.launch_server()
    ready = time.perf_counter()
    cpu = proc_cpu_s(target.pid)
    profiler = await profile(target.pid, args.profile) if args.profile else None
    await asyncio.wait_for(asyncio.gather(*returns), timeout=RESUME_TIMEOUT_S * 2)
    resume_cpu_ms = (proc_cpu_s(target.pid) - cpu) / len(clients) * 1000
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        await profiler.wait()
    back_ns = sorted(round((c.welcomed_at - ready) * 1e9) for c in clients if c.welcomed_at is not None)
    late = sum(1 for c in clients if c.welcomed_at is None or c.welcomed_at - stopped_at > GRACE_S)
    relaying = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(60):
            for pair in pairs:
                try:
                    relaying += await relays_again(pair)
                except (ClientError, RuntimeError) as error:
                    pair.doctor.problem = pair.doctor.problem or f"no relay: {error!r}"
    problems = sorted({c.problem for c in clients if c.problem})
    for c in clients:
        if c.ws is not None:
            await c.ws.close()
    return Figures(
        rooms=rooms,
        join_s=join_s,
        join_cpu_ms=join_cpu_ms,
        told=told,
        stop_s=stop_s,
        start_s=ready - launched,
        resumed=len(back_ns),
        first_s=back_ns[0] / 1e9 if back_ns else float("nan"),
        p50_s=percentile(back_ns, 0.5) / 1000,  # percentile gives milliseconds
        p99_s=percentile(back_ns, 0.99) / 1000,
        last_s=back_ns[-1] / 1e9 if back_ns else float("nan"),
        resume_cpu_ms=resume_cpu_ms,
        late=late,
        relaying=relaying,
        problems=problems,
    )


async def profile(pid: int, path: Path) -> asyncio.subprocess.Process:
    """Diagnosis: py-spy (not a dependency: ``pip install py-spy``) samples the server while clients resume."""
    argv = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--output", str(path), "--rate", "200"]
    return await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL)


HEADER = (
    f"{'rooms':>6}{'clients':>8}{'join s':>8}{'ms/room':>8}{'told':>7}{'stop s':>7}{'start s':>8}{'resumed':>8}"
    f"{'first s':>8}{'p50 s':>7}{'p99 s':>7}{'last s':>7}{'ms/resume':>10}{'late':>5}{'relaying':>9}"
)


def row(f: Figures) -> str:
    return (
        f"{f.rooms:>6}{2 * f.rooms:>8}{f.join_s:>8.1f}{f.join_cpu_ms:>8.1f}{f.told:>7}{f.stop_s:>7.2f}{f.start_s:>8.2f}"
        f"{f.resumed:>8}{f.first_s:>8.2f}{f.p50_s:>7.2f}{f.p99_s:>7.2f}{f.last_s:>7.2f}{f.resume_cpu_ms:>10.1f}"
        f"{f.late:>5}{f.relaying:>9}"
    )


async def bench(args: argparse.Namespace) -> None:
    raise_fd_limit()
    print(f"Teleconsult restart-and-resume bench: {machine()}")
    print(f"rooms {', '.join(map(str, args.rooms))}; grace period {GRACE_S:g} s; keepalives off", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="teleconsult-resume-") as tmp:
        for rooms in args.rooms:
            figures = await run(rooms, args, Path(tmp))
            results.append(figures)
            for problem in figures.problems[:5]:
                print(f"  {rooms} rooms: {problem}", flush=True)
    print()
    print("join s: the first join of every room (the reference); ms/room: server CPU per room joined.")
    print("told: clients that got `reconnect` before their socket closed; stop s: SIGTERM to exit;")
    print("start s: launch to listening; first/p50/p99/last s: a client's welcome back, from listening;")
    print("ms/resume: server CPU per client resumed; late: clients not back within the grace period (from SIGTERM);")
    print("relaying: rooms that relay an offer again, between the resumed peer ids.")
    print(HEADER)
    for figures in results:
        print(row(figures))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", default="100,1000,5000", help="room counts, comma-separated (default 100,1000,5000)")
    parser.add_argument("--profile", type=Path, help="diagnosis: py-spy's collapsed stacks of the resume phase")
    args = parser.parse_args()
    args.rooms = [int(n) for n in args.rooms.split(",") if n.strip()]
    # What bench/signaling.py's Teleconsult target reads from its arguments.
    args.keepalive, args.trace_memory, args.server_gc = False, False, None
    return args


def main() -> None:
    asyncio.run(bench(parse()))


if __name__ == "__main__":
    main()
