"""The write side of one WebSocket, and the heartbeat that finds dead ones.

Every part of the server talks to a socket through ``WsConnection.send``. A frame is written before ``send``
returns while the socket keeps up; behind back-pressure, frames wait in a bounded backlog drained by a writer task
that exists only while it is needed. A client that stops reading fills the backlog and is dropped, so it can never
slow its room or the server. An idle connection holds no task, no queue and no timer.

Liveness is one sweep for all sockets (``heartbeat``) rather than a timer per socket reset by every frame:
a socket heard from since the last tick is alive; one that is silent gets a ping; one still silent a tick after
its ping is cut. A tick is half of ``heartbeat_s``, so a dead connection is noticed within one and a half
``heartbeat_s`` (22.5 s by default).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Final

from aiohttp import WSCloseCode, WSMsgType, web

from teleconsult.background import BackgroundLoops, settle

log = logging.getLogger(__name__)

#: The connection is gone already: nothing more is written, not even a close frame.
GONE: Final = (int(WSCloseCode.ABNORMAL_CLOSURE), "gone")
#: Sockets pinged in one go before the sweep lets other work run.
SWEEP_SLICE = 500

Write = Coroutine[Any, Any, None]


class WsConnection:
    """One socket's writes and liveness.

    ``send`` writes the frame before it returns unless the socket pushes back (the client reads slower than the
    server writes). Then a writer task finishes that write and drains the frames queued behind it; a client whose
    backlog reaches ``max_frames`` is cut at the transport (its writer may be blocked on a full socket buffer, so a
    polite close frame could never be sent).

    ``heard`` is set by the reader for every frame received (pongs included) and by the writer whenever the
    client's TCP stack takes more bytes: both prove the other end is there.
    """

    __slots__ = ("_abort", "_backlog", "_close", "_max_frames", "_pinged", "_writer", "_ws", "heard")

    def __init__(self, ws: web.WebSocketResponse, max_frames: int, abort: Callable[[], None]):
        self._ws = ws
        self._abort = abort
        self._max_frames = max_frames
        self._backlog: deque[bytes] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._close: tuple[int, str] | None = None
        self._pinged = False
        self.heard = True

    # --- writing -----------------------------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        if self._close is not None:
            return
        if self._writer is not None:
            self._enqueue(frame)
            return
        self._write_now(self._ws.send_frame(frame, WSMsgType.TEXT))

    def pong(self, payload: bytes) -> None:
        """Answer a client's ping (skipped while frames are backed up: the client is not reading them either)."""
        if self._close is None and self._writer is None:
            self._write_now(self._ws.pong(payload))

    def close_soon(self, code: int, reason: str) -> None:
        """Close after the frames already queued have been written."""
        if self._close is None:
            self._close = (code, reason)
        if self._writer is None and self._close is not GONE:
            self._writer = asyncio.create_task(self._flush(None, None))

    async def finished(self) -> None:
        """Wait for the writer, if there is one (cancelling the wait cancels it)."""
        if self._writer is not None:
            await self._writer

    @property
    def queued(self) -> int:
        """Frames waiting behind back-pressure (0 while the socket keeps up)."""
        return len(self._backlog) if self._backlog else 0

    def _write_now(self, write: Write) -> None:
        try:
            waiting_on = write.send(None)
        except StopIteration:
            return  # the usual case: the transport took the frame
        except (ConnectionError, RuntimeError):
            write.close()
            self._close = GONE  # the peer went away; the reader notices and cleans up
            return
        self._writer = asyncio.create_task(self._flush(write, waiting_on))

    def _enqueue(self, frame: bytes) -> None:
        backlog = self._backlog
        if backlog is None:
            backlog = self._backlog = deque()
        if len(backlog) >= self._max_frames:
            self._close = GONE  # cut at the transport: a close frame would wait behind what it does not read
            backlog.clear()
            self._abort()
            return
        backlog.append(frame)

    async def _flush(self, write: Write | None, waiting_on: object) -> None:
        """Finish a write that had to wait, write the backlog in order, then close if asked to."""
        ws = self._ws
        try:
            if write is not None:
                await _finish(write, waiting_on)
                self.heard = True  # the client's TCP stack took more: it is there, if slow
            backlog = self._backlog
            while backlog:
                await ws.send_frame(backlog.popleft(), WSMsgType.TEXT)
                self.heard = True
            if self._close is None:
                self._writer = None  # caught up: back to writing at once
                return
            if self._close is not GONE:
                code, reason = self._close
                await ws.close(code=code, message=reason.encode())
        except (ConnectionError, RuntimeError):
            self._close = GONE
        self._backlog = None

    # --- liveness ----------------------------------------------------------------------------------------------

    def beat(self) -> bool:
        """One heartbeat tick; False when the client has been silent since the previous tick's ping (it is then
        cut at the transport, as a close frame would never arrive)."""
        if self.heard:
            self.heard = self._pinged = False
            return True
        if self._close is GONE:
            return True  # cut already: the reader cleans up
        if self._pinged:
            self._close = GONE
            self._abort()
            return False
        self._pinged = True
        if self._writer is None:
            self._write_now(self._ws.ping())
        return True


async def _finish(write: Write, waiting_on: object) -> None:
    """Drive a coroutine that was started by hand (``send(None)``) and is waiting on ``waiting_on``, to its end."""
    try:
        while True:
            if isinstance(waiting_on, asyncio.Future):
                await asyncio.wait([waiting_on])
            else:
                await asyncio.sleep(0)  # a bare yield
            waiting_on = write.send(None)
    except StopIteration:
        return
    finally:
        write.close()


async def heartbeat(connections: Iterable[WsConnection], heartbeat_s: float, chores: BackgroundLoops) -> None:
    """Tick every ``heartbeat_s / 2`` over every open socket until the server stops (see the module's
    docstring); ``connections`` is the live collection, read afresh at every tick."""
    tick = heartbeat_s / 2
    while True:
        await chores.rest(tick)
        if chores.stopping.is_set():
            return
        dead = 0
        for n, conn in enumerate(list(connections), start=1):
            try:
                if not conn.beat():
                    dead += 1
            except Exception:  # one socket's fault never stops the heartbeat of the others
                log.exception("heartbeat: a socket could not be checked")
            if n % SWEEP_SLICE == 0:
                await asyncio.sleep(0)
        if dead:
            log.info("heartbeat: %d silent connection(s) cut", dead)


async def close_all(connections: Iterable[WsConnection], code: int, reason: str, within_s: float) -> None:
    """Close every socket, waiting at most ``within_s`` seconds for their writers."""
    pending = list(connections)
    for conn in pending:
        conn.close_soon(code, reason)
    await settle([asyncio.ensure_future(conn.finished()) for conn in pending], within_s)
