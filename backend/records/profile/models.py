"""The patient's medical profile: history, allergies, treatments, vaccinations, blood group, disabilities,
lifestyle, contacts and wishes (``ProfileEntry``), measures with their history (``ProfileMeasure``),
advance directives in dated versions (``AdvanceDirective``) and the organ-donation position
(``OrganDonation``).

Every health value is sealed with the patient's data key (``Vault.seal_text``) and an AAD naming its row
(``profile:<kind>:<id>``), so the raw database holds no plaintext and a ciphertext cannot be moved to
another row. What stays in clear is what listing and charting need: the kind, the measure type and its
date, who recorded it and when, and the life-cycle flags.

Provenance: ``source`` says how the row arrived (patient, professional, migration) and ``author_kind``
who wrote it (patient or professional). The patient edits and deletes only what they wrote; for the
rest they can ask for removal (``removal_requested_at``), domain.md.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, utcnow


class Provenance:
    """Who recorded a row and how it arrived (columns shared by every profile table)."""

    source: Mapped[str] = mapped_column(String(16))                 # patient | professional | migration
    author_kind: Mapped[str] = mapped_column(String(16))            # patient | professional
    author_professional_id: Mapped[int | None] = mapped_column(
        ForeignKey("professional.id", ondelete="SET NULL"))
    author_rpps: Mapped[str | None] = mapped_column(String(11))
    author_name: Mapped[str | None] = mapped_column(String(300))
    # the importer's key (legacy DMP entry id…): makes imports idempotent
    source_key: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None]


class ProfileEntry(Provenance, Base):
    """One item of a list kind (allergy, disease, treatment, contact…); its fields are sealed JSON."""

    __tablename__ = "profile_entry"
    __table_args__ = (
        UniqueConstraint("patient_id", "kind", "source_key", name="uq_profile_entry_source_key"),
        Index("ix_profile_entry_patient_kind", "patient_id", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))
    data: Mapped[str] = mapped_column(Text, default="")             # sealed JSON, AAD profile:<kind>:<id>
    # an importer met two disagreeing lists: the patient confirms or hides each entry of the group
    needs_confirmation: Mapped[bool] = mapped_column(default=False)
    conflict_group: Mapped[str | None] = mapped_column(String(64))
    hidden_at: Mapped[dt.datetime | None]                           # hidden by the patient, kept
    removal_requested_at: Mapped[dt.datetime | None]
    removal_reason: Mapped[str | None] = mapped_column(Text)        # sealed, AAD profile:<kind>:<id>:removal
    # an imported entry the patient deleted: a tombstone (data wiped) so a re-import does not resurrect it
    deleted_at: Mapped[dt.datetime | None]
    # the document it was read from (an implant in an operative report, a vaccine in a dispensation)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("document.id", ondelete="SET NULL"), index=True)


class ProfileMeasure(Provenance, Base):
    """One measurement (weight, blood pressure…). Type and date in clear for charts; the value sealed."""

    __tablename__ = "profile_measure"
    __table_args__ = (
        UniqueConstraint("patient_id", "source_key", name="uq_profile_measure_source_key"),
        Index("ix_profile_measure_series", "patient_id", "type", "measured_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(24))
    measured_at: Mapped[dt.datetime]
    data: Mapped[str] = mapped_column(Text, default="")             # sealed JSON, AAD profile:measure:<id>
    removal_requested_at: Mapped[dt.datetime | None]
    removal_reason: Mapped[str | None] = mapped_column(Text)
    deleted_at: Mapped[dt.datetime | None]


class AdvanceDirective(Provenance, Base):
    """One dated version of the advance directives for a context. A new version never overwrites the old."""

    __tablename__ = "advance_directive"
    __table_args__ = (
        UniqueConstraint("patient_id", "context", "version", name="uq_advance_directive_version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    context: Mapped[str] = mapped_column(String(16))                # good_health | end_of_life
    version: Mapped[int]
    text: Mapped[str | None] = mapped_column(Text)                  # sealed, AAD profile:directive:<id>
    document_id: Mapped[int | None] = mapped_column(ForeignKey("document.id", ondelete="SET NULL"))
    withdrawn: Mapped[bool] = mapped_column(default=False)          # a version that withdraws the previous


class OrganDonation(Provenance, Base):
    """The organ-donation statement, one row per change (the latest is current)."""

    __tablename__ = "organ_donation"
    __table_args__ = (Index("ix_organ_donation_patient", "patient_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    data: Mapped[str] = mapped_column(Text, default="")  # sealed JSON {position, informed_at, comment}
