"""Document files on disk without HTTP: pieces of any size and kind sealed into one age file that opens again; the
next file's X25519 work done ahead, after the previous upload; nothing left behind by an upload that fails."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from teleconsult.crypto.age import Identity, WrapKeys, decrypt
from teleconsult.documents.files import BATCH_BYTES, DocumentFiles, Piece


async def pieces(data: bytes, sizes: list[int]) -> AsyncIterator[Piece]:
    """``data`` cut in turn to each size, as bytes and as views (the socket's pieces and the multipart reader's)."""
    at, turn = 0, 0
    while at < len(data):
        size = sizes[turn % len(sizes)]
        piece = data[at : at + size]
        yield memoryview(piece) if turn % 2 else piece
        at, turn = at + size, turn + 1
        await asyncio.sleep(0)


@pytest.mark.parametrize("size", [0, 1, BATCH_BYTES - 1, BATCH_BYTES, BATCH_BYTES + 1, 3 * BATCH_BYTES + 12345])
async def test_pieces_of_any_size_make_one_file_that_opens(tmp_path: Path, size: int) -> None:
    identity = Identity.generate("service:v1")
    files = DocumentFiles(tmp_path / "documents")
    data = os.urandom(size)
    written = await files.write("doc_1", pieces(data, [1, 65536, 300_000, 7]), [identity.recipient()])
    sealed = files.path("doc_1").read_bytes()
    assert (written.size, written.sealed_size) == (size, len(sealed))
    assert written.sha256 == hashlib.sha256(sealed).hexdigest()
    assert decrypt(sealed, [identity]) == data
    assert b"".join([bytes(c) async for c in files.read("doc_1", written.sha256, [identity])]) == data


async def test_the_next_files_wrap_keys_are_made_after_an_upload(tmp_path: Path) -> None:
    service, doctor = Identity.generate("service:v1"), Identity.generate("doctor:d_1")
    wrap_keys = WrapKeys(depth=2)
    files = DocumentFiles(tmp_path / "documents", wrap_keys)
    await files.write("doc_1", pieces(b"first", [5]), [service.recipient(), doctor.recipient()])
    for _ in range(100):  # made in the worker thread, after the file
        if all(wrap_keys._ready.get(r.public) for r in (service.recipient(), doctor.recipient())):
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("no wrap keys made ahead")
    written = await files.write("doc_2", pieces(b"second", [6]), [service.recipient(), doctor.recipient()])
    assert decrypt(files.path("doc_2").read_bytes(), [doctor]) == b"second"
    assert written.size == 6


async def test_an_upload_that_fails_leaves_nothing(tmp_path: Path) -> None:
    async def broken() -> AsyncIterator[Piece]:
        yield os.urandom(2 * BATCH_BYTES)
        yield b"more"
        raise ConnectionResetError

    files = DocumentFiles(tmp_path / "documents")
    with pytest.raises(ConnectionResetError):
        await files.write("doc_1", broken(), [Identity.generate("k").recipient()])
    assert list((tmp_path / "documents").iterdir()) == []
