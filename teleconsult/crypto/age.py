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
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import bech32
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

INTRO = b"age-encryption.org/v1\n"
STANZA_PREFIX = b"-> "
MAC_PREFIX = b"--- "
X25519_LABEL = b"age-encryption.org/v1/X25519"
CHUNK = 64 * 1024
TAG = 16
SEALED_CHUNK = CHUNK + TAG
NONCE_SIZE = 16
#: Chunks a stream may have: the STREAM counter takes 11 bytes of the nonce.
MAX_CHUNKS = 1 << 88
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
    #: The public key as OpenSSL holds it, parsed once (each file wrapped for it needs it).
    key: X25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", X25519PublicKey.from_public_bytes(self.public))

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
    #: The private key as OpenSSL holds it, loaded once (loading derives the public key: an X25519 operation).
    key: X25519PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = X25519PrivateKey.from_private_bytes(self.secret)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "public", key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls, key_id: str) -> Identity:
        key = X25519PrivateKey.generate()
        return cls(key_id, key.private_bytes_raw())

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


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


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


@dataclass(frozen=True, slots=True)
class _WrapKey:
    """An ephemeral X25519 share and the key it gives to wrap one file key for one recipient: used once only."""

    share: bytes
    key: bytes


def _wrap_key(recipient: Recipient) -> _WrapKey:
    """A fresh ephemeral key's share, and the wrap key of its exchange with ``recipient`` (two X25519 operations)."""
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(recipient.key)
    return _WrapKey(share, _hkdf(shared, share + recipient.public, X25519_LABEL))


def _wrap(file_key: bytes, wrap_key: _WrapKey) -> bytes:
    body = ChaCha20Poly1305(wrap_key.key).encrypt(bytes(12), file_key, None)
    return _stanza([b"X25519", _b64encode(wrap_key.share)], body)


class WrapKeys:
    """Wrap keys made ahead, a few per recipient, so that a file's encryption does not wait for its X25519 work
    (two operations per recipient: most of the set-up of a file, a third of a 1 MiB file's encryption time).

    ``fill`` makes them (from a worker thread, between uploads); an ``Encryptor`` takes one per recipient, and makes
    one in line when none is ready. Each is handed out once and forgotten: an ephemeral key is never used for two
    files. Only the most recently used ``recipients`` are kept (doctors' keys come and go). Thread-safe."""

    def __init__(self, depth: int = 4, recipients: int = 32):
        self._depth = depth
        self._recipients = recipients
        self._ready: OrderedDict[bytes, deque[_WrapKey]] = OrderedDict()
        self._lock = threading.Lock()

    def fill(self, recipients: Iterable[Recipient]) -> None:
        """Top up each recipient's wrap keys to the depth (the X25519 work is done outside the lock)."""
        for recipient in recipients:
            while self._missing(recipient.public):
                made = _wrap_key(recipient)
                with self._lock:
                    self._queue(recipient.public).append(made)

    def take(self, recipient: Recipient) -> _WrapKey:
        """A wrap key for ``recipient``, made ahead if one is ready, else now."""
        with self._lock:
            ready = self._ready.get(recipient.public)
            if ready:
                self._ready.move_to_end(recipient.public)
                return ready.popleft()
        return _wrap_key(recipient)

    def _missing(self, public: bytes) -> bool:
        with self._lock:
            return len(self._queue(public)) < self._depth

    def _queue(self, public: bytes) -> deque[_WrapKey]:
        """The recipient's ready keys (under the lock), made the most recent; the least recent one goes if too many."""
        ready = self._ready.get(public)
        if ready is None:
            ready = self._ready[public] = deque()
            while len(self._ready) > self._recipients:
                self._ready.popitem(last=False)
        self._ready.move_to_end(public)
        return ready


def _stanza(args: Sequence[bytes], body: bytes) -> bytes:
    encoded = _b64encode(body)
    lines = [encoded[i : i + COLUMNS] for i in range(0, len(encoded), COLUMNS)]
    if not lines or len(lines[-1]) == COLUMNS:
        lines.append(b"")  # the last line of a body is always shorter than a full one
    return STANZA_PREFIX + b" ".join(args) + b"\n" + b"\n".join(lines) + b"\n"


def _header(file_key: bytes, stanzas: Iterable[bytes]) -> bytes:
    """The header with its MAC: what is MACed runs from the intro through ``---``."""
    unsigned = INTRO + b"".join(stanzas) + MAC_PREFIX.rstrip(b" ")
    mac = hmac.digest(_hkdf(file_key, b"", b"header"), unsigned, "sha256")
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
            try:
                shared = identity.key.exchange(X25519PublicKey.from_public_bytes(share))
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
    expected = hmac.digest(_hkdf(file_key, b"", b"header"), macd, "sha256")
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


def _nonce(counter: int, *, last: bool = False) -> bytes:
    """A chunk's nonce: its counter in 11 bytes (big-endian), then 1 for the last chunk and 0 for the others."""
    return (counter << 8 | last).to_bytes(12, "big")


def _count(counter: int, chunks: int) -> int:
    """The counter after ``chunks`` more chunks; a stream has at most 2**88 (the counter's 11 bytes)."""
    if counter + chunks > MAX_CHUNKS:
        raise AgeError("too many chunks")
    return counter + chunks


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
    each into fresh memory (fresh memory is zero-filled, and costs a page fault per 4 KiB; reused memory stays
    warm). The buffer is taken from the spares other streams gave back when they ended, and given back in turn."""

    def __init__(self) -> None:
        self._buffer = _spares.take()

    def take(self, size: int) -> memoryview:
        if len(self._buffer) < size:
            self._buffer = bytearray(size)
        return memoryview(self._buffer)[:size]

    def release(self) -> None:
        """The stream has ended, and what it last returned was used: its buffer may serve another stream."""
        buffer, self._buffer = self._buffer, bytearray()
        _spares.give(buffer)


class _Spares:
    """Output buffers of ended streams, for the next ones (a server encrypts or decrypts a few files at a time, each
    fed in batches of about 1 MiB); a few, none larger than ``largest``. Thread-safe."""

    def __init__(self, keep: int = 8, largest: int = 4 * 1024 * 1024):
        self._keep = keep
        self._largest = largest
        self._buffers: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self) -> bytearray:
        with self._lock:
            return self._buffers.pop() if self._buffers else bytearray()

    def give(self, buffer: bytearray) -> None:
        if 0 < len(buffer) <= self._largest:
            with self._lock:
                if len(self._buffers) < self._keep:
                    self._buffers.append(buffer)


_spares = _Spares()


class Encryptor:
    """``header`` first, then what ``update`` (or ``update_view``) and ``finalize`` return, in order, is the whole
    file. ``wrap_keys``: where to take the recipients' wrap keys made ahead (else they are made now)."""

    def __init__(self, recipients: Sequence[Recipient], *, wrap_keys: WrapKeys | None = None):
        if not recipients:
            raise ValueError("at least one recipient")
        file_key = os.urandom(FILE_KEY_SIZE)
        nonce = os.urandom(NONCE_SIZE)
        take = wrap_keys.take if wrap_keys is not None else _wrap_key
        self.header = _header(file_key, [_wrap(file_key, take(r)) for r in recipients]) + nonce
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
        blocks = self._blocks.feed(data)  # whole chunks only: the rest is held back
        out = self._output.take(len(blocks) * SEALED_CHUNK)
        aead, counter, at = self._aead, self._counter, 0
        self._counter = _count(counter, len(blocks))
        for block in blocks:
            aead.encrypt_into((counter << 8).to_bytes(12, "big"), block, None, out[at : at + SEALED_CHUNK])
            counter += 1
            at += SEALED_CHUNK
        return out

    def finalize(self) -> bytes:
        """The last chunk (empty only if the whole plaintext is)."""
        if self._done:
            raise ValueError("already finalized")
        self._done = True
        self._output.release()
        return self._seal(self._blocks.rest(), last=True)

    def _seal(self, chunk: bytes, *, last: bool) -> bytes:
        out = bytearray(len(chunk) + TAG)
        self._aead.encrypt_into(_nonce(self._counter, last=last), chunk, None, out)
        self._counter = _count(self._counter, 1)
        return bytes(out)


class Decryptor:
    """Feed the file as it comes; ``update`` returns plaintext whose chunk authenticated; ``finalize`` checks that
    the file ended with its last chunk and nothing after it."""

    def __init__(self, identities: Sequence[Identity]):
        self._identities = identities
        self._head = bytearray()  # the file's first bytes, until its header and nonce are in
        self._blocks = _Blocks(SEALED_CHUNK)
        self._output = _Output()
        self._aead: ChaCha20Poly1305 | None = None
        self._counter = 0
        self._ended = False
        self.header: bytes | None = None

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """The plaintext of every chunk known not to be the last, each authenticated; a copy, the caller's to keep."""
        return bytes(self.update_view(data))

    def update_view(self, data: bytes | bytearray | memoryview) -> memoryview:
        """As ``update``, without a copy: the view is of a buffer the next call reuses, so use it before then (hash
        it, write it out)."""
        if self._ended:
            raise AgeError("data after the last chunk")
        # A sealed chunk is opened once more data follows it: only then is it known not to be the last.
        blocks = self._blocks.feed(data) if self._aead is not None else self._read_header(data)
        out = self._output.take(len(blocks) * CHUNK)
        if blocks:
            self._open_all(blocks, out)
        return out

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
        try:
            self._aead.decrypt_into(_nonce(self._counter, last=True), rest, None, plain)
        except InvalidTag:
            raise _unauthenticated() from None
        self._counter = _count(self._counter, 1)
        self._ended = True
        self._output.release()
        return bytes(plain)

    def _read_header(self, data: bytes | bytearray | memoryview) -> list[memoryview]:
        """Gathers the file's first bytes (no more than a header and its nonce can take) until the header and the
        nonce are in; then opens the file key, and cuts what follows them into blocks."""
        view = memoryview(data).cast("B")
        room = MAX_HEADER + NONCE_SIZE - len(self._head)
        self._head += view[:room]
        head = bytes(self._head)
        end = header_end(head)  # raises once the cap is passed with no header's end in sight
        if end is None or len(head) < end + NONCE_SIZE:
            return []  # all of ``data`` is in ``_head``: it had room for it
        file_key = _open_header(head[:end], self._identities)
        self.header = head[:end]
        self._aead = ChaCha20Poly1305(_hkdf(file_key, head[end : end + NONCE_SIZE], b"payload"))
        self._head = bytearray()
        return self._blocks.feed(head[end + NONCE_SIZE :]) + self._blocks.feed(view[room:])

    def _open_all(self, blocks: list[memoryview], out: memoryview) -> None:
        """Opens whole sealed chunks into ``out``; on a failure, what the failed chunk wrote there is wiped (OpenSSL
        writes the plaintext before it checks the tag) and nothing is released."""
        assert self._aead is not None
        aead, counter, at = self._aead, self._counter, 0
        count = _count(counter, len(blocks))
        try:
            for block in blocks:
                aead.decrypt_into((counter << 8).to_bytes(12, "big"), block, None, out[at : at + CHUNK])
                counter += 1
                at += CHUNK
        except InvalidTag:
            out[at : at + CHUNK] = bytes(CHUNK)
            raise _unauthenticated() from None
        self._counter = count


def _unauthenticated() -> AgeError:
    return AgeError("a chunk failed to authenticate (altered, dropped, moved or truncated)")


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
    return _header(file_key, [_wrap(file_key, _wrap_key(r)) for r in recipients]), end
