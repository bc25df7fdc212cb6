"""Password hashing with argon2id (the only home of argon2-cffi). Hashing runs off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile

#: A valid hash of a random password: verified against when the email is unknown, so timing does not tell.
_DUMMY_HASH = _hasher.hash("teleconsult-no-such-account")

MIN_LENGTH = 10


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify, password_hash or _DUMMY_HASH, password, password_hash is not None)


def _verify(password_hash: str, password: str, real: bool) -> bool:
    try:
        _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    return real
