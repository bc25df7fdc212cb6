"""Doctor accounts: creation (with the doctor's own keys, issued in the same transaction), login with a throttle,
sessions."""

from __future__ import annotations

import re
import time
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from teleconsult import passwords
from teleconsult.clock import now
from teleconsult.config import AccessSettings
from teleconsult.domain import Doctor
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import hash_token, new_id, new_token
from teleconsult.store import Database, Tx
from teleconsult.store import doctors as store
from teleconsult.validation import display_name

#: A doctor's address (set by an administrator, shown in mails as Reply-To): one mailbox, nothing that could start
#: a second address or a display part. Local domains (``teleconsult.localhost``) are allowed for the demo.
EMAIL = re.compile(r'^[^@\s<>,;:"()\[\]\\]{1,64}@[^@\s<>,;:"()\[\]\\]{1,255}\.[^@\s<>,;:"()\[\]\\]{2,}$')
RPPS = re.compile(r"^\d{11}$")
PROFESSIONS = ("generalist", "specialist")


class LoginThrottle:
    """At most ``max_attempts`` password checks per key within ``window_s`` that did not succeed.

    An attempt is counted *before* its password is checked (``reserve``), in one step with the check of the
    limit, so concurrent guesses cannot all slip in while the slow hash runs: whatever their number, at most
    ``max_attempts`` are ever verified per key in a window. A success takes its own attempt back and clears the
    account's key (``succeeded``). The counts live in this process; a shared store comes with scale-out.
    """

    def __init__(self, max_attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.max_attempts = max_attempts
        self.window_s = window_s
        self._clock = clock
        self._attempts: defaultdict[str, deque[float]] = defaultdict(deque)

    def reserve(self, keys: tuple[str, ...]) -> tuple[float, float]:
        """Count one attempt against every key, or none if any key is at its limit. Returns ``(wait, stamp)``:
        ``wait`` is 0 when the attempt may go ahead (the seconds to wait otherwise); ``stamp`` identifies it."""
        now = self._clock()
        wait = max(self._retry_after(key, now) for key in keys)
        if wait > 0:
            return wait, now
        for key in keys:
            self._attempts[key].append(now)
        return 0.0, now

    def succeeded(self, keys: tuple[str, ...], stamp: float, *, clear: str) -> None:
        """The attempt ``stamp`` was right: it no longer counts, and the ``clear`` key starts afresh."""
        for key in keys:
            attempts = self._attempts.get(key)
            if attempts is not None and stamp in attempts:
                attempts.remove(stamp)
            if key == clear or not attempts:
                self._attempts.pop(key, None)

    def _retry_after(self, key: str, now: float) -> float:
        attempts = self._attempts.get(key)
        if not attempts:
            return 0.0
        while attempts and attempts[0] <= now - self.window_s:
            attempts.popleft()
        if not attempts:
            del self._attempts[key]
            return 0.0
        if len(attempts) < self.max_attempts:
            return 0.0
        return attempts[0] + self.window_s - now


class AccountKeys(Protocol):
    """What issues a new doctor's keys (their signing certificate, their document key) in the transaction that
    creates the account; given by the composition root (``teleconsult.doctor_keys.DoctorKeys``)."""

    async def issue(self, tx: Tx, doctor: Doctor) -> None: ...


def normalise_email(email: str) -> str:
    return email.strip().lower()


class DoctorService:
    def __init__(self, db: Database, access: AccessSettings, keys: AccountKeys):
        self._db = db
        self._keys = keys
        self._session_ttl = timedelta(seconds=access.session_ttl_s)
        self.throttle = LoginThrottle(access.login_max_failures, access.login_window_s)

    async def create_doctor(
        self,
        *,
        email: str,
        name: str,
        rpps: str,
        password: str,
        phone: str | None = None,
        address: str | None = None,
        profession: str = "generalist",
    ) -> Doctor:
        email = normalise_email(email)
        if not EMAIL.match(email):
            raise TeleconsultError(ErrorCode.BAD_REQUEST, "Invalid email address.")
        if not RPPS.match(rpps):
            raise TeleconsultError(ErrorCode.BAD_REQUEST, "The RPPS number has 11 digits.")
        name = display_name(name, field="name")
        if profession not in PROFESSIONS:
            raise TeleconsultError(
                ErrorCode.BAD_REQUEST, "A doctor is a generalist or a specialist.", field="profession"
            )
        phone = display_name(phone, field="phone", max_length=40) if phone and phone.strip() else None
        address = display_name(address, field="address", max_length=300) if address and address.strip() else None
        if len(password) < passwords.MIN_LENGTH:
            raise TeleconsultError(
                ErrorCode.BAD_REQUEST, f"The password needs at least {passwords.MIN_LENGTH} characters."
            )
        password_hash = await passwords.hash_password(password)
        async with self._db.transaction() as tx:
            if await store.doctor_by_email(tx, email) is not None:
                raise TeleconsultError(ErrorCode.CONFLICT, "A doctor with this email already exists.")
            doctor = await store.add_doctor(
                tx,
                doctor_id=new_id("d"),
                email=email,
                name=name,
                rpps=rpps,
                password_hash=password_hash,
                phone=phone,
                address=address,
                profession=profession,
            )
            await self._keys.issue(tx, doctor)  # no account without its keys
            return doctor

    async def login(self, email: str, password: str, *, client: str) -> tuple[str, Doctor]:
        """Check the password; returns a new session token (shown once, stored hashed) and the doctor."""
        email = normalise_email(email)
        keys = (f"email:{email}", f"ip:{client}")
        wait, attempt = self.throttle.reserve(keys)  # counted before the slow hash, not after
        if wait > 0:
            raise TeleconsultError(ErrorCode.RATE_LIMITED, "Too many failed logins; try again later.", retry_after=wait)
        async with self._db.transaction() as tx:
            found = await store.credentials_by_email(tx, email)
        if not await passwords.verify_password(found[1] if found else None, password):
            raise TeleconsultError(ErrorCode.INVALID_CREDENTIALS)
        assert found is not None  # verify_password is False without a real hash
        doctor = found[0]
        self.throttle.succeeded(keys, attempt, clear=keys[0])
        token = new_token()
        async with self._db.transaction() as tx:
            await store.add_session(tx, hash_token(token), doctor.id, now() + self._session_ttl)
        return token, doctor

    async def logout(self, token: str) -> None:
        async with self._db.transaction() as tx:
            await store.delete_session(tx, hash_token(token))

    async def doctor_for_session(self, token: str) -> Doctor | None:
        async with self._db.transaction() as tx:
            return await store.doctor_for_session(tx, hash_token(token), now())

    async def doctor_by_email(self, email: str) -> Doctor | None:
        async with self._db.transaction() as tx:
            return await store.doctor_by_email(tx, normalise_email(email))
