"""Sealing small secrets at rest (AES-256-GCM under a key derived from the server secret).

Used for what must wait in the database in a usable form but must not be readable there: a queued email
carries the invitation link until it is delivered, then the sealed copy is wiped.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12


class SealError(ValueError):
    """The blob was not sealed by this key for this purpose, or it was altered."""


class Sealer:
    def __init__(self, secret: bytes, purpose: str):
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"teleconsult:{purpose}:v1".encode()).derive(
            secret
        )
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, context: str) -> bytes:
        """``context`` (e.g. a row id) is bound to the blob: a blob moved to another row does not open."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, blob: bytes, context: str) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealError("cannot open sealed data") from exc
