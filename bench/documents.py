"""Documents: the age v1 format's throughput, against the machine's own ChaCha20-Poly1305 ceiling and the ``age``
command line, in one run on the same files.

Run from the repository root: ``.venv/bin/python bench/documents.py`` (``--sizes 1,64`` for a quick look).

For each size (MiB, random bytes made once):
1. Teleconsult's format in memory: ``Encryptor.update`` fed 1 MiB at a time, then ``Decryptor.update`` the same way
   (what the upload and download paths do), best of ``--repeat`` runs;
2. ``age -r <recipient> -o /dev/null <file>`` and ``age -d``, the file in /dev/shm (memory), best of the runs;
3. the ceiling: ``openssl speed -evp chacha20-poly1305 -bytes 65536`` (one core, the same AEAD and chunk size).

Targets (issue 15): the format at 80 % or more of the ceiling, and faster than ``age`` on the same file. HTTP upload
and download, the disk's own speed and a neighbour room's latency during an upload come with the document
endpoints.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from teleconsult.crypto.age import Decryptor, Encryptor, Identity

MIB = 1024 * 1024
FEED = MIB


def ours(data: bytes, identity: Identity, repeat: int) -> tuple[float, float]:
    """Best encrypt and decrypt times (seconds), fed ``FEED`` bytes at a time."""
    best_enc = best_dec = float("inf")
    sealed = b""
    for _ in range(repeat):
        start = time.perf_counter()
        encryptor = Encryptor([identity.recipient()])
        parts = [encryptor.header]
        view = memoryview(data)
        for at in range(0, len(data), FEED):
            parts.append(encryptor.update(bytes(view[at : at + FEED])))
        parts.append(encryptor.finalize())
        best_enc = min(best_enc, time.perf_counter() - start)
        sealed = b"".join(parts)
        start = time.perf_counter()
        decryptor = Decryptor([identity])
        got = 0
        sealed_view = memoryview(sealed)
        for at in range(0, len(sealed), FEED):
            got += len(decryptor.update(bytes(sealed_view[at : at + FEED])))
        got += len(decryptor.finalize())
        best_dec = min(best_dec, time.perf_counter() - start)
        assert got == len(data)
    return best_enc, best_dec


def age_cli(path: Path, identity: Identity, workdir: Path, repeat: int) -> tuple[float, float] | None:
    age = shutil.which("age")
    if age is None:
        return None
    key = workdir / "key.txt"
    key.write_text(f"{identity}\n")
    sealed = workdir / "sealed.age"
    best_enc = best_dec = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([age, "-r", str(identity.recipient()), "-o", str(sealed), str(path)], check=True)
        best_enc = min(best_enc, time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([age, "-d", "-i", str(key), "-o", os.devnull, str(sealed)], check=True)
        best_dec = min(best_dec, time.perf_counter() - start)
    sealed.unlink()
    return best_enc, best_dec


def openssl_ceiling() -> float | None:
    """Bytes per second of ``openssl speed -evp chacha20-poly1305`` on 64 KiB blocks (one core)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    result = subprocess.run(
        [openssl, "speed", "-evp", "chacha20-poly1305", "-bytes", "65536", "-seconds", "3"],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"^chacha20-poly1305\s+([\d.]+)k", result.stdout, flags=re.MULTILINE | re.IGNORECASE)
    return float(match.group(1)) * 1000 if match else None


def rate(size: int, seconds: float) -> str:
    return f"{size / seconds / 1e9:6.2f} GB/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,64,256", help="file sizes in MiB (default 1,64,256)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measure; the best is kept (default 3)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    identity = Identity.generate("bench")
    ceiling = openssl_ceiling()
    print(f"documents bench: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(
        f"ceiling (openssl speed -evp chacha20-poly1305, 64 KiB blocks, one core): "
        f"{rate(1, 1 / ceiling) if ceiling else 'not measured'}"
    )
    print(
        f"{'MiB':>5}  {'ours enc':>12} {'ours dec':>12}  {'age enc':>12} {'age dec':>12}  "
        f"{'enc/ceiling':>11} {'dec/ceiling':>11}  {'enc/age':>7} {'dec/age':>7}"
    )
    # Files in memory (tmpfs) so that the disk's speed is not what is measured; a private directory inside it.
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())  # noqa: S108
    with tempfile.TemporaryDirectory(dir=shm) as scratch:
        workdir = Path(scratch)
        worst_ceiling, worst_age = float("inf"), float("inf")
        for mib in sizes:
            data = os.urandom(mib * MIB)
            path = workdir / "plain.bin"
            path.write_bytes(data)
            enc, dec = ours(data, identity, args.repeat)
            cli = age_cli(path, identity, workdir, args.repeat)
            size = len(data)
            cells = [f"{mib:>5}", f"{rate(size, enc):>12}", f"{rate(size, dec):>12}"]
            cells += [f"{rate(size, cli[0]):>12}", f"{rate(size, cli[1]):>12}"] if cli else ["n/a".rjust(12)] * 2
            if ceiling:
                ratios = (size / enc / ceiling, size / dec / ceiling)
                worst_ceiling = min(worst_ceiling, *ratios)
                cells += [f"{ratios[0]:>10.0%}", f"{ratios[1]:>11.0%}"]
            if cli:
                versus = (cli[0] / enc, cli[1] / dec)
                worst_age = min(worst_age, *versus)
                cells += [f"{versus[0]:>6.2f}x", f"{versus[1]:>6.2f}x"]
            print("  ".join(cells), flush=True)
            path.unlink()
    print("targets:")
    if ceiling:
        print(
            f"  the format at 80 % or more of the ceiling: worst {worst_ceiling:.0%}: "
            f"{'met' if worst_ceiling >= 0.8 else 'NOT met'}"
        )
    if worst_age != float("inf"):
        print(f"  faster than age on the same file: worst {worst_age:.2f}x: {'met' if worst_age > 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
