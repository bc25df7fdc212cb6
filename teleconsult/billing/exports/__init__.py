"""The ledger's exports, as pure formatting: the current entries of a range, in the store's ``(day, consultation)``
order, become a stream of bytes chunks, CSV for the accountant or a FHIR R4 Bundle for software. Both are written
from pages of ``BillingLine`` (an entry's act per line, as the store reads them: ``csv_line_chunks``,
``fhir_line_chunks``) or from ``BillingRecord`` values (``csv_chunks``, ``fhir_chunks``: their lines), as text
made of pieces formatted once (a day, an hour, an act, a practitioner) and written the way the csv module and the
json encoder write them, byte for byte (``tests/test_exports.py`` compares them). Nothing here reads the database
or a clock, and nothing holds more than one chunk: a year of a busy practice never sits in memory. The same
entries give the same bytes (no "now" in the output; ids derived from the entries), so the CLI and the HTTP API,
given the same range, agree byte for byte.

CSV (``docs/billing.md``, "Exports"): UTF-8 with a BOM, ``;`` between cells, CRLF line ends, French decimal
amounts (``25,00``), days as ISO dates (``2026-11-03``) and times in Europe/Paris (``2026-11-03 14:05:09``), one
row per act; an entry without an act (no-show, interrupted, not billable) gets one row with an empty act code and
0,00 so that the month is complete. A text cell that would start a formula (``=``, ``+``, ``-``, ``@``, tab, CR)
gets a leading apostrophe.

FHIR: a Bundle of type ``collection``, with, per entry, an Encounter (class ``VR``), a Patient, a ChargeItem per
act and per majoration (the majoration's ``partOf`` its act), and a Practitioner per doctor and per nurse with a
number (once per Bundle).

The package, one concern a module: ``formats`` (the formats, their media types and file names, the chunks and their
size), ``lines`` (a record's lines, pages of them, the acts' labels: what both writers read), ``csv`` (the CSV
writer), ``fhir_resources`` (the FHIR systems, ids and small resources as objects) and ``fhir`` (the Bundle's
writer). Everything is imported from here, as when this was one module.
"""

from __future__ import annotations

from teleconsult.billing.exports.csv import (
    CSV_BOM,
    CSV_COLUMNS,
    _CsvText,
    csv_chunks,
    csv_line_chunks,
    euros,
    paris_time,
    safe_cell,
)
from teleconsult.billing.exports.fhir import bundle_head, fhir_chunks, fhir_line_chunks
from teleconsult.billing.exports.fhir_resources import (
    ACT_CODE_SYSTEM,
    CONSULTATION_SYSTEM,
    ENCOUNTER_STATUS,
    ENTRY_SYSTEM,
    IDENTIFIER_TYPES,
    IDNPS_SYSTEM,
    INS_NIR_SYSTEM,
    NAMESPACE,
    NGAP_SYSTEM,
    NURSE_PLACES,
    PARTICIPATION_TYPE,
    RPPS_SYSTEM,
    STATUS_LABELS,
    STATUS_SYSTEM,
    _dumps,
    _identifier,
    _money,
    _ngap,
    _participation,
    _practitioner,
    _ref,
    fhir_instant,
    nurse_identifier,
    urn,
)
from teleconsult.billing.exports.formats import (
    CHUNK_CHARS,
    EXTENSIONS,
    LINES_PER_TURN,
    MEDIA_TYPES,
    Chunks,
    ExportFormat,
    collect,
    file_name,
)
from teleconsult.billing.exports.lines import _Labels, lines_of

# The private names (``_Labels``…) too: ``tests/test_exports.py`` builds its reference output from them.
__all__ = [
    "ACT_CODE_SYSTEM",
    "CHUNK_CHARS",
    "CONSULTATION_SYSTEM",
    "CSV_BOM",
    "CSV_COLUMNS",
    "ENCOUNTER_STATUS",
    "ENTRY_SYSTEM",
    "EXTENSIONS",
    "IDENTIFIER_TYPES",
    "IDNPS_SYSTEM",
    "INS_NIR_SYSTEM",
    "LINES_PER_TURN",
    "MEDIA_TYPES",
    "NAMESPACE",
    "NGAP_SYSTEM",
    "NURSE_PLACES",
    "PARTICIPATION_TYPE",
    "RPPS_SYSTEM",
    "STATUS_LABELS",
    "STATUS_SYSTEM",
    "Chunks",
    "ExportFormat",
    "_CsvText",
    "_Labels",
    "_dumps",
    "_identifier",
    "_money",
    "_ngap",
    "_participation",
    "_practitioner",
    "_ref",
    "bundle_head",
    "collect",
    "csv_chunks",
    "csv_line_chunks",
    "euros",
    "fhir_chunks",
    "fhir_instant",
    "fhir_line_chunks",
    "file_name",
    "lines_of",
    "nurse_identifier",
    "paris_time",
    "safe_cell",
    "urn",
]
