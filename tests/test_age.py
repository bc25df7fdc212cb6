"""The age v1 format: round trips, every tampering refused, and interoperability both ways with the ``age`` command
line (Debian's) and with a second implementation (pyrage), plus vectors the ``age`` command line made."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from teleconsult.crypto.age import (
    CHUNK,
    MAX_HEADER,
    NONCE_SIZE,
    SEALED_CHUNK,
    AgeError,
    Decryptor,
    Encryptor,
    Identity,
    Recipient,
    WrapKeys,
    decrypt,
    encrypt,
    header_end,
    rewrap,
)
from tests.conftest import unavailable

VECTORS = Path(__file__).parent / "vectors" / "age"
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5]


def pattern(n: int) -> bytes:
    return bytes((i * 31 + 7) % 251 for i in range(n))


@pytest.fixture(scope="module")
def alice() -> Identity:
    return Identity.generate("service:v1")


def payload_start(data: bytes) -> int:
    end = header_end(data)
    assert end is not None
    return end + NONCE_SIZE


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(alice: Identity, size: int) -> None:
    plain = pattern(size)
    sealed = encrypt(plain, [alice.recipient()])
    assert decrypt(sealed, [alice]) == plain
    chunks = max(1, -(-size // CHUNK))
    assert len(sealed) - payload_start(sealed) == size + 16 * chunks  # one tag per chunk, nothing else


def test_streaming_in_odd_slices_gives_the_same_plaintext_and_releases_nothing_early(alice: Identity) -> None:
    plain = pattern(2 * CHUNK + 123)
    encryptor = Encryptor([alice.recipient()])
    parts = [encryptor.header]
    for start in range(0, len(plain), 7777):
        parts.append(encryptor.update(plain[start : start + 7777]))
    parts.append(encryptor.finalize())
    sealed = b"".join(parts)
    decryptor = Decryptor([alice])
    out = bytearray()
    for start in range(0, len(sealed), 5000):
        got = decryptor.update(sealed[start : start + 5000])
        assert len(got) % CHUNK == 0  # only whole chunks that authenticated, never a partial one
        out += got
    out += decryptor.finalize()
    assert bytes(out) == plain


def test_a_flipped_bit_anywhere_is_refused(alice: Identity) -> None:
    sealed = encrypt(pattern(CHUNK + 10), [alice.recipient()])
    start = payload_start(sealed)
    for position in (len(b"age-encryption.org/v1\n") + 5, start - 20, start - 1, start + 3, len(sealed) - 1):
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        with pytest.raises(AgeError):
            decrypt(bytes(tampered), [alice])


def test_dropped_swapped_truncated_and_extra_chunks_are_refused(alice: Identity) -> None:
    sealed = encrypt(pattern(3 * CHUNK + 10), [alice.recipient()])
    start = payload_start(sealed)
    head, body = sealed[:start], sealed[start:]
    chunks = [body[i : i + SEALED_CHUNK] for i in range(0, len(body), SEALED_CHUNK)]
    assert len(chunks) == 4
    cases = {
        "dropped": head + chunks[0] + chunks[2] + chunks[3],
        "swapped": head + chunks[1] + chunks[0] + chunks[2] + chunks[3],
        "last dropped": head + b"".join(chunks[:3]),
        "truncated": sealed[:-1],
        "cut in the header": sealed[: start - 40],
        "extra after the last": sealed + chunks[1],
        "last chunk repeated": sealed + chunks[3],
    }
    for name, data in cases.items():
        with pytest.raises(AgeError):
            decrypt(data, [alice])
            pytest.fail(name)


def test_an_empty_last_chunk_after_data_and_a_payload_with_no_chunk_are_refused(alice: Identity) -> None:
    """One encoding per plaintext: a full chunk is the last one itself, never followed by an empty last chunk."""
    encryptor = Encryptor([alice.recipient()])
    odd = encryptor.header + encryptor._seal(pattern(CHUNK), last=False) + encryptor._seal(b"", last=True)
    with pytest.raises(AgeError, match="empty last chunk"):
        decrypt(odd, [alice])
    sealed = encrypt(pattern(CHUNK), [alice.recipient()])
    decryptor = Decryptor([alice])
    decryptor.update(sealed[: payload_start(sealed)])
    with pytest.raises(AgeError, match="no last chunk"):
        decryptor.finalize()  # a header and no chunk at all


def test_a_wrong_key_opens_nothing(alice: Identity) -> None:
    sealed = encrypt(b"ordonnance", [alice.recipient()])
    with pytest.raises(AgeError, match="no identity"):
        decrypt(sealed, [Identity.generate("other")])


def test_several_recipients_each_open_the_file(alice: Identity) -> None:
    bob = Identity.generate("doctor:d_1")
    sealed = encrypt(b"compte rendu", [alice.recipient(), bob.recipient()])
    assert decrypt(sealed, [bob]) == decrypt(sealed, [alice]) == b"compte rendu"


def test_the_header_must_be_canonical_and_bounded(alice: Identity) -> None:
    sealed = encrypt(b"x", [alice.recipient()])
    end = payload_start(sealed) - NONCE_SIZE
    header = sealed[:end]
    mac_line = header.rstrip(b"\n").rsplit(b"\n", 1)[1]
    padded = sealed.replace(mac_line, mac_line + b"=", 1)
    with pytest.raises(AgeError, match="base64"):
        decrypt(padded, [alice])
    share = header.split(b"\n")[1].split(b" ")[2]
    # The last of the 43 characters of a 32-byte share carries 2 unused bits, zero in the canonical form: setting
    # one gives another spelling of the same bytes, which a strict reader refuses.
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    stray = share[:-1] + bytes([alphabet[alphabet.index(share[-1]) | 1]])
    assert base64.b64decode(stray + b"=") == base64.b64decode(share + b"=")
    with pytest.raises(AgeError, match="non-canonical"):
        decrypt(sealed.replace(share, stray, 1), [alice])
    with pytest.raises(AgeError, match="too large"):
        Decryptor([alice]).update(b"age-encryption.org/v1\n" + b"-> x\n" * (MAX_HEADER // 5 + 10))


def test_an_all_zero_share_is_refused(alice: Identity) -> None:
    sealed = encrypt(b"x", [alice.recipient()])
    share = sealed.split(b"\n")[1].split(b" ")[2]
    zero = base64.b64encode(bytes(32)).rstrip(b"=")
    with pytest.raises(AgeError, match="all-zero"):
        decrypt(sealed.replace(share, zero, 1), [alice])


def test_rotation_rewrites_the_header_and_leaves_the_payload(alice: Identity) -> None:
    sealed = encrypt(pattern(CHUNK + 1), [alice.recipient()])
    new = Identity.generate("service:v2")
    header, old_length = rewrap(sealed[:4096], [alice], [alice.recipient(), new.recipient()])
    rotated = header + sealed[old_length:]
    assert rotated[-CHUNK:] == sealed[-CHUNK:]  # the payload is untouched
    assert decrypt(rotated, [new]) == decrypt(rotated, [alice]) == pattern(CHUNK + 1)
    dropped, length = rewrap(rotated[:4096], [new], [new.recipient()])
    with pytest.raises(AgeError):
        decrypt(dropped + rotated[length:], [alice])  # a key dropped from the header opens it no more


def test_keys_read_and_write_in_the_age_forms() -> None:
    identity = Identity.parse((VECTORS / "identity.txt").read_text(), "vector")
    text = (VECTORS / "identity.txt").read_text()
    assert str(identity) in text and str(identity.recipient()) in text
    assert Recipient.parse(str(identity.recipient())).public == identity.recipient().public
    with pytest.raises(AgeError):
        Recipient.parse("age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq")
    with pytest.raises(AgeError):
        Identity.parse(str(identity.recipient()))


@pytest.mark.parametrize("size", [0, 1, 65536, 65537])
def test_vectors_made_by_the_age_command_line(size: int) -> None:
    identity = Identity.parse((VECTORS / "identity.txt").read_text())
    assert decrypt((VECTORS / f"cli-{size}.age").read_bytes(), [identity]) == pattern(size)


@pytest.fixture
def age_cli() -> str:
    path = shutil.which("age")
    if path is None:
        unavailable("Debian's age is not installed (apt-get install age)")
    return str(path)


@pytest.mark.parametrize("size", [0, CHUNK, 2 * CHUNK + 1])
def test_the_age_command_line_reads_ours_and_we_read_its(age_cli: str, tmp_path: Path, size: int) -> None:
    identity = Identity.generate("cli")
    key = tmp_path / "key.txt"
    key.write_text(f"{identity}\n")
    ours = tmp_path / "ours.age"
    ours.write_bytes(encrypt(pattern(size), [identity.recipient()]))
    opened = subprocess.run([age_cli, "-d", "-i", str(key), str(ours)], capture_output=True, check=False)
    assert opened.returncode == 0 and opened.stdout == pattern(size), opened.stderr
    plain = tmp_path / "plain"
    plain.write_bytes(pattern(size))
    theirs = tmp_path / "theirs.age"
    subprocess.run([age_cli, "-r", str(identity.recipient()), "-o", str(theirs), str(plain)], check=True)
    assert decrypt(theirs.read_bytes(), [identity]) == pattern(size)
    tampered = bytearray(ours.read_bytes())
    tampered[-1] ^= 1
    ours.write_bytes(bytes(tampered))
    assert subprocess.run([age_cli, "-d", "-i", str(key), str(ours)], capture_output=True, check=False).returncode


def test_pyrage_reads_ours_and_we_read_its() -> None:
    import pyrage
    from pyrage import x25519

    identity = Identity.generate("pyrage")
    theirs = x25519.Identity.from_str(str(identity))
    plain = pattern(CHUNK + 77)
    assert pyrage.decrypt(encrypt(plain, [identity.recipient()]), [theirs]) == plain
    assert decrypt(pyrage.encrypt(plain, [theirs.to_public()]), [identity]) == plain


def test_wrap_keys_made_ahead_open_everywhere_and_serve_one_file_each(alice: Identity) -> None:
    import pyrage
    from pyrage import x25519

    bob = Identity.generate("doctor:d_1")
    ahead = WrapKeys(depth=3)
    ahead.fill([alice.recipient(), bob.recipient()])
    shares = set()
    for size in (0, CHUNK + 1):  # then a third file: each recipient had three made ahead
        for _ in range(2):
            encryptor = Encryptor([alice.recipient(), bob.recipient()], wrap_keys=ahead)
            sealed = encryptor.header + encryptor.update(pattern(size)) + encryptor.finalize()
            assert decrypt(sealed, [alice]) == decrypt(sealed, [bob]) == pattern(size)
            assert pyrage.decrypt(sealed, [x25519.Identity.from_str(str(bob))]) == pattern(size)
            shares.update(line.split(b" ")[2] for line in sealed.split(b"\n") if line.startswith(b"-> X25519 "))
    assert len(shares) == 8  # never one share in two stanzas: made ahead or in line once the three were used


def test_plaintext_views_reuse_one_buffer_and_a_failed_chunk_leaves_nothing_in_it(alice: Identity) -> None:
    sealed = encrypt(pattern(4 * CHUNK + 3), [alice.recipient()])
    start = payload_start(sealed)
    decryptor = Decryptor([alice])
    first = decryptor.update_view(sealed[: start + 2 * SEALED_CHUNK + 1])
    assert bytes(first) == pattern(2 * CHUNK)
    tampered = bytearray(sealed[start + 2 * SEALED_CHUNK + 1 : start + 4 * SEALED_CHUNK + 1])
    tampered[SEALED_CHUNK + 5] ^= 1  # the fourth chunk: the third opens, then the fourth fails
    with pytest.raises(AgeError, match="authenticate"):
        decryptor.update_view(tampered)
    assert bytes(first[CHUNK : 2 * CHUNK]) == bytes(CHUNK)  # the reused buffer: what the failed chunk wrote, wiped
    whole = Decryptor([alice])
    copy = whole.update(sealed)
    assert isinstance(copy, bytes) and copy + whole.finalize() == pattern(4 * CHUNK + 3)


def test_streams_at_once_keep_their_own_buffers(alice: Identity) -> None:
    plains = [pattern(3 * CHUNK + 1), bytes(reversed(pattern(3 * CHUNK + 1)))]
    sealed = [encrypt(p, [alice.recipient()]) for p in plains]
    decryptors = [Decryptor([alice]), Decryptor([alice])]
    views = [d.update_view(s) for d, s in zip(decryptors, sealed, strict=True)]
    assert [bytes(v) for v in views] == [p[: 3 * CHUNK] for p in plains]
    assert [d.finalize() for d in decryptors] == [p[3 * CHUNK :] for p in plains]
