"""The shared medical record (DMP): the record and its settings, and the patient's data key.

Each room of the record keeps its own tables: ``documents/models.py`` (documents, codes, submission sets),
``access/models.py`` (consents, blocks, emergency accesses), ``profile/models.py`` (the medical profile).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, utcnow


class Record(Base):
    """Exists from pre-creation (professionals may feed it) until opposition or the retention purge."""

    __tablename__ = "record"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # "mask new documents by default" (MASQUE_PS applied to every new professional document)
    mask_new_documents: Mapped[bool] = mapped_column(default=False)
    # the three emergency switches (domain.md): SAMU regulator, break-the-glass, masked-in-emergency
    emergency_samu: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    emergency_btg: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    emergency_masked: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    medecin_traitant_id: Mapped[int | None] = mapped_column(ForeignKey("professional.id", ondelete="SET NULL"))
    administrator_id: Mapped[int | None] = mapped_column(ForeignKey("professional.id", ondelete="SET NULL"))


class PatientKey(Base):
    """The patient's data key, wrapped (AES-GCM) by the master key named by ``master_key_id``."""

    __tablename__ = "patient_key"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[dt.datetime | None]
