"""What may be uploaded: the type is judged on the content (the name is never trusted), and the name is display
text. The only home of ``filetype``.

Allowed: PDF, JPEG, PNG, HEIC/HEIF, WebP and plain UTF-8 text. A file whose first kilobyte looks like HTML or a
script is refused whatever its other magic says: that is what makes a polyglot dangerous when a browser sniffs it.
"""

from __future__ import annotations

import re
import unicodedata

import filetype

from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.validation import FORBIDDEN_CATEGORIES

ALLOWED = {
    "application/pdf": ".pdf",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/heic": ".heic",
    "image/heif": ".heif",
    "image/webp": ".webp",
    "text/plain": ".txt",
}
#: Bytes read before the type is decided (filetype needs 261; the HTML check looks at the first kilobyte).
SNIFF_BYTES = 1024
NAME_MAX = 120
_ACTIVE = re.compile(rb"<\s*(!doctype\s+html|html|script|svg|iframe|object|embed|body|head)\b", re.IGNORECASE)


def detect(head: bytes) -> str:
    """The MIME type of a file from its first bytes, if it is allowed; raises ``unsupported_type`` otherwise."""
    if _ACTIVE.search(head[:SNIFF_BYTES]):
        raise _refused("active content (HTML or script)")
    mime = filetype.guess_mime(head)
    if mime in ALLOWED:
        return str(mime)
    if mime is None and _is_text(head):
        return "text/plain"
    raise _refused(mime or "unknown")


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a character cut at the end of the sniffed bytes
    return True


def _refused(what: str) -> TeleconsultError:
    return TeleconsultError(
        ErrorCode.UNSUPPORTED_TYPE, f"This kind of file is not accepted ({what}).", detail="document_type"
    )


def safe_name(name: str | None, mime: str) -> str:
    """A name to show and to offer on download: no path, no control or invisible characters, at most
    ``NAME_MAX`` characters, ending with the extension of the type found (whatever the name claimed)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(c for c in base if unicodedata.category(c) not in FORBIDDEN_CATEGORIES)
    base = " ".join(base.split()).strip(" .")
    extension = ALLOWED[mime]
    stem = base.rsplit(".", 1)[0] if "." in base else base  # the claimed extension goes; the found one comes
    stem = stem.strip(" .")[: NAME_MAX - len(extension)] or "document"
    return stem + extension
