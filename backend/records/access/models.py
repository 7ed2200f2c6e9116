"""The access tables: the professionals the patient authorised (consents), those they blocked,
and the emergency accesses (bris de glace, SAMU) that were declared."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, utcnow


class Consent(Base):
    """The patient authorises a professional to read their record."""

    __tablename__ = "consent"
    __table_args__ = (Index("ix_consent_patient_professional", "patient_id", "professional_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    professional_id: Mapped[int] = mapped_column(ForeignKey("professional.id", ondelete="CASCADE"))
    granted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    granted_by: Mapped[str] = mapped_column(String(16), default="patient")  # patient, professional, migration
    revoked_at: Mapped[dt.datetime | None]


class Block(Base):
    """The patient blocks a professional by RPPS: beats everything, emergencies included."""

    __tablename__ = "block"
    __table_args__ = (Index("ix_block_patient_rpps", "patient_id", "rpps"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    rpps: Mapped[str] = mapped_column(String(11))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[dt.datetime | None]


class EmergencyAccess(Base):
    """A time-limited emergency access (SAMU regulator ETREAT, or break-the-glass BTG) with its reason."""

    __tablename__ = "emergency_access"
    __table_args__ = (Index("ix_emergency_access_patient_professional", "patient_id", "professional_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    professional_id: Mapped[int] = mapped_column(ForeignKey("professional.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(8))  # ETREAT | BTG
    reason: Mapped[str] = mapped_column(String(500))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
