"""Joining: from the patient's ``hello`` to the first remote video frame on both sides, through Teleconsult,
against the same two aiortc peers connected directly (offer and answer handed over in-process: the floor).

Run from the repository root: ``.venv/bin/python bench/join.py [--runs 10]``. The server runs in this process on
127.0.0.1 with a throw-away data directory; both peers run in this process too, in both modes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiohttp import ClientSession, ClientWebSocketResponse, CookieJar, WSMsgType, web  # noqa: E402

from bench.peers import MediaPeer, connect_direct, negotiate_until  # noqa: E402
from teleconsult.api.keys import DOCTORS  # noqa: E402
from teleconsult.app import create_app  # noqa: E402
from teleconsult.config import build_settings  # noqa: E402

DOCTOR_EMAIL = "bench.doctor@example.org"
DOCTOR_SECRET = "bench horse battery staple"  # noqa: S105 - a throw-away account in a temporary database
TARGET_RATIO = 1.5
RECV_TIMEOUT_S = 10.0


@dataclass
class Sample:
    """Seconds from the clock's start to each mark; ``total`` is the last of the two first frames."""

    total: float
    marks: dict[str, float] = field(default_factory=dict)


class WsPeer:
    """A minimal protocol v1 client (the shape ``bench.peers.Signaling`` asks for)."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, **frame: Any) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=RECV_TIMEOUT_S)
        if msg.type != WSMsgType.TEXT:
            raise RuntimeError(f"expected a text frame, got {msg.type} {msg.data!r}")
        return dict(json.loads(msg.data))

    async def expect(self, kind: str) -> dict[str, Any]:
        while (frame := await self.recv())["type"] != kind:
            pass
        return frame


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def first_frames(a: MediaPeer, b: MediaPeer) -> tuple[float, float]:
    (at_a, _), (at_b, _) = await asyncio.gather(a.first_video_frame(), b.first_video_frame())
    return at_a, at_b


#: ``negotiate(doctor, patient, start, marks)``: connect the two peers, noting phase times in ``marks``.
Negotiate = Callable[[MediaPeer, MediaPeer, float, dict[str, float]], Awaitable[None]]


class Bench:
    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url
        self.timeout = timeout

    async def direct(self) -> Sample:
        async def negotiate(doctor: MediaPeer, patient: MediaPeer, start: float, marks: dict[str, float]) -> None:
            await connect_direct(patient, doctor)  # the patient offers, as through the server

        return await self._run(negotiate)

    async def _run(self, negotiate: Negotiate) -> Sample:
        """Both modes: make the peers, start the clock, negotiate, wait for both first frames, close."""
        doctor, patient = MediaPeer("doctor"), MediaPeer("patient")
        frames = asyncio.create_task(first_frames(doctor, patient))
        marks: dict[str, float] = {}
        try:
            async with asyncio.timeout(self.timeout):
                start = time.perf_counter()
                await negotiate(doctor, patient, start, marks)
                marks["negotiated"] = time.perf_counter() - start
                at_doctor, at_patient = await frames
        finally:
            frames.cancel()
            await asyncio.gather(doctor.close(), patient.close())
        marks["doctor frame"], marks["patient frame"] = at_doctor - start, at_patient - start
        return Sample(max(at_doctor, at_patient) - start, marks)

    async def through_server(self) -> Sample:
        # Cookies from 127.0.0.1 (an IP address) need an "unsafe" jar; each participant has its own.
        async with (
            ClientSession(self.base_url, cookie_jar=CookieJar(unsafe=True)) as doctor_http,
            ClientSession(self.base_url, cookie_jar=CookieJar(unsafe=True)) as patient_http,
        ):
            response = await doctor_http.post("/api/login", json={"email": DOCTOR_EMAIL, "password": DOCTOR_SECRET})
            response.raise_for_status()
            csrf = {"X-CSRF-Token": (await response.json())["csrf_token"]}
            response = await doctor_http.post(
                "/api/consultations",
                json={"patient_name": "Jeanne Dupont", "patient_email": "jeanne@example.org"},
                headers=csrf,
            )
            response.raise_for_status()
            consultation = await response.json()
            response = await doctor_http.post(f"/api/consultations/{consultation['id']}/ticket", headers=csrf)
            response.raise_for_status()
            doctor_ws = WsPeer(await doctor_http.ws_connect("/ws"))
            await doctor_ws.send(type="hello", v=1, ticket=(await response.json())["ticket"])
            await doctor_ws.expect("welcome")
            token = consultation["patient_link"].rsplit("/j/", 1)[1]
            response = await patient_http.post("/api/join", json={"token": token, "consent": True})
            response.raise_for_status()
            patient_ticket = (await response.json())["ticket"]
            patient_ws = WsPeer(await patient_http.ws_connect("/ws"))

            async def doctor_side(doctor: MediaPeer, start: float, marks: dict[str, float]) -> None:
                while True:
                    frame = await doctor_ws.recv()
                    if frame["type"] == "lobby" and frame["waiting"]:
                        marks.setdefault("lobby", time.perf_counter() - start)
                        await doctor_ws.send(type="admit", peer_id=frame["waiting"][0]["peer_id"])
                    elif await doctor.apply(frame, doctor_ws.send) and frame["type"] == "offer":
                        marks["answer sent"] = time.perf_counter() - start
                        return

            async def patient_side(patient: MediaPeer, start: float, marks: dict[str, float]) -> None:
                await patient_ws.send(type="hello", v=1, ticket=patient_ticket)
                await patient_ws.expect("welcome")
                marks["welcome"] = time.perf_counter() - start
                admitted = await patient_ws.expect("admitted")
                marks["admitted"] = time.perf_counter() - start
                for present in admitted["peers"]:  # the later joiner offers to each peer already there
                    await patient_ws.send(type="offer", to=present["peer_id"], sdp=await patient.offer())
                marks["offer sent"] = time.perf_counter() - start
                await negotiate_until(patient_ws, patient, "answer")

            async def negotiate(doctor: MediaPeer, patient: MediaPeer, start: float, marks: dict[str, float]) -> None:
                await asyncio.gather(doctor_side(doctor, start, marks), patient_side(patient, start, marks))

            try:
                return await self._run(negotiate)
            finally:
                await doctor_ws.send(type="end")  # tidy: the room closes, a billing record is written
                for side in (doctor_ws, patient_ws):
                    await side.ws.close()


def summary(values: list[float]) -> tuple[float, float, float, float]:
    ordered = sorted(values)
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[-1] if len(ordered) > 1 else ordered[0]
    return statistics.median(ordered), p90, ordered[0], ordered[-1]


def ms(value: float) -> str:
    return f"{value * 1000:8.1f}"


async def main(args: argparse.Namespace) -> None:
    runs, warmup = args.runs, args.warmup
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aioice").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="teleconsult-bench-") as tmp:
        port = free_port()
        settings = build_settings({"data_dir": Path(tmp) / "var", "port": port, "secret_key": "bench-secret"})
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            await app[DOCTORS].create_doctor(
                email=DOCTOR_EMAIL, name="Dr Bench", rpps="10101010101", password=DOCTOR_SECRET
            )
            bench = Bench(f"http://127.0.0.1:{port}", args.timeout)
            print(
                f"Teleconsult join bench: {os.cpu_count()} cores, {platform.machine()},"
                f" Python {platform.python_version()}, aiortc {version('aiortc')}, aioice {version('aioice')},"
                f" av {version('av')}, aiohttp {version('aiohttp')}"
            )
            print(f"{runs} runs per mode (+{warmup} warm-up each, not counted), interleaved; video 320x240 VP8")
            results: dict[str, list[Sample]] = {"direct": [], "server": []}
            for i in range(warmup + runs):
                order = ("direct", "server") if i % 2 == 0 else ("server", "direct")
                for mode in order:
                    sample = await (bench.direct() if mode == "direct" else bench.through_server())
                    if i >= warmup:
                        results[mode].append(sample)
        finally:
            await runner.cleanup()

    print()
    print("hello (server) or offer (direct) -> first remote video frame on both sides, ms")
    print(f"{'mode':<22}{'median':>9}{'p90':>9}{'min':>9}{'max':>9}")
    medians: dict[str, float] = {}
    for mode, label in (("direct", "direct (no server)"), ("server", "through Teleconsult")):
        med, p90, low, high = summary([s.total for s in results[mode]])
        medians[mode] = med
        print(f"{label:<22}{ms(med)} {ms(p90)} {ms(low)} {ms(high)}")
    ratio = medians["server"] / medians["direct"]
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"ratio server/direct (medians): {ratio:.2f}x  (target <= {TARGET_RATIO}x: {verdict})")
    print()
    print("where the time goes (medians, ms from the clock's start)")
    for mode in ("direct", "server"):
        names = list(results[mode][0].marks)
        cells = ", ".join(f"{n} {statistics.median(s.marks[n] for s in results[mode]) * 1000:.1f}" for n in names)
        print(f"  {mode}: {cells}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="measured runs per mode (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted runs per mode first (default 1)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds allowed per run (default 30)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
