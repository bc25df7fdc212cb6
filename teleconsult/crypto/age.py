"""The age v1 file format (age-encryption.org/v1), on ``cryptography`` primitives: X25519 recipients, HKDF-SHA256,
an HMAC-SHA256 header MAC, and a ChaCha20-Poly1305 STREAM of 64 KiB chunks. Files interoperate with the ``age``
command line both ways.

Streaming both ways, with constant memory: ``Encryptor.update`` takes plaintext as it comes and returns the
ciphertext ready so far; ``Decryptor.update`` takes ciphertext as it comes and returns only plaintext whose chunk has
authenticated. A reader fails when the last chunk never comes, when anything follows it, when a chunk is altered,
dropped or moved, when the header is too large, not canonical (base64 with padding or stray bits, a stanza body of
the wrong length) or its MAC does not match, and when an X25519 share gives the all-zero secret.

A file key is opened with the first identity whose stanza unwraps; stanzas carry no key id (as in age itself), so
which keys a file is wrapped for is recorded beside it (the document's database row). ``rewrap`` gives a file's
header new recipients without touching its payload (key rotation).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256

import bech32
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

INTRO = b"age-encryption.org/v1\n"
STANZA_PREFIX = b"-> "
MAC_PREFIX = b"--- "
X25519_LABEL = b"age-encryption.org/v1/X25519"
CHUNK = 64 * 1024
TAG = 16
SEALED_CHUNK = CHUNK + TAG
NONCE_SIZE = 16
FILE_KEY_SIZE = 16
#: A header larger than this is refused before it is parsed (a file has a few stanzas of ~100 bytes each).
MAX_HEADER = 64 * 1024
COLUMNS = 64
PUBLIC_HRP = "age"
SECRET_HRP = "age-secret-key-"  # noqa: S105 - the bech32 prefix of age identities, not a secret


class AgeError(ValueError):
    """The file is not a well-formed age file, or not one these identities open, or it was altered."""


# --- keys ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recipient:
    """An X25519 public key a file key is wrapped for; ``key_id`` names it in the records (``service:v3``)."""

    key_id: str
    public: bytes

    @classmethod
    def parse(cls, text: str, key_id: str = "") -> Recipient:
        """From the ``age1…`` form ``age-keygen`` prints."""
        return cls(key_id, _bech32_decode(text.strip(), PUBLIC_HRP))

    def __str__(self) -> str:
        return _bech32_encode(PUBLIC_HRP, self.public)


@dataclass(frozen=True, slots=True)
class Identity:
    """An X25519 private key that opens files wrapped for its recipient."""

    key_id: str
    secret: bytes
    #: The X25519 public key, derived once (each file opened needs it).
    public: bytes = field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        key = X25519PrivateKey.from_private_bytes(self.secret)
        object.__setattr__(self, "public", key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @classmethod
    def generate(cls, key_id: str) -> Identity:
        key = X25519PrivateKey.generate()
        return cls(key_id, key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    @classmethod
    def parse(cls, text: str, key_id: str = "") -> Identity:
        """From the ``AGE-SECRET-KEY-1…`` form (comment lines starting with ``#`` are skipped)."""
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if len(lines) != 1:
            raise AgeError("expected one AGE-SECRET-KEY line")
        return cls(key_id, _bech32_decode(lines[0], SECRET_HRP))

    def recipient(self) -> Recipient:
        return Recipient(self.key_id, self.public)

    def __str__(self) -> str:
        return _bech32_encode(SECRET_HRP, self.secret).upper()


def _bech32_encode(hrp: str, data: bytes) -> str:
    words = bech32.convertbits(data, 8, 5, True)
    assert words is not None
    return bech32.bech32_encode(hrp, words)


def _bech32_decode(text: str, hrp: str) -> bytes:
    found, words = bech32.bech32_decode(text)
    if found is None or words is None or found.lower() != hrp:
        raise AgeError(f"not an {hrp} key")
    data = bech32.convertbits(words, 5, 8, False)
    if data is None or len(data) != 32:
        raise AgeError(f"not an {hrp} key")
    return bytes(data)


# --- the header ------------------------------------------------------------------------------------------------


def _hkdf(key: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(key)


def _b64encode(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _b64decode(text: bytes) -> bytes:
    """Canonical unpadded base64 only: no padding, no stray bits, nothing outside the alphabet."""
    if b"=" in text or b"\r" in text or b"\n" in text:
        raise AgeError("non-canonical base64")
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise AgeError("invalid base64") from None
    if _b64encode(data) != text:
        raise AgeError("non-canonical base64")
    return data


def _wrap(file_key: bytes, recipient: Recipient) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient.public))
    wrap_key = _hkdf(shared, share + recipient.public, X25519_LABEL)
    body = ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None)
    return _stanza([b"X25519", _b64encode(share)], body)


def _stanza(args: Sequence[bytes], body: bytes) -> bytes:
    encoded = _b64encode(body)
    lines = [encoded[i : i + COLUMNS] for i in range(0, len(encoded), COLUMNS)]
    if not lines or len(lines[-1]) == COLUMNS:
        lines.append(b"")  # the last line of a body is always shorter than a full one
    return STANZA_PREFIX + b" ".join(args) + b"\n" + b"\n".join(lines) + b"\n"


def _header(file_key: bytes, stanzas: Iterable[bytes]) -> bytes:
    """The header with its MAC: what is MACed runs from the intro through ``---``."""
    unsigned = INTRO + b"".join(stanzas) + MAC_PREFIX.rstrip(b" ")
    mac = hmac.new(_hkdf(file_key, b"", b"header"), unsigned, sha256).digest()
    return unsigned + b" " + _b64encode(mac) + b"\n"


@dataclass(frozen=True, slots=True)
class _Stanza:
    kind: bytes
    args: tuple[bytes, ...]
    body: bytes


def _parse_header(header: bytes) -> tuple[list[_Stanza], bytes, bytes]:
    """``(stanzas, the MACed part, the MAC)``; raises on anything not canonical."""
    if not header.startswith(INTRO):
        raise AgeError("not an age v1 file")
    lines = header[len(INTRO) :].split(b"\n")
    if lines[-1] != b"":
        raise AgeError("truncated header")
    lines.pop()
    stanzas: list[_Stanza] = []
    index = 0
    while index < len(lines) and lines[index].startswith(STANZA_PREFIX):
        args = lines[index][len(STANZA_PREFIX) :].split(b" ")
        if not args or any(not a for a in args):
            raise AgeError("malformed stanza")
        index += 1
        body_lines = []
        while True:
            if index >= len(lines):
                raise AgeError("truncated stanza")
            line = lines[index]
            index += 1
            if len(line) > COLUMNS:
                raise AgeError("stanza line too long")
            body_lines.append(line)
            if len(line) < COLUMNS:
                break
        body = _b64decode(b"".join(body_lines)) if any(body_lines) else b""
        stanzas.append(_Stanza(args[0], tuple(args[1:]), body))
    if index != len(lines) - 1 or not lines[index].startswith(MAC_PREFIX):
        raise AgeError("malformed header")
    mac = _b64decode(lines[index][len(MAC_PREFIX) :])
    if len(mac) != 32:
        raise AgeError("malformed header MAC")
    macd = header[: len(header) - len(lines[index]) - 1] + MAC_PREFIX.rstrip(b" ")
    return stanzas, macd, mac


def _unwrap(stanzas: list[_Stanza], identities: Sequence[Identity]) -> bytes:
    for stanza in stanzas:
        if stanza.kind != b"X25519":
            continue
        if len(stanza.args) != 1:
            raise AgeError("malformed X25519 stanza")
        share = _b64decode(stanza.args[0])
        if len(share) != 32 or len(stanza.body) != FILE_KEY_SIZE + TAG:
            raise AgeError("malformed X25519 stanza")
        for identity in identities:
            secret = X25519PrivateKey.from_private_bytes(identity.secret)
            try:
                shared = secret.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError:  # OpenSSL refuses a low-order point (it would give the all-zero secret)
                raise AgeError("X25519 share gives the all-zero secret") from None
            if shared == bytes(32):
                raise AgeError("X25519 share gives the all-zero secret")
            wrap_key = _hkdf(shared, share + identity.public, X25519_LABEL)
            try:
                return ChaCha20Poly1305(wrap_key).decrypt(bytes(12), stanza.body, None)
            except InvalidTag:
                continue
    raise AgeError("no identity opens this file")


def _open_header(header: bytes, identities: Sequence[Identity]) -> bytes:
    stanzas, macd, mac = _parse_header(header)
    file_key = _unwrap(stanzas, identities)
    expected = hmac.new(_hkdf(file_key, b"", b"header"), macd, sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise AgeError("header MAC mismatch")
    return file_key


def header_end(data: bytes) -> int | None:
    """Where the header ends in ``data`` (the index after its MAC line), or None if not yet; raises past the cap."""
    search_from = 0
    while True:
        at = data.find(b"\n" + MAC_PREFIX, search_from)
        if at < 0:
            if len(data) > MAX_HEADER:
                raise AgeError("header too large")
            return None
        end = data.find(b"\n", at + 1)
        if end < 0:
            if len(data) > MAX_HEADER:
                raise AgeError("header too large")
            return None
        if end + 1 > MAX_HEADER:
            raise AgeError("header too large")
        return end + 1


# --- the payload -------------------------------------------------------------------------------------------------


def _chunk_nonce(counter: int, last: bool) -> bytes:
    if counter >= 1 << 88:
        raise AgeError("too many chunks")
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class _Blocks:
    """Cuts a stream into blocks of ``size`` and always keeps the newest block (full or not) back: only more data
    shows that a block is not the last. Blocks are views of the data given; only a block that straddles two calls
    is copied, and what is kept back is copied only when the caller's buffer could change (not ``bytes``)."""

    def __init__(self, size: int):
        self._size = size
        self._held: bytearray | memoryview = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> list[memoryview]:
        view = memoryview(data).cast("B")
        blocks: list[memoryview] = []
        if len(self._held) == self._size and len(view):  # a whole block was held back: more data came, so it goes
            blocks.append(memoryview(self._held))
            self._held = bytearray()
        if len(self._held):
            need = self._size - len(self._held)
            straddling = self._held if isinstance(self._held, bytearray) else bytearray(self._held)
            if len(view) <= need:
                straddling += view
                self._held = straddling
                return blocks
            straddling += view[:need]
            blocks.append(memoryview(straddling))
            view = view[need:]
        at = 0
        while len(view) - at > self._size:
            blocks.append(view[at : at + self._size])
            at += self._size
        rest = view[at:]
        self._held = rest if isinstance(rest.obj, bytes) else bytearray(rest)
        return blocks

    def rest(self) -> bytes:
        held, self._held = bytes(self._held), bytearray()
        return held


class _Output:
    """One buffer reused for every call's output, so a stream's chunks are sealed or opened in place rather than
    each into fresh memory (fresh memory costs a page fault per 4 KiB; reused memory stays warm)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def take(self, size: int) -> memoryview:
        if len(self._buffer) < size:
            self._buffer = bytearray(size)
        return memoryview(self._buffer)[:size]


class Encryptor:
    """``header`` first, then what ``update`` (or ``update_view``) and ``finalize`` return, in order, is the whole
    file."""

    def __init__(self, recipients: Sequence[Recipient]):
        if not recipients:
            raise ValueError("at least one recipient")
        file_key = os.urandom(FILE_KEY_SIZE)
        nonce = os.urandom(NONCE_SIZE)
        self.header = _header(file_key, [_wrap(file_key, r) for r in recipients]) + nonce
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._blocks = _Blocks(CHUNK)
        self._output = _Output()
        self._counter = 0
        self._done = False

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Sealed chunks ready so far; a full chunk is held back until more data shows it is not the last."""
        return bytes(self.update_view(data))

    def update_view(self, data: bytes | bytearray | memoryview) -> memoryview:
        """As ``update``, without a copy: the view is of a buffer the next call reuses, so use it before then
        (write it to a file, hash it)."""
        if self._done:
            raise ValueError("already finalized")
        blocks = self._blocks.feed(data)
        out = self._output.take(len(blocks) * SEALED_CHUNK)
        at = 0
        for block in blocks:
            self._seal_into(block, out[at : at + len(block) + TAG], last=False)
            at += len(block) + TAG
        return out[:at]

    def finalize(self) -> bytes:
        """The last chunk (empty only if the whole plaintext is)."""
        if self._done:
            raise ValueError("already finalized")
        self._done = True
        return self._seal(self._blocks.rest(), last=True)

    def _seal(self, chunk: bytes, *, last: bool) -> bytes:
        out = bytearray(len(chunk) + TAG)
        self._seal_into(memoryview(chunk), memoryview(out), last=last)
        return bytes(out)

    def _seal_into(self, chunk: memoryview, out: memoryview, *, last: bool) -> None:
        self._aead.encrypt_into(_chunk_nonce(self._counter, last), chunk, None, out)
        self._counter += 1


class Decryptor:
    """Feed the file as it comes; ``update`` returns plaintext whose chunk authenticated; ``finalize`` checks that
    the file ended with its last chunk and nothing after it."""

    def __init__(self, identities: Sequence[Identity]):
        self._identities = identities
        self._head = bytearray()  # until the header and the nonce are read
        self._blocks = _Blocks(SEALED_CHUNK)
        self._aead: ChaCha20Poly1305 | None = None
        self._counter = 0
        self._ended = False
        self.header: bytes | None = None

    def update(self, data: bytes | bytearray | memoryview) -> bytes | bytearray:
        """The plaintext of every chunk known not to be the last; a fresh buffer each call, the caller's to keep."""
        if self._ended:
            raise AgeError("data after the last chunk")
        if self._aead is None:
            self._head += data
            if not self._read_header():
                return b""
            data, self._head = bytes(self._head), bytearray()
        # A sealed chunk is opened once more data follows it: only then is it known not to be the last.
        blocks = self._blocks.feed(data)
        plain = bytearray(sum(len(block) - TAG for block in blocks))
        view = memoryview(plain)
        at = 0
        for block in blocks:
            self._open_into(block, view[at : at + len(block) - TAG], last=False)
            at += len(block) - TAG
        return plain

    def finalize(self) -> bytes:
        if self._aead is None:
            raise AgeError("truncated file")
        if self._ended:
            raise AgeError("already finalized")
        rest = self._blocks.rest()
        if len(rest) < TAG:
            raise AgeError("truncated file: no last chunk")
        if len(rest) == TAG and self._counter > 0:
            raise AgeError("an empty last chunk after data")
        plain = bytearray(len(rest) - TAG)
        self._open_into(memoryview(rest), memoryview(plain), last=True)
        self._ended = True
        return bytes(plain)

    def _read_header(self) -> bool:
        """Once the header and the nonce are in, the file key is opened and ``_head`` keeps what follows them."""
        end = header_end(bytes(self._head[: MAX_HEADER + NONCE_SIZE]))
        if end is None or len(self._head) < end + NONCE_SIZE:
            if len(self._head) > MAX_HEADER + NONCE_SIZE:
                raise AgeError("header too large")
            return False
        header = bytes(self._head[:end])
        nonce = bytes(self._head[end : end + NONCE_SIZE])
        file_key = _open_header(header, self._identities)
        self.header = header
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        del self._head[: end + NONCE_SIZE]
        return True

    def _open_into(self, sealed: memoryview, out: memoryview, *, last: bool) -> None:
        assert self._aead is not None
        try:
            self._aead.decrypt_into(_chunk_nonce(self._counter, last), sealed, None, out)
        except InvalidTag:
            raise AgeError("a chunk failed to authenticate (altered, dropped, moved or truncated)") from None
        self._counter += 1


def encrypt(plaintext: bytes, recipients: Sequence[Recipient]) -> bytes:
    encryptor = Encryptor(recipients)
    return encryptor.header + encryptor.update(plaintext) + encryptor.finalize()


def decrypt(ciphertext: bytes, identities: Sequence[Identity]) -> bytes:
    decryptor = Decryptor(identities)
    return bytes(decryptor.update(ciphertext)) + decryptor.finalize()


def rewrap(prefix: bytes, identities: Sequence[Identity], recipients: Sequence[Recipient]) -> tuple[bytes, int]:
    """A new header for the file whose first bytes are ``prefix`` (its header and more), wrapping the same file key
    for ``recipients``; returns it and the length of the old header, which it replaces. The payload is unchanged."""
    end = header_end(prefix)
    if end is None:
        raise AgeError("truncated header")
    file_key = _open_header(prefix[:end], identities)
    return _header(file_key, [_wrap(file_key, r) for r in recipients]), end
