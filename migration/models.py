"""The import journal: one run per patient (progress), one row per source item (what became of it).
Profile conflicts are the profile's own (entries flagged ``needs_confirmation``).

An item row is written in the same transaction as the document it imports, so the journal and the
record cannot disagree: after a crash, an item is either fully there (document + row) or not at all.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, utcnow


class ImportRun(Base):
    """The legacy import of one patient's dossier (one row per patient, updated by re-runs)."""

    __tablename__ = "legacy_import_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending running done failed no_dossier
    trigger: Mapped[str] = mapped_column(String(16), default="activation")  # activation | operator
    total: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(64))  # a reason code, never content
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    reviewed_at: Mapped[dt.datetime | None]


class ImportItem(Base):
    """What became of one source item: imported, duplicate (merged into a document) or quarantined."""

    __tablename__ = "legacy_import_item"
    __table_args__ = (
        UniqueConstraint("patient_id", "source", name="uq_legacy_import_item_patient_source"),
        Index("ix_legacy_import_item_patient_status", "patient_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(512))        # dossier-relative; zip members "pkg.zip!/path"
    kind: Mapped[str] = mapped_column(String(16))           # document | settings | file
    status: Mapped[str] = mapped_column(String(16))         # imported | duplicate | quarantined
    reason: Mapped[str | None] = mapped_column(String(64))  # stable code (messages.py)
    reason_detail: Mapped[str | None] = mapped_column(String(300))  # technical, never content nor identifiers
    sha256: Mapped[str | None] = mapped_column(String(64))  # of the original bytes
    size: Mapped[int | None]
    unique_id: Mapped[str | None] = mapped_column(String(128))
    document_id: Mapped[int | None] = mapped_column(ForeignKey("document.id", ondelete="SET NULL"))
    # provenance and warnings as JSON (package, subset, entry id, hash checks): identifiers only
    provenance: Mapped[str | None] = mapped_column(Text)
    # the profile entries extracted from this document, sealed with the patient's key (health data)
    entries_sealed: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
