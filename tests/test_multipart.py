"""The file part's body read off the socket: the same bytes as aiohttp's own part reader, wherever the socket cuts
the body, whatever the body holds (near-delimiters, line breaks, nothing at all); a request cut short is refused."""

from __future__ import annotations

import asyncio
import os
from unittest import mock

import pytest
from aiohttp import StreamReader

from teleconsult.api.multipart import PartEnd, boundary_of, part_body

BOUNDARY = "----formdata-xyz0123456789"


def body_of(pieces: list[bytes], boundary: str = BOUNDARY) -> bytes:
    end = PartEnd(boundary)
    out = bytearray()
    for piece in pieces:
        for released in end.feed(piece):
            out += released
    assert end.ended
    return bytes(out)


def envelope(content: bytes, boundary: str = BOUNDARY) -> bytes:
    """What follows the file part's headers: its body, the delimiter, and another part for good measure."""
    tail = f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nx\r\n--{boundary}--\r\n'
    return content + tail.encode()


TRICKY = [
    b"",
    b"x",
    b"\r\n",
    b"\r\n--",
    f"--{BOUNDARY[:-1]}".encode(),  # at the start, where the CRLF of the headers' blank line comes before it
    f"\r\n--{BOUNDARY[:-1]}".encode(),  # a delimiter but for its last byte
    f"a\r\n--{BOUNDARY[:-1]}b\r\n\r\n--".encode(),
    os.urandom(3000),
]


@pytest.mark.parametrize("content", TRICKY)
def test_every_cut_of_the_socket_gives_the_same_body(content: bytes) -> None:
    data = envelope(content)
    for cut in range(len(data) + 1):
        assert body_of([data[:cut], data[cut:]]) == content
    assert body_of([data[i : i + 1] for i in range(len(data))]) == content  # a byte at a time
    for size in (7, 64, 1000):
        assert body_of([data[i : i + size] for i in range(0, len(data), size)]) == content


def test_a_large_body_is_released_as_views_of_the_pieces() -> None:
    content = os.urandom(1024 * 1024)
    data = envelope(content)
    end = PartEnd(BOUNDARY)
    released = end.feed(data[: 512 * 1024])
    assert any(isinstance(piece, memoryview) and len(piece) > 500_000 for piece in released)
    assert b"".join(released) + b"".join(end.feed(data[512 * 1024 :])) == content


def test_the_boundary_comes_from_the_content_type() -> None:
    assert boundary_of(f"multipart/form-data; boundary={BOUNDARY}") == BOUNDARY
    assert boundary_of('multipart/form-data; boundary="a b"') == "a b"


def test_a_request_that_ends_inside_the_part_is_refused() -> None:
    async def read(data: bytes) -> bytes:
        content = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
        content.feed_data(data)
        content.feed_eof()
        return b"".join([bytes(piece) async for piece in part_body(content, BOUNDARY)])

    assert asyncio.run(read(envelope(b"complete"))) == b"complete"
    with pytest.raises(ValueError, match="ended inside a part"):
        asyncio.run(read(b"cut short\r\n--" + BOUNDARY[:5].encode()))


@pytest.mark.parametrize("content", TRICKY)
def test_the_body_is_the_one_aiohttps_own_reader_gives(content: bytes) -> None:
    from aiohttp import BodyPartReader, MultipartReader

    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    request = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode() + envelope(content)

    async def read(ours: bool) -> bytes:
        stream = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
        for at in range(0, len(request), 11):  # the socket's pieces
            stream.feed_data(request[at : at + 11])
        stream.feed_eof()
        part = await MultipartReader(headers, stream).next()
        assert isinstance(part, BodyPartReader)
        if not ours:
            return bytes(await part.read())
        return b"".join([bytes(piece) async for piece in part_body(stream, boundary_of(headers["Content-Type"]))])

    assert asyncio.run(read(ours=True)) == asyncio.run(read(ours=False)) == content
