"""The documents' tables: XDS metadata of each document (its content sealed in the blob store),
its extra codes, and the submission sets (ITI-65 deposits, served by ITI-66)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, utcnow


class Document(Base):
    """XDS-style metadata of one document. The bytes, sealed with the patient's key, are an object of the
    blob store under ``blobs.document_key(id)`` (``backend/blobs.py``); ``size`` and ``sha256`` are the
    plaintext's, checked on every read."""

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
        # the documents a page's documents replaced (ITI-67's relatesTo; ON DELETE SET NULL): few rows, and
        # without it each search read the whole table
        Index("ix_document_replaced_by", "replaced_by_id", postgresql_where=text("replaced_by_id IS NOT NULL"),
              sqlite_where=text("replaced_by_id IS NOT NULL")),
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
    # the author's structure (idNat_Struct): its members may replace the document (domain.md, "Writes")
    author_structure_id: Mapped[str | None] = mapped_column(String(32))
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
    # the rest of the XDS DocumentEntry, kept as received (IHE MHD Comprehensive metadata): each coded value
    # with its code system (an OID, or a URI) and display; multi-valued codes are DocumentCode rows
    type_display: Mapped[str | None] = mapped_column(String(300))
    class_system: Mapped[str | None] = mapped_column(String(64))
    class_display: Mapped[str | None] = mapped_column(String(300))
    format_system: Mapped[str | None] = mapped_column(String(128))
    format_display: Mapped[str | None] = mapped_column(String(300))
    facility_type_system: Mapped[str | None] = mapped_column(String(128))   # healthcareFacilityTypeCode
    facility_type_code: Mapped[str | None] = mapped_column(String(64))
    facility_type_display: Mapped[str | None] = mapped_column(String(300))
    practice_setting_system: Mapped[str | None] = mapped_column(String(128))  # practiceSettingCode
    practice_setting_code: Mapped[str | None] = mapped_column(String(64))
    practice_setting_display: Mapped[str | None] = mapped_column(String(300))
    language: Mapped[str | None] = mapped_column(String(35))        # languageCode (BCP 47)
    creation_time: Mapped[dt.datetime | None]                       # creationTime (attachment.creation)
    service_end: Mapped[dt.datetime | None]                         # serviceStopTime (context.period.end)
    description: Mapped[str | None] = mapped_column(Text)           # comments (DocumentReference.description)
    sha1: Mapped[str | None] = mapped_column(String(40))            # hash as XDS and FHIR R4 define it (hex)
    entry_uuid: Mapped[str | None] = mapped_column(String(64))      # entryUUID (urn:uuid:…)
    source_patient_info: Mapped[str | None] = mapped_column(Text)   # sourcePatientInfo: a Patient, canonical JSON


class DocumentCode(Base):
    """A multi-valued coded metadata of a document, as received: ``event`` (eventCodeList) and
    ``security_label`` (every confidentialityCode coding, display included)."""

    __tablename__ = "document_code"
    __table_args__ = (Index("ix_document_code_document", "document_id", "kind", "position"),
                      Index("ix_document_code_kind_code", "kind", "code"))

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("document.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    position: Mapped[int]
    system: Mapped[str | None] = mapped_column(String(128))
    code: Mapped[str] = mapped_column(String(128))
    display: Mapped[str | None] = mapped_column(String(300))


class SubmissionSet(Base):
    """An XDS SubmissionSet (an MHD ``List`` of code ``submissionset``): what one feeder sent together —
    one ITI-65 bundle, one patient upload, one document saved from the inbox or imported."""

    __tablename__ = "submission_set"
    __table_args__ = (UniqueConstraint("patient_id", "unique_id", name="uq_submission_set_patient_unique_id"),
                      Index("ix_submission_set_patient_submitted", "patient_id", "submitted_at", "id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    unique_id: Mapped[str] = mapped_column(String(128))       # SubmissionSet.uniqueId (an OID)
    entry_uuid: Mapped[str] = mapped_column(String(64))       # SubmissionSet.entryUUID (urn:uuid:…)
    source_id: Mapped[str] = mapped_column(String(128))       # SubmissionSet.sourceId (the sender's OID)
    source: Mapped[str] = mapped_column(String(16))           # professional, patient, migration, service
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)   # submissionTime (List.date)
    title: Mapped[str | None] = mapped_column(String(500))
    comments: Mapped[str | None] = mapped_column(Text)
    designation_system: Mapped[str | None] = mapped_column(String(128))  # contentTypeCode (designationType)
    designation_code: Mapped[str | None] = mapped_column(String(64))
    designation_display: Mapped[str | None] = mapped_column(String(300))
    author_professional_id: Mapped[int | None] = mapped_column(ForeignKey("professional.id", ondelete="SET NULL"))
    author_rpps: Mapped[str | None] = mapped_column(String(11))
    author_family: Mapped[str | None] = mapped_column(String(150))
    author_given: Mapped[str | None] = mapped_column(String(150))
    author_name: Mapped[str | None] = mapped_column(String(300))
    author_organisation: Mapped[str | None] = mapped_column(String(300))


class SubmissionSetEntry(Base):
    """A document of a submission set: each document arrived in exactly one."""

    __tablename__ = "submission_set_entry"

    document_id: Mapped[int] = mapped_column(ForeignKey("document.id", ondelete="CASCADE"), primary_key=True)
    submission_set_id: Mapped[int] = mapped_column(ForeignKey("submission_set.id", ondelete="CASCADE"), index=True)
