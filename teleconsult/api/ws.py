"""``GET /ws``: the protocol v1 endpoint. One reader (this handler) and one writer task per socket.

Every other part of the server talks to a socket through ``WsConnection.send``, which puts the frame on a bounded
queue; a client that stops reading fills it and is dropped, so it can never slow its room or the server.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from teleconsult.api.keys import PENDING_HELLOS, SETTINGS, SIGNALING, SOCKETS
from teleconsult.api.security import same_origin
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.protocol import decode_client, encode
from teleconsult.protocol import messages as m
from teleconsult.protocol.codec import ref_of
from teleconsult.ratelimit import TokenBucket
from teleconsult.signaling import Session, SignalingService

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_TOO_LARGE: Final = 4413
CLOSE_RATE_LIMITED: Final = 4429
CLOSE_SLOW_READER: Final = 4408
#: aiohttp itself closes frames over this with 1009; frames between the protocol limit and this get 4413.
TRANSPORT_MAX_MSG = 1024 * 1024


class WsConnection:
    """The write side of one socket: a bounded queue drained by one writer task.

    A client that stops reading fills the queue; the connection is then cut at the transport (its writer may be
    blocked on a full socket buffer, so a polite close frame could never be sent).
    """

    def __init__(self, ws: web.WebSocketResponse, max_frames: int, abort: Callable[[], None]):
        self._ws = ws
        self._abort = abort
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(max_frames)
        self._close: tuple[int, str] | None = None
        self._wake = asyncio.Event()

    def send(self, frame: bytes) -> None:
        if self._close is not None:
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self._close = (CLOSE_SLOW_READER, "not reading")
            self._drain()
            self._abort()
        self._wake.set()

    def close_soon(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
        self._wake.set()

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def run(self) -> None:
        """Write queued frames in order; close the socket once asked to and the queue is empty."""
        ws = self._ws
        try:
            while True:
                while not self._queue.empty():
                    await ws.send_frame(self._queue.get_nowait(), WSMsgType.TEXT)
                if self._close is not None:
                    code, reason = self._close
                    await ws.close(code=code, message=reason.encode())
                    return
                self._wake.clear()
                if self._queue.empty() and self._close is None:
                    await self._wake.wait()
        except (ConnectionError, RuntimeError):
            return  # the peer went away; the reader notices and cleans up


def error_frame(error: TeleconsultError, ref: str | None) -> bytes:
    return encode(m.Error(code=error.code.value, message=error.message, ref=ref))


@dataclass(slots=True)
class Limits:
    """Per-socket limits, from the settings."""

    max_bytes: int
    hello_timeout: float
    bucket: TokenBucket
    last_warning: float = field(default=-1.0)


@routes.get("/ws")
async def websocket(request: web.Request) -> web.StreamResponse:
    if not same_origin(request):
        raise web.HTTPForbidden(reason="cross-origin WebSocket refused")
    settings = request.app[SETTINGS]
    pending = request.app[PENDING_HELLOS]
    address = request.remote or "unknown"
    if not pending.acquire(address):
        raise TeleconsultError(ErrorCode.RATE_LIMITED, "Too many connections waiting to say hello.", retry_after=5)
    ws = web.WebSocketResponse(heartbeat=settings.heartbeat_s, max_msg_size=TRANSPORT_MAX_MSG)
    try:
        await ws.prepare(request)
    except BaseException:
        pending.release(address)
        raise
    transport = request.transport
    conn = WsConnection(ws, settings.send_queue_frames, transport.abort if transport else lambda: None)
    writer = asyncio.create_task(conn.run())
    sockets = request.app[SOCKETS]
    sockets.add(ws)
    signaling = request.app[SIGNALING]
    limits = Limits(
        settings.max_frame_bytes,
        settings.hello_timeout_s,
        TokenBucket(settings.rate_per_s, settings.rate_burst, settings.rate_sustained_s),
    )
    session: Session | None = None
    try:
        try:
            session = await _handshake(ws, conn, signaling, limits)
        finally:
            pending.release(address)
        if session is not None:
            await _serve(ws, conn, signaling, session, limits)
    finally:
        if session is not None:
            try:
                await signaling.disconnect(session, conn)
            except TeleconsultError:
                log.warning("could not record a dropped connection (database unavailable)")
        conn.close_soon(WSCloseCode.GOING_AWAY, "bye")
        try:
            await asyncio.wait_for(writer, timeout=5)
        except TimeoutError:
            writer.cancel()
        sockets.discard(ws)
    return ws


async def _handshake(
    ws: web.WebSocketResponse, conn: WsConnection, signaling: SignalingService, limits: Limits
) -> Session | None:
    """Wait for a valid hello; errors other than ``unauthorized`` leave the socket open until the deadline."""
    deadline = time.monotonic() + limits.hello_timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            msg = await ws.receive(timeout=remaining)
        except TimeoutError:
            break
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return None
        verdict = _rate(conn, limits)
        if verdict is Verdict.CLOSE:
            return None
        if verdict is Verdict.DROP:
            continue
        hello: m.Hello | None = None
        try:
            hello = _parse_hello(msg, limits.max_bytes)
            return await signaling.hello(conn, hello)
        except TeleconsultError as error:
            conn.send(error_frame(error, hello.id if hello else _ref_after_failure(msg, error)))
            if error.code is ErrorCode.UNAUTHORIZED:
                conn.close_soon(CLOSE_UNAUTHORIZED, "unauthorized")
                return None
            if error.code is ErrorCode.TOO_LARGE:
                conn.close_soon(CLOSE_TOO_LARGE, "too large")
                return None
    conn.send(error_frame(TeleconsultError(ErrorCode.UNAUTHORIZED, "No hello in time."), None))
    conn.close_soon(CLOSE_UNAUTHORIZED, "hello timeout")
    return None


def _parse_hello(msg: WSMessage, max_bytes: int) -> m.Hello:
    message = _decode(msg, max_bytes)
    if not isinstance(message, m.Hello):
        raise TeleconsultError(ErrorCode.UNAUTHORIZED, "Send hello first.")
    return message


def _text_of(msg: WSMessage) -> str:
    if msg.type != WSMsgType.TEXT:
        raise TeleconsultError(ErrorCode.BAD_MESSAGE, "Frames are JSON text.")
    data: str = msg.data
    return data


class Verdict(enum.Enum):
    APPLY = "apply"
    DROP = "drop"
    CLOSE = "close"


def _rate(conn: WsConnection, limits: Limits) -> Verdict:
    """Spend a token. Over the limit the frame is dropped with a warning (at most one a second); a client that
    floods (see ``TokenBucket.flooding``) is closed with 4429."""
    if limits.bucket.take():
        return Verdict.APPLY
    if limits.bucket.flooding:
        conn.send(error_frame(TeleconsultError(ErrorCode.RATE_LIMITED, "Too many frames; closing."), None))
        conn.close_soon(CLOSE_RATE_LIMITED, "rate limited")
        return Verdict.CLOSE
    now = time.monotonic()
    if now - limits.last_warning >= 1.0:
        limits.last_warning = now
        conn.send(error_frame(TeleconsultError(ErrorCode.RATE_LIMITED, "Too many frames; some were dropped."), None))
    return Verdict.DROP


async def _serve(
    ws: web.WebSocketResponse, conn: WsConnection, signaling: SignalingService, session: Session, limits: Limits
) -> None:
    async for msg in ws:
        if session.closed:
            break
        verdict = _rate(conn, limits)
        if verdict is Verdict.CLOSE:
            break
        if verdict is Verdict.DROP:
            continue
        try:
            message = _decode(msg, limits.max_bytes)
        except TeleconsultError as error:
            conn.send(error_frame(error, _ref_after_failure(msg, error)))
            if error.code is ErrorCode.TOO_LARGE:
                conn.close_soon(CLOSE_TOO_LARGE, "too large")
                break
            continue
        try:
            await signaling.handle(session, message)
        except TeleconsultError as error:
            conn.send(error_frame(error, message.id))
        except Exception:
            log.exception("unexpected error while handling a %s frame", type(message).__name__)
            conn.send(error_frame(TeleconsultError(ErrorCode.INTERNAL), message.id))


def _decode(msg: WSMessage, max_bytes: int) -> m.ClientMessage:
    return decode_client(_text_of(msg), max_bytes=max_bytes)


def _ref_after_failure(msg: WSMessage, error: TeleconsultError) -> str | None:
    """The ``id`` of a frame that failed to decode, looked for only on this (rare) path."""
    if error.code is ErrorCode.TOO_LARGE or msg.type != WSMsgType.TEXT:
        return None
    return ref_of(msg.data)
