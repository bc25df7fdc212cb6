"""The document key ring: the server's X25519 service keys, versioned (``service:v1``, ``service:v2``…), the
escrow recipients whose private halves never reach the server, and the sealing of personal keys (a doctor's own
key, ``doctor:<doctor id>``, whose sealed private half the database keeps).

New documents are encrypted for the active service key, the personal keys given (the consultation's doctor's), and
every escrow recipient. Rotation adds a service key and makes it the active one; older keys stay, decrypt-only,
until nothing needs them (``teleconsult keys rotate`` rewrites document headers so that old files gain the new
stanza without their contents being re-encrypted). Deleting every key that can open a file crypto-shreds it.

On disk, under ``data_dir/keys`` (0700): ``ring.json`` lists the keys (ids, public halves, creation times, which
is active), and each service key's private half is in ``<id>.key``, sealed under the server secret (bound to its
id): a copy of the directory without the secret opens nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from teleconsult.crypto.age import Identity, Recipient
from teleconsult.crypto.sealing import Sealer
from teleconsult.files import directory_lock, private_directory, private_file

SERVICE = "service"
ESCROW = "escrow"
DOCTOR = "doctor"


def doctor_key_id(doctor_id: str) -> str:
    """The key id of a doctor's own document key."""
    return f"{DOCTOR}:{doctor_id}"


class KeyRingError(ValueError):
    """The ring is missing a key it lists, or a key file does not open with this server's secret."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    key_id: str
    public: str
    created_at: str
    active: bool

    @property
    def kind(self) -> str:
        return self.key_id.split(":", 1)[0]


class KeyRing:
    def __init__(self, directory: Path, secret: bytes, escrow: tuple[str, ...] = ()):
        self._directory = directory
        self._sealer = Sealer(secret, "document-keys")
        self._personal = Sealer(secret, "personal-document-keys")
        self._entries: list[KeyEntry] = []
        self._identities: dict[str, Identity] = {}
        self._escrow = tuple(Recipient.parse(text, f"{ESCROW}:{n + 1}") for n, text in enumerate(escrow))

    @classmethod
    def open(cls, directory: Path, secret: bytes, escrow: tuple[str, ...] = ()) -> KeyRing:
        """The ring in ``directory``, made with a first service key if there is none yet."""
        ring = cls(directory, secret, escrow)
        with directory_lock(directory):  # another node starting on the same directory waits, then loads ours
            ring._load()
            if not ring._entries:
                ring.rotate()
        return ring

    # --- what documents use ------------------------------------------------------------------------------------

    def recipients(self, *personal: Recipient) -> list[Recipient]:
        """Who a new document is encrypted for: the active service key, the ``personal`` keys given (the
        consultation's doctor's), and the escrow recipients."""
        return [self.active.recipient(), *personal, *self._escrow]

    def service_recipients(self, key_ids: tuple[str, ...]) -> list[Recipient]:
        """The service keys among ``key_ids`` this ring still holds, the active one left out (a rewrapped header
        keeps them, so a server that has not loaded the newest key yet still opens the file)."""
        active = self.active.key_id
        return [self._identities[k].recipient() for k in key_ids if k != active and k in self._identities]

    def identities(self) -> list[Identity]:
        """Every service key this server holds, the active one first: what can open a stored document."""
        active = self.active
        return [active, *(i for key_id, i in self._identities.items() if key_id != active.key_id)]

    @property
    def active(self) -> Identity:
        entry = next(e for e in self._entries if e.active)
        return self._identities[entry.key_id]

    def entries(self) -> list[KeyEntry]:
        escrow = [KeyEntry(r.key_id, str(r), "", False) for r in self._escrow]
        return [*self._entries, *escrow]

    # --- personal keys -----------------------------------------------------------------------------------------

    def new_personal(self, key_id: str) -> tuple[Identity, bytes]:
        """A new personal key (``doctor:<id>``) and its private half sealed under the server secret, bound to the
        key id: what the database stores (a sealed key moved to another row does not open)."""
        identity = Identity.generate(key_id)
        return identity, self._personal.seal(str(identity).encode(), key_id)

    def open_personal(self, key_id: str, sealed: bytes) -> Identity:
        try:
            return Identity.parse(self._personal.open(sealed, key_id).decode(), key_id)
        except ValueError as exc:
            raise KeyRingError(f"key {key_id} cannot be opened with this server's secret") from exc

    # --- rotation ----------------------------------------------------------------------------------------------

    def rotate(self) -> KeyEntry:
        """A new service key, now the active one; the older ones stay, decrypt-only."""
        number = 1 + max((int(e.key_id.rsplit("v", 1)[1]) for e in self._entries), default=0)
        identity = Identity.generate(f"{SERVICE}:v{number}")
        entry = KeyEntry(identity.key_id, str(identity.recipient()), datetime.now(UTC).isoformat(), True)
        key_file = self._key_file(identity.key_id)
        private_file(key_file)
        key_file.write_bytes(self._sealer.seal(str(identity).encode(), identity.key_id))
        self._entries = [KeyEntry(e.key_id, e.public, e.created_at, False) for e in self._entries] + [entry]
        self._identities[identity.key_id] = identity
        self._save()
        return entry

    def drop(self, key_id: str) -> None:
        """Forget a decrypt-only key (the documents it alone opens can no longer be read)."""
        entry = next((e for e in self._entries if e.key_id == key_id), None)
        if entry is None:
            raise KeyRingError(f"no key {key_id}")
        if entry.active:
            raise KeyRingError("the active key cannot be dropped: rotate first")
        self._entries = [e for e in self._entries if e.key_id != key_id]
        self._identities.pop(key_id, None)
        self._save()
        self._key_file(key_id).unlink(missing_ok=True)

    # --- files -------------------------------------------------------------------------------------------------

    def _key_file(self, key_id: str) -> Path:
        return self._directory / f"{key_id.replace(':', '-')}.key"

    def _load(self) -> None:
        ring = self._directory / "ring.json"
        if not ring.exists():
            return
        for item in json.loads(ring.read_text(encoding="utf-8"))["keys"]:
            entry = KeyEntry(item["id"], item["public"], item["created_at"], bool(item["active"]))
            try:
                sealed = self._key_file(entry.key_id).read_bytes()
                identity = Identity.parse(self._sealer.open(sealed, entry.key_id).decode(), entry.key_id)
            except (OSError, ValueError) as exc:
                raise KeyRingError(f"key {entry.key_id} cannot be opened with this server's secret") from exc
            if str(identity.recipient()) != entry.public:
                raise KeyRingError(f"key {entry.key_id} does not match its public half")
            self._entries.append(entry)
            self._identities[entry.key_id] = identity

    def _save(self) -> None:
        private_directory(self._directory)
        ring = self._directory / "ring.json"
        temporary = ring.with_suffix(".tmp")
        private_file(temporary)
        body = {
            "keys": [
                {"id": e.key_id, "public": e.public, "created_at": e.created_at, "active": e.active}
                for e in self._entries
            ]
        }
        temporary.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, ring)
