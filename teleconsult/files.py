"""Private files and directories: what the server keeps on disk is readable by its own user alone.

The data directory holds the database (names, reasons for visits), the secret key and the outbox (mails with join
links). They are created 0700 (directories) and 0600 (files) whatever the process's umask, and tightened if they
exist already with wider modes. SQLite creates its WAL and shared-memory files with the mode of the database file.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_directory(path: Path) -> Path:
    """Make ``path`` (and its missing parents) and leave it 0700."""
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    _tighten(path, DIRECTORY_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if it is missing, 0600 either way (before anything secret is written to it)."""
    private_directory(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    os.close(descriptor)
    _tighten(path, FILE_MODE)
    return path


def write_private(path: Path, text: str) -> None:
    """Write a secret to a 0600 file (created so from the start, never world-readable in between)."""
    private_file(path)
    path.write_text(text, encoding="utf-8")


def _tighten(path: Path, mode: int) -> None:
    if stat.S_IMODE(path.stat().st_mode) & ~mode:
        os.chmod(path, mode)


@contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (``.<name>.lock`` beside it, ``flock``) across processes: two nodes
    starting on one data directory must not both make the first key or the CA."""
    private_directory(directory.parent)
    descriptor = os.open(directory.parent / f".{directory.name}.lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)
