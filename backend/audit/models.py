"""Audit entries chained by SHA-256, and the head row that serialises writers.

The chain covers a digest of ``details`` rather than the details themselves, so the retention purge
can erase a closed account's details without breaking the chain.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base


class AuditEntry(Base):
    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_patient_seq", "patient_id", "seq"),)

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime]
    actor_type: Mapped[str] = mapped_column(String(16))   # patient, professional, service, carer, system, operator
    actor_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[int | None]  # no foreign key: entries outlive the account for the retention period
    purpose: Mapped[str | None] = mapped_column(String(16))  # TREAT, ETREAT, BTG, PATRQT…
    details: Mapped[str | None] = mapped_column(Text)      # canonical JSON; erased by the retention purge
    details_digest: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the last sequence number and hash. Locked by each writer (FOR UPDATE)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(default=0)
    hash: Mapped[str] = mapped_column(String(64))
