"""The health insurer (Assurance Maladie) as a system actor of its own, and its API credentials.

It is neither a professional (no RPPS, no consent, no profession matrix) nor a connected service: it
deposits the reimbursement history (CNAM-HR documents) over the professional API and reads nothing.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, utcnow


class Insurer(Base):
    __tablename__ = "insurer"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)            # "cnam"
    name: Mapped[str] = mapped_column(String(200))                       # what the patient reads
    organisation_id: Mapped[str | None] = mapped_column(String(64))      # as in the CDA (1.2.250.1.71.4.2.2 …)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class InsurerToken(Base):
    """A bearer token of the insurer's feed (only its SHA-256 is kept)."""

    __tablename__ = "insurer_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    insurer_id: Mapped[int] = mapped_column(ForeignKey("insurer.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]
