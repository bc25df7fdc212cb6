"""The audit trail as a service: verifying the chain, anchoring its last hash in the log, and a consultation's
trail for its doctor.

The chain itself (how entries are hashed and appended) is in ``store/audit.py``; ``docs/audit.md`` explains it.
An anchor is a log line (``audit anchor: N entries, last seq S, last hash H``) at INFO: whoever keeps a copy of
the log outside the database can later show that the chain still holds entry S with hash H.
"""

from __future__ import annotations

import logging

from teleconsult.background import BackgroundLoops
from teleconsult.domain import AuditEntry, ChainCheck, ChainHead, Doctor
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.store import Database
from teleconsult.store import audit as store
from teleconsult.store import consultations as consultation_store

log = logging.getLogger(__name__)


class AuditTrail:
    def __init__(self, database: Database):
        self._db = database

    async def verify(self, *, anchor: tuple[int, str] | None = None) -> ChainCheck:
        """Walk the whole chain (constant memory); intact, or the first broken entry named."""
        return await store.verify(self._db, anchor=anchor)

    async def anchor(self) -> ChainHead:
        """Log the chain's last hash (count, seq, hash) so that an external copy of the log anchors it."""
        async with self._db.transaction() as tx:
            head = await store.head(tx)
        log.info("audit anchor: %d entries, last seq %d, last hash %s", head.count, head.seq, head.hash)
        return head

    async def events_for(self, consultation_id: str, doctor: Doctor) -> list[AuditEntry]:
        """A consultation's trail, for its own doctor only (another doctor gets ``not_found``, as everywhere)."""
        async with self._db.transaction() as tx:
            consultation = await consultation_store.consultation_core(tx, consultation_id)
            if consultation is None or consultation.doctor_id != doctor.id:
                raise TeleconsultError(ErrorCode.NOT_FOUND)
            return await store.entries_for_consultation(tx, consultation_id)

    async def run(self, every_s: float, chores: BackgroundLoops) -> None:
        """Anchor now and then every ``every_s`` seconds, until the server stops."""
        while not chores.stopping.is_set():
            try:
                await self.anchor()
            except TeleconsultError:
                log.warning("audit anchor skipped: database unavailable")
            except Exception:  # never the end of the loop: said, and tried again next time
                log.exception("audit anchor failed; will retry")
            await chores.rest(every_s)
