"""``GET /ws``: the protocol v1 endpoint. This handler reads; ``WsConnection`` (``api/connection.py``) writes and
keeps the heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from dataclasses import dataclass, field
from typing import Final

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from teleconsult.api.clients import client_ip
from teleconsult.api.connection import WsConnection
from teleconsult.api.keys import METRICS, PENDING_HELLOS, SETTINGS, SIGNALING, SOCKETS
from teleconsult.api.security import same_origin
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.metrics import FrameType, Metrics
from teleconsult.protocol import decode_client, encode
from teleconsult.protocol import messages as m
from teleconsult.protocol.codec import ref_of
from teleconsult.ratelimit import TokenBucket
from teleconsult.signaling import Seated, SignalingService

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_TOO_LARGE: Final = 4413
CLOSE_RATE_LIMITED: Final = 4429
#: After the hello deadline, how long a frame the loop has just read from the socket may take to reach the handler.
LAST_LOOK_S: Final = 0.05
#: aiohttp itself closes frames over this with 1009; frames between the protocol limit and this get 4413.
TRANSPORT_MAX_MSG = 1024 * 1024
#: What ends the reading: the client closed, or the transport went away.
ENDINGS: Final = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)
#: The client frames that, once handled, have been relayed to other peers (counted by type).
RELAYED: Final[dict[type[m.ClientMessage], FrameType]] = {
    m.Offer: "offer",
    m.Answer: "answer",
    m.Candidate: "candidate",
    m.Chat: "chat",
}


def error_frame(error: TeleconsultError, ref: str | None) -> bytes:
    return encode(m.Error(code=error.code.value, message=error.message, ref=ref))


@dataclass(slots=True)
class Limits:
    """Per-socket limits, from the settings, and the node's metrics that count what they let through or refuse."""

    max_bytes: int
    hello_timeout: float
    bucket: TokenBucket
    metrics: Metrics
    last_warning: float = field(default=-1.0)


def _refuse(conn: WsConnection, limits: Limits, error: TeleconsultError, ref: str | None) -> None:
    """An error frame back to the client, counted under its code."""
    limits.metrics.frame_refused(error.code)
    conn.send(error_frame(error, ref))


@routes.get("/ws")
async def websocket(request: web.Request) -> web.StreamResponse:
    if not same_origin(request):
        raise web.HTTPForbidden(reason="cross-origin WebSocket refused")
    settings = request.app[SETTINGS]
    pending = request.app[PENDING_HELLOS]
    address = client_ip(request)
    if not pending.acquire(address):
        raise TeleconsultError(ErrorCode.RATE_LIMITED, "Too many connections waiting to say hello.", retry_after=5)
    # No permessage-deflate: signaling frames are small, and a compressor and a decompressor would hold
    # hundreds of KiB per socket. No per-socket heartbeat timer either: pings are ours (``connection.heartbeat``).
    # Text frames stay bytes: the JSON decoder reads bytes and checks their UTF-8 itself (``_decode``).
    ws = web.WebSocketResponse(max_msg_size=TRANSPORT_MAX_MSG, compress=False, autoping=False, decode_text=False)
    try:
        await ws.prepare(request)
    except BaseException:
        pending.release(address)
        raise
    transport = request.transport
    conn = WsConnection(ws, settings.signaling.send_queue_frames, transport.abort if transport else lambda: None)
    sockets = request.app[SOCKETS]
    sockets.add(conn)
    signaling = request.app[SIGNALING]
    limits = Limits(
        settings.signaling.max_frame_bytes,
        settings.signaling.hello_timeout_s,
        TokenBucket(settings.signaling.rate_per_s, settings.signaling.rate_burst, settings.signaling.rate_sustained_s),
        request.app[METRICS],
    )
    session: Seated | None = None
    try:
        try:
            session = await _handshake(ws, conn, signaling, limits)
        finally:
            pending.release(address)
        if session is not None:
            await _serve(ws, conn, signaling, session, limits)
    except Exception:  # a bug, not the client's doing: said at once, and the client may reconnect and resume
        log.exception("unhandled error on a WebSocket")
        conn.close_soon(WSCloseCode.INTERNAL_ERROR, "internal error")
    finally:
        if session is not None:
            try:
                await signaling.disconnect(session, conn)
            except TeleconsultError:
                log.warning("could not record a dropped connection (database unavailable)")
        conn.close_soon(WSCloseCode.GOING_AWAY, "bye")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await conn.finished()
        sockets.discard(conn)
    return ws


async def _handshake(
    ws: web.WebSocketResponse, conn: WsConnection, signaling: SignalingService, limits: Limits
) -> Seated | None:
    """Wait for a valid hello; errors other than ``unauthorized`` leave the socket open until the deadline."""
    deadline = time.monotonic() + limits.hello_timeout
    last_look = False
    while not last_look:
        if (remaining := deadline - time.monotonic()) <= 0:
            # One turn of the loop first: a hello already in this socket's buffer counts. A loop busy past the
            # deadline (a node taking thousands of clients over at once) has not read it yet, and a timeout that
            # fires in the same turn as the bytes arrive would otherwise win.
            last_look, remaining = True, LAST_LOOK_S
            await asyncio.sleep(0)
        try:
            msg = await ws.receive(timeout=remaining)
        except TimeoutError:
            continue
        verdict = _screen(msg, conn, limits)
        if verdict is Verdict.CLOSE:
            return None
        if verdict is Verdict.DROP:
            continue
        hello: m.Hello | None = None
        try:
            hello = _parse_hello(msg, limits.max_bytes)
            session = await signaling.hello(conn, hello)
            if hello.resume:
                limits.metrics.resumed()
            return session
        except TeleconsultError as error:
            if _failed_as_text(msg, conn):
                return None
            _refuse(conn, limits, error, hello.id if hello else _ref_after_failure(msg, error))
            if error.code is ErrorCode.UNAUTHORIZED:
                conn.close_soon(CLOSE_UNAUTHORIZED, "unauthorized")
                return None
            if error.code is ErrorCode.TOO_LARGE:
                conn.close_soon(CLOSE_TOO_LARGE, "too large")
                return None
    _refuse(conn, limits, TeleconsultError(ErrorCode.UNAUTHORIZED, "No hello in time."), None)
    conn.close_soon(CLOSE_UNAUTHORIZED, "hello timeout")
    return None


def _parse_hello(msg: WSMessage, max_bytes: int) -> m.Hello:
    message = _decode(msg, max_bytes)
    if not isinstance(message, m.Hello):
        raise TeleconsultError(ErrorCode.UNAUTHORIZED, "Send hello first.")
    return message


def _text_of(msg: WSMessage) -> bytes:
    """A text frame's payload, as received (its UTF-8 is checked by the JSON decoder)."""
    if msg.type != WSMsgType.TEXT:
        raise TeleconsultError(ErrorCode.BAD_MESSAGE, "Frames are JSON text.")
    data: bytes = msg.data
    return data


class Verdict(enum.Enum):
    APPLY = "apply"
    DROP = "drop"
    CLOSE = "close"


def _screen(msg: WSMessage, conn: WsConnection, limits: Limits) -> Verdict:
    """What every received frame goes through first: the end of the socket closes; anything else proves the client
    is there; pongs stop here; the rest spends a token; pings are answered. APPLY means a data frame to decode."""
    if msg.type in ENDINGS:  # ``async for`` ends on a close, but hands a transport error on
        return Verdict.CLOSE
    conn.heard = True
    if msg.type is WSMsgType.PONG:
        return Verdict.DROP
    verdict = _rate(conn, limits)
    if verdict is Verdict.APPLY and msg.type is WSMsgType.PING:
        conn.pong(msg.data)
        return Verdict.DROP
    return verdict


def _rate(conn: WsConnection, limits: Limits) -> Verdict:
    """Spend a token. Over the limit the frame is dropped with a warning (at most one a second); a client that
    floods (see ``TokenBucket.flooding``) is closed with 4429."""
    if limits.bucket.take():
        return Verdict.APPLY
    if limits.bucket.flooding:
        _refuse(conn, limits, TeleconsultError(ErrorCode.RATE_LIMITED, "Too many frames; closing."), None)
        conn.close_soon(CLOSE_RATE_LIMITED, "rate limited")
        return Verdict.CLOSE
    now = time.monotonic()
    if now - limits.last_warning >= 1.0:
        limits.last_warning = now
        _refuse(conn, limits, TeleconsultError(ErrorCode.RATE_LIMITED, "Too many frames; some were dropped."), None)
    return Verdict.DROP


async def _serve(
    ws: web.WebSocketResponse, conn: WsConnection, signaling: SignalingService, session: Seated, limits: Limits
) -> None:
    """Frame after frame until the socket ends. Nothing of a frame outlives its handling: a socket waiting for its
    next frame (most of them, most of the time) holds neither the last one's bytes nor its decoded message, about
    6 KiB for an offer (an ``async for`` would keep both bound while it waits)."""
    while await _on_frame(await ws.receive(), conn, signaling, session, limits):
        pass


async def _on_frame(
    msg: WSMessage, conn: WsConnection, signaling: SignalingService, session: Seated, limits: Limits
) -> bool:
    """One frame received on a seated socket; False when the socket is done with."""
    if session.closed:  # left, removed or replaced while the frame was on its way
        return False
    verdict = _screen(msg, conn, limits)
    if verdict is not Verdict.APPLY:
        return verdict is Verdict.DROP
    try:
        message = _decode(msg, limits.max_bytes)
    except TeleconsultError as error:
        if _failed_as_text(msg, conn):
            return False
        _refuse(conn, limits, error, _ref_after_failure(msg, error))
        if error.code is ErrorCode.TOO_LARGE:
            conn.close_soon(CLOSE_TOO_LARGE, "too large")
            return False
        return True
    try:
        await signaling.handle(session, message)
        if (relayed := RELAYED.get(type(message))) is not None:
            limits.metrics.frame_relayed(relayed)
    except TeleconsultError as error:
        _refuse(conn, limits, error, message.id)
    except Exception:
        log.exception("unexpected error while handling a %s frame", type(message).__name__)
        _refuse(conn, limits, TeleconsultError(ErrorCode.INTERNAL), message.id)
    return True


def _decode(msg: WSMessage, max_bytes: int) -> m.ClientMessage:
    return decode_client(_text_of(msg), max_bytes=max_bytes)


def _failed_as_text(msg: WSMessage, conn: WsConnection) -> bool:
    """A frame that failed to decode: if it is a text frame that is not UTF-8, the connection is failed with 1007
    (RFC 6455 section 8.1) and True is returned. Looked at only on that path: the JSON decoder checks UTF-8 itself."""
    if msg.type != WSMsgType.TEXT:
        return False
    try:
        msg.data.decode("utf-8")
    except UnicodeDecodeError:
        conn.close_soon(WSCloseCode.INVALID_TEXT, "invalid UTF-8")
        return True
    return False


def _ref_after_failure(msg: WSMessage, error: TeleconsultError) -> str | None:
    """The ``id`` of a frame that failed to decode, looked for only on this (rare) path."""
    if error.code is ErrorCode.TOO_LARGE or msg.type != WSMsgType.TEXT:
        return None
    return ref_of(msg.data)
