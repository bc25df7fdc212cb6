"""Typed identifiers, random tokens and their hashes.

Tokens are 256-bit random strings shown once and stored only as SHA-256 hashes (they carry full entropy, so a
fast hash is the right tool: there is nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import NewType

DoctorId = NewType("DoctorId", str)
ConsultationId = NewType("ConsultationId", str)
ParticipantId = NewType("ParticipantId", str)
PeerId = NewType("PeerId", str)
InvitationId = NewType("InvitationId", str)
BillingRecordId = NewType("BillingRecordId", str)
MailId = NewType("MailId", str)
DocumentId = NewType("DocumentId", str)

TOKEN_BYTES = 32


def new_id(prefix: str) -> str:
    """A short opaque id such as ``c_Zq3k...`` (96 random bits)."""
    return f"{prefix}_{secrets.token_urlsafe(12)}"


def new_token() -> str:
    """A 256-bit URL-safe secret (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_token(value: str) -> bool:
    """Cheap shape check before touching the database (43 URL-safe base64 characters)."""
    return len(value) == 43 and all(c.isalnum() or c in "-_" for c in value)


def hmac_hex(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
