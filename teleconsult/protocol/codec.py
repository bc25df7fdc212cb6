"""The one codec between wire JSON and protocol messages.

``decode_client`` checks size before parsing and maps every failure to a stable error code; ``encode`` turns a
server message into the bytes of a text frame.
"""

from __future__ import annotations

from typing import Any

import msgspec

from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.protocol.messages import CLIENT_TYPES, ClientMessage, ServerMessage

MAX_FRAME_BYTES = 64 * 1024

_decoder: msgspec.json.Decoder[ClientMessage] = msgspec.json.Decoder(ClientMessage)
_raw_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def decode_client(data: str | bytes, *, max_bytes: int = MAX_FRAME_BYTES) -> ClientMessage:
    """Parse one client frame or raise ``TeleconsultError`` with the code DESIGN.md gives."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise TeleconsultError(ErrorCode.TOO_LARGE, f"Frame over {max_bytes} bytes.")
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise _classify(raw, exc) from None
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        raise TeleconsultError(ErrorCode.BAD_MESSAGE, "Not a valid JSON object.") from None


def _classify(raw: bytes, exc: msgspec.ValidationError) -> TeleconsultError:
    """Tell an unknown ``type`` apart from a malformed known one (only on the error path)."""
    try:
        obj: Any = _raw_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return TeleconsultError(ErrorCode.BAD_MESSAGE, "Not a valid JSON object.")
    if not isinstance(obj, dict):
        return TeleconsultError(ErrorCode.BAD_MESSAGE, "A frame must be a JSON object.")
    kind = obj.get("type")
    if not isinstance(kind, str):
        return TeleconsultError(ErrorCode.BAD_MESSAGE, "Missing or ill-typed field `type`.")
    if kind not in CLIENT_TYPES:
        return TeleconsultError(ErrorCode.UNKNOWN_TYPE, f"Unknown message type {kind[:32]!r}.")
    return TeleconsultError(ErrorCode.BAD_MESSAGE, str(exc))


def ref_of(data: str | bytes) -> str | None:
    """Best-effort ``id`` of a frame that failed to decode, so its error can still carry ``ref``."""
    try:
        obj: Any = _raw_decoder.decode(data)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    ref = obj.get("id") if isinstance(obj, dict) else None
    return ref if isinstance(ref, str) and 0 < len(ref) <= 64 else None


def encode(message: ServerMessage) -> bytes:
    return _encoder.encode(message)


def encode_client(message: ClientMessage) -> bytes:
    """A client frame as the client could have sent it (a node forwarding it to the room's owner)."""
    return _encoder.encode(message)
