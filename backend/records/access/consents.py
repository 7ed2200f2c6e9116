"""The patient's control over who sees their record: the professionals directory, authorisations
(consents), blocks by RPPS, the médecin traitant and the administrator professional, the three emergency
switches, the "what can this professional see" preview and the access page.

Pure domain logic: functions take a Session and only flush; every change is written to the audit trail
in the caller's transaction (the patient reads it in the access history). What a change means for an
access is decided in one place, :func:`backend.records.access.policy.decide`: nothing here is cached, so a
revocation or a block counts on the professional's next request.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, aliased

from backend.accounts.models import Patient
from backend.accounts.service import _require_password
from backend.audit import service as audit
from backend.db import utcnow
from backend.errors import DomainError, NotFound
from backend.professionals.models import Professional
from backend.professionals.service import normalize_rpps
from backend.professionals.service import profession_label as _profession_label
from backend.records.access import history
from backend.records.access.models import Block, Consent, EmergencyAccess
from backend.records.documents.models import Document
from backend.records.models import Record
from backend.records.access.authorize import authorize_write
from backend.records.access.policy import (Action, Actor, Purpose, Scope, decide, is_blocked, owner_scope,
                                           professional_scope, settings_of)
from backend.throttle import Throttle

SEARCH_MIN_LENGTH = 2
DOCTOR = "10"  # TRE_G15: médecin


# --- the directory ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Standing:
    """Where a professional stands with this patient (what the access page shows next to a name)."""

    authorised: bool = False
    blocked: bool = False
    medecin_traitant: bool = False
    administrator: bool = False


def search_professionals(session: Session, patient_id: int, query: str, *, limit: int, offset: int = 0,
                         profession: str | None = None) -> tuple[list[tuple[Professional, Standing]], bool]:
    """Professionals whose RPPS starts with the digits typed, or whose names contain every word typed.

    Returns one page (ordered by name) and whether there is more. Four queries whatever the page size.
    """
    text = " ".join((query or "").split())
    if len(text.replace(" ", "")) < SEARCH_MIN_LENGTH:
        raise DomainError("search_too_short", min_length=SEARCH_MIN_LENGTH)
    stmt = select(Professional)
    digits = text.replace(" ", "")
    if digits.isdigit():
        if len(digits) == 12 and digits.startswith("8"):  # the national identifier form '8' + RPPS
            digits = digits[1:]
        stmt = stmt.where(Professional.rpps.startswith(digits, autoescape=True))
    else:
        for word in re.split(r"[\s,]+", text):
            pattern = f"%{_escape_like(word)}%"
            stmt = stmt.where(or_(Professional.family_name.ilike(pattern, escape="\\"),
                                  Professional.given_name.ilike(pattern, escape="\\")))
    if profession:
        stmt = stmt.where(Professional.profession_code == profession)
    rows = list(session.scalars(stmt.order_by(Professional.family_name, Professional.given_name, Professional.id)
                                .offset(offset).limit(limit + 1)))
    page, more = rows[:limit], len(rows) > limit
    return [(pro, standing) for pro, standing in zip(page, standings(session, patient_id, page))], more


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def standings(session: Session, patient_id: int, pros: list[Professional]) -> list[Standing]:
    """The standing of each professional of a page: three queries, whatever the number."""
    if not pros:
        return []
    ids = [p.id for p in pros]
    authorised = set(session.scalars(select(Consent.professional_id).where(
        Consent.patient_id == patient_id, Consent.professional_id.in_(ids), Consent.revoked_at.is_(None))))
    blocked = set(session.scalars(select(Block.rpps).where(
        Block.patient_id == patient_id, Block.rpps.in_([p.rpps for p in pros]), Block.removed_at.is_(None))))
    mt, admin = session.execute(select(Record.medecin_traitant_id, Record.administrator_id)
                                .where(Record.patient_id == patient_id)).one()
    return [Standing(p.id in authorised, p.rpps in blocked, p.id == mt, p.id == admin) for p in pros]


def _professional(session: Session, professional_id: int) -> Professional:
    pro = session.get(Professional, professional_id)
    if pro is None:
        raise NotFound("professional_not_found")
    return pro


def _lock_record(session: Session, patient_id: int) -> Record:
    """Serialises the patient's access changes (a row lock on PostgreSQL; SQLite has one writer)."""
    return session.execute(select(Record).where(Record.patient_id == patient_id).with_for_update()).scalar_one()


def _trace(session: Session, patient_id: int, action: str, now: dt.datetime, by: Actor | None = None,
           **details: Any) -> None:
    if by is not None and by.kind == "professional" and by.professional is not None:
        actor_type, actor_id = "professional", by.professional.rpps
    else:
        actor_type, actor_id = "patient", str(patient_id)
    audit.record(session, actor_type=actor_type, actor_id=actor_id, action=action, patient_id=patient_id,
                 details=details or None, at=now)


# --- authorisations --------------------------------------------------------------------------------------

def grant(session: Session, patient_id: int, professional_id: int, *,
          now: dt.datetime | None = None) -> tuple[Consent, bool]:
    """Authorise a professional. Idempotent: returns the running consent and whether it is new."""
    now = now or utcnow()
    pro = _professional(session, professional_id)
    _lock_record(session, patient_id)
    if is_blocked(session, patient_id, pro.rpps):
        raise DomainError("professional_blocked", 409)
    running = session.scalar(select(Consent).where(Consent.patient_id == patient_id, Consent.professional_id == pro.id,
                                                   Consent.revoked_at.is_(None)).limit(1))
    if running is not None:
        return running, False
    consent = Consent(patient_id=patient_id, professional_id=pro.id, granted_at=now, granted_by="patient")
    session.add(consent)
    session.flush()
    _trace(session, patient_id, "access.consent_granted", now, professional_id=pro.id, rpps=pro.rpps)
    return consent, True


def revoke(session: Session, patient_id: int, professional_id: int, *, now: dt.datetime | None = None) -> None:
    """Withdraw an authorisation; the professional's next request is refused."""
    now = now or utcnow()
    _lock_record(session, patient_id)
    running = list(session.scalars(select(Consent).where(
        Consent.patient_id == patient_id, Consent.professional_id == professional_id, Consent.revoked_at.is_(None))))
    if not running:
        raise NotFound("consent_not_found")
    for consent in running:
        consent.revoked_at = now
    rpps = session.scalar(select(Professional.rpps).where(Professional.id == professional_id))
    session.flush()
    _trace(session, patient_id, "access.consent_revoked", now, professional_id=professional_id, rpps=rpps)


# --- blocks ----------------------------------------------------------------------------------------------

def block(session: Session, patient_id: int, rpps: str, *, by: Actor | None = None,
          now: dt.datetime | None = None) -> tuple[Block, bool]:
    """Block an RPPS (known to the directory or not). Beats everything, emergencies included.

    ``by`` is the patient (None) or the record's administrator professional, who may block others.
    """
    now = now or utcnow()
    rpps = normalize_rpps(rpps)
    _lock_record(session, patient_id)
    if by is not None and by.kind != "patient":
        # the administrator blocks others (policy: ACCESS_BLOCKS), never themselves, unless blocked
        authorize_write(session, by, patient_id, Action.ACCESS_BLOCKS, target=rpps, details={"rpps": rpps}, now=now)
    running = session.scalar(select(Block).where(Block.patient_id == patient_id, Block.rpps == rpps,
                                                 Block.removed_at.is_(None)).limit(1))
    if running is not None:
        return running, False
    entry = Block(patient_id=patient_id, rpps=rpps, created_at=now)
    session.add(entry)
    session.flush()
    _trace(session, patient_id, "access.blocked", now, by=by, rpps=rpps)
    return entry, True


def unblock(session: Session, patient_id: int, rpps: str, *, now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    rpps = normalize_rpps(rpps)
    _lock_record(session, patient_id)
    running = list(session.scalars(select(Block).where(Block.patient_id == patient_id, Block.rpps == rpps,
                                                       Block.removed_at.is_(None))))
    if not running:
        raise NotFound("block_not_found")
    for entry in running:
        entry.removed_at = now
    session.flush()
    _trace(session, patient_id, "access.unblocked", now, rpps=rpps)


# --- médecin traitant and administrator --------------------------------------------------------------------

def set_medecin_traitant(session: Session, patient_id: int, professional_id: int | None, *,
                         now: dt.datetime | None = None) -> Professional | None:
    """Name (or with None, remove) the médecin traitant, who has access by default. Must be a doctor."""
    return _set_role(session, patient_id, professional_id, "medecin_traitant", now or utcnow())


def set_administrator(session: Session, patient_id: int, professional_id: int | None, *,
                      now: dt.datetime | None = None) -> Professional | None:
    """Name (or with None, remove) the administrator professional: sees masked documents, may block."""
    return _set_role(session, patient_id, professional_id, "administrator", now or utcnow())


def _set_role(session: Session, patient_id: int, professional_id: int | None, role: str,
              now: dt.datetime) -> Professional | None:
    record = _lock_record(session, patient_id)
    column = f"{role}_id"
    current = getattr(record, column)
    if professional_id is None:
        if current is not None:
            setattr(record, column, None)
            session.flush()
            rpps = session.scalar(select(Professional.rpps).where(Professional.id == current))
            _trace(session, patient_id, f"access.{role}_removed", now, professional_id=current, rpps=rpps)
        return None
    pro = _professional(session, professional_id)
    if role == "medecin_traitant" and pro.profession_code != DOCTOR:
        raise DomainError("medecin_traitant_not_doctor")
    if is_blocked(session, patient_id, pro.rpps):
        raise DomainError("professional_blocked", 409)
    if current != pro.id:
        setattr(record, column, pro.id)
        session.flush()
        _trace(session, patient_id, f"access.{role}_set", now, professional_id=pro.id, rpps=pro.rpps)
    return pro


# --- emergency switches --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Switches:
    samu: bool
    btg: bool
    masked: bool


def switches(record: Record) -> Switches:
    return Switches(record.emergency_samu, record.emergency_btg, record.emergency_masked)


def set_emergency_switches(session: Session, throttle: Throttle, patient: Patient, password: str, *,
                           samu: bool | None = None, btg: bool | None = None, masked: bool | None = None,
                           now: dt.datetime | None = None, signed_in: Patient | None = None) -> Switches:
    """Change the emergency switches; only with the password re-entered (throttled, 403 wrong_password): the
    signed-in person's own (a legal representative's for a child's record)."""
    now = now or utcnow()
    wanted = {"samu": samu, "btg": btg, "masked": masked}
    if all(v is None for v in wanted.values()):
        raise DomainError("emergency_settings_empty")
    _require_password(throttle, signed_in or patient, password)
    record = _lock_record(session, patient.id)
    changed: dict[str, bool] = {}
    for name, value in wanted.items():
        column = f"emergency_{name}"
        if value is not None and getattr(record, column) != value:
            setattr(record, column, value)
            changed[name] = value
    session.flush()
    if changed:
        _trace(session, patient.id, "access.emergency_settings_changed", now, **changed)
    return switches(record)


# --- what can this professional see ------------------------------------------------------------------------

@dataclass
class Preview:
    professional: Professional
    standing: Standing
    allowed: bool                 # may they read the record now (normal care)?
    reason: str                   # the policy's reason (consent, medecin_traitant, blocked, no_consent…)
    basis: str                    # "current": what they see now; "if_authorised": what they would see
    categories: list[dict[str, Any]] = field(default_factory=list)  # [{category, visible, total}]

    @property
    def visible(self) -> int:
        return sum(c["visible"] for c in self.categories)

    @property
    def total(self) -> int:
        return sum(c["total"] for c in self.categories)


def preview(session: Session, patient_id: int, professional_id: int, *, now: dt.datetime | None = None) -> Preview:
    """Counts per category of the documents this professional may see, by the policy itself.

    Counted among what the patient sees (never unreleased INVISIBLE_PATIENT documents: the preview must
    not reveal them). A professional without authorisation is shown what they would see once authorised;
    a blocked one sees nothing. Bounded queries, no per-document work.
    """
    pro = _professional(session, professional_id)
    decision = decide(session, Actor.of_professional(pro), patient_id, purpose=Purpose.TREAT, now=now)
    scope: Scope | None
    if decision.allowed:
        scope, basis = decision.scope, "current"
    elif decision.reason == "no_consent":
        scope, basis = professional_scope(patient_id, pro, see_masked=False,
                                          matrix=settings_of(session).matrix), "if_authorised"
    else:
        scope, basis = None, "current"
    owner = owner_scope(patient_id)
    visible = case((scope.document_filter(), 1), else_=0) if scope is not None else 0
    rows = session.execute(select(Document.category, func.count(), func.coalesce(func.sum(visible), 0))
                           .where(owner.document_filter()).group_by(Document.category)
                           .order_by(Document.category)).all()
    return Preview(pro, standings(session, patient_id, [pro])[0], decision.allowed, decision.reason, basis,
                   [{"category": c, "total": int(total), "visible": int(seen)} for c, total, seen in rows])


# --- the access page ------------------------------------------------------------------------------------------

@dataclass
class AccessPage:
    switches: Switches
    medecin_traitant: Professional | None
    administrator: Professional | None
    authorised: list[tuple[Consent, Professional]]
    authorised_more: bool
    blocked: list[tuple[Block, Professional | None]]
    blocked_more: bool
    emergencies: list[tuple[EmergencyAccess, Professional]]
    recent: list[history.HistoryItem]
    blocked_rpps: set[str]        # among the professionals shown
    authorised_ids: set[int]      # among the professionals shown


def authorised_page(session: Session, patient_id: int, *, limit: int,
                    before_id: int | None = None) -> tuple[list[tuple[Consent, Professional]], bool]:
    stmt = (select(Consent, Professional).join(Professional, Professional.id == Consent.professional_id)
            .where(Consent.patient_id == patient_id, Consent.revoked_at.is_(None)))
    if before_id is not None:
        stmt = stmt.where(Consent.id < before_id)
    rows = [(c, p) for c, p in session.execute(stmt.order_by(Consent.id.desc()).limit(limit + 1))]
    return rows[:limit], len(rows) > limit


def blocked_page(session: Session, patient_id: int, *, limit: int,
                 before_id: int | None = None) -> tuple[list[tuple[Block, Professional | None]], bool]:
    stmt = (select(Block, Professional).outerjoin(Professional, Professional.rpps == Block.rpps)
            .where(Block.patient_id == patient_id, Block.removed_at.is_(None)))
    if before_id is not None:
        stmt = stmt.where(Block.id < before_id)
    rows = [(b, p) for b, p in session.execute(stmt.order_by(Block.id.desc()).limit(limit + 1))]
    return rows[:limit], len(rows) > limit


def access_page(session: Session, patient_id: int, *, limit: int = 20, recent: int = 5, lang: str = "fr",
                now: dt.datetime | None = None) -> AccessPage:
    """Everything the access screen shows, in a fixed number of queries whatever the record holds."""
    now = now or utcnow()
    mt, admin = aliased(Professional), aliased(Professional)
    record, mt_pro, admin_pro = session.execute(
        select(Record, mt, admin).outerjoin(mt, mt.id == Record.medecin_traitant_id)
        .outerjoin(admin, admin.id == Record.administrator_id).where(Record.patient_id == patient_id)).one()
    authorised, authorised_more = authorised_page(session, patient_id, limit=limit)
    blocked, blocked_more = blocked_page(session, patient_id, limit=limit)
    emergencies = [(e, p) for e, p in session.execute(
        select(EmergencyAccess, Professional).join(Professional, Professional.id == EmergencyAccess.professional_id)
        .where(EmergencyAccess.patient_id == patient_id, EmergencyAccess.expires_at > now)
        .order_by(EmergencyAccess.expires_at.desc()).limit(limit))]
    # which of the professionals shown are blocked (the MT or the administrator may be)
    shown = {p.rpps for p in (mt_pro, admin_pro) if p is not None} | {p.rpps for _, p in authorised}
    shown |= {p.rpps for _, p in emergencies}
    blocked_rpps = set(session.scalars(select(Block.rpps).where(
        Block.patient_id == patient_id, Block.removed_at.is_(None), Block.rpps.in_(sorted(shown))))) if shown else set()
    shown_ids = {p.id for p in (mt_pro, admin_pro) if p is not None} | {p.id for _, p in emergencies}
    authorised_ids = {p.id for _, p in authorised}
    if shown_ids:  # the MT, the administrator or an emergency professional may be past the first page
        authorised_ids |= set(session.scalars(select(Consent.professional_id).where(
            Consent.patient_id == patient_id, Consent.revoked_at.is_(None), Consent.professional_id.in_(sorted(shown_ids)))))
    recent_items = history.page(session, patient_id, history.HistoryFilter(
        actor_kinds=("professional", "service", "carer")), limit=recent, lang=lang)[0]
    return AccessPage(switches(record), mt_pro, admin_pro, authorised, authorised_more, blocked, blocked_more,
                      emergencies, recent_items, blocked_rpps, authorised_ids)


def profession_label(code: str | None) -> str | None:
    return _profession_label(code)

