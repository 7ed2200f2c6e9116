"""Patient accounts: identity traits, lifecycle state, credentials, activation codes and device tokens."""
from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.db import Base, utcnow


class AccountState(str, enum.Enum):
    PRECREATED = "precreated"   # created by the Assurance Maladie, code sent, not yet activated
    OPPOSED = "opposed"         # the patient refused the account: no record
    PENDING_MFA = "pending_mfa"  # password set, second factor not yet enrolled
    ACTIVE = "active"
    CLOSED = "closed"           # kept for the retention period, may be reactivated


class TokenKind(str, enum.Enum):
    ENROLMENT = "enrolment"  # password given, may only enrol a second factor
    MFA = "mfa"              # password given, may only present a one-time code
    ACCESS = "access"        # two factors given: a device session


class Patient(Base):
    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(primary_key=True)
    nir: Mapped[str] = mapped_column(String(15), unique=True)
    ins_oid: Mapped[str] = mapped_column(String(64))
    birth_family_name: Mapped[str] = mapped_column(String(200))
    given_names: Mapped[str] = mapped_column(String(200))
    used_family_name: Mapped[str | None] = mapped_column(String(200))
    birth_date: Mapped[dt.date]
    sex: Mapped[str] = mapped_column(String(1))
    birth_place_cog: Mapped[str | None] = mapped_column(String(5))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[AccountState] = mapped_column(
        Enum(AccountState, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=AccountState.PRECREATED,
    )
    password_hash: Mapped[str | None] = mapped_column(String(255))
    mfa_method: Mapped[str | None] = mapped_column(String(16))
    mfa_secret: Mapped[str | None] = mapped_column(String(255))  # sealed with the app secret
    mfa_pending_secret: Mapped[str | None] = mapped_column(String(255))
    totp_last_step: Mapped[int | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[dt.datetime | None]
    opposed_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    deletion_requested_at: Mapped[dt.datetime | None]
    retention_until: Mapped[dt.datetime | None]
    last_login_at: Mapped[dt.datetime | None]

    activation_codes: Mapped[list[ActivationCode]] = relationship(
        back_populates="patient", lazy="raise", cascade="all, delete-orphan", passive_deletes=True)
    tokens: Mapped[list[AuthToken]] = relationship(
        back_populates="patient", lazy="raise", cascade="all, delete-orphan", passive_deletes=True)

    # flask-login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.state == AccountState.ACTIVE

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def family_name(self) -> str:
        return self.used_family_name or self.birth_family_name

    @property
    def first_given_name(self) -> str:
        return self.given_names.split()[0] if self.given_names else ""


class ActivationCode(Base):
    """The 12-character provisional code of the activation letter: stored hashed, single use."""

    __tablename__ = "activation_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)

    patient: Mapped[Patient] = relationship(back_populates="activation_codes", lazy="raise")


class AuthToken(Base):
    """An opaque bearer token, stored as its SHA-256; access tokens are the patient's devices."""

    __tablename__ = "auth_token"
    __table_args__ = (Index("ix_auth_token_patient_kind", "patient_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    kind: Mapped[TokenKind] = mapped_column(
        Enum(TokenKind, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    device_name: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    # one-time code sent by email for this MFA token (hashed), when the method is email
    email_code_hash: Mapped[str | None] = mapped_column(String(64))

    patient: Mapped[Patient] = relationship(back_populates="tokens", lazy="raise")


class ThrottleCounter(Base):
    """Failed attempts on one key (an account's login, its one-time codes, an address…) in the current
    window. The key is a keyed digest: no NIR or address is stored. One row per key, changed only by
    conditional UPDATEs, so that every web worker and thread counts against the same number."""

    __tablename__ = "throttle_counter"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[dt.datetime] = mapped_column(index=True)
    count: Mapped[int] = mapped_column(default=0)
