"""Doctors and their login sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from teleconsult import domain
from teleconsult.store import values
from teleconsult.store.database import Tx
from teleconsult.store.models import Doctor, DoctorSession


async def add_doctor(
    tx: Tx,
    *,
    doctor_id: str,
    email: str,
    name: str,
    rpps: str,
    password_hash: str,
    phone: str | None,
    address: str | None = None,
    profession: str = "generalist",
) -> domain.Doctor:
    row = Doctor(
        id=doctor_id,
        email=email,
        name=name,
        rpps=rpps,
        password_hash=password_hash,
        phone=phone,
        address=address,
        profession=profession,
    )
    tx.add(row)
    await tx.flush()
    return values.doctor(row)


async def doctor_by_email(tx: Tx, email: str) -> domain.Doctor | None:
    row = (await tx.execute(select(Doctor).where(Doctor.email == email))).scalar_one_or_none()
    return values.doctor(row) if row is not None else None


async def credentials_by_email(tx: Tx, email: str) -> tuple[domain.Doctor, str] | None:
    """The doctor and their password hash (which goes no further than the login check)."""
    row = (await tx.execute(select(Doctor).where(Doctor.email == email))).scalar_one_or_none()
    return (values.doctor(row), row.password_hash) if row is not None else None


async def doctor_by_id(tx: Tx, doctor_id: str) -> domain.Doctor | None:
    row = await tx.get(Doctor, doctor_id)
    return values.doctor(row) if row is not None else None


async def add_session(tx: Tx, token_hash: str, doctor_id: str, expires_at: datetime) -> None:
    tx.add(DoctorSession(token_hash=token_hash, doctor_id=doctor_id, expires_at=expires_at))


async def doctor_for_session(tx: Tx, token_hash: str, now: datetime) -> domain.Doctor | None:
    query = (
        select(Doctor)
        .join(DoctorSession, DoctorSession.doctor_id == Doctor.id)
        .where(DoctorSession.token_hash == token_hash, DoctorSession.expires_at > now)
    )
    row = (await tx.execute(query)).scalar_one_or_none()
    return values.doctor(row) if row is not None else None


async def delete_session(tx: Tx, token_hash: str) -> None:
    await tx.execute(delete(DoctorSession).where(DoctorSession.token_hash == token_hash))


async def delete_expired_sessions(tx: Tx, now: datetime) -> None:
    await tx.execute(delete(DoctorSession).where(DoctorSession.expires_at <= now))
