"""The body of one multipart/form-data part, read as it comes off the socket.

aiohttp's ``BodyPartReader.read_chunk`` looks for the part's end in a copy of its previous chunk joined to the next
one, so each byte of a file is copied twice more, and 64 KiB at a time at most. For a file part, the body is
released here in the pieces the socket gave: the delimiter (``CRLF --boundary``) is looked for in each piece where
it lies, and only the few bytes that could begin a delimiter split between two pieces are held back and copied.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import StreamReader
from aiohttp.helpers import parse_mimetype

Piece = bytes | memoryview


class PartEnd:
    """Finds where a part's body ends in the pieces of the request body that follow the part's headers.

    ``feed`` returns the body's bytes known to be before the delimiter, as views of the pieces given or small
    copies; ``ended`` once the delimiter was seen (what follows it is not the part's, and is ignored)."""

    def __init__(self, boundary: str):
        # The headers' blank line ends with the CRLF of the delimiter of an empty body: it is counted as seen.
        self._delimiter = b"\r\n--" + boundary.encode()
        self._keep = len(self._delimiter) - 1  # the most of a delimiter that can end a piece without being whole
        self._tail = b"\r\n"
        self._skip = 2  # that CRLF is not the body's
        self.ended = False

    def feed(self, piece: bytes) -> list[Piece]:
        if self.ended:
            return []
        tail, keep = self._tail, self._keep
        # A delimiter that starts in the tail ends within the first ``keep`` bytes of the piece.
        joined = tail + piece[:keep]
        at = joined.find(self._delimiter)
        if at >= 0:
            self.ended = True
            return self._release([joined[:at]])
        at = piece.find(self._delimiter)
        if at >= 0:
            self.ended = True
            return self._release([tail, memoryview(piece)[:at]])
        if len(piece) >= keep:
            self._tail = piece[len(piece) - keep :]
            return self._release([tail, memoryview(piece)[: len(piece) - keep]])
        cut = max(0, len(joined) - keep)
        self._tail = joined[cut:]
        return self._release([joined[:cut]])

    def _release(self, pieces: list[Piece]) -> list[Piece]:
        """The pieces, less the leading CRLF that came from the headers, and less empty ones."""
        released = []
        for piece in pieces:
            if self._skip:
                skipped = min(self._skip, len(piece))
                piece, self._skip = piece[skipped:], self._skip - skipped
            if len(piece):
                released.append(piece)
        return released


def boundary_of(content_type: str) -> str:
    """The ``boundary`` parameter of a multipart ``Content-Type`` (one aiohttp's reader accepted)."""
    return parse_mimetype(content_type).parameters["boundary"]


async def part_body(content: StreamReader, boundary: str) -> AsyncIterator[Piece]:
    """The body of the part whose headers were just read from ``content`` (the request's body), piece by piece as
    the socket gives it; raises ``ValueError`` if the request ends before the part does."""
    end = PartEnd(boundary)
    while not end.ended:
        piece = await content.readany()
        if not piece:
            raise ValueError("the request ended inside a part")
        for released in end.feed(piece):
            yield released
