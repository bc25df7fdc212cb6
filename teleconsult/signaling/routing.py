"""A cluster's routing: any node holds any socket, and the node that owns a room applies its rules.

A socket is held by an ``Endpoint`` on the node it reached. What the client sends goes to the room's owner, over
the owner's channel (``node:<node_id>``: a JSON head, the peer id and the endpoint, then a newline and the frame as
it is), or by a plain call when the owner is this node. The owner keeps the room and every session as on one node;
a session whose socket is on another node's endpoint has a ``RemoteSocket`` as its connection, which publishes on
the peer's channel (``peer:<peer_id>``), where the endpoint listens once it has talked to an owner elsewhere; one
whose socket is on this node has a ``LocalSocket``, which hands frames to the endpoint directly: two peers on their
room's owner never touch Redis, and their endpoints listen on no channel. Everything one owner sends a peer goes
through its one Redis connection, so the peer gets it in order, and a request's reply comes after the frames it
caused.

Each request gets a reply. A ``PUBLISH`` that reaches nobody means the owner is gone (its Redis connection closed
with its process): the requester waits for the owner's lease to expire, claims the room, rebuilds it from the seats
held (as after a restart), tells every endpoint of the room who owns it now, and applies the request itself. A
request to an owner that does not answer fails with ``unavailable`` after ``REPLY_TIMEOUT_S``, never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from teleconsult.bus import Bus
from teleconsult.domain import Seat
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import ConsultationId, DoctorId, ParticipantId, PeerId, new_id, new_token
from teleconsult.protocol import ClientMessage, decode_client, encode_client
from teleconsult.protocol import messages as m
from teleconsult.signaling.ownership import NotOwner, RedisRooms
from teleconsult.signaling.sessions import CLOSE_NORMAL, CLOSE_RESTART, CONTROL, Connection, RemoteSocket, Session

if TYPE_CHECKING:
    from teleconsult.signaling.service import SignalingService

log = logging.getLogger(__name__)

#: How long a request waits for the owner's reply before ``unavailable``.
REPLY_TIMEOUT_S = 10.0
#: How often a requester looks again at the lease of an owner that is gone.
TAKEOVER_POLL_S = 0.2
MOVING = "This consultation is moving to another server; try again in a few seconds."
#: Published on a node's channel to learn whether anyone still listens there (the node ignores it).
PING = b'{"t":"p"}'
#: How every welcome frame begins (the codec writes the tag first).
WELCOME = b'{"type":"welcome"'
NO_ANSWER = "The server holding this consultation does not answer; try again shortly."


class Gone(Exception):
    """The owner no longer has this peer (ended, removed, timed out): the socket is closed."""


class Endpoint:
    """A socket on this node, whichever node owns its room."""

    __slots__ = ("closed", "conn", "consultation_id", "id", "listening", "owner", "peer_id", "router", "welcomed")

    def __init__(self, router: Router, conn: Connection, peer_id: PeerId, consultation_id: ConsultationId):
        self.router = router
        self.conn = conn
        self.peer_id = peer_id
        self.consultation_id = consultation_id
        #: Unique on this node (a session compares the node too): an int, not a string, for 20,000 sockets.
        self.id = next(router.endpoint_ids)
        #: The node this endpoint last reached the room's owner on.
        self.owner: str | None = None
        #: The owner closed the socket (ended, removed, replaced, resumed elsewhere): nothing more is forwarded.
        self.closed = False
        self.welcomed = False
        #: Subscribed to the peer's channel (once it talks to an owner on another node).
        self.listening = False

    @property
    def channel(self) -> str:
        return f"peer:{self.peer_id}"

    def deliver(self, frame: bytes) -> None:
        """The bus handler: a frame for the client, or a control message for this endpoint."""
        if frame[:1] != CONTROL:
            if not self.welcomed:  # as on one node, nothing reaches a peer before its welcome
                if not frame.startswith(WELCOME):
                    return
                self.welcomed = True
            if not self.closed:
                self.conn.send(frame)
            return
        self.router.control(self, json.loads(frame[1:]))

    def close(self, code: int, reason: str) -> None:
        """The owner closed the socket: nothing more is forwarded."""
        self.closed = True
        self.conn.close_soon(code, reason)

    # --- as the owner's sessions see it when the owner is this node (a ``Connection``, like ``RemoteSocket``) ---

    send = deliver

    def close_soon(self, code: int, reason: str) -> None:
        self.close(code, reason)

    @property
    def endpoint(self) -> int:
        return self.id

    @property
    def node(self) -> str:
        return self.router.node_id


#: The owner's view of a socket held by an endpoint on this node: the endpoint itself, handed frames directly with
#: no bus in between (no object more per socket).
LocalSocket = Endpoint
#: How the owner sees a socket held by an endpoint, on this node or another.
EndpointSocket = Endpoint | RemoteSocket


class Router:
    def __init__(self, service: SignalingService, bus: Bus, rooms: RedisRooms, max_frame_bytes: int):
        self._service = service
        self._bus = bus
        self._rooms = rooms
        self.node_id = rooms.node_id
        self._max_bytes = 2 * max_frame_bytes  # a frame checked at the edge, encoded again
        self._ids = itertools.count()
        self.endpoint_ids = itertools.count()
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._endpoints: dict[int, Endpoint] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._started: asyncio.Task[None] | None = None
        self._renewing: asyncio.Task[None] | None = None

    @property
    def endpoints(self) -> list[Endpoint]:
        return list(self._endpoints.values())

    async def start(self) -> None:
        """Listen on this node's channel and keep its leases (idempotent: the first socket starts it)."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._bus.subscribe(f"node:{self.node_id}", self._on_message))
            self._renewing = asyncio.create_task(self._renew(), name="room-leases")
        await asyncio.shield(self._started)

    async def stop(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.gather(self._renewing, return_exceptions=True)
        await self._rooms.release_all()

    # --- the socket's side ---------------------------------------------------------------------------------------

    async def hello(self, conn: Connection, hello: m.Hello) -> Endpoint:
        """The ticket or resume token is checked here (the database); the owner seats the peer."""
        await self.start()
        seats = self._service.seats
        request: dict[str, Any]
        fresh = new_token()
        if hello.resume:
            seat = await seats.resume_seat(hello.resume, fresh)
            peer_id = PeerId(seat.peer_id or "")
            request = {"op": "resume", "fresh": fresh}
        else:
            seat = await seats.open_ticket(hello.ticket or "")
            peer_id = PeerId(new_id("p"))
            request = {"op": "join", "seat": seat_to_wire(seat)}
        endpoint = Endpoint(self, conn, peer_id, seat.consultation_id)
        self._endpoints[endpoint.id] = endpoint  # an owner on this node hands it frames directly
        try:
            await self.call(endpoint.consultation_id, request | self._about(endpoint), endpoint=endpoint)
        except BaseException as failure:
            self._endpoints.pop(endpoint.id, None)
            await self._stop_listening(endpoint)
            if hello.resume and not endpoint.welcomed:  # a welcome carried the fresh token: that one is kept
                await self._service.give_token_back(failure, seat, hello.resume, fresh)
            raise
        return endpoint

    async def forward(self, endpoint: Endpoint, message: ClientMessage) -> None:
        if endpoint.closed:
            return
        session = self._held_here(endpoint)
        if session is not None:  # the owner is this node and the session holds this endpoint: a plain call
            await self._service.handle(session, message)
            return
        request = {"op": "frame"} | self._about(endpoint)
        try:
            await self.call(endpoint.consultation_id, request, body=encode_client(message), endpoint=endpoint)
        except Gone:
            endpoint.close(CLOSE_NORMAL, "gone")

    def _held_here(self, endpoint: Endpoint) -> Session | None:
        """The session of a room this node owns whose socket is this endpoint, if that is so."""
        if endpoint.owner != self.node_id:
            return None
        session = self._service.session(endpoint.peer_id)
        if session is None or session.closed or self._rooms.get(endpoint.consultation_id) is not session.room:
            return None
        conn = session.conn
        return session if conn is endpoint else None

    async def detach(self, endpoint: Endpoint, conn: Connection, *, stopping: bool) -> None:
        """The socket is gone: the owner holds the seat for the grace period."""
        if endpoint.conn is not conn or self._endpoints.pop(endpoint.id, None) is None:
            return
        await self._stop_listening(endpoint)
        if endpoint.closed or stopping:
            return
        request = {"op": "detach"} | self._about(endpoint)
        # Nothing may hold the seat any more; an owner that is gone is not waited for (a node that takes the room
        # over rebuilds the seat away, with its grace period).
        with contextlib.suppress(Gone):
            await self.call(endpoint.consultation_id, request, endpoint=endpoint, claim=False, wait=False)

    def control(self, endpoint: Endpoint, control: dict[str, Any]) -> None:
        match control:
            case {"c": "close", "ep": endpoint.id, "node": self.node_id, "code": int(code), "reason": str(reason)}:
                endpoint.close(code, reason)
            case {"c": "owner", "node": str() | None as node} if not endpoint.closed and endpoint.welcomed:
                # The room was taken over (its new owner), or given up by a node stopping (None: the next node asked
                # claims it): the socket is attached to its owner.
                endpoint.owner = node
                self._spawn(self._attach(endpoint))

    async def _attach(self, endpoint: Endpoint) -> None:
        try:
            await self.call(endpoint.consultation_id, {"op": "attach"} | self._about(endpoint), endpoint=endpoint)
        except (TeleconsultError, Gone) as exc:
            log.info("an endpoint could not attach to its room's new owner: %s", type(exc).__name__)

    def _about(self, endpoint: Endpoint) -> dict[str, Any]:
        return {"cid": endpoint.consultation_id, "peer": endpoint.peer_id, "ep": endpoint.id}

    def stopping(self) -> None:
        """This node is stopping: it claims no room any more (a request for one is answered "moved")."""
        self._rooms.stopping = True

    async def shutdown(self, reconnect: bytes) -> None:
        """This node stops: its sockets are told to reconnect (anywhere) and closed; its rooms' leases are given up,
        then the endpoints on other nodes of their peers are told that the room has no owner, so they attach to
        whichever node claims it next (rebuilt from the seats, as after a takeover) without the client noticing."""
        for endpoint in self.endpoints:
            if not endpoint.closed:
                endpoint.conn.send(reconnect)
                endpoint.close(CLOSE_RESTART, "server restart")
        elsewhere = [s.peer.peer_id for s in self._service.sessions() if type(s.conn) is RemoteSocket]
        await self.stop()
        control = CONTROL + json.dumps({"c": "owner", "node": None}).encode()
        with contextlib.suppress(TeleconsultError):  # Redis away: those endpoints find the next owner on their own
            await asyncio.gather(*(self._bus.publish(f"peer:{peer_id}", control) for peer_id in elsewhere))

    # --- reaching the owner ----------------------------------------------------------------------------------

    async def room_op(self, consultation_id: str, request: dict[str, Any], body: bytes = b"") -> None:
        """Something that changes a live room (closed, a document, a link revoked), for its owner if it has one."""
        await self.start()
        with contextlib.suppress(Gone):
            await self.call(ConsultationId(consultation_id), request | {"cid": consultation_id}, body=body, claim=False)

    async def call(
        self,
        consultation_id: ConsultationId,
        request: dict[str, Any],
        *,
        body: bytes = b"",
        endpoint: Endpoint | None = None,
        claim: bool = True,
        wait: bool = True,
    ) -> None:
        """Have the room's owner apply ``request`` (with ``body``, a frame, if any); raises what the owner raised.
        With ``claim``, a room nobody holds is claimed by this node (and rebuilt); without, a room nobody holds is
        left alone. With ``wait``, an owner that is gone is waited for until its lease expires and a node (maybe
        this one) takes the room over; without, the request is dropped. Bounded in time: ``unavailable`` when the
        room has no owner in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._rooms.ttl_ms / 1000 + 2.0
        retry = False
        while True:
            if retry:
                if loop.time() > deadline:
                    raise TeleconsultError(ErrorCode.UNAVAILABLE, MOVING)
                await asyncio.sleep(TAKEOVER_POLL_S)
            retry = True
            owner = endpoint.owner if endpoint is not None else None
            if owner is None:
                owner = await self._owner(consultation_id, claim)
            if owner is None:
                return  # no live room anywhere (and none to make)
            if endpoint is not None:
                endpoint.owner = None  # set again once the owner has answered
            if owner == self.node_id:
                try:
                    await self._apply(request | {"from": self.node_id}, body)
                except NotOwner:
                    continue
            else:
                if endpoint is not None and not endpoint.listening:  # before the owner publishes anything for it
                    endpoint.listening = True
                    await self._bus.subscribe(endpoint.channel, endpoint.deliver)
                reply = await self._ask(owner, request, body)
                if reply is None:  # nobody listens on the owner's channel: its lease runs out, then a node claims
                    if not wait:
                        return
                    continue
                if reply.get("moved"):
                    continue
                if reply.get("gone"):
                    raise Gone()
                if "code" in reply:
                    if endpoint is not None:
                        endpoint.owner = owner
                    raise TeleconsultError(ErrorCode(reply["code"]), reply.get("message"))
            if endpoint is not None:
                endpoint.owner = owner
            return

    async def _owner(self, consultation_id: ConsultationId, claim: bool) -> str | None:
        holder = await self._rooms.holder(consultation_id)
        if holder is not None or not claim:
            return holder
        try:
            await self._rooms.claim(consultation_id)
        except NotOwner as other:
            return other.holder
        return self.node_id

    async def _ask(self, owner: str, request: dict[str, Any], body: bytes) -> dict[str, Any] | None:
        """The owner's reply, or None when nobody listens on its channel any more."""
        rid = f"{self.node_id}:{next(self._ids)}"
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[rid] = waiter
        try:
            head = json.dumps(request | {"t": "q", "id": rid, "from": self.node_id}).encode()
            if not await self._bus.publish(f"node:{owner}", head + b"\n" + body if body else head):
                return None
            try:
                async with asyncio.timeout(REPLY_TIMEOUT_S):
                    return await waiter
            except TimeoutError:
                raise TeleconsultError(ErrorCode.UNAVAILABLE, NO_ANSWER) from None
        finally:
            self._replies.pop(rid, None)

    def _on_message(self, data: bytes) -> None:
        """A message on this node's channel: a JSON head (which never holds a raw newline), then the body if any."""
        head, _, body = data.partition(b"\n")
        message = json.loads(head)
        if message.get("t") == "r":
            waiter = self._replies.get(message["id"])
            if waiter is not None and not waiter.done():
                waiter.set_result(message)
        elif message.get("t") == "q":
            self._spawn(self._serve(message, body))

    async def _serve(self, request: dict[str, Any], body: bytes) -> None:
        reply: dict[str, Any] = {"t": "r", "id": request["id"]}
        try:
            await self._apply(request, body)
        except NotOwner:
            reply["moved"] = True
        except Gone:
            reply["gone"] = True
        except TeleconsultError as error:
            reply |= {"code": error.code.value, "message": error.message}
        except Exception:
            log.exception("unexpected error applying a %s request from another node", request.get("op"))
            reply |= {"code": ErrorCode.INTERNAL.value, "message": None}
        self._bus.post(f"node:{request['from']}", json.dumps(reply).encode())  # after what the request caused

    # --- the owner's side -------------------------------------------------------------------------------------

    async def _apply(self, request: dict[str, Any], body: bytes) -> None:
        service = self._service
        op, consultation_id = request["op"], ConsultationId(request["cid"])
        if op in ("close", "document", "revoke"):
            if self._rooms.get(consultation_id) is None:
                await self._rooms.claim(consultation_id)  # NotOwner when another node holds it
            match op:
                case "close":
                    await service.close_room(consultation_id)
                case "document":
                    await service.broadcast_admitted(consultation_id, body)
                case "revoke":
                    await service.link_revoked(consultation_id, request["participant"])
            return
        if op == "join":
            await service.seat_peer(self._socket_of(request), seat_from_wire(request["seat"]), PeerId(request["peer"]))
            return
        if op == "resume":
            await service.reattach(self._socket_of(request), consultation_id, request["peer"], request["fresh"])
            return
        await self._rooms.claim(consultation_id)
        session = service.session(request["peer"])
        if session is None or session.closed:
            if op == "detach":
                return
            raise Gone()
        conn = session.conn
        if op == "detach":
            if isinstance(conn, EndpointSocket) and (conn.endpoint, conn.node) == (request["ep"], request["from"]):
                await service.disconnect(session, conn)
            return
        if conn is None:  # away, or rebuilt here after a takeover: this endpoint holds its socket
            service.attach(session, self._socket_of(request))
        if op == "frame":
            await service.handle(session, decode_client(body, max_bytes=self._max_bytes))

    def _socket_of(self, request: dict[str, Any]) -> EndpointSocket:
        """The requesting endpoint as the owner's sessions hold it: directly when it is on this node."""
        if request["from"] == self.node_id:
            endpoint = self._endpoints.get(request["ep"])
            if endpoint is not None:
                return endpoint
        return RemoteSocket(self._bus, request["peer"], request["ep"], request["from"])

    async def _stop_listening(self, endpoint: Endpoint) -> None:
        if endpoint.listening:
            endpoint.listening = False
            await self._bus.unsubscribe(endpoint.channel, endpoint.deliver)

    def announce(self, peer_ids: list[str], node: str | None = None, here: list[LocalSocket] | None = None) -> None:
        """A room has a new owner (this node, which took it over, or ``node``): the endpoints of its peers,
        wherever they are, attach to it; those on this node that this node served (``here``) are told directly
        (they listen on no channel)."""
        owner = {"c": "owner", "node": node or self.node_id}
        for socket in here or ():
            self.control(socket, owner)
        control = CONTROL + json.dumps(owner).encode()
        for peer_id in peer_ids:
            self._bus.post(f"peer:{peer_id}", control)

    async def _renew(self) -> None:
        every = self._rooms.ttl_ms / 3000
        while True:
            await asyncio.sleep(every)
            try:
                lost = await self._rooms.renew()
            except TeleconsultError:
                continue  # Redis away: renewed (or taken again) when it is back
            except Exception:
                log.exception("renewing room leases failed")
                continue
            for consultation_id, holder in lost.items():
                log.warning("room lease taken by another node: handing the room over")
                await self._service.hand_over(consultation_id, holder)
            await self._check_endpoints()

    async def _check_endpoints(self) -> None:
        """Sockets held by a node that died (nobody listens on its channel) are dropped: their seats are held for
        the grace period, as when a socket drops, instead of looking connected for ever."""
        by_node: dict[str, list[tuple[Session, RemoteSocket]]] = {}
        for session in self._service.sessions():
            conn = session.conn
            if isinstance(conn, RemoteSocket) and conn.node != self.node_id:
                by_node.setdefault(conn.node, []).append((session, conn))
        for node, held in by_node.items():
            try:
                if await self._bus.publish(f"node:{node}", PING):
                    continue
                for session, conn in held:
                    await self._service.disconnect(session, conn)
            except TeleconsultError:
                return  # Redis or the database away: looked at again next time

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def seat_to_wire(seat: Seat) -> dict[str, Any]:
    wire = asdict(seat)
    del wire["resume_hash"]  # the owner records the token it issues; nothing else travels
    for name in ("admitted_at", "away_since"):
        value = wire[name]
        wire[name] = value.isoformat() if value is not None else None
    return wire


def seat_from_wire(wire: dict[str, Any]) -> Seat:
    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value is not None else None

    return Seat(
        participant_id=ParticipantId(wire["participant_id"]),
        consultation_id=ConsultationId(wire["consultation_id"]),
        doctor_id=DoctorId(wire["doctor_id"]),
        role=wire["role"],
        name=wire["name"],
        admitted_at=when(wire["admitted_at"]),
        pre_admitted=bool(wire["pre_admitted"]),
        peer_id=PeerId(wire["peer_id"]) if wire["peer_id"] else None,
        away_since=when(wire["away_since"]),
    )
