"""Advance directives in dated versions (text or a deposited document) and the organ-donation
position (every statement kept, the newest in force).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from backend.db import utcnow
from backend.errors import DomainError, NotFound
from backend.records.profile import kinds as pk
from backend.records.crypto import Vault
from backend.records.documents.models import Document
from backend.records.models import Record
from backend.records.access.policy import Scope
from backend.records.profile import common
from backend.records.profile.common import PATIENT, Author
from backend.records.profile.models import AdvanceDirective, OrganDonation


# --- advance directives and organ donation ------------------------------------------------------------

def directive_context(directive_id: int) -> str:
    return f"profile:directive:{directive_id}"


def _check_context(context: str) -> None:
    if context not in pk.DIRECTIVE_CONTEXTS:
        raise DomainError("directive_unknown_context", 422, context=str(context)[:40],
                          contexts=", ".join(pk.DIRECTIVE_CONTEXTS))


def directive_document(scope: Scope | None) -> Any:
    """The document a directive version points to, if the reader may see it (a minor's legal representative
    never sees one under the minor's secrecy; nobody a deleted one): the join condition of its title."""
    on = Document.id == AdvanceDirective.document_id
    return and_(on, scope.document_filter()) if scope is not None else on


def directive_view(d: AdvanceDirective, text: str | None, document_title: str | None) -> dict[str, Any]:
    return {"id": d.id, "context": d.context, "version": d.version, "text": text,
            "document": {"id": d.document_id, "title": document_title} if d.document_id and document_title is not None
            else None,
            "withdrawn": d.withdrawn, "created_at": d.created_at, "source": d.source, "author": common.author_view(d)}


def open_directive(vault: Vault, d: AdvanceDirective) -> str | None:
    return vault.open_text(d.patient_id, d.text, directive_context(d.id)) if d.text else None


def add_directive_version(session: Session, vault: Vault, scope: Scope, context: str, *, text: str | None = None,
                          document_id: int | None = None, withdrawn: bool = False, author: Author = PATIENT,
                          source: str = "patient", now: dt.datetime | None = None) -> dict[str, Any]:
    """A new dated version of the directives for a context (text and/or a document of the record the
    scope can see). Earlier versions are kept as they were. ``withdrawn`` records a withdrawal."""
    _check_context(context)
    now = now or utcnow()
    patient_id = scope.patient_id
    text = text.strip() if isinstance(text, str) and text.strip() else None
    problems = pk.Problems()
    if text is not None and len(text) > pk.DIRECTIVE_MAX_LENGTH:
        problems.add("text", "profile_too_long", max=pk.DIRECTIVE_MAX_LENGTH)
    problems.raise_if_any()
    if withdrawn and (text or document_id):
        raise DomainError("directive_withdrawn_with_content", 422)
    if not withdrawn and not text and document_id is None:
        raise DomainError("directive_empty", 422)
    title = None
    if document_id is not None:
        title = session.scalar(select(Document.title).where(Document.id == document_id, scope.document_filter()))
        if title is None:
            raise NotFound("directive_document_not_found")
    # Serialise versions of one record (PostgreSQL row lock; SQLite has one writer anyway).
    session.scalar(select(Record.id).where(Record.patient_id == patient_id).with_for_update())
    last = session.scalars(select(AdvanceDirective).where(
        AdvanceDirective.patient_id == patient_id, AdvanceDirective.context == context)
        .order_by(AdvanceDirective.version.desc()).limit(1)).first()
    if withdrawn and (last is None or last.withdrawn):
        raise DomainError("directive_nothing_to_withdraw", 409)
    d = AdvanceDirective(patient_id=patient_id, context=context, version=(last.version + 1) if last else 1,
                         document_id=document_id, withdrawn=withdrawn, created_at=now)
    common.stamp(d, author, source)
    session.add(d)
    session.flush()
    if text:
        d.text = vault.seal_text(patient_id, text, directive_context(d.id))
    common.trace(session, author, source, patient_id, "profile.directive_version_added", now, context=context,
                 version=d.version, directive_id=d.id, document_id=document_id)
    return directive_view(d, text, title)


def current_directives(session: Session, vault: Vault, patient_id: int, *,
                       scope: Scope | None = None) -> dict[str, Any]:
    """The version in force per context (or None) and how many versions exist; the document of each only if
    ``scope`` lets its reader see it. One query."""
    latest = (select(AdvanceDirective.context, func.max(AdvanceDirective.version).label("version"),
                     func.count().label("versions"))
              .where(AdvanceDirective.patient_id == patient_id).group_by(AdvanceDirective.context).subquery())
    rows = session.execute(
        select(AdvanceDirective, Document.title, latest.c.versions)
        .join(latest, and_(latest.c.context == AdvanceDirective.context, latest.c.version == AdvanceDirective.version))
        .outerjoin(Document, directive_document(scope))
        .where(AdvanceDirective.patient_id == patient_id)).all()
    out: dict[str, Any] = {c: {"current": None, "versions": 0} for c in pk.DIRECTIVE_CONTEXTS}
    for d, title, versions in rows:
        out[d.context] = {"current": directive_view(d, open_directive(vault, d), title), "versions": versions}
    return out


def directive_versions(session: Session, vault: Vault, patient_id: int, context: str, *, limit: int,
                       after_version: int | None = None,
                       scope: Scope | None = None) -> tuple[list[dict[str, Any]], bool]:
    """Every version of a context, newest first."""
    _check_context(context)
    query = (select(AdvanceDirective, Document.title).outerjoin(Document, directive_document(scope))
             .where(AdvanceDirective.patient_id == patient_id, AdvanceDirective.context == context))
    if after_version is not None:
        query = query.where(AdvanceDirective.version < after_version)
    rows = session.execute(query.order_by(AdvanceDirective.version.desc()).limit(limit + 1)).all()
    return [directive_view(d, open_directive(vault, d), title) for d, title in rows[:limit]], len(rows) > limit


def organ_donation_context(row_id: int) -> str:
    return f"profile:organ_donation:{row_id}"


def organ_donation_view(row: OrganDonation, fields: dict[str, Any]) -> dict[str, Any]:
    return {"id": row.id, "position": fields.get("position"), "informed_at": fields.get("informed_at"),
            "comment": fields.get("comment"), "created_at": row.created_at, "source": row.source,
            "author": common.author_view(row)}


def set_organ_donation(session: Session, vault: Vault, patient_id: int, data: Any, *, author: Author = PATIENT,
                       source: str = "patient", now: dt.datetime | None = None) -> dict[str, Any]:
    """Record the patient's stated position and when they were informed (a new row: the history is kept)."""
    now = now or utcnow()
    problems = pk.Problems()
    if not isinstance(data, dict):
        problems.add(None, "profile_not_an_object")
        problems.raise_if_any()
    for name in data:
        if name not in ("position", "informed_at", "comment"):
            problems.add(name, "profile_unknown_field")
    position = data.get("position")
    if position not in pk.ORGAN_DONATION_POSITIONS:
        problems.add("position", "profile_required" if position is None else "profile_invalid_choice",
                     choices=", ".join(pk.ORGAN_DONATION_POSITIONS))
    fields: dict[str, Any] = {"position": position}
    informed = data.get("informed_at")
    if informed is not None:
        if not isinstance(informed, str) or len(informed) != 10 or pk.date_bounds(informed) is None:
            problems.add("informed_at", "profile_invalid_date")
        else:
            day = dt.date.fromisoformat(informed)
            birth = common.birth_date(session, patient_id)
            if day > common.today(now):
                problems.add("informed_at", "profile_future_date")
            elif birth is not None and day < birth:
                problems.add("informed_at", "profile_date_before_birth")
            fields["informed_at"] = informed
    comment = data.get("comment")
    if comment is not None:
        if not isinstance(comment, str) or len(comment) > 1000:
            problems.add("comment", "profile_too_long", max=1000)
        elif comment.strip():
            fields["comment"] = comment.strip()
    problems.raise_if_any()
    row = OrganDonation(patient_id=patient_id, data="", created_at=now)
    common.stamp(row, author, source)
    session.add(row)
    session.flush()
    row.data = common.seal(vault, patient_id, fields, organ_donation_context(row.id))
    common.trace(session, author, source, patient_id, "profile.organ_donation_stated", now, organ_donation_id=row.id)
    return organ_donation_view(row, fields)


def organ_donation_history(session: Session, vault: Vault, patient_id: int, *, limit: int,
                           after_id: int | None = None) -> tuple[list[dict[str, Any]], bool]:
    query = select(OrganDonation).where(OrganDonation.patient_id == patient_id)
    if after_id is not None:
        query = query.where(OrganDonation.id < after_id)
    rows = session.scalars(query.order_by(OrganDonation.id.desc()).limit(limit + 1)).all()
    return [organ_donation_view(r, common.open_sealed(vault, patient_id, r.data, organ_donation_context(r.id)))
            for r in rows[:limit]], len(rows) > limit


def current_organ_donation(session: Session, vault: Vault, patient_id: int) -> dict[str, Any] | None:
    row = session.scalars(select(OrganDonation).where(OrganDonation.patient_id == patient_id)
                          .order_by(OrganDonation.id.desc()).limit(1)).first()
    if row is None:
        return None
    return organ_donation_view(row, common.open_sealed(vault, patient_id, row.data, organ_donation_context(row.id)))
