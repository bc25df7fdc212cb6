"""Doctors and their login sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from teleconsult.store.database import Tx
from teleconsult.store.models import Doctor, DoctorSession


async def add_doctor(tx: Tx, doctor: Doctor) -> Doctor:
    tx.add(doctor)
    await tx.flush()
    return doctor


async def doctor_by_email(tx: Tx, email: str) -> Doctor | None:
    return (await tx.execute(select(Doctor).where(Doctor.email == email))).scalar_one_or_none()


async def doctor_by_id(tx: Tx, doctor_id: str) -> Doctor | None:
    return await tx.get(Doctor, doctor_id)


async def add_session(tx: Tx, token_hash: str, doctor_id: str, expires_at: datetime) -> None:
    tx.add(DoctorSession(token_hash=token_hash, doctor_id=doctor_id, expires_at=expires_at))


async def doctor_for_session(tx: Tx, token_hash: str, now: datetime) -> Doctor | None:
    query = (
        select(Doctor)
        .join(DoctorSession, DoctorSession.doctor_id == Doctor.id)
        .where(DoctorSession.token_hash == token_hash, DoctorSession.expires_at > now)
    )
    return (await tx.execute(query)).scalar_one_or_none()


async def delete_session(tx: Tx, token_hash: str) -> None:
    await tx.execute(delete(DoctorSession).where(DoctorSession.token_hash == token_hash))


async def delete_expired_sessions(tx: Tx, now: datetime) -> None:
    await tx.execute(delete(DoctorSession).where(DoctorSession.expires_at <= now))
