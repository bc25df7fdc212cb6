"""aiortc peers with synthetic media, shared by tests/test_webrtc.py and bench/join.py.

Facts this relies on (docs in /work/shared/WEBRTC.md): every RTCPeerConnection gets an explicit empty ICE server
list (aiortc's default is Google's public STUN server), aiortc gathers all of its candidates inside
``setLocalDescription`` so the SDP it sends already holds them (no trickle), and ``aioice`` logs every check at INFO.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import AUDIO_PTIME, MediaStreamError
from aiortc.sdp import candidate_from_sdp

logging.getLogger("aioice").setLevel(logging.WARNING)
log = logging.getLogger(__name__)

Send = Callable[..., Awaitable[None]]


class Signaling(Protocol):
    """A protocol v1 client: ``tests.helpers.Peer`` and ``bench.join.WsPeer`` both fit."""

    async def send(self, **frame: Any) -> None: ...

    async def recv(self) -> dict[str, Any]: ...


class SyntheticVideoTrack(VideoStreamTrack):
    """A moving diagonal gradient (so every frame differs and the encoder has real work), 30 fps."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width, self.height = width, height
        self._count = 0
        # Twice as wide as a row, so each row of a frame is one slice of it.
        self._ramp = bytes((2 * i) & 0xFF for i in range(2 * max(width, height)))

    def _plane(self, width: int, height: int, line_size: int, shift: int) -> bytes:
        pad = bytes(line_size - width)
        ramp = self._ramp
        return b"".join(ramp[(shift + y) % width : (shift + y) % width + width] + pad for y in range(height))

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        shift = (self._count * 4) % self.width
        luma, blue, red = frame.planes
        luma.update(self._plane(luma.width, luma.height, luma.line_size, shift))
        blue.update(self._plane(blue.width, blue.height, blue.line_size, shift // 2))
        red.update(bytes([128]) * red.buffer_size)
        self._count += 1
        frame.pts, frame.time_base = pts, time_base
        return frame


class ToneAudioTrack(MediaStreamTrack):
    """A 440 Hz tone, 48 kHz mono s16, in 20 ms frames paced in real time."""

    kind = "audio"
    rate = 48000

    def __init__(self) -> None:
        super().__init__()
        samples = int(AUDIO_PTIME * self.rate)
        period = self.rate // 440 * 440  # a whole number of cycles, so slices join without a click
        wave = [int(3000 * math.sin(2 * math.pi * 440 * i / self.rate)) for i in range(period + samples)]
        self._wave = b"".join(v.to_bytes(2, "little", signed=True) for v in wave)
        self._samples, self._period = samples, period
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += self._samples
            wait = self._start + self._pts / self.rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        frame = av.AudioFrame(format="s16", layout="mono", samples=self._samples)
        offset = 2 * (self._pts % self._period)
        frame.planes[0].update(self._wave[offset : offset + 2 * self._samples])
        frame.pts, frame.sample_rate = self._pts, self.rate
        frame.time_base = fractions.Fraction(1, self.rate)
        return frame


class MediaPeer:
    """One RTCPeerConnection sending a synthetic video and a tone, and exposing what the other side sends."""

    def __init__(self, name: str, *, width: int = 320, height: int = 240) -> None:
        self.name = name
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video = SyntheticVideoTrack(width, height)
        self.audio = ToneAudioTrack()
        loop = asyncio.get_running_loop()
        self.remote_video: asyncio.Future[MediaStreamTrack] = loop.create_future()
        self.remote_audio: asyncio.Future[MediaStreamTrack] = loop.create_future()
        self._tracks_added = False
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        wanted = self.remote_video if track.kind == "video" else self.remote_audio
        if not wanted.done():
            wanted.set_result(track)

    def add_tracks(self) -> None:
        if not self._tracks_added:
            self.pc.addTrack(self.audio)
            self.pc.addTrack(self.video)
            self._tracks_added = True

    async def offer(self) -> str:
        """The offerer's half: the SDP returned already carries every local candidate."""
        self.add_tracks()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        self.add_tracks()  # reuses the transceivers the offer created
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def accept_answer(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def add_candidate(self, candidate: dict[str, Any] | None) -> None:
        """A trickled candidate from a browser peer; ``null`` (end of candidates) and unparsable ones are ignored."""
        if candidate is None or not candidate.get("candidate"):
            return
        try:
            parsed = candidate_from_sdp(str(candidate["candidate"]).removeprefix("candidate:"))
            parsed.sdpMid = candidate.get("sdpMid")
            parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
            await self.pc.addIceCandidate(parsed)
        except (ValueError, IndexError, KeyError) as exc:
            log.warning("%s: ignored a candidate it could not use: %s", self.name, exc)

    async def apply(self, frame: dict[str, Any], send: Send) -> bool:
        """Apply one relayed negotiation frame (answering an offer through ``send``); False for any other frame."""
        kind = frame.get("type")
        if kind == "offer":
            await send(type="answer", to=frame["from"], sdp=await self.answer(frame["sdp"]))
        elif kind == "answer":
            await self.accept_answer(frame["sdp"])
        elif kind == "candidate":
            await self.add_candidate(frame.get("candidate"))
        else:
            return False
        return True

    async def video_frame(self) -> av.VideoFrame:
        """The next decoded frame of the remote video (waiting for the track to be announced first)."""
        frame = await (await self.remote_video).recv()
        assert isinstance(frame, av.VideoFrame), frame
        return frame

    async def first_video_frame(self) -> tuple[float, av.VideoFrame]:
        """The first decoded remote video frame and when it came out of the decoder (``time.perf_counter``)."""
        frame = await self.video_frame()
        return time.perf_counter(), frame

    async def video_frames(self, count: int) -> list[av.VideoFrame]:
        return [await self.video_frame() for _ in range(count)]

    async def audio_frame(self) -> av.AudioFrame:
        frame = await (await self.remote_audio).recv()
        assert isinstance(frame, av.AudioFrame), frame
        return frame

    async def close(self) -> None:
        for future in (self.remote_video, self.remote_audio):
            future.cancel()
        await self.pc.close()


async def negotiate_until(sig: Signaling, media: MediaPeer, until: str) -> list[dict[str, Any]]:
    """Read frames in order, applying negotiation frames, until one of type ``until`` is applied.

    Frames are applied one at a time, in arrival order, so a candidate never overtakes its description. Returns
    the other frames seen meanwhile (peer-joined, lobby, chat...). Bound it with ``asyncio.timeout`` as needed;
    each ``recv`` has the client's own timeout too.
    """
    others: list[dict[str, Any]] = []
    while True:
        frame = await sig.recv()
        if await media.apply(frame, sig.send):
            if frame["type"] == until:
                return others
        else:
            others.append(frame)


async def connect_direct(offerer: MediaPeer, answerer: MediaPeer) -> None:
    """The floor: offer and answer handed over in-process, no server."""
    await offerer.accept_answer(await answerer.answer(await offerer.offer()))
