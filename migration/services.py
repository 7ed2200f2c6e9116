"""The record services the migration writes through, and nothing else: documents via
``backend.records.documents.service.store_document``, profile entries via
``backend.records.profile.service.add_entries``, access settings via ``backend.records.access.consents`` (grant, block, médecin traitant) and
``backend.records.documents.service.set_mask_new_documents``. The emergency switches have no service that an
importer may call (changing them asks for the patient's password), so they are written on the record
here, with an audit entry.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from backend.audit import service as audit
from backend.professionals.models import Professional
from backend.records.crypto import Vault
from backend.records.documents.models import Document
from backend.records.models import Record
from migration.mapping import MappedDocument
from migration.settings import LegacySettings, ProfessionalRef


class SettingsNotApplicable(Exception):
    def __init__(self, pointer: str, rule: str) -> None:
        super().__init__(f"{pointer}: {rule}")
        self.pointer = pointer
        self.rule = rule


def store(session: Session, vault: Vault, patient_id: int, content: bytes, mapped: MappedDocument,
          now: dt.datetime, *, unique_id: str | None = None, title: str | None = None,
          mime_type: str | None = None) -> Document:
    from backend.records.documents.service import Coding, DocumentMeta, store_document

    codes: list[str] = [mapped.confidentiality]
    if mapped.invisible_patient:
        codes.append("INVISIBLE_PATIENT")
    if mapped.invisible_legal_representatives:
        codes.append("INVISIBLE_REPRESENTANTS_LEGAUX")
    if mapped.masked:
        codes.append("MASQUE_PS")
    author_id = None
    if mapped.author.rpps:
        author_id = session.scalar(select(Professional.id).where(Professional.rpps == mapped.author.rpps))
    meta = DocumentMeta(
        title=title or mapped.title, mime_type=mime_type or mapped.mime_type, unique_id=unique_id or mapped.unique_id,
        class_code=mapped.class_code, type_code=mapped.type_code, type_system=mapped.type_system,
        format_code=mapped.format_code, author_professional_id=author_id, author_rpps=mapped.author.rpps,
        author_name=mapped.author.name, author_profession=mapped.author.profession,
        author_specialty=mapped.author.specialty, author_organisation=mapped.author.organisation or mapped.facility,
        service_date=mapped.service_date, submitted_at=mapped.submitted_at, confidentiality=tuple(codes),
        type_display=mapped.type_display, class_display=mapped.class_display, format_system=mapped.format_scheme,
        format_display=mapped.format_display, facility_type=Coding(*mapped.facility_type) if mapped.facility_type
        else None, practice_setting=Coding(*mapped.practice_setting) if mapped.practice_setting else None,
        events=tuple(Coding(*e) for e in mapped.events), language=mapped.language,
        creation_time=mapped.creation_time, service_end=mapped.service_end, description=mapped.comments,
        entry_uuid=mapped.entry_uuid)
    stored = store_document(session, vault, patient_id, content, meta, source="migration", now=now,
                            notify_patient=False)
    return stored.document


def profile_available(session: Session) -> bool:
    cached = session.info.get("migration.profile_available")
    if cached is None:
        try:
            from backend.records.profile import service as profile  # noqa: F401
            from backend.records.profile.models import ProfileEntry

            cached = inspect(session.connection()).has_table(ProfileEntry.__tablename__)
        except ImportError:
            cached = False
        session.info["migration.profile_available"] = cached
    return bool(cached)


def add_entries(session: Session, vault: Vault, patient_id: int, kind: str, items: list[dict[str, Any]],
                conflict_group: str | None, now: dt.datetime) -> list[int]:
    from backend.records.profile import service as profile

    result = profile.add_entries(session, vault, patient_id, kind, items, source="migration",
                                 conflict_group=conflict_group, now=now)
    return list(result.created)


def flag_conflict(session: Session, patient_id: int, entry_ids: list[int], group: str) -> None:
    from backend.records.profile import service as profile

    profile.flag_conflict(session, patient_id, entry_ids, group)


# --- settings ------------------------------------------------------------------------------------------

def _professional(session: Session, ref: ProfessionalRef, pointer: str, now: dt.datetime) -> Professional:
    pro = session.scalar(select(Professional).where(Professional.rpps == ref.rpps))
    if pro is not None:
        return pro
    if not (ref.family_name and ref.given_name and ref.profession):
        raise SettingsNotApplicable(pointer, "unknown professional: give family_name, given_name and profession")
    from backend.errors import DomainError
    from backend.professionals.service import create_professional

    try:
        pro, _token = create_professional(session, rpps=ref.rpps, family_name=ref.family_name,
                                          given_name=ref.given_name, profession=ref.profession, now=now)
    except DomainError as exc:
        raise SettingsNotApplicable(pointer, exc.code) from None
    return pro


def apply_settings(session: Session, patient_id: int, settings: LegacySettings, now: dt.datetime) -> dict[str, int]:
    """Everything or nothing: the caller's transaction is rolled back on SettingsNotApplicable."""
    from backend.errors import DomainError
    from backend.records.access import consents
    from backend.records.documents.service import set_mask_new_documents

    applied = {"blocked": 0, "authorised": 0, "medecin_traitant": 0, "switches": 0}
    try:
        for i, ref in enumerate(settings.blocked):
            _, new = consents.block(session, patient_id, ref.rpps, now=now)
            applied["blocked"] += int(new)
        for i, ref in enumerate(settings.authorised):
            pro = _professional(session, ref, f"/authorised_professionals/{i}", now)
            consent, new = consents.grant(session, patient_id, pro.id, now=now)
            if new:
                consent.granted_by = "migration"
                if ref.since:
                    consent.granted_at = dt.datetime.combine(ref.since, dt.time(12), dt.timezone.utc)
            applied["authorised"] += int(new)
        if settings.medecin_traitant is not None:
            pro = _professional(session, settings.medecin_traitant, "/medecin_traitant", now)
            consents.set_medecin_traitant(session, patient_id, pro.id, now=now)
            applied["medecin_traitant"] = 1
    except DomainError as exc:
        raise SettingsNotApplicable("/", exc.code) from None
    if settings.mask_new_documents is not None:
        set_mask_new_documents(session, patient_id, settings.mask_new_documents, now=now)
    record = session.execute(select(Record).where(Record.patient_id == patient_id)).scalar_one()
    changed = {}
    for key, column in (("samu", "emergency_samu"), ("break_the_glass", "emergency_btg"),
                        ("masked_documents", "emergency_masked")):
        if key in settings.emergency and getattr(record, column) != settings.emergency[key]:
            setattr(record, column, settings.emergency[key])
            changed[key] = settings.emergency[key]
    if changed:
        audit.record(session, actor_type="system", actor_id="migration", action="access.emergency_settings_migrated",
                     patient_id=patient_id, details=changed, at=now)
        applied["switches"] = len(changed)
    session.flush()
    return applied
