"""The shared medical record (DMP): the record and its settings, documents (metadata in clear, content
encrypted per patient), the patient's data key, and who may see what (consents, blocks, emergencies).

The medical profile's own tables live in ``backend/records/profile_models.py``.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint, text
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


class Document(Base):
    """XDS-style metadata of one document. The bytes are in ``DocumentContent``, encrypted."""

    __tablename__ = "document"
    __table_args__ = (
        UniqueConstraint("patient_id", "unique_id", name="uq_document_patient_unique_id"),
        # Partial on live documents, so a page is read in index order and stops after `limit` rows (an
        # `IS NULL` key column would not give that order: every document of the record was read and
        # sorted); the included columns let the category counts and ITI-67's total skip the table.
        Index("ix_document_patient_submitted", "patient_id", "submitted_at", "id",
              postgresql_where=text("deleted_at IS NULL"), sqlite_where=text("deleted_at IS NULL"),
              postgresql_include=["category", "invisible_patient", "released_at", "replaced_by_id"]),
        Index("ix_document_patient_id", "patient_id", "id",
              postgresql_where=text("deleted_at IS NULL"), sqlite_where=text("deleted_at IS NULL"),
              postgresql_include=["masked", "author_professional_id", "replaced_by_id"]),
        # the home screen's recent documents: those released lately (their arrival is read on the index above)
        Index("ix_document_patient_released", "patient_id", "released_at",
              postgresql_where=text("deleted_at IS NULL AND released_at IS NOT NULL"),
              sqlite_where=text("deleted_at IS NULL AND released_at IS NOT NULL")),
        Index("ix_document_patient_category", "patient_id", "category"),
        Index("ix_document_patient_sha256", "patient_id", "sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    unique_id: Mapped[str] = mapped_column(String(128))        # XDS uniqueId / CDA id (root^extension)
    class_code: Mapped[str | None] = mapped_column(String(16))  # OID 1.2.250.1.213.1.1.4.1 (10, 11, 31…)
    type_code: Mapped[str | None] = mapped_column(String(32))   # LOINC or French code
    type_system: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16))           # the patient's category (SYNTHESE, BIOLOGIE…)
    title: Mapped[str] = mapped_column(String(500))
    mime_type: Mapped[str] = mapped_column(String(100))
    format_code: Mapped[str | None] = mapped_column(String(128))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    # author
    author_professional_id: Mapped[int | None] = mapped_column(ForeignKey("professional.id", ondelete="SET NULL"))
    author_rpps: Mapped[str | None] = mapped_column(String(11))
    author_name: Mapped[str | None] = mapped_column(String(300))
    author_profession: Mapped[str | None] = mapped_column(String(16))
    author_specialty: Mapped[str | None] = mapped_column(String(32))
    author_organisation: Mapped[str | None] = mapped_column(String(300))
    # who put it there: professional, patient, migration, service
    source: Mapped[str] = mapped_column(String(16))
    service_date: Mapped[dt.datetime | None]
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # visibility (confidentialityCode OID 1.2.250.1.213.1.1.4.13) and N/R/V
    confidentiality: Mapped[str] = mapped_column(String(1), default="N")
    invisible_patient: Mapped[bool] = mapped_column(default=False)
    released_at: Mapped[dt.datetime | None]       # an INVISIBLE_PATIENT document released by its author
    invisible_legal_representatives: Mapped[bool] = mapped_column(default=False)
    masked: Mapped[bool] = mapped_column(default=False)  # MASQUE_PS
    patient_comment: Mapped[str | None] = mapped_column(Text)
    # life cycle: a patient deletes their own uploads; asks for the removal of others'
    deleted_at: Mapped[dt.datetime | None]
    removal_requested_at: Mapped[dt.datetime | None]
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("document.id", ondelete="SET NULL"))


class DocumentContent(Base):
    """The original bytes, AES-GCM encrypted with the patient's data key (nonce ‖ ciphertext)."""

    __tablename__ = "document_content"

    document_id: Mapped[int] = mapped_column(ForeignKey("document.id", ondelete="CASCADE"), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)


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
