"""The professional API's domain logic (IHE MHD): deposit a submission, find documents within a scope,
read a document's bytes. Takes a Session, only flushes.

Storing goes through ``records.documents.store_document`` (hashing, encryption at rest, category,
visibility flags, "mask new documents", notification and audit are decided there once). Reading is
decided by ``records.access.authorize``; this module only applies the scope it returns
(``document_filter`` for listings). Depositing needs no consent (domain.md): the record must exist and
the account be neither opposed nor closed.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from backend.accounts.models import AccountState, Patient
from backend.db import utcnow
from backend.errors import DomainError
from backend.fhir.resources import DocumentDeposit, Submission
from backend.professionals.models import Professional
from backend.records import documents
from backend.records.crypto import Vault
from backend.records.models import Document, Record
from backend.records.policy import Actor, Scope


ROW_ID_MAX = 2**31 - 1  # INTEGER primary keys: a larger id cannot exist (and PostgreSQL refuses to compare it)


def is_row_id(raw: str) -> bool:
    return raw.isdigit() and len(raw) <= 10 and 0 < int(raw) <= ROW_ID_MAX


_PATIENT_BY_INS = select(Patient).where(Patient.nir == bindparam("nir"), Patient.ins_oid == bindparam("ins_oid"))


def find_patient(session: Session, ins_oid: str, nir: str) -> Patient | None:
    """The patient whose INS is (OID, NIR): a test identity (…4.10) is not a production one (…4.8)."""
    return session.scalar(_PATIENT_BY_INS, {"nir": nir, "ins_oid": ins_oid})


def recipient(session: Session, ins_oid: str, nir: str) -> Patient:
    """The patient a professional may deposit into: a record exists (pre-created accounts have one), the
    account is neither opposed (no record) nor closed. One answer for the three refusals."""
    row = session.execute(select(Patient, Record.id).join(Record, Record.patient_id == Patient.id)
                          .where(Patient.nir == nir, Patient.ins_oid == ins_oid)).one_or_none()
    if row is None or row[0].state in (AccountState.OPPOSED, AccountState.CLOSED):
        raise DomainError("fhir_unknown_patient", 422)
    return row[0]


def _meta(deposit: DocumentDeposit, author_pro: Professional | None, now: dt.datetime) -> documents.DocumentMeta:
    """The document's metadata; what the document says of its author wins over what we know of them."""
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
        author_professional_id=author_pro.id if author_pro else None,
        author_rpps=pick(named and named.rpps, author_pro and author_pro.rpps),
        author_name=pick(named and named.name, author_pro and author_pro.display_name),
        author_profession=pick(named and named.profession, author_pro and author_pro.profession_code),
        author_specialty=pick(named and named.specialty, author_pro and author_pro.specialty_code),
        author_organisation=pick(named and named.organisation, author_pro and author_pro.organisation),
        service_date=deposit.service_date, submitted_at=now, confidentiality=documents.flags(codes))


def provide(session: Session, vault: Vault, pro: Professional, submission: Submission,
            now: dt.datetime | None = None) -> list[Document]:
    """ITI-65: store every document of the submission, or none (the caller commits once, or rolls back).

    A document sent again with the same uniqueId and the same bytes is the stored one (a retry); other
    bytes under a known uniqueId are refused (409) by ``store_document``."""
    now = now or utcnow()
    holder = recipient(session, submission.patient_oid, submission.patient_nir)
    replaced = _replaced(session, holder.id, submission)
    # the author is the depositing professional unless the document names someone else (by RPPS)
    named = {d.author.rpps for d in submission.documents if d.author and d.author.rpps} - {pro.rpps}
    known = {p.rpps: p for p in session.scalars(select(Professional).where(Professional.rpps.in_(named)))} \
        if named else {}
    known[pro.rpps] = pro
    actor = Actor.of_professional(pro)
    stored = []
    for deposit in submission.documents:
        author_rpps = deposit.author.rpps if deposit.author and deposit.author.rpps else pro.rpps
        result = documents.store_document(session, vault, holder.id, deposit.content,
                                          _meta(deposit, known.get(author_rpps), now),
                                          source="professional", actor=actor, now=now)
        for old in replaced.get(deposit.unique_id, []):
            if old.id != result.document.id:
                old.replaced_by_id = result.document.id
        stored.append(result.document)
    session.flush()
    return stored


def _replaced(session: Session, patient_id: int, submission: Submission) -> dict[str, list[Document]]:
    """Documents each deposit replaces (relatesTo replaces), found by id or uniqueId in this record only."""
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
    out: dict[str, list[Document]] = {}
    for deposit in submission.documents:
        for ref in deposit.replaces:
            if ref not in found:
                raise DomainError("fhir_mhd_rule", 422, reason=f"{deposit.entry} : le document remplacé est inconnu")
            out.setdefault(deposit.unique_id, []).append(found[ref])
    return out


# --- ITI-67 ------------------------------------------------------------------------------------------------

@dataclass
class SearchFilters:
    types: list[tuple[str | None, str]]          # (system OID or None, code)
    classes: list[str]
    statuses: list[str]                          # current | superseded | entered-in-error
    date: list[tuple[str, dt.datetime]]          # ("ge"|"lt", instant) on DocumentReference.date (received)
    period: list[tuple[str, dt.datetime]]        # ("ge"|"lt", instant) on the date of care


def _compare(column: Any, op: str, value: dt.datetime) -> Any:
    return column >= value if op == "ge" else column < value


# What ``resources.document_reference`` reads of a document.
LISTED_COLUMNS = (Document.id, Document.unique_id, Document.replaced_by_id, Document.submitted_at, Document.title,
                  Document.confidentiality, Document.invisible_patient, Document.released_at,
                  Document.invisible_legal_representatives, Document.masked, Document.mime_type, Document.size,
                  Document.type_code, Document.type_system, Document.class_code, Document.format_code,
                  Document.service_date, Document.author_rpps, Document.author_name, Document.author_organisation,
                  Document.author_profession, Document.author_specialty)


def search(session: Session, scope: Scope, filters: SearchFilters, *, count: int, before_id: int | None = None,
           ) -> tuple[list[Any], int]:
    """One page (newest first) and the total: two queries whatever the size of the record."""
    conditions = [scope.document_filter()]
    if filters.types:
        conditions.append(Document.type_code.in_(sorted({code for _, code in filters.types})))
    if filters.classes:
        conditions.append(Document.class_code.in_(sorted(set(filters.classes))))
    statuses = set(filters.statuses)
    if statuses and not statuses & {"current", "superseded"}:
        conditions.append(Document.id.is_(None))   # entered-in-error: deleted documents are never shown
    elif statuses & {"current", "superseded"} == {"current"}:
        conditions.append(Document.replaced_by_id.is_(None))
    elif statuses & {"current", "superseded"} == {"superseded"}:
        conditions.append(Document.replaced_by_id.is_not(None))
    for op, value in filters.date:
        conditions.append(_compare(Document.submitted_at, op, value))
    for op, value in filters.period:
        conditions.append(_compare(Document.service_date, op, value))
    total = session.scalar(select(func.count(Document.id)).where(*conditions)) or 0
    if before_id is not None:
        conditions.append(Document.id < before_id)
    # the columns a DocumentReference shows, as rows: no ORM object per document on the hot path
    docs = list(session.execute(select(*LISTED_COLUMNS).where(*conditions).order_by(Document.id.desc()).limit(count)))
    return docs, int(total)
