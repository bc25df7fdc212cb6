"""Protocol v1 messages as typed structs: a closed tagged union per direction (DESIGN.md).

Unknown fields are ignored; field types and lengths are checked at decode time, so services receive only
well-formed values.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, field

PROTOCOL_VERSION = 1

Id = Annotated[str, Meta(min_length=1, max_length=64)]
PeerRef = Annotated[str, Meta(min_length=1, max_length=64)]
Sdp = Annotated[str, Meta(max_length=60_000)]
ChatText = Annotated[str, Meta(min_length=1, max_length=4_000)]
Token = Annotated[str, Meta(min_length=1, max_length=256)]
Role = Literal["doctor", "patient", "nurse", "guest"]
PeerState = Literal["admitted", "waiting"]


class _Client(msgspec.Struct, tag_field="type", kw_only=True):
    id: Id | None = None


class Hello(_Client, tag="hello"):
    v: int
    ticket: Token | None = None
    resume: Token | None = None


class Admit(_Client, tag="admit"):
    peer_id: PeerRef


class Deny(_Client, tag="deny"):
    peer_id: PeerRef


class Remove(_Client, tag="remove"):
    peer_id: PeerRef


class ReturnToLobby(_Client, tag="return-to-lobby"):
    peer_id: PeerRef


CheckValue = str | bool | int | float
Checks = Annotated[dict[Annotated[str, Meta(max_length=32)], CheckValue], Meta(max_length=16)]


class Ready(_Client, tag="ready"):
    """A waiting participant's device checks (cameras found, permission, network test), shown to the doctor."""

    checks: Checks


class IceCandidate(msgspec.Struct, kw_only=True, omit_defaults=True):
    candidate: Annotated[str, Meta(max_length=2_000)]
    sdpMid: Annotated[str, Meta(max_length=64)] | None = None
    sdpMLineIndex: Annotated[int, Meta(ge=0, le=1_000)] | None = None
    usernameFragment: Annotated[str, Meta(max_length=256)] | None = None


class Offer(_Client, tag="offer"):
    to: PeerRef
    sdp: Sdp


class Answer(_Client, tag="answer"):
    to: PeerRef
    sdp: Sdp


class Candidate(_Client, tag="candidate"):
    to: PeerRef
    candidate: IceCandidate | None


class Chat(_Client, tag="chat"):
    text: ChatText


class Leave(_Client, tag="leave"):
    pass


class End(_Client, tag="end"):
    pass


class Ping(_Client, tag="ping"):
    pass


class Media(_Client, tag="media"):
    """The sender receives ``peer_id``'s media: ``video`` once frames are decoded (billing records that video
    connected between the doctor and the patient)."""

    peer_id: PeerRef
    video: bool


ClientMessage = (
    Hello
    | Admit
    | Deny
    | Remove
    | ReturnToLobby
    | Ready
    | Offer
    | Answer
    | Candidate
    | Chat
    | Leave
    | End
    | Ping
    | Media
)

#: Every client message type, by its wire tag.
CLIENT_TYPES: dict[str, type[msgspec.Struct]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (
        Hello,
        Admit,
        Deny,
        Remove,
        ReturnToLobby,
        Ready,
        Offer,
        Answer,
        Candidate,
        Chat,
        Leave,
        End,
        Ping,
        Media,
    )
}


# --- server -> client -------------------------------------------------------------------------------------------


class PeerInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    peer_id: str
    role: Role
    name: str
    #: In peer lists sent to one client: whether that client is the polite side toward this peer.
    polite: bool | None = None
    #: In the doctor's lobby: the waiting participant's device checks, once reported.
    ready: dict[str, CheckValue] | None = None
    #: In the doctor's lobby: another connection holds this seat (the link opened on a second device, or
    #: forwarded). Admitting this one replaces it.
    second_device: bool | None = None


class IceServerInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class _Server(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    ref: str | None = None


class Welcome(_Server, tag="welcome"):
    peer_id: str
    role: Role
    consultation_id: str
    state: PeerState
    peers: list[PeerInfo]
    ice_servers: list[IceServerInfo]
    resume: str
    #: Perfect negotiation: the doctor is polite; everyone else is impolite.
    polite: bool


class Waiting(_Server, tag="waiting"):
    pass


class Lobby(_Server, tag="lobby"):
    waiting: list[PeerInfo]


class Admitted(_Server, tag="admitted"):
    peers: list[PeerInfo]


class Denied(_Server, tag="denied"):
    pass


class Removed(_Server, tag="removed"):
    reason: str | None = None


class PeerJoined(_Server, tag="peer-joined"):
    peer: PeerInfo


class PeerLeft(_Server, tag="peer-left"):
    peer_id: str


class OfferOut(_Server, tag="offer"):
    from_: str = field(name="from")
    sdp: str


class AnswerOut(_Server, tag="answer"):
    from_: str = field(name="from")
    sdp: str


class CandidateOut(_Server, tag="candidate"):
    from_: str = field(name="from")
    candidate: IceCandidate | None  # required, so a null end-of-candidates is still sent


class ChatOut(_Server, tag="chat"):
    from_: str = field(name="from")
    text: str
    ts: str
    msg_id: str


class DocumentInfo(msgspec.Struct, kw_only=True):
    id: str
    name: str
    size: int
    mime: str
    kind: Literal["document", "prescription"]
    from_: str = field(name="from")


class DocumentOut(_Server, tag="document"):
    document: DocumentInfo


class Ended(_Server, tag="ended"):
    consultation_id: str


class Pong(_Server, tag="pong"):
    pass


class Reconnect(_Server, tag="reconnect"):
    """The server is going away: reconnect after ``after_ms`` and resume with the resume token."""

    after_ms: int


class Error(_Server, tag="error"):
    code: str
    message: str


ServerMessage = (
    Welcome
    | Waiting
    | Lobby
    | Admitted
    | Denied
    | Removed
    | PeerJoined
    | PeerLeft
    | OfferOut
    | AnswerOut
    | CandidateOut
    | ChatOut
    | DocumentOut
    | Ended
    | Pong
    | Reconnect
    | Error
)
