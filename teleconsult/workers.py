"""``teleconsult serve --workers N``: N server processes on one port, so that one machine's cores are all used.

The parent prepares once (settings checked, migrations applied), listens on the port and forks N workers; each
runs the whole server. The workers share nothing in memory: they are nodes of a cluster joined through Redis, each
with its own node id, which is why N > 1 requires ``redis_url``.

The parent accepts every connection and hands it to a worker (``Dispatcher``, a thread of the parent): it peeks at
the request line without reading it, and a WebSocket that names its room (``/ws?room=<key>``, which the call page
sends) goes to the worker that key picks, so both peers of a room reach the same worker and their frames never
cross Redis; anything else (the HTTP API, a TLS handshake the parent cannot read) goes to the workers in turn. The
socket itself is passed over a Unix socket (``SCM_RIGHTS``); the worker reads the request as if it had accepted it.
The parent passes SIGTERM and SIGINT on to every worker and waits for them; a worker that dies is started again (a
worker's clients resume on the others meanwhile), unless the server is stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import selectors
import signal
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

#: A worker that dies within this long of its start is not started again (it would only die again).
QUICK_DEATH_S = 5.0
#: The most of a request looked at to find its room; a request line longer than this goes to any worker.
PEEK_BYTES = 2048
#: How long the parent waits for a request line before handing the connection on as it is.
PEEK_WAIT_S = 2.0
#: How often connections whose request line is still incomplete are looked at again.
PEEK_AGAIN_S = 0.01
#: Connections passed to a worker in one message at most.
FDS_PER_MESSAGE = 16

#: ``serve(index, inbox)``: run worker ``index``, adopting the connections that arrive on ``inbox``; its exit status.
Serve = Callable[[int, socket.socket], int]


def room_affinity(head: bytes, count: int) -> int | None:
    """The worker (0 to ``count - 1``) for a request that names its room, from its request line; None otherwise."""
    line, _, _ = head.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET":
        return None
    target = urlsplit(parts[1].decode("latin-1"))
    if target.path != "/ws":
        return None
    room = parse_qs(target.query).get("room")
    if not room or not room[0]:
        return None
    return zlib.crc32(room[0].encode()) % count


class Dispatcher:
    """The parent's acceptor: each connection to the port goes to one worker, by its room when it names one."""

    def __init__(self, listener: socket.socket, count: int):
        self._listener = listener
        self._count = count
        self._inboxes: list[socket.socket | None] = [None] * count
        self._lock = threading.Lock()
        self._turn = 0
        self._selector = selectors.DefaultSelector()
        #: Connections accepted whose request line is not in yet, with the time they are handed on regardless.
        self._deadlines: dict[socket.socket, float] = {}
        #: Of those, the ones with part of a request line: readable until read, so looked at on a timer instead.
        self._partial: set[socket.socket] = set()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="dispatcher", daemon=True)

    def inbox(self, index: int, sock: socket.socket | None) -> None:
        """Worker ``index`` adopts connections sent on ``sock`` (None: it is not running)."""
        if sock is not None:
            sock.settimeout(1.0)  # a worker that stops reading does not hold the others' connections up
        with self._lock:
            old, self._inboxes[index] = self._inboxes[index], sock
        if old is not None:
            old.close()

    def own_sockets(self) -> list[socket.socket]:
        """What a forked worker must close: the parent's sockets."""
        with self._lock:
            inboxes = [s for s in self._inboxes if s is not None]
        return [self._listener, self._wake_r, self._wake_w, *inboxes]

    def start(self) -> None:
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._thread.start()

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped:
            try:
                self._turn_once()
            except Exception:  # a bug must not stop the port from being served: said, and the loop goes on
                log.exception("the connection dispatcher failed; going on")
                time.sleep(PEEK_AGAIN_S)
        self._selector.close()

    def _turn_once(self) -> None:
        """Accept what is waiting, hand on the connections whose request line is in (or that waited long enough)."""
        timeout = (PEEK_AGAIN_S if self._partial else PEEK_WAIT_S / 4) if self._deadlines else None
        for key, _ in self._selector.select(timeout):
            conn = key.fileobj
            if conn is self._listener:
                self._accept()
            elif conn is not self._wake_r:
                assert isinstance(conn, socket.socket)
                self._look(conn)
        now = time.monotonic()
        for conn, deadline in list(self._deadlines.items()):
            if conn in self._partial or deadline <= now:
                self._look(conn)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: the connection waits in the backlog
                log.warning("could not accept a connection: %s", exc)
                return
            conn.setblocking(False)
            self._deadlines[conn] = time.monotonic() + PEEK_WAIT_S
            self._selector.register(conn, selectors.EVENT_READ)

    def _look(self, conn: socket.socket) -> None:
        """Hand the connection on once its request line is in, or it has waited long enough for it."""
        head: bytes | None
        try:
            head = conn.recv(PEEK_BYTES, socket.MSG_PEEK)  # peeked: the worker reads the request whole
        except BlockingIOError:
            head = None
        except OSError:
            head = b""
        whole = head is not None and (not head or b"\r\n" in head or len(head) >= PEEK_BYTES or head[:1] == b"\x16")
        if not whole and time.monotonic() < self._deadlines[conn]:
            if head:
                self._unwatch(conn)
                self._partial.add(conn)
            return
        self._unwatch(conn)
        self._partial.discard(conn)
        del self._deadlines[conn]
        if head == b"":
            conn.close()  # closed before saying anything
            return
        self._hand_on(conn, room_affinity(head or b"", self._count))

    def _unwatch(self, conn: socket.socket) -> None:
        with contextlib.suppress(KeyError):
            self._selector.unregister(conn)

    def _hand_on(self, conn: socket.socket, index: int | None) -> None:
        """Pass the connection to its worker (or the next one that takes it); this process closes its copy."""
        with self._lock:
            inboxes = list(self._inboxes)
        first = index if index is not None else self._next_turn()
        try:
            for step in range(self._count):
                inbox = inboxes[(first + step) % self._count]
                if inbox is None:
                    continue
                try:
                    socket.send_fds(inbox, [b"c"], [conn.fileno()])
                    return
                except OSError:
                    continue  # that worker is gone or stuck: the next one
            log.warning("no worker could take a connection")
        finally:
            conn.close()

    def _next_turn(self) -> int:
        self._turn = (self._turn + 1) % self._count
        return self._turn


def adopt_connections(
    inbox: socket.socket, protocol_factory: Callable[[], asyncio.BaseProtocol], ssl_context: ssl.SSLContext | None
) -> asyncio.Future[None]:
    """In a worker: serve each connection the parent passes on ``inbox`` as if this process had accepted it. The
    future ends when the parent goes away (the worker should stop)."""
    loop = asyncio.get_running_loop()
    inbox.setblocking(False)
    orphaned: asyncio.Future[None] = loop.create_future()
    tasks: set[asyncio.Task[Any]] = set()

    def arrived() -> None:
        try:
            data, fds, _flags, _addr = socket.recv_fds(inbox, 64, FDS_PER_MESSAGE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        if not data and not fds:  # the parent is gone
            loop.remove_reader(inbox)
            if not orphaned.done():
                orphaned.set_result(None)
            return
        for fd in fds:
            sock = socket.socket(fileno=fd)
            sock.setblocking(False)
            task = loop.create_task(loop.connect_accepted_socket(protocol_factory, sock, ssl=ssl_context))
            tasks.add(task)
            task.add_done_callback(adopted)

    def adopted(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # a TLS handshake that failed, say
            log.info("a connection could not be set up: %s", type(task.exception()).__name__)

    loop.add_reader(inbox, arrived)
    return orphaned


def run_workers(count: int, listener: socket.socket, serve: Serve) -> int:
    """Fork ``count`` workers, each running ``serve(index, inbox)``; hand them the connections to ``listener``;
    wait for them all."""
    children: dict[int, tuple[int, float]] = {}
    stopping = False
    dispatcher = Dispatcher(listener, count)

    def spawn(index: int) -> None:
        parent_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            status = 1
            try:
                parent_end.close()
                for sock in dispatcher.own_sockets():
                    sock.close()
                status = serve(index, worker_end)
            finally:
                os._exit(status)
        worker_end.close()
        dispatcher.inbox(index, parent_end)
        children[pid] = (index, time.monotonic())

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for index in range(count):
        spawn(index)
    dispatcher.start()
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    worst = 0
    try:
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            index, started = children.pop(pid, (-1, 0.0))
            code = os.waitstatus_to_exitcode(status)
            worst = max(worst, abs(code))
            if index < 0:
                continue
            dispatcher.inbox(index, None)
            if not stopping:
                if time.monotonic() - started < QUICK_DEATH_S:
                    log.error("worker %d exited at once (status %d): not started again", index, code)
                else:
                    log.warning("worker %d exited (status %d): starting it again", index, code)
                    spawn(index)
    finally:
        dispatcher.stop()
        listener.close()
    return 0 if stopping else worst
