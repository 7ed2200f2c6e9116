"""Reading the record through the policy, with its trace: the function every read path calls.

``authorize`` asks :func:`backend.records.policy.decide`, writes the access to the audit trail in the
caller's transaction (granted or refused, with the purpose and the emergency reason), and for a declared
emergency records a time-limited ``EmergencyAccess`` and notifies the patient (who cannot switch that
notification off). A refusal raises :class:`AccessRefused` after the trace is written (``persist``).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.audit import service as audit
from backend.db import utcnow
from backend.errors import DomainError
from backend.notifications.service import notify
from backend.records.models import EmergencyAccess, Record
from backend.records.policy import EMERGENCY_PURPOSES, Actor, Decision, Purpose, Scope, decide, settings_of


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
              audit_owner: bool = False) -> Scope:
    """Decide, trace, and return the scope; raise AccessRefused (403) with the trace kept.

    The patient's own reads are not traced unless ``audit_owner`` (their history shows what others did).
    """
    now = now or utcnow()
    decision = decide(session, actor, patient_id, purpose=purpose, reason=reason, matrix=matrix, now=now)
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
