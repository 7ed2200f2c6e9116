"""Reading and writing the record through the policy, with its trace: the functions every path calls.

``authorize`` asks :func:`backend.records.access.policy.decide`, writes the access to the audit trail in the
caller's transaction (granted or refused, with the purpose and the emergency reason), and for a declared
emergency records a time-limited ``EmergencyAccess`` and notifies the patient (who cannot switch that
notification off). A refusal raises :class:`AccessRefused` after the trace is written (``persist``).
``authorize_write`` is its counterpart for writes (``policy.decide_write``): refusals traced, then 403.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.audit import service as audit
from backend.db import ROW_ID_MAX, utcnow
from backend.errors import DomainError, Forbidden, NotFound
from backend.notifications.service import notify
from backend.records.documents.models import Document
from backend.records.access.models import EmergencyAccess
from backend.records.models import Record
from backend.records.access.policy import (EMERGENCY_PURPOSES, NO_TARGET, Action, Actor, Area, Decision, Purpose,
                                           Scope, decide, decide_write, refusal_code, settings_of)


class AccessRefused(DomainError):
    status = 403

    def __init__(self, decision: Decision) -> None:
        super().__init__(f"access_{decision.reason}", persist=True)
        self.decision = decision


def _actor_fields(actor: Actor) -> tuple[str, str]:
    if actor.kind == "professional" and actor.professional is not None:
        return "professional", actor.professional.rpps
    return actor.kind, str(actor.id)


def authorize(session: Session, actor: Actor, patient_id: int, action: str, *, purpose: Purpose = Purpose.TREAT,
              reason: str | None = None, details: dict[str, Any] | None = None,
              matrix: dict[str, dict[str, list[str]]] | None = None, now: dt.datetime | None = None,
              audit_owner: bool = False, area: Area = Area.DOCUMENTS) -> Scope:
    """Decide, trace, and return the scope; raise AccessRefused (403) with the trace kept.

    The patient's own reads are not traced unless ``audit_owner`` (their history shows what others did).
    """
    now = now or utcnow()
    decision = decide(session, actor, patient_id, purpose=purpose, reason=reason, matrix=matrix, now=now, area=area)
    return _traced(session, actor, patient_id, action, decision, purpose=purpose, reason=reason, details=details,
                   now=now, audit_owner=audit_owner)


def authorize_document(session: Session, actor: Actor, document_id: int | None, action: str, *,
                       patient_id: int | None = None, purpose: Purpose = Purpose.TREAT, reason: str | None = None,
                       details: dict[str, Any] | None = None, missing: DomainError | None = None,
                       conceal_refusal: bool = False, now: dt.datetime | None = None) -> Document:
    """One document, read under the record's decision: every single-document read goes through here.

    ``patient_id``: the record the reader is in (the app's chosen record, a service's patient); without it
    the document's own (a professional's read by id), and then its absence is answered before any decision.
    A document that does not exist, is another record's or lies outside the granted scope is ``missing``
    (404, ``document_not_found`` by default), the last traced as a refusal (``out_of_scope``); a refused
    decision is traced and raised (403), or answered as ``missing`` under ``conceal_refusal`` (a professional
    or a service learns nothing of documents they may not see). A granted read is traced like :func:`authorize`.
    """
    now = now or utcnow()
    missing = missing or NotFound("document_not_found")
    doc = _document_row(session, document_id)
    if patient_id is None:
        if doc is None:
            raise missing
        patient_id = doc.patient_id
    decision = decide(session, actor, patient_id, purpose=purpose, reason=reason, now=now)
    ours = doc is not None and doc.patient_id == patient_id
    trace = {"document_id": document_id, **({"category": doc.category} if ours else {}), **(details or {})}
    if decision.allowed:
        if not ours:
            raise missing
        assert doc is not None and decision.scope is not None
        if not decision.scope.permits(doc):
            actor_type, actor_id = _actor_fields(actor)
            audit.record(session, actor_type=actor_type, actor_id=actor_id, action="document.read.refused",
                         patient_id=patient_id, purpose=decision.purpose.value,
                         details={"decision": "out_of_scope", **trace}, at=now)
            missing.persist = True
            raise missing
    try:
        _traced(session, actor, patient_id, action, decision, purpose=purpose, reason=reason, details=trace, now=now)
    except AccessRefused:
        if not conceal_refusal:
            raise
        missing.persist = True
        raise missing from None
    assert doc is not None
    return doc


def _document_row(session: Session, document_id: int | None) -> Document | None:
    """The row of an identifier (none for one that cannot be a row's: out of the column's range)."""
    return session.get(Document, document_id) if document_id is not None and 0 < document_id <= ROW_ID_MAX else None


def _traced(session: Session, actor: Actor, patient_id: int, action: str, decision: Decision, *, purpose: Purpose,
            reason: str | None, details: dict[str, Any] | None, now: dt.datetime, audit_owner: bool = False) -> Scope:
    """A decision made: written to the trail (granted or refused), an emergency opened; a refusal raised."""
    actor_type, actor_id = _actor_fields(actor)
    trace = {"decision": decision.reason, **(details or {})}
    if decision.emergency:
        trace["emergency_reason"] = decision.details.get("reason")
    elif purpose in EMERGENCY_PURPOSES and reason and reason.strip():
        trace["emergency_reason"] = reason.strip()[:500]  # a refused emergency shows what was claimed
    if not decision.allowed:
        if decision.reason != "no_record":
            audit.record(session, actor_type=actor_type, actor_id=actor_id, action=f"{action}.refused",
                         patient_id=patient_id, purpose=decision.purpose.value, details=trace, at=now)
        raise AccessRefused(decision)
    if actor.kind != "patient" or audit_owner:
        audit.record(session, actor_type=actor_type, actor_id=actor_id, action=action, patient_id=patient_id,
                     purpose=decision.purpose.value, details=trace, at=now)
    if decision.emergency and purpose in EMERGENCY_PURPOSES and actor.professional is not None:
        _open_emergency(session, actor, patient_id, decision, now)
    elif actor.kind == "professional":
        notify(session, patient_id, "professional_access", ref_type="access", ref_id=actor.id,
               dedupe_key=f"pro-access:{patient_id}:{actor.id}:{now.date().isoformat()}", now=now)
    assert decision.scope is not None
    return decision.scope


def _open_emergency(session: Session, actor: Actor, patient_id: int, decision: Decision, now: dt.datetime) -> None:
    assert actor.professional is not None
    running = session.scalar(select(EmergencyAccess).where(
        EmergencyAccess.patient_id == patient_id, EmergencyAccess.professional_id == actor.professional.id,
        EmergencyAccess.purpose == decision.purpose.value, EmergencyAccess.expires_at > now).limit(1))
    if running is not None:
        return
    access = EmergencyAccess(patient_id=patient_id, professional_id=actor.professional.id,
                             purpose=decision.purpose.value, reason=decision.details.get("reason", ""),
                             started_at=now, expires_at=now + settings_of(session).emergency_duration)
    session.add(access)
    session.flush()
    notify(session, patient_id, "emergency_access", ref_type="emergency_access", ref_id=access.id, now=now)
    # The médecin traitant is told too: a trace they can read through their own software (and the
    # patient sees it in the access history).
    mt = session.scalar(select(Record.medecin_traitant_id).where(Record.patient_id == patient_id))
    if mt is not None and mt != actor.professional.id:
        audit.record(session, actor_type="system", actor_id=None, action="emergency.medecin_traitant_informed",
                     patient_id=patient_id, purpose=decision.purpose.value,
                     details={"medecin_traitant_id": mt, "emergency_access_id": access.id,
                              "professional_rpps": actor.professional.rpps}, at=now)


class WriteRefused(AccessRefused, Forbidden):
    """A write the policy refused: 403 with the rule's code; the refusal's trace is kept (``persist``)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision)
        self.code = refusal_code(decision)


def authorize_write(session: Session, actor: Actor, patient_id: int, action: Action, *, target: Any = NO_TARGET,
                    details: dict[str, Any] | None = None, concealed: DomainError | None = None,
                    trace: str | None = None, now: dt.datetime | None = None) -> Decision:
    """Decide a write; a refusal is traced (``<action>.refused``, with the reason) in the caller's transaction
    and raised as :class:`WriteRefused` (403). Call it before writing anything: the error handler commits
    a refusal's trace, so a write flushed before it would be kept too.

    ``concealed``: the caller's answer for a record it may not learn about (none, opposed or closed), the
    same as for an unknown patient; raised in place of the refusal, the trace kept. A granted write is
    traced by the service that makes it (``document.stored``, ``agenda.appointment_created``…), or here
    under ``trace`` when that service does not name the actor (a connected service's measure).
    """
    now = now or utcnow()
    decision = decide_write(session, actor, patient_id, action, target=target, now=now)
    if decision.allowed:
        if trace:
            actor_type, actor_id = _actor_fields(actor)
            audit.record(session, actor_type=actor_type, actor_id=actor_id, action=trace, patient_id=patient_id,
                         details={"decision": decision.reason, **(details or {})}, at=now)
        return decision
    if decision.reason != "no_record":
        actor_type, actor_id = _actor_fields(actor)
        audit.record(session, actor_type=actor_type, actor_id=actor_id, action=f"{action.value}.refused",
                     patient_id=patient_id, details={"decision": decision.reason, **(details or {})}, at=now)
    if concealed is not None and decision.reason in ("no_record", "account_closed"):
        concealed.persist = True
        raise concealed
    raise WriteRefused(decision)
