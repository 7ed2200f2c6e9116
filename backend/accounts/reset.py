"""A forgotten password: a 6-digit code sent to the address on file, then a new password; every session ends.

The address on file is the one the Assurance Maladie gave at pre-creation (the account's letter or email
went there), or the one the email second factor proved: a reset never goes anywhere the patient did not
already receive their codes. The reset changes the password only: the next sign-in still asks for the second
factor, so a mailbox alone never opens the record.

One row per patient (``password_reset``) holds the code (keyed hash), its expiry, the failed attempts and the
requests of the current window. Both limits are conditional ``UPDATE``s on that row, so two requests racing
(two workers, two devices) can never both pass the last allowance: the database decides, not the process.
The answer to a request is the same whether or not the account exists, has an address or was throttled, so
the endpoint does not tell who has an account.

No Flask here: the routes are in ``backend.accounts.reset_api``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ForeignKey, String, case, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from backend.accounts import service as accounts
from backend.accounts.models import AccountState, Patient
from backend.audit import service as audit
from backend.db import Base, utcnow
from backend.errors import DomainError, TooManyAttempts
from backend.i18n import register_messages
from backend.notifications.models import OutboxEmail
from backend.security import hash_password, keyed_digest, new_numeric_code

register_messages({
    "password_reset_invalid_code": {
        "fr": "Ce code n'est pas valide ou a expiré. Vérifiez-le ou demandez-en un nouveau.",
        "en": "This code is not valid or has expired. Check it or ask for a new one."},
    "password_reset_locked": {
        "fr": "Trop de codes erronés : demandez un nouveau code.",
        "en": "Too many wrong codes: ask for a new code."},
})


@dataclass(frozen=True)
class ResetSettings:
    code_ttl: dt.timedelta = dt.timedelta(minutes=15)
    max_requests: int = 3                       # codes sent per window
    window: dt.timedelta = dt.timedelta(hours=1)
    max_attempts: int = 5                       # wrong codes before the code dies

    @classmethod
    def from_config(cls, config: Any) -> ResetSettings:
        return cls(code_ttl=dt.timedelta(minutes=int(config.get("PASSWORD_RESET_CODE_TTL_MINUTES", 15))),
                   max_requests=int(config.get("PASSWORD_RESET_MAX_REQUESTS", 3)),
                   window=dt.timedelta(minutes=int(config.get("PASSWORD_RESET_WINDOW_MINUTES", 60))),
                   max_attempts=int(config.get("PASSWORD_RESET_MAX_ATTEMPTS", 5)))


class PasswordReset(Base):
    """The patient's pending reset and the counters that throttle it (one row per patient, reused)."""

    __tablename__ = "password_reset"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), primary_key=True)
    code_hash: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    window_start: Mapped[dt.datetime]
    requests: Mapped[int] = mapped_column(default=0)
    used_at: Mapped[dt.datetime | None]


_TABLE = PasswordReset.__table__


def _mask_email(email: str) -> str:
    name, _, domain = email.partition("@")
    return f"{name[:1]}***@{domain}"


def _claim_request(session: Session, settings: ResetSettings, patient_id: int, code_hash: str,
                   now: dt.datetime) -> bool:
    """Count one request in the patient's window and store the new code, atomically: False when the window's
    allowance is spent (nothing changes then)."""
    cutoff = now - settings.window
    expired = _TABLE.c.window_start <= cutoff
    claim = (update(_TABLE)
             .where(_TABLE.c.patient_id == patient_id, expired | (_TABLE.c.requests < settings.max_requests))
             .values(requests=case((expired, 1), else_=_TABLE.c.requests + 1),
                     window_start=case((expired, now), else_=_TABLE.c.window_start),
                     code_hash=code_hash, expires_at=now + settings.code_ttl, attempts=0, used_at=None))
    if session.execute(claim).rowcount:
        return True
    if session.scalar(select(_TABLE.c.patient_id).where(_TABLE.c.patient_id == patient_id)) is not None:
        return False  # the row is there: the allowance is spent
    try:
        with session.begin_nested():
            session.execute(insert(_TABLE).values(patient_id=patient_id, code_hash=code_hash, attempts=0,
                                                  expires_at=now + settings.code_ttl, window_start=now,
                                                  requests=1))
        return True
    except IntegrityError:  # another request made the row meanwhile: count against it
        return bool(session.execute(claim).rowcount)


def request_reset(session: Session, account_settings: accounts.AccountSettings, settings: ResetSettings,
                  nir_raw: str, birth_date_raw: str, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Send a code if the NIR and birth date are an active account's with an address on file, within the
    allowance. The answer says the same in every case (only a malformed NIR or date is refused)."""
    now = now or utcnow()
    nir = accounts.parse_nir(nir_raw)
    birth_date = accounts.parse_date(birth_date_raw)
    answer = {"sent": True, "expires_in_minutes": int(settings.code_ttl.total_seconds() // 60)}
    patient = session.scalar(select(Patient).where(Patient.nir == nir))
    if (patient is None or patient.birth_date != birth_date or patient.state != AccountState.ACTIVE
            or not patient.email):
        return answer
    code = new_numeric_code()
    if not _claim_request(session, settings, patient.id, keyed_digest(account_settings.secret_key, code), now):
        audit.record(session, actor_type="anonymous", actor_id=None, action="password_reset.throttled",
                     patient_id=patient.id, at=now)
        return answer
    minutes = answer["expires_in_minutes"]
    session.add(OutboxEmail(
        recipient=patient.email, kind="password_reset", patient_id=patient.id, created_at=now,
        subject="Réinitialisation de votre mot de passe Carnet / Resetting your Carnet password",
        body=(f"Votre code de réinitialisation : {code}\nIl expire dans {minutes} minutes.\n"
              "Si vous n'avez rien demandé, ignorez ce message : votre mot de passe ne change pas.\n\n"
              f"Your reset code: {code}\nIt expires in {minutes} minutes.\n"
              "If you did not ask for it, ignore this message: your password stays as it is."),
    ))
    audit.record(session, actor_type="patient", actor_id=patient.id, action="account.password_reset_requested",
                 patient_id=patient.id, details={"sent_to": _mask_email(patient.email)}, at=now)
    return answer


def _spend_attempt(session: Session, settings: ResetSettings, patient_id: int, now: dt.datetime) -> bool:
    """One attempt on a live code, counted atomically: False when there is no live code or it is locked."""
    return bool(session.execute(
        update(_TABLE).where(_TABLE.c.patient_id == patient_id, _TABLE.c.code_hash.is_not(None),
                             _TABLE.c.used_at.is_(None), _TABLE.c.expires_at > now,
                             _TABLE.c.attempts < settings.max_attempts)
        .values(attempts=_TABLE.c.attempts + 1)).rowcount)


def complete_reset(session: Session, account_settings: accounts.AccountSettings, settings: ResetSettings,
                   nir_raw: str, code: str, new_password: str, *, now: dt.datetime | None = None) -> int:
    """The code and a new password: the password is changed (the same rules as everywhere), the code is spent,
    every session of the account ends (devices, pending sign-ins). Returns how many sessions ended."""
    now = now or utcnow()
    nir = accounts.parse_nir(nir_raw)
    patient = session.scalar(select(Patient).where(Patient.nir == nir))
    if patient is None or patient.state != AccountState.ACTIVE:
        raise DomainError("password_reset_invalid_code")
    if not _spend_attempt(session, settings, patient.id, now):
        locked = session.scalar(select(_TABLE.c.attempts).where(
            _TABLE.c.patient_id == patient.id, _TABLE.c.used_at.is_(None), _TABLE.c.expires_at > now))
        if locked is not None and locked >= settings.max_attempts:
            raise TooManyAttempts(retry_after=int(settings.code_ttl.total_seconds()))
        raise DomainError("password_reset_invalid_code")
    digest = session.scalar(select(_TABLE.c.code_hash).where(_TABLE.c.patient_id == patient.id))
    given = "".join(ch for ch in (code or "") if ch.isdigit())
    if len(given) != 6 or keyed_digest(account_settings.secret_key, given) != digest:
        audit.record(session, actor_type="anonymous", actor_id=None, action="password_reset.failed",
                     patient_id=patient.id, at=now)
        raise DomainError("password_reset_invalid_code", persist=True)
    accounts.enforce_password_policy(account_settings, new_password, patient)
    # Spent before anything else: a second request with the same code finds no live code.
    if not session.execute(update(_TABLE).where(_TABLE.c.patient_id == patient.id, _TABLE.c.used_at.is_(None))
                           .values(used_at=now, code_hash=None)).rowcount:
        raise DomainError("password_reset_invalid_code")
    patient.password_hash = hash_password(new_password)
    ended = accounts._revoke_all(session, patient, now)  # noqa: SLF001 (the accounts' own "end every session")
    audit.record(session, actor_type="patient", actor_id=patient.id, action="account.password_reset",
                 patient_id=patient.id, details={"sessions_revoked": ended}, at=now)
    return ended
