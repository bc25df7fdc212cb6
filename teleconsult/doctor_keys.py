"""A doctor's own keys, issued in the transaction that creates their account (and on first use for accounts made
before): the signing key and certificate of the server's CA their prescriptions are signed with, and their document
key (age X25519, key id ``doctor:<doctor id>``) every document of their consultations is also encrypted for.

Both private halves are kept in the database sealed under the server secret, bound to their owner: a copy of the
database alone opens and signs nothing. The document key is handed to its doctor on an operator's request
(``teleconsult doctors export-key``, an audit event); with it, any age reader opens their documents offline.
"""

from __future__ import annotations

from teleconsult.clock import now
from teleconsult.crypto.age import Identity, Recipient
from teleconsult.crypto.keyring import KeyRing, KeyRingError, doctor_key_id
from teleconsult.crypto.pki import CertificateAuthority, Signer
from teleconsult.domain import Doctor
from teleconsult.store import Database, Tx, audit
from teleconsult.store import doctor_keys as store


class DoctorKeys:
    def __init__(self, db: Database, authority: CertificateAuthority, keys: KeyRing):
        self._db = db
        self._ca = authority
        self._keys = keys

    async def issue(self, tx: Tx, doctor: Doctor) -> None:
        """Both keys of a new doctor, in the transaction that creates the account."""
        await self.signer(tx, doctor)
        await self.document_recipient(tx, doctor.id)

    async def signer(self, tx: Tx, doctor: Doctor) -> Signer:
        """The doctor's signing key and certificate (issued now if they have none yet)."""
        found = await store.signer_of(tx, doctor.id)
        if found is None:
            signer = self._ca.issue(doctor.id, doctor.name, doctor.rpps)
            found = await store.add_signer(tx, doctor.id, signer.certificate_pem, signer.sealed_key, now())
        return Signer(*found)

    async def document_recipient(self, tx: Tx, doctor_id: str) -> Recipient:
        """The public half of the doctor's document key (made now if they have none yet)."""
        return (await self._document_identity(tx, doctor_id)).recipient()

    async def public_keys(self) -> list[tuple[str, str]]:
        """Every doctor's document key: ``(key id, public half)``."""
        async with self._db.transaction() as tx:
            return [(doctor_key_id(d), public) for d, public in await store.document_keys(tx)]

    async def export(self, doctor: Doctor, *, actor: str) -> Identity:
        """The doctor's document key, private half included, to hand to them; an audit event."""
        async with self._db.transaction() as tx:
            identity = await self._document_identity(tx, doctor.id)
            await audit.add_event(
                tx, action="doctor.key_exported", actor=actor, detail={"doctor": doctor.id, "key": identity.key_id}
            )
        return identity

    async def _document_identity(self, tx: Tx, doctor_id: str) -> Identity:
        """The doctor's document key, opened with the server secret: the public half used is the one derived from
        the sealed private half, never the stored column alone (a row altered in the database is refused, not
        obeyed)."""
        key_id = doctor_key_id(doctor_id)
        found = await store.document_key_of(tx, doctor_id)
        if found is None:
            identity, sealed = self._keys.new_personal(key_id)
            found = await store.add_document_key(tx, doctor_id, str(identity.recipient()), sealed, now())
        identity = self._keys.open_personal(key_id, found[1])
        if str(identity.recipient()) != found[0]:
            raise KeyRingError(f"key {key_id} does not match its public half")
        return identity
