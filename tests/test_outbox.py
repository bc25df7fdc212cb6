"""The outbox on its own: the retry schedule, and a transport that fails for a while then works."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from teleconsult.app import DATABASE
from teleconsult.outbox import MAX_DELAY_S, retry_delay
from teleconsult.store.models import OutgoingMail
from tests.helpers import create_consultation, login


@pytest.mark.parametrize(
    ("attempts", "delay"), [(0, 30.0), (1, 60.0), (2, 120.0), (6, 1920.0), (7, MAX_DELAY_S), (40, MAX_DELAY_S)]
)
def test_retries_back_off_by_doubling_up_to_an_hour(attempts: int, delay: float) -> None:
    assert retry_delay(30.0, attempts) == delay


async def test_an_outbox_that_cannot_be_written_is_retried_then_delivered(server_with: Any) -> None:
    live, clients = await server_with(mail_retry_base_s=0.2)
    outbox: Path = live.settings.server.data_dir / "outbox"
    outbox.write_text("a file where the directory should be")  # a real fault: nothing can be written there
    doctor = await clients()
    created = await create_consultation(doctor, await login(doctor))

    async def mail() -> OutgoingMail:
        async with live.app[DATABASE].transaction() as tx:
            query = select(OutgoingMail).where(OutgoingMail.consultation_id == created["id"])
            return (await tx.execute(query)).scalars().one()

    for _ in range(100):
        queued = await mail()
        if queued.attempts >= 2:
            break
        await asyncio.sleep(0.05)
    assert queued.status == "queued" and (queued.last_error or "").startswith("cannot write to the outbox")
    outbox.unlink()  # the operator fixes it
    for _ in range(200):
        delivered = await mail()
        if delivered.status == "sent":
            break
        await asyncio.sleep(0.05)
    assert delivered.status == "sent" and delivered.last_error is None
    assert len(list(outbox.glob("*.eml"))) == 1
    async with live.app[DATABASE].transaction() as tx:
        sealed = await tx.execute(select(OutgoingMail.sealed_message).where(OutgoingMail.id == delivered.id))
        assert sealed.scalar_one() is None  # wiped once delivered
