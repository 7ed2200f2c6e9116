"""The professional API's domain logic (IHE MHD): deposit a submission, find documents within a scope,
read a document's bytes. Takes a Session, only flushes.

Storing goes through ``records.documents.service.store_document`` (hashing, encryption at rest, category,
visibility flags, "mask new documents", notification and audit are decided there once). Reading is
decided by ``records.access.authorize``; this module only applies the scope it returns
(``document_filter`` for listings). Writing is decided by ``records.access.authorize_write``: depositing
needs no consent, a blocked professional deposits too (domain.md: the holder cannot oppose the feeding),
on a record that exists and is not closed; replacing a document needs to be able to read it and to be its
author or of its author's structure. Every decision of a submission is made before anything is written.
The author of what is deposited is the depositing professional.
The insurer's feed (``backend.insurer``) deposits reimbursement histories only, through the same
path and the same table (``policy.WRITE_RULES``, actor kind ``insurer``).
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, bindparam, exists, func, literal, null, or_, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import Patient
from backend.audit import service as audit
from backend.db import ROW_ID_MAX, utcnow
from backend.errors import DomainError
from backend.fhir.resources import DocumentDeposit, DocumentExtras, Submission, SubmissionSetData
from backend.insurer.models import Insurer
from backend.professionals.models import Professional
from backend.records.documents import service as documents
from backend.records.crypto import Vault
from backend.records.access.authorize import authorize_write
from backend.records.documents.models import Document, DocumentCode, SubmissionSet, SubmissionSetEntry
from backend.records.models import Record
from backend.records.access.policy import Action, Actor, Scope, insurer_may_deposit




def is_row_id(raw: str) -> bool:
    return raw.isascii() and raw.isdigit() and len(raw) <= 10 and 0 < int(raw) <= ROW_ID_MAX


_PATIENT_BY_INS = select(Patient).where(Patient.nir == bindparam("nir"), Patient.ins_oid == bindparam("ins_oid"))


def find_patient(session: Session, ins_oid: str, nir: str) -> Patient | None:
    """The patient whose INS is (OID, NIR): a test identity (…4.10) is not a production one (…4.8)."""
    return session.scalar(_PATIENT_BY_INS, {"nir": nir, "ins_oid": ins_oid})


def recipient(session: Session, ins_oid: str, nir: str) -> Patient:
    """The patient of a submission: known by this INS (a test identity is not a production one) and with a
    record (an opposed account has none). Whether a closed account may be fed is the policy's to say."""
    row = session.execute(select(Patient, Record.id).join(Record, Record.patient_id == Patient.id)
                          .where(Patient.nir == nir, Patient.ins_oid == ins_oid)).one_or_none()
    if row is None:
        raise DomainError("fhir_unknown_patient", 422)
    return row[0]


def _author_is_the_depositor(pro: Professional, deposit: DocumentDeposit) -> None:
    """The author of a deposit is the professional who deposits it: a document naming someone else (another
    RPPS, another structure than theirs) is refused, so that what is stored is what was sent, and true."""
    named = deposit.author
    if named is None:
        return
    if named.named_rpps - {pro.rpps}:
        raise DomainError("fhir_author_not_depositor", 422, entry=deposit.entry)
    if pro.structure_id and named.structure_id and named.structure_id != pro.structure_id:
        raise DomainError("fhir_author_structure_not_depositor", 422, entry=deposit.entry)


def _meta(deposit: DocumentDeposit, pro: Professional, now: dt.datetime) -> documents.DocumentMeta:
    """The document's metadata. The author is the depositing professional (their RPPS and name); the role the
    document gives them (profession, specialty, organisation) wins over what we know of them."""
    named = deposit.author
    codes = [deposit.confidentiality]
    if deposit.invisible_patient:
        codes.append("INVISIBLE_PATIENT")
    if deposit.invisible_legal_representatives:
        codes.append("INVISIBLE_REPRESENTANTS_LEGAUX")
    if deposit.masked:
        codes.append("MASQUE_PS")

    def pick(given: str | None, known: str | None) -> str | None:
        return given or known

    return documents.DocumentMeta(
        title=deposit.title or documents.type_label(deposit.type_code) or "Document",
        mime_type=deposit.mime_type, unique_id=deposit.unique_id, class_code=deposit.class_code,
        type_code=deposit.type_code, type_system=deposit.type_system, format_code=deposit.format_code,
        author_professional_id=pro.id, author_rpps=pro.rpps,
        author_name=pro.display_name,
        author_profession=pick(named and named.profession, pro.profession_code),
        author_specialty=pick(named and named.specialty, pro.specialty_code),
        author_organisation=pick(named and named.organisation, pro.organisation),
        author_structure_id=pro.structure_id or (named and named.structure_id),
        service_date=deposit.service_date, submitted_at=now, confidentiality=documents.flags(codes),
        type_display=deposit.type_display, class_system=deposit.class_system, class_display=deposit.class_display,
        format_system=deposit.format_system, format_display=deposit.format_display,
        facility_type=deposit.facility_type, practice_setting=deposit.practice_setting, events=deposit.events,
        security_labels=deposit.security_labels, language=deposit.language, creation_time=deposit.creation_time,
        service_end=deposit.service_end, description=deposit.description, entry_uuid=deposit.entry_uuid,
        source_patient_info=deposit.source_patient_info)



@dataclass
class Provided:
    """What an ITI-65 bundle did: the patient, its submission set, each document and whether it is new."""

    holder: Patient
    submission_set: SubmissionSet
    documents: list[Document]
    created: list[bool]
    set_created: bool

    @property
    def replayed(self) -> bool:
        return not self.set_created and not any(self.created)


def _new_set(holder: Patient, depositor: Professional | Insurer, submission: Submission,
             now: dt.datetime) -> SubmissionSet:
    # The set's author is the depositor (records.access.policy: the author is the depositing professional, or the
    # insurer's feed); the names and organisation the set gives a professional win over what we know of them.
    data = submission.submission_set or SubmissionSetData(None, None, None, None)
    designation = data.designation
    if designation is None and submission.documents and submission.documents[0].type_code:
        first = submission.documents[0]
        designation = documents.Coding(first.type_system, first.type_code, first.type_display)
    common = dict(
        patient_id=holder.id, unique_id=data.unique_id or documents.new_unique_id(),
        entry_uuid=data.entry_uuid or f"urn:uuid:{uuid.uuid4()}",
        source_id=data.source_id or documents.CARNET_SOURCE_OID, submitted_at=now,
        title=data.title, comments=data.comments,
        designation_system=designation.system if designation else None,
        designation_code=designation.code[:64] if designation else None,
        designation_display=designation.display if designation else None)
    if isinstance(depositor, Insurer):
        return SubmissionSet(**common, source="insurer", author_name=depositor.name,
                             author_organisation=depositor.name)
    author = data.author
    family = (author.family if author else None) or depositor.family_name
    given = (author.given if author else None) or depositor.given_name
    return SubmissionSet(
        **common, source="professional", author_professional_id=depositor.id, author_rpps=depositor.rpps,
        author_family=family and family[:150], author_given=given and given[:150],
        author_name=depositor.display_name,
        author_organisation=(author.organisation if author else None) or depositor.organisation)


def _insert_set(session: Session, row: SubmissionSet) -> tuple[SubmissionSet, bool]:
    """(the set, True) once inserted; (the one a concurrent deposit of the same bundle inserted, False)."""
    if session.get_bind().dialect.name != "postgresql":
        session.add(row)  # SQLite serialises writers (see records.documents.service.store_document)
        session.flush()
        return row, True
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
        return row, True
    except IntegrityError:
        found = session.scalar(select(SubmissionSet).where(SubmissionSet.patient_id == row.patient_id,
                                                           SubmissionSet.unique_id == row.unique_id))
        if found is None:
            raise
        return found, False


def provide(session: Session, vault: Vault, depositor: Professional | Insurer, submission: Submission,
            now: dt.datetime | None = None) -> Provided:
    """ITI-65: store every document of the submission, or none (the caller commits once, or rolls back).
    The depositor is a professional, or the insurer's feed (reimbursement histories only: no consent, no
    notification — a monthly feed is not news —, the insurer the author and the actor in the audit trail).

    Decides first (the deposit, the author, each replacement), then writes: a refusal leaves nothing but
    its trace. A document sent again with the same uniqueId and the same bytes is the stored one (a retry);
    other bytes under a known uniqueId are refused (409) by ``store_document``. A bundle sent again (its
    SubmissionSet's uniqueId known, every document already there) changes nothing: ``replayed``."""
    now = now or utcnow()
    insurer = isinstance(depositor, Insurer)
    if insurer:
        _reimbursement_data_only(submission)
    holder = recipient(session, submission.patient_oid, submission.patient_nir)
    actor = Actor.of_insurer(depositor.id) if insurer else Actor.of_professional(depositor)
    authorize_write(session, actor, holder.id, Action.DOCUMENT_DEPOSIT, details={"interaction": "ITI-65"},
                    concealed=DomainError("fhir_unknown_patient", 422), now=now)
    if not insurer:
        for deposit in submission.documents:
            _author_is_the_depositor(depositor, deposit)
    replaced = _replaced(session, holder.id, submission)
    decisions: dict[int, str] = {}
    for deposit in submission.documents:
        for ref, old in replaced.get(deposit.unique_id, []):
            decision = authorize_write(session, actor, holder.id, Action.DOCUMENT_REPLACE, target=old, now=now,
                                       details={"interaction": "ITI-65", "document_id": old.id if old else None})
            assert old is not None
            decisions[old.id] = decision.reason
    documents.serialise_writers(session, holder.id)
    existing_set = None
    if submission.submission_set_id:
        existing_set = session.scalar(select(SubmissionSet).where(
            SubmissionSet.patient_id == holder.id, SubmissionSet.unique_id == submission.submission_set_id))
    present = {d.unique_id for d in session.scalars(select(Document).where(
        Document.patient_id == holder.id, Document.unique_id.in_([d.unique_id for d in submission.documents])))}
    if existing_set is not None and any(d.unique_id not in present for d in submission.documents):
        raise DomainError("fhir_submission_conflict", 409)
    target = existing_set
    set_created = False
    if target is None and any(d.unique_id not in present for d in submission.documents):
        target, set_created = _insert_set(session, _new_set(holder, depositor, submission, now))
        if not set_created and any(d.unique_id not in present for d in submission.documents):
            # the same bundle, deposited at the same moment by a retry: the first one's documents are there now
            present = {d.unique_id for d in session.scalars(select(Document).where(
                Document.patient_id == holder.id,
                Document.unique_id.in_([d.unique_id for d in submission.documents])))}
            if any(d.unique_id not in present for d in submission.documents):
                raise DomainError("fhir_submission_conflict", 409)
    stored, created = [], []
    for deposit in submission.documents:
        meta = _insurer_meta(depositor, deposit, now) if insurer else _meta(deposit, depositor, now)
        result = documents.store_document(session, vault, holder.id, deposit.content, meta,
                                          source="insurer" if insurer else "professional", actor=actor, now=now,
                                          submission_set=target, notify_patient=not insurer)
        for _, old in replaced.get(deposit.unique_id, []):
            assert old is not None
            if old.id != result.document.id and old.replaced_by_id != result.document.id:
                old.replaced_by_id = result.document.id
                audit.record(session, actor_type=actor.kind,
                             actor_id=depositor.rpps if not insurer else str(depositor.id), action="document.replaced",
                             patient_id=holder.id, details={"document_id": old.id, "category": old.category,
                                                            "replaced_by": result.document.id,
                                                            "decision": decisions[old.id]}, at=now)
        stored.append(result.document)
        created.append(result.created)
    if target is None:
        # every document was already there, under another submission set: that one answers
        target = session.scalar(select(SubmissionSet).join(
            SubmissionSetEntry, SubmissionSetEntry.submission_set_id == SubmissionSet.id)
            .where(SubmissionSetEntry.document_id == stored[0].id))
        assert target is not None
    session.flush()
    return Provided(holder, target, stored, created, set_created)


def _replaced(session: Session, patient_id: int, submission: Submission
              ) -> dict[str, list[tuple[str, Document | None]]]:
    """Documents each deposit replaces (relatesTo replaces), found by id or uniqueId in this record only;
    None for a reference that names none (the policy answers it as a document one may not read)."""
    wanted = {ref for d in submission.documents for ref in d.replaces}
    if not wanted:
        return {}
    ids = [int(ref) for ref in wanted if is_row_id(ref)]
    by_key = Document.unique_id.in_(sorted(wanted))
    rows = session.scalars(select(Document).where(
        Document.patient_id == patient_id, Document.deleted_at.is_(None),
        (by_key | Document.id.in_(ids)) if ids else by_key)).all()
    found: dict[str, Document] = {}
    for doc in rows:
        found[doc.unique_id] = doc
        found[str(doc.id)] = doc
    return {deposit.unique_id: [(ref, found.get(ref)) for ref in deposit.replaces]
            for deposit in submission.documents if deposit.replaces}


# --- ITI-65 from the insurer (backend/insurer, docs/insurer-feed.md) ---------------------------------------

def _insurer_meta(insurer: Insurer, deposit: DocumentDeposit, now: dt.datetime) -> documents.DocumentMeta:
    codes = [deposit.confidentiality] + (["MASQUE_PS"] if deposit.masked else [])
    return documents.DocumentMeta(
        title=deposit.title or documents.type_label(deposit.type_code) or "Données de remboursement",
        mime_type=deposit.mime_type, unique_id=deposit.unique_id, class_code=deposit.class_code or "60",
        type_code=deposit.type_code, type_system=deposit.type_system, format_code=deposit.format_code,
        category="REMB", author_name=insurer.name, author_organisation=insurer.name,
        service_date=deposit.service_date, submitted_at=now, confidentiality=documents.flags(codes))


def _reimbursement_data_only(submission: Submission) -> None:
    """What the insurer sends must be reimbursement data the patient sees (422 otherwise, nothing stored)."""
    for deposit in submission.documents:
        if not insurer_may_deposit(deposit.type_code, deposit.class_code):
            raise DomainError("insurer_deposit_type", 422, entry=deposit.entry[:80])
        if deposit.invisible_patient or deposit.invisible_legal_representatives:
            raise DomainError("insurer_deposit_flags", 422, entry=deposit.entry[:80])


# --- ITI-67 ------------------------------------------------------------------------------------------------

Token = tuple[str | None, str]    # (system as stored — an OID —, or None: any system; code)
Bound = tuple[str, dt.datetime]   # ("ge"|"lt", instant)


@dataclass
class SearchFilters:
    types: list[Token] = field(default_factory=list)
    classes: list[Token] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)          # current | superseded | entered-in-error
    date: list[Bound] = field(default_factory=list)            # DocumentReference.date (received)
    period: list[Bound] = field(default_factory=list)          # the date of care
    creation: list[Bound] = field(default_factory=list)        # attachment.creation
    formats: list[Token] = field(default_factory=list)
    facilities: list[Token] = field(default_factory=list)
    settings: list[Token] = field(default_factory=list)
    events: list[Token] = field(default_factory=list)
    security_labels: list[Token] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)       # masterIdentifier (uniqueId) or entryUUID
    author_given: list[str] = field(default_factory=list)
    author_family: list[str] = field(default_factory=list)


def _compare(column: Any, op: str, value: dt.datetime) -> Any:
    return column >= value if op == "ge" else column < value


def _tokens(code: Any, system: Any, tokens: list[Token]) -> Any:
    """token search: ``system|code`` that system only, ``code`` any system."""
    return or_(*[and_(code == value, system == wanted) if wanted else code == value for wanted, value in tokens])


def _word_prefix(column: Any, value: str) -> Any:
    """FHIR string search (starts with, any case) on one word of a name written "Given Family"."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(column.ilike(f"{escaped}%", escape="\\"), column.ilike(f"% {escaped}%", escape="\\"))


SECURITY_FLAGS = {"INVISIBLE_PATIENT": and_(Document.invisible_patient.is_(True), Document.released_at.is_(None)),
                  "INVISIBLE_REPRESENTANTS_LEGAUX": Document.invisible_legal_representatives.is_(True),
                  "MASQUE_PS": Document.masked.is_(True)}


def _security_label(tokens: list[Token]) -> Any:
    """N/R/V and the DMP's flags are what the document is now; any other label, what was received."""
    options = []
    for _system, code in tokens:
        if code in ("N", "R", "V"):
            options.append(Document.confidentiality == code)
        elif code in SECURITY_FLAGS:
            options.append(SECURITY_FLAGS[code])
        else:
            options.append(exists().where(DocumentCode.document_id == Document.id,
                                          DocumentCode.kind == "security_label", DocumentCode.code == code))
    return or_(*options)


def document_conditions(filters: SearchFilters) -> list[Any]:
    conditions: list[Any] = []
    if filters.types:
        conditions.append(_tokens(Document.type_code, Document.type_system, filters.types))
    if filters.classes:
        conditions.append(_tokens(Document.class_code, Document.class_system, filters.classes))
    if filters.formats:
        conditions.append(_tokens(Document.format_code, Document.format_system, filters.formats))
    if filters.facilities:
        conditions.append(_tokens(Document.facility_type_code, Document.facility_type_system, filters.facilities))
    if filters.settings:
        conditions.append(_tokens(Document.practice_setting_code, Document.practice_setting_system, filters.settings))
    if filters.events:
        conditions.append(exists().where(DocumentCode.document_id == Document.id, DocumentCode.kind == "event",
                                         _tokens(DocumentCode.code, DocumentCode.system, filters.events)))
    if filters.security_labels:
        conditions.append(_security_label(filters.security_labels))
    if filters.identifiers:
        conditions.append(or_(Document.unique_id.in_(filters.identifiers),
                              Document.entry_uuid.in_([i.lower() for i in filters.identifiers])))
    for name in filters.author_given + filters.author_family:
        conditions.append(_word_prefix(Document.author_name, name))
    statuses = set(filters.statuses)
    if statuses and not statuses & {"current", "superseded"}:
        conditions.append(Document.id.is_(None))   # entered-in-error: deleted documents are never shown
    elif statuses & {"current", "superseded"} == {"current"}:
        conditions.append(Document.replaced_by_id.is_(None))
    elif statuses & {"current", "superseded"} == {"superseded"}:
        conditions.append(Document.replaced_by_id.is_not(None))
    for column, bounds in ((Document.submitted_at, filters.date), (Document.service_date, filters.period),
                           (Document.creation_time, filters.creation)):
        for op, value in bounds:
            conditions.append(_compare(column, op, value))
    return conditions


# What ``resources.document_reference`` reads of a document.
LISTED_COLUMNS = (Document.id, Document.unique_id, Document.replaced_by_id, Document.submitted_at, Document.title,
                  Document.confidentiality, Document.invisible_patient, Document.released_at,
                  Document.invisible_legal_representatives, Document.masked, Document.mime_type, Document.size,
                  Document.type_code, Document.type_system, Document.class_code, Document.format_code,
                  Document.service_date, Document.author_rpps, Document.author_name, Document.author_organisation,
                  Document.author_profession, Document.author_specialty, Document.type_display,
                  Document.class_system, Document.class_display, Document.format_system, Document.format_display,
                  Document.facility_type_system, Document.facility_type_code, Document.facility_type_display,
                  Document.practice_setting_system, Document.practice_setting_code,
                  Document.practice_setting_display, Document.language, Document.creation_time,
                  Document.service_end, Document.description, Document.sha1, Document.entry_uuid,
                  Document.source_patient_info)


def search(session: Session, scope: Scope, filters: SearchFilters, *, count: int, before_id: int | None = None,
           ) -> tuple[list[Any], int, Select[Any]]:
    """One page (newest first), the total, and the page as a query of its ids (for :func:`extras`): two
    queries whatever the size of the record."""
    conditions = [scope.document_filter(), *document_conditions(filters)]
    total = session.scalar(select(func.count(Document.id)).where(*conditions)) or 0
    if before_id is not None:
        conditions.append(Document.id < before_id)
    # the columns a DocumentReference shows, as rows: no ORM object per document on the hot path
    docs = list(session.execute(select(*LISTED_COLUMNS).where(*conditions).order_by(Document.id.desc()).limit(count)))
    return docs, int(total), select(Document.id).where(*conditions).order_by(Document.id.desc()).limit(count)


REPLACES = "replaces"  # the kind of the extras' rows that name a replaced document (not a DocumentCode kind)


def extras(session: Session, document_ids: list[int], *,
           page: Select[Any] | None = None) -> dict[int, DocumentExtras]:
    """The event codes, security labels as received and replaced documents of a page: one query (the codes,
    then the replaced documents' ids, ``UNION ALL``). Given the page's own query (``page``), it selects
    through it rather than through a list of its ids, so it is the same statement whatever the page's size
    (one prepared statement, as the raw floor runs)."""
    found: dict[int, DocumentExtras] = {i: DocumentExtras() for i in document_ids}
    if not document_ids:
        return found
    among: Any = page if page is not None else document_ids
    codes = (select(DocumentCode.document_id, DocumentCode.kind, DocumentCode.position, DocumentCode.system,
                    DocumentCode.code, DocumentCode.display)
             .where(DocumentCode.document_id.in_(among)))
    replaced = (select(Document.replaced_by_id, literal(REPLACES), Document.id, null(), null(), null())
                .where(Document.replaced_by_id.in_(among)))
    both = union_all(codes, replaced).subquery()
    rows = session.execute(select(both).order_by(both.c.document_id, both.c.kind, both.c.position))
    for document_id, kind, position, system, code, display in rows:
        if kind == REPLACES:
            found[document_id].replaces.append(position)   # the replaced document's id, in id order
        elif kind == "event":
            found[document_id].events.append(documents.Coding(system, code, display))
        else:
            found[document_id].security_labels.append(documents.Coding(system, code, display))
    return found


# --- ITI-66 ------------------------------------------------------------------------------------------------

@dataclass
class ListFilters:
    statuses: list[str] = field(default_factory=list)
    date: list[Bound] = field(default_factory=list)            # List.date (submissionTime)
    designations: list[Token] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)       # uniqueId or entryUUID
    source_ids: list[str] = field(default_factory=list)
    source_given: list[str] = field(default_factory=list)
    source_family: list[str] = field(default_factory=list)


def _visible_entries(scope: Scope) -> Any:
    return (select(SubmissionSetEntry.submission_set_id, Document.id)
            .join(Document, Document.id == SubmissionSetEntry.document_id).where(scope.document_filter()))


def search_lists(session: Session, scope: Scope, filters: ListFilters, *, count: int,
                 before_id: int | None = None) -> tuple[list[SubmissionSet], int, dict[int, list[int]]]:
    """The patient's submission sets holding at least one document the scope lets the reader see, newest
    first, with those documents only: three queries whatever the size of the record."""
    visible = _visible_entries(scope).subquery()
    conditions: list[Any] = [SubmissionSet.patient_id == scope.patient_id,
                             exists().where(visible.c.submission_set_id == SubmissionSet.id)]
    if filters.statuses and "current" not in filters.statuses:
        conditions.append(SubmissionSet.id.is_(None))   # a submission set is never superseded here
    for op, value in filters.date:
        conditions.append(_compare(SubmissionSet.submitted_at, op, value))
    if filters.designations:
        conditions.append(_tokens(SubmissionSet.designation_code, SubmissionSet.designation_system,
                                  filters.designations))
    if filters.identifiers:
        conditions.append(or_(SubmissionSet.unique_id.in_(filters.identifiers),
                              SubmissionSet.entry_uuid.in_([i.lower() for i in filters.identifiers])))
    if filters.source_ids:
        conditions.append(SubmissionSet.source_id.in_(filters.source_ids))
    for name in filters.source_given:
        conditions.append(or_(_word_prefix(SubmissionSet.author_given, name),
                              and_(SubmissionSet.author_given.is_(None), _word_prefix(SubmissionSet.author_name, name))))
    for name in filters.source_family:
        conditions.append(or_(_word_prefix(SubmissionSet.author_family, name),
                              and_(SubmissionSet.author_family.is_(None),
                                   _word_prefix(SubmissionSet.author_name, name))))
    total = session.scalar(select(func.count(SubmissionSet.id)).where(*conditions)) or 0
    if before_id is not None:
        conditions.append(SubmissionSet.id < before_id)
    rows = list(session.scalars(select(SubmissionSet).where(*conditions).order_by(SubmissionSet.id.desc())
                                .limit(count)))
    return rows, int(total), list_entries(session, scope, [r.id for r in rows])


def list_entries(session: Session, scope: Scope, set_ids: list[int]) -> dict[int, list[int]]:
    """The documents of these submission sets the scope lets the reader see, in the order they came."""
    entries: dict[int, list[int]] = {i: [] for i in set_ids}
    if set_ids:
        for set_id, doc_id in session.execute(_visible_entries(scope).where(
                SubmissionSetEntry.submission_set_id.in_(set_ids)).order_by(Document.id)):
            entries[set_id].append(doc_id)
    return entries
