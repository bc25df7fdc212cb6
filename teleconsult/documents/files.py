"""Document files: age-encrypted as they arrive, written to a temporary file renamed into place only once complete,
and read back only after the ciphertext's sha256 matches its record. Plaintext never touches the disk.

Encryption and decryption run in a worker thread, a chunk batch at a time, so a 50 MiB upload does not hold the
event loop (other rooms keep relaying); memory stays at a few chunks whatever the file's size. The X25519 work of
a file's header is done ahead, after the previous upload (``WrapKeys``), and the disk starts writing each batch
while the next one arrives, so the sync that ends an upload waits for little.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from teleconsult.crypto.age import (
    MAX_HEADER,
    AgeError,
    Decryptor,
    Encryptor,
    Identity,
    Recipient,
    WrapKeys,
    header_end,
    rewrap,
)
from teleconsult.files import private_directory

log = logging.getLogger(__name__)

READ_BYTES = 1024 * 1024
#: Plaintext gathered before a trip to the worker thread (one hop per 64 KiB network read would cost more than the
#: encryption itself).
BATCH_BYTES = 1024 * 1024
#: What a request's body gives: the socket's pieces (``bytes``, or views of them).
Piece = bytes | memoryview


class DocumentFileError(Exception):
    """The file on disk is missing, not the one its record describes, or does not decrypt."""


@dataclass(frozen=True, slots=True)
class Written:
    size: int
    sealed_size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Rewrapped:
    """A file whose header was rewritten: its new hash and size, and the header it had (to put it back)."""

    sha256: str
    sealed_size: int
    old_header: bytes


class DocumentFiles:
    def __init__(self, directory: Path, wrap_keys: WrapKeys | None = None):
        self._directory = directory
        self._wrap_keys = wrap_keys if wrap_keys is not None else WrapKeys()
        self._refill: asyncio.Future[None] | None = None

    def path(self, document_id: str) -> Path:
        return self._directory / f"{document_id}.age"

    async def write(self, document_id: str, chunks: AsyncIterator[Piece], recipients: Sequence[Recipient]) -> Written:
        """Encrypt ``chunks`` into the document's file; nothing is left behind if they fail or stop half-way.

        One batch is sealed and written in the worker thread while the next is read from the network, so the
        socket and the cipher work at the same time."""
        private_directory(self._directory)
        temporary = self._directory / f".{document_id}.part"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        sink = _SealedSink(os.fdopen(descriptor, "wb"), Encryptor(recipients, wrap_keys=self._wrap_keys))
        in_flight: asyncio.Future[None] | None = None
        try:
            batch = _Batch()
            async for chunk in chunks:
                if batch.size >= BATCH_BYTES:  # more came, so a full batch goes; the last one goes with the end
                    if in_flight is not None:
                        await in_flight
                    in_flight = asyncio.ensure_future(asyncio.to_thread(sink.seal, batch.take()))
                batch.add(chunk)
            if in_flight is not None:
                await in_flight
                in_flight = None
            await asyncio.to_thread(sink.finish, batch.take())
            os.replace(temporary, self.path(document_id))
            self._make_wrap_keys(recipients)  # while the upload's record is written
        except BaseException:
            if in_flight is not None:  # the thread still writes to the file: let it end before the file goes
                await asyncio.wait([in_flight])
            sink.close()
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        return Written(size=sink.size, sealed_size=sink.sealed_size, sha256=sink.digest.hexdigest())

    def _make_wrap_keys(self, recipients: Sequence[Recipient]) -> None:
        """Make the wrap keys the next files for these recipients will take, in the worker thread, unless that is
        under way already (the next upload asks again)."""
        if self._refill is not None and not self._refill.done():
            return
        self._refill = asyncio.ensure_future(asyncio.to_thread(self._wrap_keys.fill, list(recipients)))
        self._refill.add_done_callback(_refilled)

    async def read(
        self, document_id: str, sha256: str, identities: Sequence[Identity]
    ) -> AsyncIterator[bytes | bytearray]:
        """The plaintext, chunk by chunk, each released only once it authenticated; raises ``DocumentFileError``
        (before any byte) when the file is not the one recorded, and (mid-way) when it fails to decrypt."""
        path = self.path(document_id)
        if await asyncio.to_thread(_sha256_of, path) != sha256:
            raise DocumentFileError("the file does not match its record")
        decryptor = Decryptor(identities)
        try:
            with path.open("rb") as file:
                while plain := await asyncio.to_thread(_read_plain, file, decryptor):
                    yield plain
            last = decryptor.finalize()
        except (AgeError, OSError) as exc:
            raise DocumentFileError(str(exc)) from exc
        if last:
            yield last

    async def rewrap(
        self, file_id: str, sha256: str, identities: Sequence[Identity], recipients: Sequence[Recipient]
    ) -> Rewrapped:
        """Give the file a header wrapping its file key for ``recipients`` (opened with ``identities``); the payload
        is copied as it is, never decrypted. Refused (``DocumentFileError``) when the file does not match
        ``sha256``; the file is replaced only once the new one is complete."""
        return await asyncio.to_thread(
            self._replace_header, file_id, sha256, lambda head: rewrap(head, identities, recipients)
        )

    async def restore_header(self, file_id: str, rewrapped: Rewrapped) -> None:
        """Put back the header ``rewrap`` replaced (its record could not follow)."""

        def old(head: bytes) -> tuple[bytes, int]:
            end = header_end(head)
            assert end is not None
            return rewrapped.old_header, end

        await asyncio.to_thread(self._replace_header, file_id, rewrapped.sha256, old)

    def _replace_header(self, file_id: str, sha256: str, new_header: Callable[[bytes], tuple[bytes, int]]) -> Rewrapped:
        path = self.path(file_id)
        if _sha256_of(path) != sha256:
            raise DocumentFileError("the file does not match its record")
        temporary = self._directory / f".{file_id}.rewrap"
        digest = hashlib.sha256()
        sealed_size = 0
        try:
            with path.open("rb") as source:
                head = source.read(MAX_HEADER + 1)
                try:
                    header, old_length = new_header(head)
                except AgeError as exc:
                    raise DocumentFileError(str(exc)) from exc
                source.seek(old_length)
                descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "wb") as target:
                    data = header
                    while data:
                        digest.update(data)
                        target.write(data)
                        sealed_size += len(data)
                        data = source.read(READ_BYTES)
                    target.flush()
                    os.fsync(target.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        return Rewrapped(sha256=digest.hexdigest(), sealed_size=sealed_size, old_header=head[:old_length])

    def remove(self, document_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(document_id).unlink()


def _refilled(refill: asyncio.Future[None]) -> None:
    if not refill.cancelled() and (error := refill.exception()) is not None:
        log.warning("wrap keys not made ahead: %s", type(error).__name__)


class _Batch:
    """Network reads gathered for one trip to the worker thread (one hop per 64 KiB read would cost more than the
    encryption); joined there, off the event loop."""

    def __init__(self) -> None:
        self._parts: list[Piece] = []
        self.size = 0

    def add(self, chunk: Piece) -> None:
        self._parts.append(chunk)
        self.size += len(chunk)

    def take(self) -> list[Piece]:
        parts, self._parts, self.size = self._parts, [], 0
        return parts


class _SealedSink:
    """The temporary file a document's ciphertext goes to, with its digest; used from the worker thread."""

    def __init__(self, file: BinaryIO, encryptor: Encryptor):
        self._file = file
        self._encryptor = encryptor
        self.digest = hashlib.sha256()
        self.size = 0
        self.sealed_size = 0
        self._put(encryptor.header)

    def seal(self, parts: list[Piece]) -> None:
        """Seal and write a batch of plaintext; the disk starts writing it at once (see ``_write_back``)."""
        plaintext = b"".join(parts)
        self.size += len(plaintext)
        start = self.sealed_size
        self._put(self._encryptor.update_view(plaintext))
        self._write_back(start)

    def finish(self, parts: list[Piece]) -> None:
        """The last plaintext, the last chunk, and the file synced and closed."""
        self.seal(parts)
        self._put(self._encryptor.finalize())
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def close(self) -> None:
        self._file.close()

    def _put(self, data: bytes | memoryview) -> None:
        self.digest.update(data)
        self._file.write(data)
        self.sealed_size += len(data)

    def _write_back(self, start: int) -> None:
        """Have the kernel start writing what was written since ``start`` to the disk, without waiting for it (so
        the disk works while the next batch arrives, and the final sync has little left). Linux starts that
        write-back for ``POSIX_FADV_DONTNEED`` (pages still dirty or being written stay in the cache)."""
        if hasattr(os, "posix_fadvise") and self.sealed_size > start:
            self._file.flush()
            os.posix_fadvise(self._file.fileno(), start, self.sealed_size - start, os.POSIX_FADV_DONTNEED)


def _read_plain(file: BinaryIO, decryptor: Decryptor) -> bytes | bytearray:
    """The next authenticated plaintext, one trip to the worker thread; empty at the end of the file. A read
    that ends inside a chunk yields nothing yet, so it reads on."""
    while data := file.read(READ_BYTES):
        if plain := decryptor.update(data):
            return plain
    return b""


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while data := file.read(1024 * 1024):
                digest.update(data)
    except OSError as exc:
        raise DocumentFileError("the file is missing") from exc
    return digest.hexdigest()
