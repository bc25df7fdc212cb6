"""The document key ring: made on first use, rotated, sealed under the server secret, and driven by the CLI."""

from __future__ import annotations

import multiprocessing
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from teleconsult.crypto.age import AgeError, Identity, decrypt, encrypt, rewrap
from teleconsult.crypto.keyring import KeyRing, KeyRingError

SECRET = b"a server secret for the tests"


def test_rotate_read_an_old_document_rotate_again_drop_the_oldest_and_old_documents_still_open(tmp_path: Path) -> None:
    escrow = Identity.generate("offline")
    ring = KeyRing.open(tmp_path / "keys", SECRET, (str(escrow.recipient()),))
    assert [e.key_id for e in ring.entries()] == ["service:v1", "escrow:1"]
    old = encrypt(b"resultat d'analyse", ring.recipients())
    assert decrypt(old, [escrow]) == b"resultat d'analyse"  # the escrow key opens it, offline

    assert ring.rotate().key_id == "service:v2"
    ring = KeyRing.open(tmp_path / "keys", SECRET, (str(escrow.recipient()),))  # as after a restart
    assert ring.active.key_id == "service:v2"
    assert decrypt(old, ring.identities()) == b"resultat d'analyse"  # v1 stays, decrypt-only
    new = encrypt(b"ordonnance", ring.recipients())
    with pytest.raises(AgeError):
        decrypt(new, [i for i in ring.identities() if i.key_id == "service:v1"])

    ring.rotate()  # v3
    header, length = rewrap(old[:4096], ring.identities(), ring.recipients())
    old = header + old[length:]  # the header gains the newest key; the contents are not re-encrypted
    ring.drop("service:v1")
    ring.drop("service:v2")
    assert [e.key_id for e in ring.entries() if e.kind == "service"] == ["service:v3"]
    assert decrypt(old, ring.identities()) == b"resultat d'analyse"
    with pytest.raises(AgeError):
        decrypt(new, ring.identities())  # only v2 opened it, and v2 is gone: crypto-shredded
    with pytest.raises(KeyRingError, match="active"):
        ring.drop("service:v3")


def test_key_files_are_private_and_open_only_with_the_servers_secret(tmp_path: Path) -> None:
    ring = KeyRing.open(tmp_path / "keys", SECRET)
    files = list((tmp_path / "keys").iterdir())
    assert {f.name for f in files} == {"ring.json", "service-v1.key"}
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert b"AGE-SECRET-KEY" not in b"".join(f.read_bytes() for f in files)  # sealed, never in clear
    assert str(ring.active) not in (tmp_path / "keys" / "ring.json").read_text()
    with pytest.raises(KeyRingError, match="secret"):
        KeyRing.open(tmp_path / "keys", b"another server's secret")


def test_the_cli_rotates_and_lists_the_keys(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    escrow = Identity.generate("offline")
    env["TELECONSULT_ESCROW_RECIPIENTS"] = str(escrow.recipient())

    def run(*args: str) -> str:
        command = [sys.executable, "-m", "teleconsult", "keys", *args, "--data-dir", str(tmp_path)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "service:v2" in run("rotate")  # the first key is made on first use, the rotation adds the second
    import sqlite3

    with sqlite3.connect(tmp_path / "teleconsult.db") as db:
        rows = db.execute("SELECT actor, detail FROM audit_events WHERE action = 'keys.rotated'").fetchall()
    assert rows == [("cli", '{"key": "service:v2"}')]  # the rotation is in the audit trail
    listed = run("list").splitlines()
    assert [line.split("\t")[0] for line in listed] == ["service:v1", "service:v2", "escrow:1"]
    assert "decrypt-only" in listed[0] and "active" in listed[1] and str(escrow.recipient()) in listed[2]


def test_a_rewrap_keeps_the_doctors_key_and_the_older_service_keys(tmp_path: Path) -> None:
    escrow = Identity.generate("offline")
    ring = KeyRing.open(tmp_path / "keys", SECRET, (str(escrow.recipient()),))
    doctor, sealed = ring.new_personal("doctor:d_1")
    assert b"AGE-SECRET-KEY" not in sealed and ring.open_personal("doctor:d_1", sealed) == doctor
    with pytest.raises(KeyRingError):
        ring.open_personal("doctor:d_2", sealed)  # bound to its key id: moved to another doctor, it does not open
    recipients = ring.recipients(doctor.recipient())
    assert [r.key_id for r in recipients] == ["service:v1", "doctor:d_1", "escrow:1"]
    old = encrypt(b"compte rendu", recipients)
    assert decrypt(old, [doctor]) == b"compte rendu"  # the doctor's key alone opens it

    ring.rotate()
    kept = ring.service_recipients(("service:v1", "doctor:d_1", "escrow:1"))
    wanted = ring.recipients(*kept, doctor.recipient())
    assert [r.key_id for r in wanted] == ["service:v2", "service:v1", "doctor:d_1", "escrow:1"]
    header, length = rewrap(old[:4096], ring.identities(), wanted)
    rotated = header + old[length:]
    ring.drop("service:v1")
    for alone in ([doctor], [escrow], ring.identities()):
        assert decrypt(rotated, alone) == b"compte rendu"


def _open_ring_and_ca(directory: str) -> str:
    from teleconsult.crypto.keyring import KeyRing
    from teleconsult.crypto.pki import CertificateAuthority

    ring = KeyRing.open(Path(directory) / "keys", b"s" * 32)
    authority = CertificateAuthority.open(Path(directory) / "certs", b"s" * 32)
    return f"{ring.active.key_id}={ring.entries()[0].public}|{authority.pem.decode()}"


def test_nodes_starting_together_on_one_directory_make_one_key_and_one_ca(tmp_path: Path) -> None:
    """Without the directory lock each process made its own first key: documents sealed with the loser's were lost."""
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        seen = set(pool.map(_open_ring_and_ca, [str(tmp_path)] * 8))
    assert len(seen) == 1, seen
