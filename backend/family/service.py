"""The family space's lifecycle, without Flask: callers pass a Session and settings, and commit.

- A minor's record is activated by a legal representative from their own signed-in session, with the
  child's activation code (``activate_minor``); a second representative is invited with a code the first one
  shares (``invite_representative``) and accepts it from their own session (``accept_representative``);
  either may leave (``leave_representation``).
- An adult names a carer with a scope (``invite_carer``: a code they give the carer), the carer accepts from
  their own session (``accept_carer``); the adult revokes at any time, the carer may leave (``end_carer``).
  Limits: ``max_carers_per_patient`` accepted or pending carers per patient, ``max_patients_per_carer``
  people helped per carer. Both are counted after a row lock on the records concerned (taken in id order),
  so two acceptances at once cannot both pass the last place.
- At majority (``come_of_age``, run daily by ``backend.family.tasks``) the representatives' links end, the
  young adult's account awaits its own activation (a new letter's code) and the record and history stay.

What a representative or a carer may then do in the record is decided by ``backend.records.access.policy``.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from backend.accounts import service as accounts
from backend.accounts.models import AccountState, Patient
from backend.audit import service as audit
from backend.db import utcnow
from backend.errors import DomainError, NotFound
from backend.identity import birthday, day_in_france, is_minor
from backend.family.models import (CarerLink, CarerScope, CarerState, LegalRepresentative, RepresentationState,
                                   parse_scopes)
from backend.notifications.models import OutboxEmail
from backend.notifications.service import notify
from backend.records.models import Record
from backend.security import keyed_digest, new_activation_code, normalize_activation_code
from backend.throttle import Throttle

SCOPES = tuple(s.value for s in CarerScope)


@dataclass(frozen=True)
class FamilySettings:
    secret_key: str
    max_carers_per_patient: int = 3
    max_patients_per_carer: int = 5
    max_representatives: int = 2
    invitation_validity: dt.timedelta = dt.timedelta(days=14)
    majority_age: int = 18

    @classmethod
    def from_config(cls, config: Any) -> FamilySettings:
        return cls(secret_key=str(config["SECRET_KEY"]),
                   max_carers_per_patient=int(config["FAMILY_MAX_CARERS_PER_PATIENT"]),
                   max_patients_per_carer=int(config["FAMILY_MAX_PATIENTS_PER_CARER"]),
                   max_representatives=int(config["FAMILY_MAX_REPRESENTATIVES"]),
                   invitation_validity=dt.timedelta(days=int(config["FAMILY_INVITATION_VALIDITY_DAYS"])),
                   majority_age=int(config["FAMILY_MAJORITY_AGE"]))


_today = day_in_france


# --- shared ------------------------------------------------------------------------------------------------

def _lock_records(session: Session, patient_ids: Iterable[int]) -> None:
    """Serialise changes of the links of these records: a write on each record's row, in id order (a row lock
    on PostgreSQL; on SQLite the first write takes the database's one write lock, and what is read after it
    is the latest committed state)."""
    for pid in sorted(set(patient_ids)):
        session.execute(update(Record).where(Record.patient_id == pid).values(patient_id=Record.patient_id)
                        .execution_options(synchronize_session=False))


def _digest(settings: FamilySettings, code: str) -> str:
    return keyed_digest(settings.secret_key, "family:" + normalize_activation_code(code))


def _new_code(session: Session, settings: FamilySettings) -> tuple[str, str]:
    code = new_activation_code()
    return code, _digest(settings, code)


def _trace(session: Session, *, actor_type: str, actor_id: int | None, action: str, patient_id: int,
           now: dt.datetime, **details: Any) -> None:
    audit.record(session, actor_type=actor_type, actor_id=actor_id, action=action, patient_id=patient_id,
                 details=details or None, at=now)


def _active_representatives(session: Session, child_id: int) -> list[int]:
    return list(session.scalars(select(LegalRepresentative.representative_id).where(
        LegalRepresentative.child_id == child_id, LegalRepresentative.state == RepresentationState.ACTIVE)))


def _require_representative(session: Session, account_id: int, child_id: int) -> LegalRepresentative:
    link = session.scalar(select(LegalRepresentative).where(
        LegalRepresentative.child_id == child_id, LegalRepresentative.representative_id == account_id,
        LegalRepresentative.state == RepresentationState.ACTIVE))
    if link is None:
        raise NotFound("family_child_not_found")
    return link


# --- legal representatives -------------------------------------------------------------------------------------

def activate_minor(session: Session, settings: FamilySettings, account_settings: accounts.AccountSettings,
                   throttle: Throttle, representative: Patient, nir: str, birth_date: str, code: str, *,
                   address: str | None = None, now: dt.datetime | None = None) -> Patient:
    """The representative activates the child's pre-created record with the child's letter code, from their own
    session: they become its first legal representative."""
    now = now or utcnow()

    def check(child: Patient) -> None:
        if child.id == representative.id or not is_minor(child.birth_date, _today(now), settings.majority_age):
            raise DomainError("family_not_minor", 409)

    child = accounts.activate_by_representative(session, account_settings, throttle, nir, birth_date, code,
                                                check=check, representative_id=representative.id,
                                                address=address, now=now)
    session.add(LegalRepresentative(child_id=child.id, representative_id=representative.id,
                                    state=RepresentationState.ACTIVE, created_at=now, started_at=now))
    session.flush()
    _trace(session, actor_type="representative", actor_id=representative.id, action="family.representative_started",
           patient_id=child.id, now=now)
    return child


def invite_representative(session: Session, settings: FamilySettings, representative: Patient, child_id: int, *,
                          now: dt.datetime | None = None) -> tuple[LegalRepresentative, str]:
    """A code for a second representative; it replaces a pending one. Refused when the child has all theirs."""
    now = now or utcnow()
    _require_representative(session, representative.id, child_id)
    _lock_records(session, [child_id])
    session.execute(update(LegalRepresentative).where(
        LegalRepresentative.child_id == child_id, LegalRepresentative.state == RepresentationState.INVITED)
        .values(state=RepresentationState.LEFT, ended_at=now, code_hash=None)
        .execution_options(synchronize_session=False))
    if len(_active_representatives(session, child_id)) >= settings.max_representatives:
        raise DomainError("family_representatives_limit", 409, limit=settings.max_representatives)
    code, digest = _new_code(session, settings)
    link = LegalRepresentative(child_id=child_id, state=RepresentationState.INVITED, invited_by_id=representative.id,
                               code_hash=digest, code_expires_at=now + settings.invitation_validity, created_at=now)
    session.add(link)
    session.flush()
    _trace(session, actor_type="representative", actor_id=representative.id, action="family.representative_invited",
           patient_id=child_id, now=now)
    return link, code


def accept_representative(session: Session, settings: FamilySettings, account: Patient, code: str, *,
                          now: dt.datetime | None = None) -> LegalRepresentative:
    now = now or utcnow()
    link = session.scalar(select(LegalRepresentative).where(LegalRepresentative.code_hash == _digest(settings, code)))
    if link is None or link.state != RepresentationState.INVITED:
        raise NotFound("family_invitation_not_found")
    if link.code_expires_at is not None and link.code_expires_at <= now:
        raise DomainError("family_invitation_expired", 410)
    if link.child_id == account.id:
        raise DomainError("family_invitation_own", 409)
    _lock_records(session, [link.child_id])
    session.refresh(link)
    if link.state != RepresentationState.INVITED:
        raise NotFound("family_invitation_not_found")
    active = _active_representatives(session, link.child_id)
    if account.id in active:
        raise DomainError("family_already_linked", 409)
    if len(active) >= settings.max_representatives:
        raise DomainError("family_representatives_limit", 409, limit=settings.max_representatives)
    link.representative_id = account.id
    link.state = RepresentationState.ACTIVE
    link.code_hash = None
    link.started_at = now
    session.flush()
    _trace(session, actor_type="representative", actor_id=account.id, action="family.representative_started",
           patient_id=link.child_id, now=now)
    for other in active:
        notify(session, other, "account", ref_type="family_representative_joined", ref_id=link.child_id, now=now)
    return link


def leave_representation(session: Session, account: Patient, child_id: int, *, now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    link = _require_representative(session, account.id, child_id)
    link.state = RepresentationState.LEFT
    link.ended_at = now
    session.flush()
    _trace(session, actor_type="representative", actor_id=account.id, action="family.representative_left",
           patient_id=child_id, now=now)
    for other in _active_representatives(session, child_id):
        notify(session, other, "account", ref_type="family_representative_left", ref_id=child_id, now=now)


# --- carers -----------------------------------------------------------------------------------------------------

def check_scopes(scopes: Iterable[str]) -> str:
    chosen = sorted(set(scopes))
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown or not chosen:
        raise DomainError("family_carer_scopes_invalid", 422, errors=[{"field": "scopes",
                                                                       "message_code": "family_carer_scopes_invalid"}])
    return ",".join(chosen)


def _carers_taken(session: Session, patient_id: int, now: dt.datetime) -> int:
    """Places taken among a patient's carers: accepted links and invitations still valid."""
    return int(session.scalar(select(func.count(CarerLink.id)).where(
        CarerLink.patient_id == patient_id,
        or_(CarerLink.state == CarerState.ACCEPTED,
            (CarerLink.state == CarerState.INVITED) & (CarerLink.code_expires_at > now)))) or 0)


def invite_carer(session: Session, settings: FamilySettings, patient: Patient, scopes: Iterable[str], *,
                 now: dt.datetime | None = None) -> tuple[CarerLink, str]:
    """The patient names a carer: a code to give them, with the scope chosen."""
    now = now or utcnow()
    chosen = check_scopes(scopes)
    if is_minor(patient.birth_date, _today(now), settings.majority_age):
        raise DomainError("family_carer_minor", 409)
    _lock_records(session, [patient.id])
    if _carers_taken(session, patient.id, now) >= settings.max_carers_per_patient:
        raise DomainError("family_carers_limit", 409, limit=settings.max_carers_per_patient)
    code, digest = _new_code(session, settings)
    link = CarerLink(patient_id=patient.id, scopes=chosen, state=CarerState.INVITED, code_hash=digest,
                     code_expires_at=now + settings.invitation_validity, created_at=now)
    session.add(link)
    session.flush()
    _trace(session, actor_type="patient", actor_id=patient.id, action="family.carer_invited", patient_id=patient.id,
           now=now, carer_link_id=link.id, scopes=chosen)
    return link, code


def accept_carer(session: Session, settings: FamilySettings, carer: Patient, code: str, *,
                 now: dt.datetime | None = None) -> CarerLink:
    now = now or utcnow()
    link = session.scalar(select(CarerLink).where(CarerLink.code_hash == _digest(settings, code)))
    if link is None or link.state != CarerState.INVITED:
        raise NotFound("family_invitation_not_found")
    if link.code_expires_at is not None and link.code_expires_at <= now:
        raise DomainError("family_invitation_expired", 410)
    if link.patient_id == carer.id:
        raise DomainError("family_invitation_own", 409)
    _lock_records(session, [link.patient_id, carer.id])
    session.refresh(link)
    if link.state != CarerState.INVITED:
        raise NotFound("family_invitation_not_found")
    if session.scalar(select(CarerLink.id).where(CarerLink.patient_id == link.patient_id,
                                                 CarerLink.carer_id == carer.id,
                                                 CarerLink.state == CarerState.ACCEPTED).limit(1)) is not None:
        raise DomainError("family_already_linked", 409)
    helped = int(session.scalar(select(func.count(CarerLink.id)).where(
        CarerLink.carer_id == carer.id, CarerLink.state == CarerState.ACCEPTED)) or 0)
    if helped >= settings.max_patients_per_carer:
        raise DomainError("family_helped_limit", 409, limit=settings.max_patients_per_carer)
    accepted = int(session.scalar(select(func.count(CarerLink.id)).where(
        CarerLink.patient_id == link.patient_id, CarerLink.state == CarerState.ACCEPTED)) or 0)
    if accepted >= settings.max_carers_per_patient:
        raise DomainError("family_carers_limit", 409, limit=settings.max_carers_per_patient)
    link.carer_id = carer.id
    link.state = CarerState.ACCEPTED
    link.code_hash = None
    link.accepted_at = now
    session.flush()
    _trace(session, actor_type="carer", actor_id=carer.id, action="family.carer_accepted",
           patient_id=link.patient_id, now=now, carer_link_id=link.id, scopes=link.scopes)
    notify(session, link.patient_id, "account", ref_type="family_carer_accepted", ref_id=link.id, now=now)
    return link


def patient_carers(session: Session, patient_id: int) -> list[tuple[CarerLink, Patient | None]]:
    rows = session.execute(select(CarerLink, Patient).outerjoin(Patient, Patient.id == CarerLink.carer_id).where(
        CarerLink.patient_id == patient_id, CarerLink.state != CarerState.REVOKED).order_by(CarerLink.id)).all()
    return [(link, person) for link, person in rows]


def end_carer(session: Session, account: Patient, link_id: int, *, now: dt.datetime | None = None) -> CarerLink:
    """The patient revokes their carer (or withdraws an invitation); the carer may also leave. Takes effect on
    the carer's very next request (the policy reads the link each time)."""
    now = now or utcnow()
    link = session.get(CarerLink, link_id)
    if link is None or link.state == CarerState.REVOKED or account.id not in (link.patient_id, link.carer_id):
        raise NotFound("family_carer_not_found")
    by_patient = account.id == link.patient_id
    link.state = CarerState.REVOKED
    link.revoked_at = now
    link.code_hash = None
    session.flush()
    _trace(session, actor_type="patient" if by_patient else "carer", actor_id=account.id,
           action="family.carer_revoked" if by_patient else "family.carer_left", patient_id=link.patient_id,
           now=now, carer_link_id=link.id)
    if by_patient and link.carer_id is not None:
        notify(session, link.carer_id, "account", ref_type="family_carer_revoked", ref_id=link.id, now=now)
    elif not by_patient:
        notify(session, link.patient_id, "account", ref_type="family_carer_left", ref_id=link.id, now=now)
    return link


# --- spaces --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Space:
    """A record the signed-in account may open: their own, a child's, a person helped."""

    patient: Patient
    kind: str                       # own | child | helped
    scopes: frozenset[str] | None   # a carer's chosen areas (None: the patient's rights)
    link_id: int | None = None


def spaces(session: Session, account: Patient) -> list[Space]:
    found = [Space(account, "own", None)]
    for link, child in session.execute(select(LegalRepresentative, Patient).join(
            Patient, Patient.id == LegalRepresentative.child_id).where(
            LegalRepresentative.representative_id == account.id,
            LegalRepresentative.state == RepresentationState.ACTIVE).order_by(Patient.birth_date, Patient.id)):
        found.append(Space(child, "child", None, link.id))
    for link, person in session.execute(select(CarerLink, Patient).join(Patient, Patient.id == CarerLink.patient_id)
                                        .where(CarerLink.carer_id == account.id,
                                               CarerLink.state == CarerState.ACCEPTED).order_by(CarerLink.id)):
        found.append(Space(person, "helped", parse_scopes(link.scopes), link.id))
    return found


def representatives(session: Session, child_id: int) -> list[Patient]:
    return list(session.scalars(select(Patient).join(LegalRepresentative, LegalRepresentative.representative_id
                                                     == Patient.id).where(
        LegalRepresentative.child_id == child_id, LegalRepresentative.state == RepresentationState.ACTIVE)
        .order_by(LegalRepresentative.id)))


# --- majority ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Letter:
    """A young adult's own activation letter (printed like ``carnet patient create``'s)."""

    patient_id: int
    activation_code: str


def come_of_age(session: Session, settings: FamilySettings, account_settings: accounts.AccountSettings, *,
                now: dt.datetime | None = None) -> list[Letter]:
    """Every child whose 18th birthday has come: the representatives' access ends, the young adult's account
    awaits their own activation (a new letter's code), the record and its history stay whole, and everyone
    concerned is notified. Idempotent (a child with no link left is not seen again)."""
    now = now or utcnow()
    today = _today(now)
    latest_birth = birthday(today, -settings.majority_age)  # born on or before this day: of age
    children = list(session.scalars(select(Patient).where(Patient.id.in_(
        select(LegalRepresentative.child_id).where(LegalRepresentative.state.in_(
            (RepresentationState.ACTIVE, RepresentationState.INVITED))))).where(
        Patient.birth_date <= latest_birth + dt.timedelta(days=1)).order_by(Patient.id)))
    letters = []
    for child in children:
        if is_minor(child.birth_date, today, settings.majority_age):
            continue  # the day after the bound (a 29 February birthday)
        _lock_records(session, [child.id])
        reps = _active_representatives(session, child.id)
        session.execute(update(LegalRepresentative).where(
            LegalRepresentative.child_id == child.id,
            LegalRepresentative.state.in_((RepresentationState.ACTIVE, RepresentationState.INVITED)))
            .values(state=RepresentationState.ENDED, ended_at=now, code_hash=None)
            .execution_options(synchronize_session=False))
        code = None
        if child.state == AccountState.ACTIVE and not child.password_hash:
            code = accounts.return_to_precreated(session, account_settings, child, now=now)
            letters.append(Letter(child.id, code))
            if child.email:
                session.add(OutboxEmail(
                    recipient=child.email, kind="activation_letter", patient_id=child.id, created_at=now,
                    subject="Votre profil Carnet est à vous / Your Carnet profile is yours",
                    body=(f"Vous avez 18 ans : activez votre profil avec ce code d'activation : {code}\n"
                          "Vos documents et votre historique sont conservés.\n\n"
                          f"You are 18: activate your profile with this activation code: {code}\n"
                          "Your documents and history are kept.")))
        _trace(session, actor_type="system", actor_id=None, action="family.majority", patient_id=child.id, now=now,
               representatives=len(reps), letter=code is not None)
        notify(session, child.id, "account", ref_type="family_majority", dedupe_key=f"family-majority:{child.id}",
               now=now)
        for rep in reps:
            notify(session, rep, "account", ref_type="family_child_of_age",
                   dedupe_key=f"family-of-age:{child.id}:{rep}", ref_id=child.id, now=now)
    session.flush()
    return letters
