"""Doctor accounts: creation, login with a throttle, sessions."""

from __future__ import annotations

import re
import time
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import timedelta

from teleconsult import passwords
from teleconsult.config import Settings
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import hash_token, new_id, new_token
from teleconsult.store import Database
from teleconsult.store import doctors as store
from teleconsult.store.models import Doctor, utcnow

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")
RPPS = re.compile(r"^\d{11}$")


class LoginThrottle:
    """At most ``max_failures`` failed logins per key within ``window_s``; success clears the key."""

    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def retry_after(self, key: str) -> float:
        """Seconds to wait before another attempt is allowed (0 when allowed now)."""
        failures = self._failures.get(key)
        if not failures:
            return 0.0
        now = self._clock()
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return 0.0
        if len(failures) < self.max_failures:
            return 0.0
        return failures[0] + self.window_s - now

    def failed(self, key: str) -> None:
        self._failures[key].append(self._clock())

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


def normalise_email(email: str) -> str:
    return email.strip().lower()


class DoctorService:
    def __init__(self, db: Database, settings: Settings):
        self._db = db
        self._session_ttl = timedelta(seconds=settings.session_ttl_s)
        self.throttle = LoginThrottle(settings.login_max_failures, settings.login_window_s)

    async def create_doctor(
        self, *, email: str, name: str, rpps: str, password: str, phone: str | None = None
    ) -> Doctor:
        email = normalise_email(email)
        if not EMAIL.match(email):
            raise TeleconsultError(ErrorCode.BAD_REQUEST, "Invalid email address.")
        if not RPPS.match(rpps):
            raise TeleconsultError(ErrorCode.BAD_REQUEST, "The RPPS number has 11 digits.")
        if not name.strip():
            raise TeleconsultError(ErrorCode.BAD_REQUEST, "The name is required.")
        if len(password) < passwords.MIN_LENGTH:
            raise TeleconsultError(
                ErrorCode.BAD_REQUEST, f"The password needs at least {passwords.MIN_LENGTH} characters."
            )
        password_hash = await passwords.hash_password(password)
        async with self._db.transaction() as tx:
            if await store.doctor_by_email(tx, email) is not None:
                raise TeleconsultError(ErrorCode.CONFLICT, "A doctor with this email already exists.")
            doctor = Doctor(
                id=new_id("d"),
                email=email,
                name=name.strip(),
                rpps=rpps,
                password_hash=password_hash,
                phone=(phone or "").strip()[:40] or None,
            )
            return await store.add_doctor(tx, doctor)

    async def login(self, email: str, password: str, *, client: str) -> tuple[str, Doctor]:
        """Check the password; returns a new session token (shown once, stored hashed) and the doctor."""
        email = normalise_email(email)
        keys = (f"email:{email}", f"ip:{client}")
        wait = max(self.throttle.retry_after(key) for key in keys)
        if wait > 0:
            raise TeleconsultError(ErrorCode.RATE_LIMITED, "Too many failed logins; try again later.", retry_after=wait)
        async with self._db.transaction() as tx:
            doctor = await store.doctor_by_email(tx, email)
        if not await passwords.verify_password(doctor.password_hash if doctor else None, password):
            for key in keys:
                self.throttle.failed(key)
            raise TeleconsultError(ErrorCode.INVALID_CREDENTIALS)
        assert doctor is not None  # verify_password is False without a real hash
        self.throttle.succeeded(keys[0])
        token = new_token()
        async with self._db.transaction() as tx:
            await store.add_session(tx, hash_token(token), doctor.id, utcnow() + self._session_ttl)
        return token, doctor

    async def logout(self, token: str) -> None:
        async with self._db.transaction() as tx:
            await store.delete_session(tx, hash_token(token))

    async def doctor_for_session(self, token: str) -> Doctor | None:
        async with self._db.transaction() as tx:
            return await store.doctor_for_session(tx, hash_token(token), utcnow())

    async def doctor_by_email(self, email: str) -> Doctor | None:
        async with self._db.transaction() as tx:
            return await store.doctor_by_email(tx, normalise_email(email))
