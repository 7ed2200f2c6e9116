"""Account lifecycle: pre-creation, opposition, activation, second factor, login, devices, closure,
reactivation and the retention purge. No Flask here: callers pass a Session and settings, and commit.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyotp
from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.attributes import set_committed_value

from backend import blobs
from backend.accounts import passwords
from backend.accounts.hooks import account_event, schedule_activation_handlers
from backend.accounts.models import AccountState, ActivationCode, AuthToken, Patient, TokenKind
from backend.audit import service as audit
from backend.db import utcnow
from backend.errors import DomainError, Forbidden, NotFound, Unauthorized
from backend.identity import InsTraits, InvalidIdentifier, day_in_france, is_minor, parse_birth_date, validate_nir
from backend.notifications.models import OutboxEmail
from backend.records.models import Record
from backend.security import (
    hash_password,
    keyed_digest,
    new_activation_code,
    new_numeric_code,
    new_token,
    normalize_activation_code,
    password_needs_rehash,
    seal,
    token_digest,
    unseal,
    verify_password,
)
from backend.throttle import Throttle


@dataclass(frozen=True)
class AccountSettings:
    secret_key: str
    activation_code_validity: dt.timedelta = dt.timedelta(days=42)
    activation_code_max_attempts: int = 5
    retention: dt.timedelta = dt.timedelta(days=3653)
    access_token_ttl: dt.timedelta = dt.timedelta(hours=12)
    session_idle: dt.timedelta = dt.timedelta(minutes=30)
    mfa_token_ttl: dt.timedelta = dt.timedelta(minutes=10)
    enrolment_token_ttl: dt.timedelta = dt.timedelta(minutes=30)
    email_otp_ttl: dt.timedelta = dt.timedelta(minutes=10)
    password_min_length: int = 9
    totp_issuer: str = "Carnet"
    majority_age: int = 18  # below it, the record is activated by a legal representative (backend/family)

    @classmethod
    def from_config(cls, config: Any) -> AccountSettings:
        return cls(
            secret_key=str(config["SECRET_KEY"]),
            activation_code_validity=dt.timedelta(days=int(config["ACTIVATION_CODE_VALIDITY_DAYS"])),
            activation_code_max_attempts=int(config["ACTIVATION_CODE_MAX_ATTEMPTS"]),
            retention=dt.timedelta(days=round(365.25 * float(config["RETENTION_YEARS"]))),
            access_token_ttl=dt.timedelta(hours=int(config["ACCESS_TOKEN_TTL_HOURS"])),
            session_idle=dt.timedelta(minutes=int(config["SESSION_IDLE_MINUTES"])),
            mfa_token_ttl=dt.timedelta(minutes=int(config["MFA_TOKEN_TTL_MINUTES"])),
            enrolment_token_ttl=dt.timedelta(minutes=int(config["ENROLMENT_TOKEN_TTL_MINUTES"])),
            email_otp_ttl=dt.timedelta(minutes=int(config["EMAIL_OTP_TTL_MINUTES"])),
            password_min_length=int(config["PASSWORD_MIN_LENGTH"]),
            totp_issuer=str(config["TOTP_ISSUER"]),
            majority_age=int(config["FAMILY_MAJORITY_AGE"]),
        )


@dataclass
class IssuedToken:
    token: str
    expires_at: dt.datetime
    row: AuthToken


# --- identity input -------------------------------------------------------------------------------

def parse_nir(raw: str) -> str:
    try:
        return validate_nir(raw)
    except InvalidIdentifier as exc:
        raise DomainError("invalid_nir", errors=[{"field": "nir", "message": exc.reason_fr}],
                          reason=exc.reason_fr) from None


def parse_date(raw: str, field: str = "birth_date") -> dt.date:
    try:
        return parse_birth_date(raw)
    except InvalidIdentifier as exc:
        raise DomainError("invalid_birth_date", errors=[{"field": field, "message": exc.reason_fr}],
                          reason=exc.reason_fr) from None


# --- pre-creation and activation ---------------------------------------------------------------------

def create_patient(session: Session, settings: AccountSettings, traits: InsTraits, *, email: str | None = None,
                   phone: str | None = None, actor: str = "operator", now: dt.datetime | None = None,
                   ) -> tuple[Patient, str]:
    """Pre-create an account (opt-out) with its record and a provisional activation code."""
    now = now or utcnow()
    if session.scalar(select(Patient.id).where(Patient.nir == traits.nir)) is not None:
        raise DomainError("patient_exists", 409)
    patient = Patient(
        nir=traits.nir, ins_oid=traits.oid, birth_family_name=traits.birth_family_name.strip().upper(),
        given_names=traits.given_names.strip(), birth_date=traits.birth_date, sex=traits.sex,
        birth_place_cog=traits.birth_place_cog, email=email, phone=phone, state=AccountState.PRECREATED,
        created_at=now,
    )
    session.add(patient)
    session.flush()
    session.add(Record(patient_id=patient.id, created_at=now))
    code = issue_activation_code(session, settings, patient, now=now)
    audit.record(session, actor_type=actor, actor_id=None, action="account.precreated", patient_id=patient.id, at=now)
    return patient, code


def issue_activation_code(session: Session, settings: AccountSettings, patient: Patient, *,
                          now: dt.datetime | None = None) -> str:
    """A new code replaces any unused one (a new letter)."""
    now = now or utcnow()
    session.execute(update(ActivationCode).where(ActivationCode.patient_id == patient.id,
                                                 ActivationCode.used_at.is_(None)).values(used_at=now))
    code = new_activation_code()
    session.add(ActivationCode(patient_id=patient.id, code_hash=keyed_digest(settings.secret_key, code),
                               created_at=now, expires_at=now + settings.activation_code_validity))
    session.flush()
    return code


def _verify_activation(session: Session, settings: AccountSettings, throttle: Throttle, nir_raw: str,
                       birth_date_raw: str, code_raw: str, address: str | None, now: dt.datetime,
                       ) -> tuple[Patient, ActivationCode]:
    nir = parse_nir(nir_raw)
    birth_date = parse_date(birth_date_raw)
    keys = {"address": address, "account": f"activation:{nir}"}
    # counted before anything is compared: of a burst, no more than the limit are ever checked
    throttle.reserve(now=now, **keys)
    patient = session.scalar(select(Patient).where(Patient.nir == nir))
    if patient is None or patient.birth_date != birth_date:
        raise DomainError("invalid_activation")
    if patient.state == AccountState.OPPOSED:
        raise DomainError("account_opposed", 409)
    if patient.state != AccountState.PRECREATED:
        raise DomainError("already_activated", 409)
    code = session.scalar(
        select(ActivationCode).where(ActivationCode.patient_id == patient.id, ActivationCode.used_at.is_(None))
        .order_by(ActivationCode.id.desc()).limit(1)
    )
    if code is None:
        raise DomainError("invalid_activation")
    # the code's own cap, taken the same way: one conditional UPDATE per attempt, before comparing
    taken = session.execute(update(ActivationCode).where(
        ActivationCode.id == code.id, ActivationCode.attempts < settings.activation_code_max_attempts)
        .values(attempts=ActivationCode.attempts + 1).execution_options(synchronize_session=False)).rowcount
    if not taken:
        raise DomainError("activation_locked", 429, headers={"Retry-After": "86400"})
    given = keyed_digest(settings.secret_key, normalize_activation_code(code_raw))
    if given != code.code_hash:
        audit.record(session, actor_type="anonymous", actor_id=None, action="activation.failed",
                     patient_id=patient.id, at=now)
        raise DomainError("invalid_activation", persist=True)
    # the right code: this attempt is given back (to the code and to the throttle)
    session.execute(update(ActivationCode).where(ActivationCode.id == code.id, ActivationCode.attempts > 0)
                    .values(attempts=ActivationCode.attempts - 1).execution_options(synchronize_session=False))
    throttle.refund(session, **keys)
    if code.expires_at <= now:
        raise DomainError("activation_code_expired", persist=True)
    return patient, code


def _refuse_a_minor(settings: AccountSettings, patient: Patient, now: dt.datetime) -> None:
    """A minor's record is managed by their legal representatives from their own sessions: the child's letter
    opens it from a representative's space (``family``), never as an account of its own with a password.
    Checked after the code (the right one is not consumed), so a wrong code learns nothing of the age."""
    if is_minor(patient.birth_date, day_in_france(now), settings.majority_age):
        raise DomainError("activation_minor", 409, persist=True)


def check_activation(session: Session, settings: AccountSettings, throttle: Throttle, nir: str, birth_date: str,
                     code: str, address: str | None = None, now: dt.datetime | None = None) -> Patient:
    now = now or utcnow()
    patient, _ = _verify_activation(session, settings, throttle, nir, birth_date, code, address, now)
    _refuse_a_minor(settings, patient, now)
    return patient


def activate(session: Session, settings: AccountSettings, throttle: Throttle, nir: str, birth_date: str, code: str,
             password: str, address: str | None = None, device_name: str | None = None,
             now: dt.datetime | None = None) -> IssuedToken:
    """Code checked, password set (the code is consumed only now), second factor to enrol next."""
    now = now or utcnow()
    patient, activation = _verify_activation(session, settings, throttle, nir, birth_date, code, address, now)
    _refuse_a_minor(settings, patient, now)
    enforce_password_policy(settings, password, patient)
    patient.password_hash = hash_password(password)
    patient.state = AccountState.PENDING_MFA
    activation.used_at = now
    throttle.clear(session, account=f"activation:{patient.nir}")
    audit.record(session, actor_type="patient", actor_id=patient.id, action="account.password_set",
                 patient_id=patient.id, at=now)
    return _issue(session, patient, TokenKind.ENROLMENT, settings.enrolment_token_ttl, now, device_name)


def activate_by_representative(session: Session, settings: AccountSettings, throttle: Throttle, nir: str,
                               birth_date: str, code: str, *, check: Callable[[Patient], None],
                               representative_id: int, address: str | None = None,
                               now: dt.datetime | None = None) -> Patient:
    """A minor's record activated from a legal representative's own signed-in session: the child's code
    (same checks and throttles as any activation), no password nor second factor of its own (the child
    gets their own activation at majority). ``check`` may refuse the patient before the code is consumed."""
    now = now or utcnow()
    patient, activation = _verify_activation(session, settings, throttle, nir, birth_date, code, address, now)
    check(patient)
    activation.used_at = now
    throttle.clear(session, account=f"activation:{patient.nir}")
    patient.state = AccountState.ACTIVE
    patient.activated_at = now
    audit.record(session, actor_type="representative", actor_id=representative_id, action="account.activated",
                 patient_id=patient.id, at=now)
    schedule_activation_handlers(session, patient)
    return patient


def return_to_precreated(session: Session, settings: AccountSettings, patient: Patient, *,
                         now: dt.datetime | None = None) -> str:
    """An account managed by others until now (a minor come of age) awaits its holder's own activation: a new
    letter's code; the record and its history stay as they are."""
    now = now or utcnow()
    _revoke_all(session, patient, now)
    patient.state = AccountState.PRECREATED
    return issue_activation_code(session, settings, patient, now=now)


def oppose(session: Session, settings: AccountSettings, throttle: Throttle, nir: str, birth_date: str, code: str,
           address: str | None = None, now: dt.datetime | None = None) -> Patient:
    """The patient refuses the account: the record (empty or fed by professionals) is deleted."""
    now = now or utcnow()
    patient, activation = _verify_activation(session, settings, throttle, nir, birth_date, code, address, now)
    activation.used_at = now
    patient.state = AccountState.OPPOSED
    patient.opposed_at = now
    _revoke_all(session, patient, now)
    account_event(session, patient.id, "opposed", now)
    session.execute(delete(Record).where(Record.patient_id == patient.id))
    audit.record(session, actor_type="patient", actor_id=patient.id, action="account.opposed",
                 patient_id=patient.id, at=now)
    return patient


def enforce_password_policy(settings: AccountSettings, password: str, patient: Patient) -> None:
    personal = [patient.birth_family_name, patient.used_family_name or "", *patient.given_names.split(),
                patient.nir, str(patient.birth_date.year), patient.birth_date.strftime("%d%m%Y")]
    failed = passwords.unmet_rules(password, settings.password_min_length, personal)
    if failed:
        raise DomainError("weak_password", errors=[
            {"rule": rule, "field": "password", "message_code": f"password_rule_{rule}",
             "params": {"min_length": settings.password_min_length}} for rule in failed])


# --- tokens ---------------------------------------------------------------------------------------------

def _issue(session: Session, patient: Patient, kind: TokenKind, ttl: dt.timedelta, now: dt.datetime,
           device_name: str | None = None) -> IssuedToken:
    token = new_token()
    row = AuthToken(patient_id=patient.id, kind=kind, token_hash=token_digest(token),
                    device_name=(device_name or "")[:120] or None, created_at=now, expires_at=now + ttl)
    session.add(row)
    session.flush()
    return IssuedToken(token=token, expires_at=row.expires_at, row=row)


_TOKEN_WITH_PATIENT = (select(AuthToken, Patient).join(Patient, Patient.id == AuthToken.patient_id)
                       .where(AuthToken.token_hash == bindparam("digest")))


def find_token(session: Session, raw: str | None, kinds: tuple[TokenKind, ...],
               now: dt.datetime | None = None, idle: dt.timedelta | None = None) -> AuthToken | None:
    """The live token of one of ``kinds`` with its patient loaded, or None. Revocation is checked here,
    on every request."""
    return check_token(session, raw, kinds, now, idle)[0]


def check_token(session: Session, raw: str | None, kinds: tuple[TokenKind, ...],
                now: dt.datetime | None = None, idle: dt.timedelta | None = None,
                ) -> tuple[AuthToken | None, str]:
    """(the live token with its patient loaded, "") or (None, why): ``unauthorized`` (no such token),
    ``session_revoked`` (signed out, on this device or another), ``session_expired`` (past its absolute
    lifetime) or ``session_idle`` (no request for ``idle``)."""
    if not raw:
        return None, "unauthorized"
    now = now or utcnow()
    # one round trip for the token and its patient: this runs before every authenticated request (the
    # statement is built once; only its parameter changes)
    found = session.execute(_TOKEN_WITH_PATIENT, {"digest": token_digest(raw)}).one_or_none()
    if found is None:
        return None, "unauthorized"
    row, patient = found
    if row.kind not in kinds:
        return None, "unauthorized"
    if row.revoked_at is not None:
        return None, "session_revoked"
    if row.expires_at <= now:
        return None, "session_expired"
    if idle is not None and now - (row.last_used_at or row.created_at) > idle:
        return None, "session_idle"
    # loaded, not changed: assigning the relationship would mark the token dirty and make every
    # request's first query flush it
    set_committed_value(row, "patient", patient)
    return row, ""


# How stale ``last_used_at`` may be: the idle timeout is measured from it, so it is exact to this much, and
# a session in use costs one write a minute instead of one per request.
TOUCH_EVERY = dt.timedelta(minutes=1)


def touch(token: AuthToken, now: dt.datetime | None = None) -> bool:
    """Record use at most once a minute (a write per request would cost more than it tells)."""
    now = now or utcnow()
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
        token.last_used_at = now
        return True
    return False


def require_token(session: Session, raw: str | None, kind: TokenKind) -> AuthToken:
    row = find_token(session, raw, (kind,))
    if row is None:
        raise Unauthorized("invalid_token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return row


# --- second factor --------------------------------------------------------------------------------------

def start_enrolment(session: Session, settings: AccountSettings, enrolment: AuthToken, method: str,
                    now: dt.datetime | None = None) -> dict[str, str]:
    now = now or utcnow()
    patient = enrolment.patient
    if patient.mfa_method:
        raise DomainError("mfa_already_enrolled", 409)
    if method == "totp":
        secret = pyotp.random_base32()
        patient.mfa_pending_secret = seal(settings.secret_key, f"totp:{secret}")
        uri = pyotp.TOTP(secret).provisioning_uri(name=f"{patient.first_given_name} {patient.family_name}",
                                                  issuer_name=settings.totp_issuer)
        return {"method": "totp", "secret": secret, "otpauth_uri": uri}
    if method == "email":
        if not patient.email:
            raise DomainError("mfa_method_unavailable")
        patient.mfa_pending_secret = seal(settings.secret_key, "email:")
        _send_email_code(session, settings, patient, enrolment, now)
        return {"method": "email", "sent_to": _mask_email(patient.email)}
    raise DomainError("invalid_request", errors=[{"field": "method", "message": "totp | email"}])


def confirm_enrolment(session: Session, settings: AccountSettings, throttle: Throttle, enrolment: AuthToken,
                      code: str, device_name: str | None = None, now: dt.datetime | None = None) -> IssuedToken:
    now = now or utcnow()
    patient = enrolment.patient
    if not patient.mfa_pending_secret:
        raise DomainError("mfa_not_started")
    sealed = patient.mfa_pending_secret
    pending = unseal(settings.secret_key, sealed)
    method, _, secret = pending.partition(":")
    key = f"otp:{patient.id}"
    throttle.reserve(now=now, account=key)
    if not _check_code(session, settings, patient, enrolment, method, secret, code, now):
        raise Unauthorized("invalid_otp", persist=True)
    _claim_token(session, enrolment, now)
    # of two enrolments confirmed at once (two enrolment tokens, two valid codes), one only
    enrolled = session.execute(update(Patient).where(
        Patient.id == patient.id, Patient.mfa_method.is_(None), Patient.mfa_pending_secret == sealed)
        .values(mfa_method=method, mfa_secret=sealed, mfa_pending_secret=None)
        .execution_options(synchronize_session=False)).rowcount
    if not enrolled:
        raise DomainError("mfa_already_enrolled", 409)
    for name, value in (("mfa_method", method), ("mfa_secret", sealed), ("mfa_pending_secret", None)):
        set_committed_value(patient, name, value)
    throttle.clear(session, account=key)
    audit.record(session, actor_type="patient", actor_id=patient.id, action="account.mfa_enrolled",
                 patient_id=patient.id, details={"method": method}, at=now)
    activated = session.execute(update(Patient).where(
        Patient.id == patient.id, Patient.state == AccountState.PENDING_MFA)
        .values(state=AccountState.ACTIVE, activated_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if activated:
        set_committed_value(patient, "state", AccountState.ACTIVE)
        set_committed_value(patient, "activated_at", now)
        audit.record(session, actor_type="patient", actor_id=patient.id, action="account.activated",
                     patient_id=patient.id, at=now)
        schedule_activation_handlers(session, patient)
    patient.last_login_at = now
    return _issue(session, patient, TokenKind.ACCESS, settings.access_token_ttl, now, device_name)


def _check_code(session: Session, settings: AccountSettings, patient: Patient, token: AuthToken, method: str,
                secret: str, code: str, now: dt.datetime) -> bool:
    """A one-time code is accepted once: the step (TOTP) or the code (email) is taken by a conditional
    UPDATE, so that of concurrent sign-ins with the same code exactly one succeeds."""
    code = "".join(ch for ch in (code or "") if ch.isascii() and ch.isdigit())
    if len(code) != 6:
        return False
    if method == "totp":
        totp = pyotp.TOTP(secret)
        # Accept the previous, current and next 30-second step, never one already used (nor an earlier one).
        for offset in (-1, 0, 1):
            step = int(now.timestamp()) // totp.interval + offset
            if totp.at(step * totp.interval) == code:
                taken = session.execute(update(Patient).where(
                    Patient.id == patient.id,
                    or_(Patient.totp_last_step.is_(None), Patient.totp_last_step < step))
                    .values(totp_last_step=step).execution_options(synchronize_session=False)).rowcount
                if taken:
                    set_committed_value(patient, "totp_last_step", step)
                return bool(taken)
        return False
    if method == "email":
        taken = session.execute(update(AuthToken).where(
            AuthToken.id == token.id, AuthToken.email_code_hash == keyed_digest(settings.secret_key, code),
            AuthToken.expires_at > now).values(email_code_hash=None)
            .execution_options(synchronize_session=False)).rowcount
        if taken:
            set_committed_value(token, "email_code_hash", None)
        return bool(taken)
    return False


def _claim_token(session: Session, token: AuthToken, now: dt.datetime) -> None:
    """A sign-in or enrolment token gives one session: the first of concurrent uses revokes it, the others
    are refused."""
    taken = session.execute(update(AuthToken).where(AuthToken.id == token.id, AuthToken.revoked_at.is_(None))
                            .values(revoked_at=now).execution_options(synchronize_session=False)).rowcount
    if not taken:
        raise Unauthorized("invalid_token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    set_committed_value(token, "revoked_at", now)


def _send_email_code(session: Session, settings: AccountSettings, patient: Patient, token: AuthToken,
                     now: dt.datetime) -> None:
    code = new_numeric_code()
    token.email_code_hash = keyed_digest(settings.secret_key, code)
    token.expires_at = min(token.expires_at, now + settings.email_otp_ttl)
    session.add(OutboxEmail(
        recipient=patient.email or "", kind="otp", patient_id=patient.id, created_at=now,
        subject="Votre code de connexion Carnet / Your Carnet sign-in code",
        body=(f"Votre code à usage unique : {code}\nIl expire dans "
              f"{int(settings.email_otp_ttl.total_seconds() // 60)} minutes.\n\n"
              f"Your one-time code: {code}\n"
              "Si vous n'êtes pas à l'origine de cette demande, changez votre mot de passe."),
    ))


def _mask_email(email: str) -> str:
    name, _, domain = email.partition("@")
    return f"{name[:1]}***@{domain}"


# --- login ------------------------------------------------------------------------------------------------

def login(session: Session, settings: AccountSettings, throttle: Throttle, nir_raw: str, password: str,
          address: str | None = None, now: dt.datetime | None = None) -> tuple[str, IssuedToken, Patient]:
    """First factor. Returns ("otp" | "enrol", token, patient); no health data is reachable yet."""
    now = now or utcnow()
    nir = parse_nir(nir_raw)
    keys = {"address": address, "account": f"login:{nir}"}
    # counted before the password is checked: of a burst, no more than the limit are ever compared
    throttle.reserve(now=now, **keys)
    patient = session.scalar(select(Patient).where(Patient.nir == nir))
    ok = verify_password(patient.password_hash if patient else None, password)
    if not ok or patient is None or patient.state in (AccountState.PRECREATED, AccountState.OPPOSED):
        if patient is not None and patient.password_hash:
            audit.record(session, actor_type="anonymous", actor_id=None, action="login.failed",
                         patient_id=patient.id, at=now)
        raise Unauthorized("invalid_credentials", persist=True)
    throttle.refund(session, **keys)
    if password_needs_rehash(patient.password_hash or ""):
        patient.password_hash = hash_password(password)
    if patient.state == AccountState.PENDING_MFA or not patient.mfa_method:
        return "enrol", _issue(session, patient, TokenKind.ENROLMENT, settings.enrolment_token_ttl, now), patient
    issued = _issue(session, patient, TokenKind.MFA, settings.mfa_token_ttl, now)
    if patient.mfa_method == "email":
        _send_email_code(session, settings, patient, issued.row, now)
    return "otp", issued, patient


def resend_email_code(session: Session, settings: AccountSettings, throttle: Throttle, mfa: AuthToken,
                      now: dt.datetime | None = None) -> None:
    """A new code by email; each one counts against the account's limit (no flood of a patient's inbox)."""
    now = now or utcnow()
    if mfa.patient.mfa_method != "email":
        raise DomainError("mfa_method_unavailable")
    throttle.reserve(now=now, account=f"otp_resend:{mfa.patient_id}")
    _send_email_code(session, settings, mfa.patient, mfa, now)


def verify_second_factor(session: Session, settings: AccountSettings, throttle: Throttle, mfa: AuthToken, code: str,
                         now: dt.datetime) -> Patient:
    patient = mfa.patient
    throttle.reserve(now=now, account=f"otp:{patient.id}")
    secret_plain = unseal(settings.secret_key, patient.mfa_secret or "")
    method, _, secret = secret_plain.partition(":")
    if not _check_code(session, settings, patient, mfa, method, secret, code, now):
        audit.record(session, actor_type="anonymous", actor_id=None, action="login.otp_failed",
                     patient_id=patient.id, at=now)
        raise Unauthorized("invalid_otp", persist=True)
    _claim_token(session, mfa, now)
    throttle.clear(session, account=f"otp:{patient.id}")
    throttle.clear(session, account=f"login:{patient.nir}")
    return patient


def complete_login(session: Session, settings: AccountSettings, throttle: Throttle, mfa: AuthToken, code: str,
                   device_name: str | None = None, now: dt.datetime | None = None) -> IssuedToken:
    now = now or utcnow()
    if mfa.patient.state == AccountState.CLOSED:
        raise Forbidden("account_closed")
    patient = verify_second_factor(session, settings, throttle, mfa, code, now)
    patient.last_login_at = now
    issued = _issue(session, patient, TokenKind.ACCESS, settings.access_token_ttl, now, device_name)
    audit.record(session, actor_type="patient", actor_id=patient.id, action="account.login", patient_id=patient.id,
                 details={"device": issued.row.device_name}, at=now)
    return issued


def logout(session: Session, token: AuthToken, now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    token.revoked_at = now
    session.flush()
    account_event(session, token.patient_id, "signed_out", now)
    audit.record(session, actor_type="patient", actor_id=token.patient_id, action="account.logout",
                 patient_id=token.patient_id, at=now)


# --- devices and password -----------------------------------------------------------------------------

def list_devices(session: Session, patient: Patient, *, limit: int, after_id: int | None = None,
                 now: dt.datetime | None = None) -> list[AuthToken]:
    now = now or utcnow()
    stmt = select(AuthToken).where(AuthToken.patient_id == patient.id, AuthToken.kind == TokenKind.ACCESS,
                                   AuthToken.revoked_at.is_(None), AuthToken.expires_at > now)
    if after_id is not None:
        stmt = stmt.where(AuthToken.id < after_id)
    return list(session.scalars(stmt.order_by(AuthToken.id.desc()).limit(limit)))


def revoke_device(session: Session, patient: Patient, device_id: int, now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    row = session.get(AuthToken, device_id)
    if row is None or row.patient_id != patient.id or row.kind != TokenKind.ACCESS or row.revoked_at is not None:
        raise NotFound("device_not_found")
    row.revoked_at = now
    session.flush()
    account_event(session, patient.id, "device_revoked", now)
    audit.record(session, actor_type="patient", actor_id=patient.id, action="account.device_revoked",
                 patient_id=patient.id, details={"device_id": device_id}, at=now)


def _revoke_all(session: Session, patient: Patient, now: dt.datetime, keep: int | None = None) -> int:
    stmt = update(AuthToken).where(AuthToken.patient_id == patient.id, AuthToken.revoked_at.is_(None))
    if keep is not None:
        stmt = stmt.where(AuthToken.id != keep)
    return session.execute(stmt.values(revoked_at=now)).rowcount or 0


def _require_password(throttle: Throttle, patient: Patient, password: str) -> None:
    """The password re-entered for a sensitive change; attempts are reserved before the check."""
    key = f"password:{patient.id}"
    throttle.reserve(account=key)
    if not verify_password(patient.password_hash, password):
        raise Forbidden("wrong_password")
    session = object_session(patient)
    assert session is not None
    throttle.refund(session, account=key)


def change_password(session: Session, settings: AccountSettings, throttle: Throttle, patient: Patient,
                    current_token: AuthToken, current_password: str, new_password: str,
                    now: dt.datetime | None = None) -> int:
    """Returns how many other sessions were revoked."""
    now = now or utcnow()
    _require_password(throttle, patient, current_password)
    if current_password == new_password:
        raise DomainError("same_password")
    enforce_password_policy(settings, new_password, patient)
    patient.password_hash = hash_password(new_password)
    revoked = _revoke_all(session, patient, now, keep=current_token.id)
    account_event(session, patient.id, "password_changed", now)
    audit.record(session, actor_type="patient", actor_id=patient.id, action="account.password_changed",
                 patient_id=patient.id, details={"sessions_revoked": revoked}, at=now)
    return revoked


# --- closure, reactivation, retention ------------------------------------------------------------------

def close_account(session: Session, settings: AccountSettings, throttle: Throttle, patient: Patient, password: str,
                  request_deletion: bool, now: dt.datetime | None = None) -> Patient:
    now = now or utcnow()
    _require_password(throttle, patient, password)
    patient.state = AccountState.CLOSED
    patient.closed_at = now
    patient.retention_until = now + settings.retention
    patient.deletion_requested_at = now if request_deletion else None
    _revoke_all(session, patient, now)
    account_event(session, patient.id, "closed", now)
    audit.record(session, actor_type="patient", actor_id=patient.id, action="account.closed", patient_id=patient.id,
                 details={"deletion_requested": request_deletion}, at=now)
    return patient


def reactivate(session: Session, settings: AccountSettings, throttle: Throttle, mfa: AuthToken, code: str,
               device_name: str | None = None, now: dt.datetime | None = None) -> IssuedToken:
    """During the retention period a closed account comes back whole; a deletion request is cancelled."""
    now = now or utcnow()
    patient = mfa.patient
    if patient.state != AccountState.CLOSED:
        raise DomainError("account_not_closed", 409)
    if patient.retention_until is not None and patient.retention_until <= now:
        raise Forbidden("retention_expired")
    verify_second_factor(session, settings, throttle, mfa, code, now)
    cancelled = patient.deletion_requested_at is not None
    patient.state = AccountState.ACTIVE
    patient.closed_at = None
    patient.retention_until = None
    patient.deletion_requested_at = None
    patient.last_login_at = now
    audit.record(session, actor_type="patient", actor_id=patient.id, action="account.reactivated",
                 patient_id=patient.id, details={"deletion_request_cancelled": cancelled}, at=now)
    return _issue(session, patient, TokenKind.ACCESS, settings.access_token_ttl, now, device_name)


@dataclass
class PurgeReport:
    patients_removed: list[int]
    audit_details_erased: int
    emails_removed: int

    def as_dict(self) -> dict[str, Any]:
        return {"patients_removed": len(self.patients_removed), "patient_ids": self.patients_removed,
                "audit_details_erased": self.audit_details_erased, "emails_removed": self.emails_removed}


def purge_retention(session: Session, now: dt.datetime | None = None) -> PurgeReport:
    """Destroy closed accounts past their retention date. Audit entries keep their digests (the chain
    still verifies) but lose their details."""
    now = now or utcnow()
    ids = list(session.scalars(select(Patient.id).where(Patient.state == AccountState.CLOSED,
                                                         Patient.retention_until <= now).order_by(Patient.id)))
    erased = emails = 0
    for patient_id in ids:
        erased += audit.erase_details(session, patient_id)
        emails += session.execute(delete(OutboxEmail).where(OutboxEmail.patient_id == patient_id)).rowcount or 0
        blobs.delete_patient_blobs_after_commit(session, patient_id)  # the documents' bytes, once this commits
        session.execute(delete(Patient).where(Patient.id == patient_id))
        audit.record(session, actor_type="system", actor_id=None, action="retention.purged", patient_id=patient_id,
                     at=now)
    return PurgeReport(ids, erased, emails)


_LIVE_DEVICES = select(func.count()).select_from(AuthToken).where(
    AuthToken.patient_id == bindparam("patient_id"), AuthToken.kind == TokenKind.ACCESS,
    AuthToken.revoked_at.is_(None), AuthToken.expires_at > bindparam("now"))


def count_devices(session: Session, patient: Patient, now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    return session.scalar(_LIVE_DEVICES, {"patient_id": patient.id, "now": now}) or 0
