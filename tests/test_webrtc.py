"""Two aiortc peers negotiate through the server (protocol v1 relay) and receive each other's real media."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bench.peers import MediaPeer, negotiate_until
from tests.helpers import Client, Peer, connect, doctor_in_room, join

pytestmark = pytest.mark.webrtc

MEDIA_TIMEOUT_S = 20.0


@dataclass
class MediaCall:
    doctor_http: Client
    csrf: str
    consultation: dict[str, Any]
    doctor: Peer
    patient: Peer
    doctor_media: MediaPeer
    patient_media: MediaPeer


@pytest.fixture
async def media_call(clients: Any) -> AsyncIterator[MediaCall]:
    """Doctor and patient in an admitted call, their peer connections negotiated through the server."""
    doctor_http, csrf, consultation, doctor = await doctor_in_room(clients)
    patient_http = await clients()
    patient = await connect(patient_http, (await join(patient_http, consultation["patient_link"]))["ticket"])
    doctor_media, patient_media = MediaPeer("doctor"), MediaPeer("patient")
    try:
        await patient.expect("waiting")
        lobby = await doctor.expect("lobby", waiting=bool)
        await doctor.send(type="admit", peer_id=lobby["waiting"][0]["peer_id"])
        admitted = await patient.expect("admitted")
        present = [p["peer_id"] for p in admitted["peers"]]
        assert present == [doctor.peer_id]

        # The later joiner offers to each peer already present; aiortc's SDP carries its candidates.
        for peer_id in present:
            await patient.send(type="offer", to=peer_id, sdp=await patient_media.offer())
        seen = await negotiate_until(doctor, doctor_media, "offer")  # answers through the relay
        assert any(f["type"] == "peer-joined" and f["peer"]["peer_id"] == patient.peer_id for f in seen), seen
        await negotiate_until(patient, patient_media, "answer")
        yield MediaCall(doctor_http, csrf, consultation, doctor, patient, doctor_media, patient_media)
    finally:
        await asyncio.gather(doctor_media.close(), patient_media.close())
        await asyncio.gather(doctor.ws.close(), patient.ws.close())


async def test_both_sides_receive_video_and_audio_through_the_server(media_call: MediaCall) -> None:
    async def received(media: MediaPeer) -> tuple[list[Any], Any]:
        return await media.video_frames(5), await media.audio_frame()

    async with asyncio.timeout(MEDIA_TIMEOUT_S):
        results = await asyncio.gather(received(media_call.doctor_media), received(media_call.patient_media))
    for frames, audio in results:
        assert len(frames) == 5 and all(f.width > 0 and f.height > 0 for f in frames)
        assert bytes(frames[0].planes[0]) != bytes(frames[-1].planes[0]), "the picture should move"
        assert audio.sample_rate > 0 and audio.samples > 0
    for media in (media_call.doctor_media, media_call.patient_media):
        assert media.pc.connectionState == "connected"

    # A browser peer trickles candidates and ends with null: relayed in order, and harmless to an aiortc peer
    # whose SDP already said end-of-candidates.
    trickled = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
    for candidate in (trickled, None):
        await media_call.doctor.send(type="candidate", to=media_call.patient.peer_id, candidate=candidate)
        relayed = await media_call.patient.expect("candidate")
        assert relayed["candidate"] == candidate
        assert await media_call.patient_media.apply(relayed, media_call.patient.send)
    async with asyncio.timeout(MEDIA_TIMEOUT_S):
        assert (await media_call.patient_media.video_frame()).width > 0


async def test_doctor_ends_a_live_call_and_both_are_told(media_call: MediaCall) -> None:
    async with asyncio.timeout(MEDIA_TIMEOUT_S):
        await asyncio.gather(media_call.doctor_media.first_video_frame(), media_call.patient_media.first_video_frame())
    await media_call.doctor.send(type="end")
    cid = media_call.consultation["id"]
    for side in (media_call.doctor, media_call.patient):
        assert (await side.expect("ended"))["consultation_id"] == cid
        assert await side.closed() == 1000
    response = await media_call.doctor_http.get(f"/api/consultations/{cid}")
    assert (await response.json())["status"] == "ended"
