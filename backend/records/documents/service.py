"""Documents of the record: storing them (the one function every feeder calls), listing, reading, and
what the patient does with them (upload, delete their own, ask for the removal of a professional's,
mask/unmask, "mask new documents by default"); the author's release of an INVISIBLE_PATIENT document.

``store_document`` is the single way in: the professional MHD API (ITI-65), patient uploads, the legacy
DMP migration and the inbox all call it, so hashing, encryption at rest, the patient category, the
visibility flags, idempotency, the notification and the audit entry are decided here once.

Reads take the :class:`~backend.records.access.policy.Scope` that ``authorize``/``decide`` returned: listings
filter with ``scope.document_filter()``, single reads check ``scope.permits``-equivalent SQL, so a
document outside the scope is simply "not found". No Flask; functions only flush.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, or_, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend import cursors
from backend.audit import service as audit
from backend.db import utcnow
from backend.errors import DomainError, NotFound
from backend.notifications.service import notify
from backend.records.documents import messages as messages_documents  # noqa: F401  (registers the messages)
from backend.records.profile import derived as profile_derived
from backend.records.documents import viewer
from backend.records.documents.content import (ContentIntegrityError, content_context,  # noqa: F401 (the
                                               read_content, write_content)  # module's API: callers read bytes here)
from backend.records.crypto import Vault
from backend.records.documents.models import Document, DocumentCode, SubmissionSet, SubmissionSetEntry
from backend.records.models import Record
from backend.records.access.authorize import authorize_write
from backend.records.access.policy import Action, Actor, Scope, decide, is_owner_scope, owner_scope
from backend.identity import FRANCE as PARIS  # the one Europe/Paris (backend/identity.py)

log = logging.getLogger(__name__)


# --- codes (domain.md; ANS value sets JDV_J06 classCode, JDV_J07 typeCode, JDV_J08 confidentiality) ---

CLASS_SYSTEM = "1.2.250.1.213.1.1.4.1"
LOINC = "2.16.840.1.113883.6.1"
FR_TYPES = "1.2.250.1.213.1.1.4.12"
CONFIDENTIALITY_SYSTEM = "1.2.250.1.213.1.1.4.13"

CATEGORIES = ("SYNTHESE", "ORD_SOIN", "RADIO_SC", "BIOLOGIE", "CPT_REND", "DEPISTAG", "CERT_MED", "AUTR_DOC",
              "DOC_ADM", "SYNTH_PML", "DIR_ANT", "CAR_VAC", "VDP", "REMB", "QUEST_SANTE")

# typeCode → (patient category, display name from JDV_J07). The type decides the category; the class
# is the fallback for codes not listed (a new LOINC code still lands in a sensible folder).
TYPE_CODES: dict[str, tuple[str, str]] = {
    # vaccination
    "11369-6": ("CAR_VAC", "Historique des vaccinations"),
    "87273-9": ("CAR_VAC", "Note de vaccination"),
    "96874-3": ("CAR_VAC", "COVID-19 Attestation de vaccination"),
    # biology
    "11502-2": ("BIOLOGIE", "CR d'examens biologiques"),
    "96173-0": ("BIOLOGIE", "Test rapide d'orientation diagnostique"),
    "51969-4": ("BIOLOGIE", "CR de génétique moléculaire"),
    "60568-3": ("BIOLOGIE", "CR d'anatomie et de cytologie pathologiques"),
    # imaging
    "18748-4": ("RADIO_SC", "CR d'imagerie médicale"),
    "55115-0": ("RADIO_SC", "Demande d'actes d'imagerie"),
    "52040-3": ("RADIO_SC", "Document encapsulant une image d'illustration non DICOM"),
    "IMG-KOS": ("RADIO_SC", "Référence d'objets d'un examen d'imagerie"),
    # prescriptions and dispensations
    "57828-6": ("ORD_SOIN", "Prescription (autre)"),
    "57832-8": ("ORD_SOIN", "Prescription de soins"),
    "57833-6": ("ORD_SOIN", "Prescription de produits de santé"),
    "60593-1": ("ORD_SOIN", "Dispensation médicamenteuse"),
    "75468-9": ("ORD_SOIN", "Renouvellement ordonnance par pharmacien correspondant"),
    "DISP_AUT": ("ORD_SOIN", "Dispensation (autre)"),
    "PRESC-AAT": ("ORD_SOIN", "Prescription arrêt de travail"),
    "PRESC-BIO": ("ORD_SOIN", "Prescription d'actes de biologie médicale"),
    "PRESC-KINE": ("ORD_SOIN", "Prescription d'actes de kinésithérapie"),
    "PRESC-INF": ("ORD_SOIN", "Prescription d'actes infirmiers"),
    "PRESC-PEDI": ("ORD_SOIN", "Prescription d'actes de pédicurie"),
    "PRESC-ORTHOPHO": ("ORD_SOIN", "Prescription d'actes d'orthophonie"),
    "PRESC-ORTHOPTIE": ("ORD_SOIN", "Prescription d'actes d'orthoptie"),
    "80565-5": ("ORD_SOIN", "CR d'administration de médicaments"),
    # summaries
    "34133-9": ("SYNTHESE", "Synthèse d'épisode de soins"),
    "68599-0": ("SYNTHESE", "Synthèse psychiatrique"),
    "57055-6": ("SYNTHESE", "Synthèse antepartum"),
    "57057-2": ("SYNTHESE", "Synthèse Salle de Naissance Mère"),
    "57075-4": ("SYNTHESE", "Synthèse Salle de Naissance Enfant"),
    "89235-6": ("SYNTHESE", "Synthèse Suites de Couches Mère"),
    "78489-2": ("SYNTHESE", "Synthèse Enfant en Maternité"),
    "60591-5": ("SYNTH_PML", "Synthèse médicale"),
    "SYNTH": ("SYNTH_PML", "Synthèse"),
    # reports
    "11488-4": ("CPT_REND", "CR ou fiche de consultation ou de visite"),
    "11490-0": ("CPT_REND", "Lettre de liaison à la sortie d'un établissement de soins"),
    "34112-3": ("CPT_REND", "CR hospitalier (séjour)"),
    "11505-5": ("CPT_REND", "CR d'acte thérapeutique (autre)"),
    "11506-3": ("CPT_REND", "CR ou fiche de suivi de soins par auxiliaire médical"),
    "15507-7": ("CPT_REND", "CR de passage aux urgences"),
    "15508-5": ("CPT_REND", "CR d'accouchement"),
    "18761-7": ("CPT_REND", "Note de transfert"),
    "18776-5": ("CPT_REND", "Plan personnalisé de soins"),
    "29274-8": ("CPT_REND", "Mesures de signes vitaux"),
    "34120-6": ("CPT_REND", "Bilan par professionnel de santé"),
    "34749-2": ("CPT_REND", "CR de consultation pré-anesthésique"),
    "34794-8": ("CPT_REND", "CR de réunion de concertation pluridisciplinaire"),
    "34874-8": ("CPT_REND", "CR opératoire"),
    "34875-5": ("CPT_REND", "Évaluation postopératoire et note de suivi"),
    "47420-5": ("CPT_REND", "CR de bilan fonctionnel"),
    "59283-2": ("CPT_REND", "CR d'examen de l'enfant"),
    "60280-5": ("CPT_REND", "Fiche de retour du service des urgences"),
    "67851-6": ("CPT_REND", "CR d'admission"),
    "70004-7": ("CPT_REND", "CR d'acte diagnostique (autre)"),
    "74207-2": ("CPT_REND", "Document de liaison d'urgence"),
    "77436-4": ("CPT_REND", "CR d'anesthésie"),
    "77604-7": ("CPT_REND", "Planification thérapeutique"),
    "78341-5": ("CPT_REND", "Fiche de transfert vers le service des urgences"),
    "78513-9": ("CPT_REND", "CR de consultation en ophtalmologie"),
    "78601-2": ("CPT_REND", "CR d'entretien pharmaceutique"),
    "83901-9": ("CPT_REND", "Bilan psychologique"),
    "85208-7": ("CPT_REND", "CR de télémédecine"),
    "89233-1": ("CPT_REND", "CR de grossesse"),
    "93024-8": ("CPT_REND", "CR de consultation pharmaceutique"),
    "96349-6": ("CPT_REND", "Lettre d'adressage"),
    "BIL_AUTO": ("CPT_REND", "CR de bilan d'évaluation de la perte d'autonomie"),
    # prevention and screening
    "75492-9": ("DEPISTAG", "CR d'acte diagnostique à visée préventive ou de dépistage"),
    "75482-0": ("DEPISTAG", "CR d'acte thérapeutique à visée préventive"),
    "68817-6": ("DEPISTAG", "Bilan de santé et de prévention de l'enfant"),
    "83869-8": ("DEPISTAG", "Plan personnalisé de prévention"),
    "28617-9": ("DEPISTAG", "Bilan bucco-dentaire"),
    # certificates
    "89601-9": ("CERT_MED", "Certificat médical"),
    "CERT_DECL": ("CERT_MED", "Certificat, déclaration"),
    "59284-0": ("CERT_MED", "Attestation de consentement"),
    "86531-1": ("CERT_MED", "Attestation de sortie"),
    # administrative
    "51851-4": ("DOC_ADM", "Document administratif"),
    "56446-8": ("DOC_ADM", "Notification de rendez-vous"),
    "PROT_ALD": ("DOC_ADM", "Protocole de soins ALD"),
    "ATTEST-ASS-COMPL": ("DOC_ADM", "Attestation assurance complémentaire"),
    "ATTEST-RESID": ("DOC_ADM", "Attestation de résidence"),
    "ATTEST-HEBGT": ("DOC_ADM", "Attestation d'hébergement"),
    "ATTEST-DROITS-AM": ("DOC_ADM", "Attestation de droits à l'assurance maladie"),
    "PIECE-IDENTITE": ("DOC_ADM", "Copie pièce d'identité"),
    "FICHE-CONTACTS": ("DOC_ADM", "Fiche contacts"),
    # questionnaires, reimbursements, the patient's own expression
    "74465-6": ("QUEST_SANTE", "Questionnaire patient"),
    "REMB": ("REMB", "Données de remboursement"),
    "EXPPAT_1": ("VDP", "Volontés et droits du patient"),
    "EXPPAT_2": ("AUTR_DOC", "Autre document du patient"),
    "EXPPAT_3": ("DIR_ANT", "Directives anticipées"),
    # deposited by the patient
    "DOCPAT01": ("SYNTHESE", "Synthèse déposée par le patient"),
    "DOCPAT02": ("ORD_SOIN", "Traitement ou document de soins déposé par le patient"),
    "DOCPAT03": ("CPT_REND", "CR déposé par le patient"),
    "DOCPAT04": ("RADIO_SC", "Imagerie déposée par le patient"),
    "DOCPAT05": ("BIOLOGIE", "CR de biologie déposé par le patient"),
    "DOCPAT06": ("DEPISTAG", "CR de prévention déposé par le patient"),
    "DOCPAT07": ("CERT_MED", "Certificat déposé par le patient"),
    "DOCPAT08": ("SYNTH_PML", "Profil médical Mon espace santé"),
    "DOCPAT09": ("DOC_ADM", "Document administratif déposé par le patient"),
}

CLASS_CATEGORY = {"10": "CPT_REND", "11": "SYNTHESE", "31": "RADIO_SC", "42": "ORD_SOIN", "43": "ORD_SOIN",
                  "44": "CPT_REND", "45": "CPT_REND", "52": "CERT_MED", "60": "REMB", "90": "AUTR_DOC",
                  "95": "DOC_ADM"}

# What the patient may file an upload under, and the French type code it gets (class 90).
PATIENT_UPLOAD_TYPES = {"SYNTHESE": "DOCPAT01", "ORD_SOIN": "DOCPAT02", "CPT_REND": "DOCPAT03",
                        "RADIO_SC": "DOCPAT04", "BIOLOGIE": "DOCPAT05", "DEPISTAG": "DOCPAT06",
                        "CERT_MED": "DOCPAT07", "DOC_ADM": "DOCPAT09", "AUTR_DOC": "EXPPAT_2"}
PATIENT_CLASS = "90"

SOURCES = ("professional", "patient", "migration", "service", "insurer")
VISIBILITY_FLAGS = ("INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX", "MASQUE_PS")
CONFIDENTIALITY_LEVELS = ("N", "R", "V")
REMOVAL_REASONS = ("not_mine", "wrong_information", "duplicate", "other")

# Patient uploads (domain.md): the extension says what the file must be; the content must agree.
UPLOAD_TYPES: dict[str, str] = {"pdf": viewer.PDF, "jpg": viewer.JPEG, "jpeg": viewer.JPEG, "png": viewer.PNG,
                                "tif": viewer.TIFF, "tiff": viewer.TIFF, "rtf": viewer.RTF, "txt": viewer.TEXT}
DECLARED_ALIASES = {"image/jpg": viewer.JPEG, "image/pjpeg": viewer.JPEG, "text/rtf": viewer.RTF,
                    "application/x-rtf": viewer.RTF, "image/x-tiff": viewer.TIFF, "image/x-png": viewer.PNG}
# Types a download is served as (a document's or an attachment's); anything else goes out as
# application/octet-stream, so a browser never renders what it was not meant to.
SERVED_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "image/tiff", "application/rtf", "text/rtf",
                          "text/plain", "text/xml", "application/xml", "application/hl7-v3+xml", "application/dicom"})
OPAQUE = "application/octet-stream"
# The extension a stored document is saved under, by its type: one table here (the standard library's
# mimetypes answers from the machine's /etc/mime.types, e.g. ".xsl" for application/xml on Debian).
FILE_EXTENSIONS = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg", "image/tiff": "tif",
                   "application/rtf": "rtf", "text/rtf": "rtf", "text/plain": "txt", "text/xml": "xml",
                   "application/xml": "xml", "application/hl7-v3+xml": "xml", "application/dicom": "dcm",
                   "text/html": "html"}
COMMENT_MAX = 3000
TITLE_MAX = 255
DEFAULT_UPLOAD_MAX_BYTES = 10 * 1024 * 1024


def category_for(type_code: str | None, class_code: str | None) -> str:
    if type_code and type_code in TYPE_CODES:
        return TYPE_CODES[type_code][0]
    if class_code and class_code in CLASS_CATEGORY:
        return CLASS_CATEGORY[class_code]
    return "AUTR_DOC"


def type_label(type_code: str | None) -> str | None:
    entry = TYPE_CODES.get(type_code or "")
    return entry[1] if entry else None


# --- storing ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Coding:
    """A coded value as XDS keeps it: its code system (an OID, or a URI), the code, the display."""

    system: str | None
    code: str
    display: str | None = None


# formatCode systems (ANS JDV J10): IHE's codes, the ANS TRE_A06 ones, DICOM's
IHE_FORMAT_SYSTEM = "1.3.6.1.4.1.19376.1.2.3"
ANS_FORMAT_SYSTEM = "1.2.250.1.213.1.1.4.2.282"
DICOM_FORMAT_SYSTEM = "1.2.840.10008.2.6.1"
# this server's sourceId, for the submission sets it makes itself: an OID under 2.25 (from a UUID)
CARNET_SOURCE_OID = "2.25.240842069129178467003870417520447186753"


def format_system_for(code: str | None) -> str | None:
    """The code system a formatCode sent without one belongs to (JDV J10), or None when unknown."""
    if not code:
        return None
    if code.startswith("urn:ihe:"):
        return IHE_FORMAT_SYSTEM
    if code.startswith(("urn:asip:", "urn:ans:")):
        return ANS_FORMAT_SYSTEM
    if code.startswith("1.2.840.10008."):
        return DICOM_FORMAT_SYSTEM
    return None


@dataclass(frozen=True)
class DocumentMeta:
    """XDS-style metadata given by a feeder. ``confidentiality`` holds every confidentialityCode received:
    N/R/V and the DMP flags INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX, MASQUE_PS."""

    title: str
    mime_type: str
    unique_id: str | None = None          # XDS uniqueId / CDA id; generated (2.25.<uuid>) when absent
    class_code: str | None = None
    type_code: str | None = None
    type_system: str | None = None
    category: str | None = None           # derived from type/class when absent
    format_code: str | None = None
    author_professional_id: int | None = None
    author_rpps: str | None = None
    author_name: str | None = None
    author_profession: str | None = None
    author_specialty: str | None = None
    author_organisation: str | None = None
    author_structure_id: str | None = None  # idNat_Struct: its members may replace the document
    service_date: dt.datetime | None = None
    submitted_at: dt.datetime | None = None
    confidentiality: tuple[str, ...] = ()
    patient_comment: str | None = None
    # the rest of the XDS DocumentEntry, kept as received (IHE MHD Comprehensive metadata)
    type_display: str | None = None
    class_system: str | None = None       # the classCode OID when absent
    class_display: str | None = None
    format_system: str | None = None      # derived from the format code when absent (format_system_for)
    format_display: str | None = None
    facility_type: Coding | None = None   # healthcareFacilityTypeCode
    practice_setting: Coding | None = None
    events: tuple[Coding, ...] = ()       # eventCodeList
    security_labels: tuple[Coding, ...] = ()  # every confidentialityCode coding as received, displays included
    language: str | None = None
    creation_time: dt.datetime | None = None
    service_end: dt.datetime | None = None
    description: str | None = None        # XDS comments
    entry_uuid: str | None = None         # urn:uuid:…; generated when absent
    source_patient_info: dict[str, Any] | None = None  # a FHIR Patient as the source knew the patient


@dataclass(frozen=True)
class Stored:
    document: Document
    created: bool  # False: the same document (same uniqueId, same bytes) was already there


def _actor_fields(actor: Actor | None) -> tuple[str, str | None]:
    if actor is None:
        return "system", None
    if actor.kind == "professional" and actor.professional is not None:
        return "professional", actor.professional.rpps
    return actor.kind, str(actor.id)


def _invalid(field_name: str, problem: str) -> DomainError:
    return DomainError("document_invalid", 422, errors=[{"field": field_name, "message": problem}])


def _check_meta(meta: DocumentMeta, source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown document source {source!r}")
    limits = {"title": 500, "mime_type": 100, "unique_id": 128, "class_code": 16, "type_code": 32,
              "type_system": 64, "format_code": 128, "author_rpps": 11, "author_name": 300,
              "author_profession": 16, "author_specialty": 32, "author_organisation": 300, "type_display": 300,
              "class_system": 64, "class_display": 300, "format_system": 128, "format_display": 300,
              "language": 35, "description": 10_000, "entry_uuid": 64,
              "author_structure_id": 32}
    for name, limit in limits.items():
        value = getattr(meta, name)
        if value is not None and len(value) > limit:
            raise _invalid(name, f"{limit} caractères au plus")
    if not meta.title or not meta.title.strip():
        raise _invalid("title", "titre obligatoire")
    if not meta.mime_type or "/" not in meta.mime_type:
        raise _invalid("mime_type", "type de contenu invalide")
    if meta.category is not None and meta.category not in CATEGORIES:
        raise _invalid("category", "catégorie inconnue")
    if meta.patient_comment is not None and len(meta.patient_comment) > COMMENT_MAX:
        raise _invalid("comment", f"{COMMENT_MAX} caractères au plus")
    for name, coding in [("facility_type", meta.facility_type), ("practice_setting", meta.practice_setting),
                         *(("events", c) for c in meta.events), *(("security_labels", c) for c in meta.security_labels)]:
        if coding is not None and (not coding.code or len(coding.code) > (64 if name in ("facility_type",
                                   "practice_setting") else 128) or len(coding.system or "") > 128
                                   or len(coding.display or "") > 300):
            raise _invalid(name, "code invalide ou trop long")
    for when in (meta.service_date, meta.submitted_at, meta.creation_time, meta.service_end):
        if when is not None and when.tzinfo is None:
            raise ValueError("document dates must be timezone-aware")
    unknown = [c for c in meta.confidentiality if c not in VISIBILITY_FLAGS + CONFIDENTIALITY_LEVELS]
    if unknown:
        raise _invalid("confidentiality", "code de confidentialité inconnu")


def new_unique_id() -> str:
    """An OID under 2.25 (ISO/IEC 9834-8: derived from a UUID), as XDS expects of a uniqueId."""
    return f"2.25.{uuid.uuid4().int}"


def _by_unique_id(session: Session, patient_id: int, unique_id: str) -> Document | None:
    return session.scalar(select(Document).where(Document.patient_id == patient_id, Document.unique_id == unique_id))


def _same_or_conflict(existing: Document, digest: str) -> Stored:
    if existing.sha256 == digest:
        return Stored(existing, False)
    raise DomainError("document_unique_id_conflict", 409)


def serialise_writers(session: Session, patient_id: int) -> None:
    """SQLite serialises writers: take the write lock before looking up what a deposit may already have
    stored (a uniqueId, a submission set), so a concurrent deposit of the same thing (a retried feed) waits
    for this one and then finds it. PostgreSQL needs nothing: its unique constraints answer the race."""
    if session.get_bind().dialect.name != "postgresql":
        session.execute(update(Record).where(Record.patient_id == patient_id).values(id=Record.id)
                        .execution_options(synchronize_session=False))


def store_document(session: Session, vault: Vault, patient_id: int, content: bytes, meta: DocumentMeta, *,
                   source: str, actor: Actor | None = None, now: dt.datetime | None = None,
                   notify_patient: bool | None = None, submission_set: SubmissionSet | None = None) -> Stored:
    """Store one document in a patient's record: THE way in for every feeder.

    Hashes (sha256) and measures the bytes, encrypts them with the patient's key (AAD ``document:<id>``),
    maps the patient category from typeCode/classCode, applies the visibility flags (and the record's
    "mask new documents" for professionals' and services' documents), then notifies the patient (no
    health data in the notification; not for their own uploads, not for migrated documents unless asked,
    never while the document is INVISIBLE_PATIENT) and writes the audit entry.

    Idempotent on (patient, unique_id): the same bytes again return the stored document with
    ``created=False``; different bytes under an existing uniqueId are refused (409).
    The document joins ``submission_set`` (an ITI-65 bundle's), or a submission set of its own.
    Raises NotFound if the patient has no record. Flushes; the caller commits.
    """
    now = now or utcnow()
    _check_meta(meta, source)
    if not content:
        raise _invalid("content", "document vide")
    record = session.scalar(select(Record).where(Record.patient_id == patient_id))
    if record is None:
        raise NotFound("access_no_record")
    digest = hashlib.sha256(content).hexdigest()
    unique_id = (meta.unique_id or "").strip() or new_unique_id()
    serialise_writers(session, patient_id)
    existing = _by_unique_id(session, patient_id, unique_id)
    if existing is not None:
        return _same_or_conflict(existing, digest)

    codes = set(meta.confidentiality)
    level = next((c for c in CONFIDENTIALITY_LEVELS if c in codes), "N")
    from_others = source in ("professional", "service", "insurer")
    masked = "MASQUE_PS" in codes or (from_others and record.mask_new_documents)
    category = meta.category or category_for(meta.type_code, meta.class_code)
    doc = Document(
        patient_id=patient_id, unique_id=unique_id, class_code=meta.class_code, type_code=meta.type_code,
        type_system=meta.type_system, category=category, title=meta.title.strip()[:500],
        mime_type=meta.mime_type.strip().lower(), format_code=meta.format_code, size=len(content), sha256=digest,
        author_professional_id=meta.author_professional_id, author_rpps=meta.author_rpps,
        author_name=meta.author_name, author_profession=meta.author_profession,
        author_specialty=meta.author_specialty, author_organisation=meta.author_organisation,
        author_structure_id=meta.author_structure_id, source=source,
        service_date=meta.service_date, submitted_at=meta.submitted_at or now, confidentiality=level,
        invisible_patient="INVISIBLE_PATIENT" in codes,
        invisible_legal_representatives="INVISIBLE_REPRESENTANTS_LEGAUX" in codes, masked=masked,
        patient_comment=meta.patient_comment or None, **_xds_columns(meta, content))
    if session.get_bind().dialect.name == "postgresql":
        # Two deposits of the same document at once (a retried ITI-65): the second waits on the unique
        # index, then finds the first one's row. SQLite serialises writers, and its driver's SAVEPOINT
        # handling is unreliable, so it keeps the plain path.
        try:
            with session.begin_nested():
                session.add(doc)
                session.flush()
        except IntegrityError:
            existing = _by_unique_id(session, patient_id, unique_id)
            if existing is None:
                raise
            return _same_or_conflict(existing, digest)
    else:
        session.add(doc)
        session.flush()
    write_content(session, vault, doc, content)
    _file_submission(session, doc, meta, submission_set)
    session.flush()

    actor_type, actor_id = _actor_fields(actor)
    audit.record(session, actor_type=actor_type, actor_id=actor_id, action="document.stored", patient_id=patient_id,
                 details={"document_id": doc.id, "category": category, "source": source,
                          "masked": masked, "invisible_patient": doc.invisible_patient}, at=now)
    if notify_patient is None:
        notify_patient = from_others
    if notify_patient and not doc.invisible_patient:
        notify(session, patient_id, "document", ref_type="document", ref_id=doc.id, now=now)
    # implanted devices, vaccines dispensed: the profile entries the document carries, linked to it
    profile_derived.derive_from_document(session, vault, doc, content, source=source, now=now)
    log.info("document %s stored for patient %s (source %s, %d bytes)", doc.id, patient_id, source, doc.size)
    return Stored(doc, True)


def _xds_columns(meta: DocumentMeta, content: bytes) -> dict[str, Any]:
    """The DocumentEntry metadata beyond what the record decides on, as the Document's columns."""
    facility, setting = meta.facility_type, meta.practice_setting
    return {
        "type_display": meta.type_display, "class_system": meta.class_system or (CLASS_SYSTEM if meta.class_code
                                                                                 else None),
        "class_display": meta.class_display,
        "format_system": meta.format_system or format_system_for(meta.format_code),
        "format_display": meta.format_display,
        "facility_type_system": facility and facility.system, "facility_type_code": facility and facility.code,
        "facility_type_display": facility and facility.display,
        "practice_setting_system": setting and setting.system, "practice_setting_code": setting and setting.code,
        "practice_setting_display": setting and setting.display,
        "language": meta.language, "creation_time": meta.creation_time, "service_end": meta.service_end,
        "description": meta.description, "sha1": hashlib.sha1(content).hexdigest(),
        "entry_uuid": meta.entry_uuid or f"urn:uuid:{uuid.uuid4()}",
        "source_patient_info": json.dumps(meta.source_patient_info, ensure_ascii=False, sort_keys=True,
                                          separators=(",", ":")) if meta.source_patient_info else None,
    }


def _file_submission(session: Session, doc: Document, meta: DocumentMeta, submission: SubmissionSet | None) -> None:
    """The document's multi-valued codes, and its place in a submission set (its own unless given one)."""
    for kind, codings in (("event", meta.events), ("security_label", meta.security_labels)):
        for position, coding in enumerate(codings):
            session.add(DocumentCode(document_id=doc.id, kind=kind, position=position, system=coding.system,
                                     code=coding.code, display=coding.display))
    if submission is None:
        submission = SubmissionSet(
            patient_id=doc.patient_id, unique_id=new_unique_id(), entry_uuid=f"urn:uuid:{uuid.uuid4()}",
            source_id=CARNET_SOURCE_OID, source=doc.source, submitted_at=doc.submitted_at,
            designation_system=doc.type_system if doc.type_code else None, designation_code=doc.type_code,
            designation_display=doc.type_display or type_label(doc.type_code),
            author_professional_id=doc.author_professional_id, author_rpps=doc.author_rpps,
            author_name=doc.author_name, author_organisation=doc.author_organisation)
        session.add(submission)
        session.flush()
    session.add(SubmissionSetEntry(document_id=doc.id, submission_set_id=submission.id))


# --- patient uploads ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Upload:
    filename: str
    content: bytes
    declared_type: str | None = None
    category: str = "AUTR_DOC"
    title: str | None = None
    comment: str | None = None
    service_date: dt.date | None = None


def _refuse_upload(code: str, status: int = 422, **params: Any) -> DomainError:
    return DomainError(code, status, errors=[{"field": "file", "message_code": code, "params": params}], **params)


def check_upload(upload: Upload, max_bytes: int = DEFAULT_UPLOAD_MAX_BYTES) -> str:
    """Validate an upload before anything is written; returns the content type (sniffed, agreeing with
    the extension and with the declared type). Refusals carry a French reason."""
    name = (upload.filename or "").strip()
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    allowed = ", ".join(sorted({e.upper() for e in UPLOAD_TYPES}))
    if ext not in UPLOAD_TYPES:
        raise _refuse_upload("upload_type_not_allowed", 415, allowed=allowed)
    if not upload.content:
        raise _refuse_upload("upload_empty")
    if len(upload.content) > max_bytes:
        raise _refuse_upload("upload_too_large", 413, max_mb=_megabytes(max_bytes))
    expected = UPLOAD_TYPES[ext]
    declared = (upload.declared_type or "").split(";")[0].strip().lower()
    declared = DECLARED_ALIASES.get(declared, declared)
    if declared and declared not in ("application/octet-stream", "binary/octet-stream") and declared != expected:
        raise _refuse_upload("upload_type_mismatch", ext=ext.upper())
    found = viewer.sniff(upload.content)
    if found != expected:
        raise _refuse_upload("upload_type_mismatch", ext=ext.upper())
    if expected == viewer.PDF and not viewer.pdf_is_readable(upload.content):
        raise _refuse_upload("upload_unreadable", ext=ext.upper())
    if expected in (viewer.PNG, viewer.JPEG, viewer.TIFF) and not viewer.image_is_readable(upload.content):
        raise _refuse_upload("upload_unreadable", ext=ext.upper())
    if upload.category not in PATIENT_UPLOAD_TYPES:
        raise DomainError("invalid_request", errors=[{"field": "category", "message_code": "upload_category"}])
    if upload.comment is not None and len(upload.comment) > COMMENT_MAX:
        raise DomainError("upload_comment_too_long", 422, max=COMMENT_MAX,
                          errors=[{"field": "comment", "message_code": "upload_comment_too_long",
                                   "params": {"max": COMMENT_MAX}}])
    if upload.title is not None and len(upload.title) > TITLE_MAX:
        raise DomainError("invalid_request", errors=[{"field": "title", "message": f"{TITLE_MAX} caractères au plus"}])
    return expected


def _megabytes(n: int) -> str:
    value = n / (1024 * 1024)
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}".replace(".", ",")


def upload_document(session: Session, vault: Vault, patient_id: int, upload: Upload, *,
                    max_bytes: int = DEFAULT_UPLOAD_MAX_BYTES, now: dt.datetime | None = None) -> Document:
    """A patient adds a document to their own record (validated first: a refusal writes nothing)."""
    now = now or utcnow()
    mime = check_upload(upload, max_bytes)
    digest = hashlib.sha256(upload.content).hexdigest()
    duplicate = session.scalar(select(Document.id).where(
        Document.patient_id == patient_id, Document.sha256 == digest, Document.source == "patient",
        Document.deleted_at.is_(None)).limit(1))
    if duplicate is not None:
        raise DomainError("upload_duplicate", 409)
    title = (upload.title or "").strip() or _title_from_filename(upload.filename)
    service_date = (dt.datetime.combine(upload.service_date, dt.time(12), PARIS).astimezone(dt.timezone.utc)
                    if upload.service_date else None)
    meta = DocumentMeta(title=title, mime_type=mime, class_code=PATIENT_CLASS,
                        type_code=PATIENT_UPLOAD_TYPES[upload.category], type_system=FR_TYPES,
                        category=upload.category, service_date=service_date, patient_comment=upload.comment or None)
    return store_document(session, vault, patient_id, upload.content, meta, source="patient",
                          actor=Actor.patient(patient_id), now=now).document


def _title_from_filename(filename: str) -> str:
    stem = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    stem = " ".join(stem.replace("_", " ").split())
    return stem[:TITLE_MAX] or "Document"


# --- listing ------------------------------------------------------------------------------------------

SORTS = ("submitted", "service")
ORDERS = ("desc", "asc")


@dataclass(frozen=True)
class ListFilters:
    categories: frozenset[str] = frozenset()
    date_from: dt.date | None = None    # inclusive, a day in France
    date_to: dt.date | None = None      # inclusive
    author: str | None = None           # name, organisation or RPPS
    text: str | None = None             # title or author
    source: str | None = None           # e.g. "patient": what I added myself
    sort: str = "submitted"             # submitted | service (service date, else submission)
    order: str = "desc"


@dataclass(frozen=True)
class Cursor:
    key: dt.datetime
    id: int


@dataclass
class Page:
    items: list[Any]  # rows of LISTED_COLUMNS
    next_cursor: Cursor | None
    counts: dict[str, int] = field(default_factory=dict)


def _sort_key(sort: str) -> ColumnElement[dt.datetime]:
    if sort == "service":
        return func.coalesce(Document.service_date, Document.submitted_at)
    return Document.submitted_at  # type: ignore[return-value]


def _like(value: str) -> str:
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), PARIS).astimezone(dt.timezone.utc)


def _filters(scope: Scope, filters: ListFilters, *, with_categories: bool = True) -> list[Any]:
    key = _sort_key(filters.sort)
    # a version replaced by a newer one (XDS RPLC) leaves the listing; its id still answers
    conditions: list[Any] = [scope.document_filter(), Document.replaced_by_id.is_(None)]
    if with_categories and filters.categories:
        conditions.append(Document.category.in_(sorted(filters.categories)))
    if filters.date_from is not None:
        conditions.append(key >= _day_start(filters.date_from))
    if filters.date_to is not None:
        conditions.append(key < _day_start(filters.date_to + dt.timedelta(days=1)))
    if filters.source is not None:
        conditions.append(Document.source == filters.source)
    if filters.author:
        pattern = _like(filters.author.strip())
        conditions.append(or_(func.lower(Document.author_name).like(pattern, escape="\\"),
                              func.lower(Document.author_organisation).like(pattern, escape="\\"),
                              Document.author_rpps == filters.author.strip()))
    if filters.text:
        pattern = _like(filters.text.strip())
        conditions.append(or_(func.lower(Document.title).like(pattern, escape="\\"),
                              func.lower(Document.author_name).like(pattern, escape="\\"),
                              func.lower(Document.author_organisation).like(pattern, escape="\\")))
    return conditions


# What a documents page item shows (``documents/api.py``, ``_item``) and what its cursor needs.
LISTED_COLUMNS = (Document.id, Document.title, Document.category, Document.type_code, Document.class_code,
                  Document.author_name, Document.author_rpps, Document.author_profession, Document.author_specialty,
                  Document.author_organisation, Document.service_date, Document.submitted_at, Document.mime_type,
                  Document.size, Document.source, Document.masked, Document.removal_requested_at)


def _page(scope: Scope, filters: ListFilters, limit: int, after: Cursor | None) -> Select[Any]:
    key = _sort_key(filters.sort)
    # the columns the page shows, as rows: no ORM object per document on the hot path
    stmt = select(*LISTED_COLUMNS).where(*_filters(scope, filters))
    if filters.order == "desc":
        if after is not None:
            stmt = stmt.where(or_(key < after.key, and_(key == after.key, Document.id < after.id)))
        stmt = stmt.order_by(key.desc(), Document.id.desc())
    else:
        if after is not None:
            stmt = stmt.where(or_(key > after.key, and_(key == after.key, Document.id > after.id)))
        stmt = stmt.order_by(key.asc(), Document.id.asc())
    return stmt.limit(limit + 1)


# The patient's own documents page without filters (what the app asks for most) and its category counts:
# statements built once, with the patient, the cursor and the limit as parameters (building them cost
# more CPU than running them).
_OWNER = owner_scope(bindparam("patient_id"))


@functools.cache
def _owner_page(sort: str, order: str, with_cursor: bool) -> Select[Any]:
    after = Cursor(bindparam("after_key"), bindparam("after_id")) if with_cursor else None  # type: ignore[arg-type]
    return _page(_OWNER, ListFilters(sort=sort, order=order), 0, after).limit(bindparam("limit"))


def _counts(scope: Scope, filters: ListFilters) -> Select[Any]:
    return select(Document.category, func.count()).where(
        *_filters(scope, filters, with_categories=False)).group_by(Document.category)


_OWNER_COUNTS = _counts(_OWNER, ListFilters())


def list_documents(session: Session, scope: Scope, filters: ListFilters, *, limit: int,
                   after: Cursor | None = None) -> Page:
    """One page of the documents the scope permits, sorted, keyset-paginated (one query)."""
    if is_owner_scope(scope) and filters == ListFilters(sort=filters.sort, order=filters.order):
        params: dict[str, Any] = {"patient_id": scope.patient_id, "limit": limit + 1}
        if after is not None:
            params.update(after_key=after.key, after_id=after.id)
        rows = list(session.execute(_owner_page(filters.sort, filters.order, after is not None), params))
    else:
        rows = list(session.execute(_page(scope, filters, limit, after)))
    page, more = rows[:limit], len(rows) > limit
    next_cursor = None
    if more and page:
        last = page[-1]
        last_key = (last.service_date or last.submitted_at) if filters.sort == "service" else last.submitted_at
        next_cursor = Cursor(last_key, last.id)
    return Page(page, next_cursor)


def category_counts(session: Session, scope: Scope, filters: ListFilters | None = None) -> dict[str, int]:
    """How many documents per category match (the category filter itself aside: counts feed the tabs)."""
    filters = filters or ListFilters()
    if is_owner_scope(scope) and filters.date_from is None and filters.date_to is None and not filters.author \
            and not filters.text and filters.source is None:  # sort and order do not change a count
        rows = session.execute(_OWNER_COUNTS, {"patient_id": scope.patient_id}).all()
    else:
        rows = session.execute(_counts(scope, filters)).all()
    return {category: int(count) for category, count in rows}


def encode_cursor(filters: ListFilters, cursor: Cursor) -> str:
    """Opaque, and bound to the sort it was made for."""
    return cursors.encode(filters.sort, filters.order, cursor.key.astimezone(dt.timezone.utc).isoformat(), cursor.id)


def decode_cursor(raw: str | None, filters: ListFilters) -> Cursor | None:
    def parse(sort: Any, order: Any, key: Any, ident: Any) -> Cursor:
        if sort != filters.sort or order != filters.order:
            raise ValueError("cursor for another listing")
        when = dt.datetime.fromisoformat(key)
        if when.tzinfo is None:
            raise ValueError("naive")
        return Cursor(when, cursors.integer(ident))

    return cursors.decode(raw, parse)


# --- reading ------------------------------------------------------------------------------------------

def get_document(session: Session, scope: Scope, document_id: int) -> Document:
    """The document if the scope permits it; otherwise "not found" (whether it exists is not told)."""
    doc = session.scalar(select(Document).where(Document.id == document_id, scope.document_filter()))
    if doc is None:
        raise NotFound("document_not_found")
    return doc


# --- the patient's actions ----------------------------------------------------------------------------

def _own_visible(session: Session, patient_id: int, document_id: int, actor: Actor | None = None) -> Document:
    """A document of the record as the holder's hand sees it: the holder's scope, or the policy's for a legal
    representative (never an INVISIBLE_REPRESENTANTS_LEGAUX document) or a carer."""
    if actor is None or actor.kind == "patient":
        return get_document(session, owner_scope(patient_id), document_id)
    decision = decide(session, actor, patient_id)
    if not decision.allowed or decision.scope is None:
        raise NotFound("document_not_found")
    return get_document(session, decision.scope, document_id)


def delete_upload(session: Session, patient_id: int, document_id: int, now: dt.datetime | None = None, *,
                  actor: Actor | None = None) -> Document:
    """The patient deletes a document they added (soft delete). Others' documents: ask for removal
    (``policy``: DOCUMENT_DELETE)."""
    now = now or utcnow()
    actor = actor or Actor.patient(patient_id)
    doc = _own_visible(session, patient_id, document_id, actor)
    authorize_write(session, actor, patient_id, Action.DOCUMENT_DELETE, target=doc,
                    details={"document_id": doc.id, "category": doc.category}, now=now)
    doc.deleted_at = now
    audit.record(session, actor_type="patient", actor_id=str(patient_id), action="document.deleted",
                 patient_id=patient_id, details={"document_id": doc.id, "category": doc.category}, at=now)
    session.flush()
    return doc


def request_removal(session: Session, patient_id: int, document_id: int, reason: str,
                    now: dt.datetime | None = None, *, actor: Actor | None = None) -> Document:
    """The patient asks for the removal of a document someone else recorded: a request, not a deletion.
    Idempotent. The reason is a code from REMOVAL_REASONS (no free text: it goes to the audit trail)."""
    now = now or utcnow()
    if reason not in REMOVAL_REASONS:
        raise DomainError("invalid_request", errors=[{"field": "reason", "message_code": "removal_reason"}])
    doc = _own_visible(session, patient_id, document_id, actor)
    if doc.source == "patient":
        raise DomainError("document_removal_own_upload", 409)
    if doc.removal_requested_at is None:
        doc.removal_requested_at = now
        audit.record(session, actor_type="patient", actor_id=str(patient_id), action="document.removal_requested",
                     patient_id=patient_id, details={"document_id": doc.id, "reason": reason}, at=now)
        session.flush()
    return doc


def set_masked(session: Session, patient_id: int, document_id: int, masked: bool,
               now: dt.datetime | None = None, *, actor: Actor | None = None) -> Document:
    """MASQUE_PS: masked documents are seen only by the patient, the author and the administrator."""
    now = now or utcnow()
    doc = _own_visible(session, patient_id, document_id, actor)
    if doc.masked != masked:
        doc.masked = masked
        audit.record(session, actor_type="patient", actor_id=str(patient_id),
                     action="document.masked" if masked else "document.unmasked", patient_id=patient_id,
                     details={"document_id": doc.id}, at=now)
        session.flush()
    return doc


def get_mask_new_documents(session: Session, patient_id: int) -> bool:
    value = session.scalar(select(Record.mask_new_documents).where(Record.patient_id == patient_id))
    if value is None:
        raise NotFound("access_no_record")
    return bool(value)


def set_mask_new_documents(session: Session, patient_id: int, value: bool, now: dt.datetime | None = None) -> bool:
    """"Mask new documents by default": every new professional document arrives masked."""
    now = now or utcnow()
    record = session.scalar(select(Record).where(Record.patient_id == patient_id))
    if record is None:
        raise NotFound("access_no_record")
    if record.mask_new_documents != value:
        record.mask_new_documents = value
        audit.record(session, actor_type="patient", actor_id=str(patient_id), action="record.mask_new_documents",
                     patient_id=patient_id, details={"enabled": value}, at=now)
        session.flush()
    return value


# --- the author's release of an INVISIBLE_PATIENT document --------------------------------------------

def release_document(session: Session, actor: Actor, document_id: int, now: dt.datetime | None = None,
                     vault: Vault | None = None) -> Document:
    """The author releases an INVISIBLE_PATIENT document (after the announcement consultation): the patient
    sees it from now on and is notified. Idempotent. Only the author (``policy``: DOCUMENT_RELEASE; a refusal
    is traced, then raised as ``WriteRefused``: the professional API answers "not found" to non-authors). With
    the ``vault``, the profile entries the document carries (an implant…) are derived now, not before."""
    now = now or utcnow()
    doc = session.scalar(select(Document).where(Document.id == document_id, Document.deleted_at.is_(None)))
    if doc is None:
        raise NotFound("document_not_found")
    authorize_write(session, actor, doc.patient_id, Action.DOCUMENT_RELEASE, target=doc,
                    details={"document_id": doc.id}, concealed=NotFound("document_not_found"), now=now)
    if not doc.invisible_patient:
        raise DomainError("document_not_invisible", 409)
    pro = actor.professional
    assert pro is not None
    if doc.released_at is None:
        doc.released_at = now
        audit.record(session, actor_type="professional", actor_id=pro.rpps, action="document.released",
                     patient_id=doc.patient_id, details={"document_id": doc.id, "category": doc.category}, at=now)
        notify(session, doc.patient_id, "document", ref_type="document", ref_id=doc.id, now=now)
        session.flush()
        if vault is not None:
            profile_derived.derive_from_document(session, vault, doc, read_content(session, vault, doc),
                                                 source=doc.source, now=now)
    return doc


# --- home ---------------------------------------------------------------------------------------------

HOME_NEW_DAYS = 30
HOME_NEW_LIMIT = 3


@dataclass(frozen=True)
class NewDocument:
    """What the home screen shows of a recent document."""

    id: int
    title: str
    category: str
    author_name: str | None
    submitted_at: dt.datetime


def _recent(scope: Scope, since: Any, limit: int) -> Select[Any]:
    columns = (Document.id, Document.title, Document.category, Document.author_name, Document.submitted_at)
    visible = (scope.document_filter(), Document.source != "patient", Document.replaced_by_id.is_(None))
    recent = union_all(
        select(*columns).where(*visible, Document.released_at.is_(None), Document.submitted_at >= since),
        select(*columns).where(*visible, Document.released_at.is_not(None), Document.released_at >= since),
    ).subquery("recent")
    return (select(recent, func.count().over().label("total"))
            .order_by(recent.c.submitted_at.desc(), recent.c.id.desc()).limit(limit))


@functools.cache
def _owner_recent(limit: int) -> Select[Any]:
    """The patient's own recent documents, with ``patient_id`` and ``since`` as parameters (building this
    statement costs more CPU than running it)."""
    return _recent(owner_scope(bindparam("patient_id")), bindparam("since"), limit)


def new_documents(session: Session, patient_id: int, *, days: int = HOME_NEW_DAYS, limit: int = HOME_NEW_LIMIT,
                  now: dt.datetime | None = None, actor: Actor | None = None) -> tuple[int, list[NewDocument]]:
    """Documents others added to the record in the last ``days`` that the patient may see: (count, latest).

    "Added" is the arrival, or the release of an INVISIBLE_PATIENT document. One query (the count rides
    along as a window function) plus the policy's one, reading only the recent documents whatever the size
    of the record: the two disjoint halves of ``coalesce(released_at, submitted_at) >= since`` are each a
    range of an index (never released: ``ix_document_patient_submitted``; released:
    ``ix_document_patient_released``). The columns the home screen shows, not whole documents."""
    now = now or utcnow()
    decision = decide(session, actor or Actor.patient(patient_id), patient_id, now=now)
    if not decision.allowed or decision.scope is None:
        return 0, []
    since = now - dt.timedelta(days=days)
    if is_owner_scope(decision.scope):  # the owner's scope: the statement built once
        rows = session.execute(_owner_recent(limit), {"patient_id": patient_id, "since": since}).all()
    else:
        rows = session.execute(_recent(decision.scope, since, limit)).all()
    latest = [NewDocument(r.id, r.title, r.category, r.author_name, r.submitted_at) for r in rows]
    return (int(rows[0].total) if rows else 0), latest


def served_type(mime_type: str | None) -> str:
    """The ``Content-Type`` a file of this type is downloaded with (see ``SERVED_TYPES``)."""
    mime = (mime_type or "").split(";")[0].strip().lower()
    return mime if mime in SERVED_TYPES else OPAQUE


def file_extension(mime_type: str | None) -> str:
    """The extension of a file of this type (``bin`` for a type without one)."""
    return FILE_EXTENSIONS.get((mime_type or "").split(";")[0].strip().lower(), "bin")


def flags(codes: Iterable[str]) -> tuple[str, ...]:
    """Normalise received confidentiality codes (upper-case, known ones kept in a stable order)."""
    wanted = {c.strip().upper() for c in codes if c and c.strip()}
    return tuple(c for c in CONFIDENTIALITY_LEVELS + VISIBILITY_FLAGS if c in wanted)
