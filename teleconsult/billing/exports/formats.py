"""The export formats and what every writer hands on: each format's name, ``Content-Type`` and file name; the bytes
chunks the writers stream and their size; how many lines are formatted between two turns of the event loop."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import date
from enum import StrEnum

#: What the exports produce: bytes, a chunk at a time (an async generator: ``aclose`` it when stopping early).
Chunks = AsyncGenerator[bytes, None]

#: A chunk is handed on once it holds about this many characters.
CHUNK_CHARS = 64 * 1024
#: Lines formatted between two turns of the event loop (``BillingService.export``): a millisecond or two of work.
LINES_PER_TURN = 500


class ExportFormat(StrEnum):
    CSV = "csv"
    FHIR = "fhir"


#: ``Content-Type`` and file extension of each format.
MEDIA_TYPES = {ExportFormat.CSV: "text/csv; charset=utf-8", ExportFormat.FHIR: "application/fhir+json"}
EXTENSIONS = {ExportFormat.CSV: "csv", ExportFormat.FHIR: "json"}


def file_name(first: date, last: date, fmt: ExportFormat) -> str:
    """``teleconsult-2026-11-01-2026-11-30.csv``."""
    return f"teleconsult-{first.isoformat()}-{last.isoformat()}.{EXTENSIONS[fmt]}"


async def collect(chunks: Chunks) -> bytes:
    """Every chunk joined (tests and small exports)."""
    return b"".join([chunk async for chunk in chunks])
