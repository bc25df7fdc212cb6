"""The command line, run as a user would: create-doctor, db upgrade, and serve's refusals and demo."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import free_port


def teleconsult(*args: str, data_dir: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    return subprocess.run(
        [sys.executable, "-m", "teleconsult", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )


def test_db_upgrade_and_create_doctor(tmp_path: Path) -> None:
    assert "up to date" in teleconsult("db", "upgrade", data_dir=tmp_path).stdout
    created = teleconsult(
        "create-doctor",
        "--email",
        "a@example.org",
        "--name",
        "Dr A",
        "--rpps",
        "12345678901",
        "--password",
        "long enough pw",
        data_dir=tmp_path,
    )
    assert created.returncode == 0 and created.stdout.startswith("created doctor d_")
    again = teleconsult(
        "create-doctor",
        "--email",
        "a@example.org",
        "--name",
        "Dr A",
        "--rpps",
        "12345678901",
        "--password",
        "long enough pw",
        data_dir=tmp_path,
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    short = teleconsult(
        "create-doctor",
        "--email",
        "b@example.org",
        "--name",
        "Dr B",
        "--rpps",
        "123",
        "--password",
        "long enough pw",
        data_dir=tmp_path,
    )
    assert short.returncode == 2 and "RPPS" in short.stderr
    prompted = teleconsult(
        "create-doctor",
        "--email",
        "c@example.org",
        "--name",
        "Dr C",
        "--rpps",
        "12345678901",
        data_dir=tmp_path,
        input="a typed password\n",
    )
    assert prompted.returncode == 0, prompted.stderr


def test_serve_refuses_a_public_address_without_tls(tmp_path: Path) -> None:
    result = teleconsult("serve", "--host", "0.0.0.0", data_dir=tmp_path)
    assert result.returncode == 2 and "without TLS" in result.stderr


def test_serve_demo_prints_a_login_that_works(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    process = subprocess.Popen(  # the global option after the subcommand, as DESIGN.md writes it
        [sys.executable, "-m", "teleconsult", "serve", "--data-dir", str(tmp_path), "--demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        assert process.stdout is not None
        while time.monotonic() < deadline and not any(line.strip().startswith("Password:") for line in lines):
            lines.append(process.stdout.readline())
        output = "".join(lines)
        assert f"http://127.0.0.1:{port}/login" in output
        # The start-up line names the server's own address in full (client addresses are what logs redact).
        assert f"serving http://127.0.0.1:{port} (listening on 127.0.0.1 port {port})" in output
        assert "event loop: uvloop" in output  # the default (server.event_loop), as it runs
        password = next(line.split(":", 1)[1].strip() for line in lines if line.strip().startswith("Password:"))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/login",
            method="POST",
            headers={"Content-Type": "application/json"},
            data=f'{{"email": "demo@teleconsult.localhost", "password": "{password}"}}'.encode(),
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        assert password not in (tmp_path / "teleconsult.db").read_bytes().decode("latin-1")
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0


def test_global_options_are_accepted_after_the_subcommand(tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    command = [
        sys.executable,
        "-m",
        "teleconsult",
        "--data-dir",
        str(before),
        "db",
        "upgrade",
        "--data-dir",
        str(after),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert (after / "teleconsult.db").exists() and not (before / "teleconsult.db").exists()  # the later one wins


def test_a_specialist_is_created_with_their_profession(tmp_path: Path) -> None:
    created = teleconsult(
        "create-doctor",
        "--email",
        "s@example.org",
        "--name",
        "Dr S",
        "--rpps",
        "12345678902",
        "--password",
        "long enough pw",
        "--profession",
        "specialist",
        data_dir=tmp_path,
    )
    assert created.returncode == 0, created.stderr
    database = tmp_path / "teleconsult.db"
    rows = subprocess.run(
        ["sqlite3", str(database), "SELECT profession FROM doctors WHERE email = 's@example.org'"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert rows.stdout.strip() == "specialist"
    refused = teleconsult(
        "create-doctor",
        "--email",
        "t@example.org",
        "--name",
        "Dr T",
        "--rpps",
        "12345678903",
        "--password",
        "long enough pw",
        "--profession",
        "dentist",
        data_dir=tmp_path,
    )
    assert refused.returncode == 2 and "profession" in refused.stderr
