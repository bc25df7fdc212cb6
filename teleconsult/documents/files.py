"""Document files: age-encrypted as they arrive, written to a temporary file renamed into place only once complete,
and read back only after the ciphertext's sha256 matches its record. Plaintext never touches the disk.

Encryption and decryption run in a worker thread, a chunk batch at a time, so a 50 MiB upload does not hold the
event loop (other rooms keep relaying); memory stays at a few chunks whatever the file's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from teleconsult.crypto.age import AgeError, Decryptor, Encryptor, Identity, Recipient
from teleconsult.files import private_directory

READ_BYTES = 1024 * 1024
#: Plaintext gathered before a trip to the worker thread (one hop per 64 KiB network read would cost more than the
#: encryption itself).
BATCH_BYTES = 1024 * 1024


class DocumentFileError(Exception):
    """The file on disk is missing, not the one its record describes, or does not decrypt."""


@dataclass(frozen=True, slots=True)
class Written:
    size: int
    sealed_size: int
    sha256: str


class DocumentFiles:
    def __init__(self, directory: Path):
        self._directory = directory

    def path(self, document_id: str) -> Path:
        return self._directory / f"{document_id}.age"

    async def write(self, document_id: str, chunks: AsyncIterator[bytes], recipients: Sequence[Recipient]) -> Written:
        """Encrypt ``chunks`` into the document's file; nothing is left behind if they fail or stop half-way."""
        private_directory(self._directory)
        temporary = self._directory / f".{document_id}.part"
        encryptor = Encryptor(recipients)
        digest = hashlib.sha256()
        size = sealed = 0
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as file:

                def put(data: bytes) -> None:
                    nonlocal sealed
                    digest.update(data)
                    file.write(data)
                    sealed += len(data)

                put(encryptor.header)
                batch: list[bytes] = []
                batched = 0
                async for chunk in chunks:
                    size += len(chunk)
                    batch.append(chunk)
                    batched += len(chunk)
                    if batched >= BATCH_BYTES:
                        data, batch, batched = b"".join(batch), [], 0
                        await asyncio.to_thread(lambda d=data: put(encryptor.update(d)))  # type: ignore[misc]
                tail = b"".join(batch)
                await asyncio.to_thread(lambda: put(encryptor.update(tail) + encryptor.finalize()))
                await asyncio.to_thread(os.fsync, file.fileno())
            os.replace(temporary, self.path(document_id))
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        return Written(size=size, sealed_size=sealed, sha256=digest.hexdigest())

    async def read(self, document_id: str, sha256: str, identities: Sequence[Identity]) -> AsyncIterator[bytes]:
        """The plaintext, chunk by chunk, each released only once it authenticated; raises ``DocumentFileError``
        (before any byte) when the file is not the one recorded, and (mid-way) when it fails to decrypt."""
        path = self.path(document_id)
        if await asyncio.to_thread(_sha256_of, path) != sha256:
            raise DocumentFileError("the file does not match its record")
        decryptor = Decryptor(identities)
        try:
            with path.open("rb") as file:
                while data := await asyncio.to_thread(file.read, READ_BYTES):
                    plain = await asyncio.to_thread(decryptor.update, data)
                    if plain:
                        yield plain
            last = decryptor.finalize()
        except (AgeError, OSError) as exc:
            raise DocumentFileError(str(exc)) from exc
        if last:
            yield last

    def remove(self, document_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(document_id).unlink()


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while data := file.read(1024 * 1024):
                digest.update(data)
    except OSError as exc:
        raise DocumentFileError("the file is missing") from exc
    return digest.hexdigest()
