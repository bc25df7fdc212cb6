"""Protocol v1: the wire schema (messages) and its one codec."""

from teleconsult.protocol.codec import decode_client, encode, encode_client
from teleconsult.protocol.messages import PROTOCOL_VERSION, ClientMessage, ServerMessage

__all__ = ["PROTOCOL_VERSION", "ClientMessage", "ServerMessage", "decode_client", "encode", "encode_client"]
