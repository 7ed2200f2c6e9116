"""Who may see what, and who may write what: the one decision point of the record.

``decide(session, actor, patient_id, purpose=..., reason=..., now=...)`` answers "may this actor reach
this patient's record, and with which scope?" and says why. ``Scope.permits(document)`` and
``Scope.document_filter()`` render the same decision for one document and for a SQL listing, so every
read path (patient API, professional MHD API, services, exports, the patient's preview) goes through it.
Rules (domain.md, "Who may see what"):

1. The record must exist (not opposed) and the account must not be closed.
2. The patient sees their own record, except INVISIBLE_PATIENT documents not yet released by their author.
3. A professional blocked by RPPS is refused, emergency included ("blocked beats everything").
4. A professional with the patient's consent, the médecin traitant or the administrator reads what the
   profession matrix allows; MASQUE_PS documents only if they are the administrator or the author.
   INVISIBLE_PATIENT documents are hidden from the patient only: professionals with access see them.
5. Emergencies need a stated reason: ETREAT for a SAMU regulator when the SAMU switch is on, BTG for
   others when the break-the-glass switch is on. Masked documents only with the MASKED switch on (or to
   the administrator and the author). A running emergency access keeps its scope until it expires, and
   only while its switch stays on.
6. A connected service sees the categories its consent grants, never masked or unreleased documents.
7. The insurer (Assurance Maladie's feed) reads nothing: it feeds the record with reimbursement data
   (``insurer_may_deposit``), which needs no consent ("insurer_feeds_only").
8. A minor's legal representative (an active link, ``backend.family``) reads the child's record with the
   patient's rights, except documents flagged INVISIBLE_REPRESENTANTS_LEGAUX ("legal_representative"). A carer
   (an accepted link) reads only the areas the patient chose (``Area``: documents, profile, agenda, messages)
   and never masked documents ("carer"). Both need the holder's account active.
9. Anything else is refused ("no_consent").

Writes (domain.md, "Writes are decided like reads") are a table, ``WRITE_RULES``: each ``Action`` × kind of
actor → a rule; ``decide_write`` applies it and says why. A professional may always *deposit* a new
document (feeding), blocked or not, and gains no read right by it; every other professional write needs
not to be blocked; *replacing* needs the read decision's scope to permit the original and to be its
author or of its author's structure; *releasing* is for the author. See the table below.

The profession matrix and the emergency duration are settings (``CARNET_PROFESSION_MATRIX`` JSON,
``CARNET_EMERGENCY_ACCESS_MINUTES``): :func:`configure` attaches them to the app's session factory so
every caller of ``decide`` gets them without passing them around; ``matrix=`` overrides per call.
"""
from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, exists, false, or_, select, true
from sqlalchemy.orm import Session, sessionmaker

from backend.accounts.models import AccountState, Patient
from backend.db import utcnow
from backend.family.models import CarerLink, CarerState, LegalRepresentative, RepresentationState, parse_scopes
from backend.professionals.models import Professional
from backend.records.access.models import Block, Consent, EmergencyAccess
from backend.records.documents.models import Document
from backend.records.models import Record


class Purpose(str, enum.Enum):
    TREAT = "TREAT"      # normal care
    ETREAT = "ETREAT"    # emergency, SAMU regulator
    BTG = "BTG"          # break-the-glass
    PATRQT = "PATRQT"    # the patient's own request


EMERGENCY_PURPOSES = (Purpose.ETREAT, Purpose.BTG)


@dataclass(frozen=True)
class Actor:
    kind: str  # patient | professional | service | representative | carer | insurer
    id: int
    professional: Professional | None = None
    granted_categories: frozenset[str] | None = None  # services: the categories their consent grants

    @classmethod
    def patient(cls, patient_id: int) -> Actor:
        return cls("patient", patient_id)

    @classmethod
    def of_professional(cls, pro: Professional) -> Actor:
        return cls("professional", pro.id, professional=pro)

    @classmethod
    def of_insurer(cls, insurer_id: int) -> Actor:
        return cls("insurer", insurer_id)

    @classmethod
    def representative(cls, account_id: int) -> Actor:
        """A minor's legal representative (their own account's id), acting in the child's record."""
        return cls("representative", account_id)

    @classmethod
    def carer(cls, account_id: int) -> Actor:
        """An adult's carer (their own account's id), acting in the record of the person they help."""
        return cls("carer", account_id)


# People acting in someone else's record from their own account (backend.family): what they are called in
# the access history and in the audit trail's actor_type.
ACTING_KINDS = ("representative", "carer")


class Area(str, enum.Enum):
    """The part of the record a read is about. A carer reads only the areas the patient chose (the first
    four, ``backend.family.models.CarerScope``); the others are never theirs."""

    DOCUMENTS = "documents"
    PROFILE = "profile"
    AGENDA = "agenda"
    MESSAGES = "messages"
    ACCESS = "access"                  # consents, blocks, emergency switches, the access history
    NOTIFICATIONS = "notifications"
    CATALOGUE = "catalogue"
    ACCOUNT = "account"                # the account's own page, devices


# --- the insurer: a system actor that writes one kind of document and reads none -------------------------
# (kept apart from the professional rules: the write table of the policy can take it as a row of its own)
INSURER_DEPOSIT_TYPES = frozenset({"REMB"})       # typeCode "Données de remboursement" (JDV_J07, TRE_A05)
INSURER_DEPOSIT_CLASSES = frozenset({"60"})       # classCode "Données de remboursement" (JDV_J06)


def insurer_may_deposit(type_code: str | None, class_code: str | None) -> bool:
    """The insurer deposits reimbursement histories (CNAM-HR) only: typeCode REMB, classCode 60 if given."""
    return type_code in INSURER_DEPOSIT_TYPES and (class_code is None or class_code in INSURER_DEPOSIT_CLASSES)


Matrix = Mapping[str, Mapping[str, list[str]]]

# Profession matrix (setting PROFESSION_MATRIX replaces it): categories a profession may NOT see, and
# LOINC types it may not see. Keys are TRE_G15 profession codes; professions absent see everything.
DEFAULT_PROFESSION_MATRIX: dict[str, dict[str, list[str]]] = {
    "40": {"categories": ["DIR_ANT", "VDP"], "types": []},                       # chirurgien-dentiste
    "80": {"categories": ["DIR_ANT", "VDP"], "types": ["57057-2", "34129-7"]},   # pédicure-podologue: no birth report
    "28": {"categories": ["DIR_ANT", "VDP", "BIOLOGIE", "CPT_REND", "SYNTH_PML"], "types": []},  # opticien
    "26": {"categories": ["DIR_ANT", "VDP", "BIOLOGIE"], "types": []},           # audioprothésiste
    "95": {"categories": ["DIR_ANT", "VDP", "RADIO_SC"], "types": []},           # diététicien
}

EMERGENCY_DURATION = dt.timedelta(hours=2)
SETTINGS_KEY = "carnet.records.policy"


@dataclass(frozen=True)
class PolicySettings:
    matrix: Matrix = field(default_factory=lambda: DEFAULT_PROFESSION_MATRIX)
    emergency_duration: dt.timedelta = EMERGENCY_DURATION


def parse_matrix(value: Any) -> dict[str, dict[str, list[str]]]:
    """A profession matrix from configuration (a JSON text or an already decoded mapping); fails loudly.

    Shape: ``{"<TRE_G15 code>": {"categories": [...], "types": [...]}}``.
    """
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"PROFESSION_MATRIX is not valid JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise ValueError("PROFESSION_MATRIX must be a JSON object keyed by profession code")
    matrix: dict[str, dict[str, list[str]]] = {}
    for code, rules in value.items():
        if not isinstance(rules, Mapping) or set(rules) - {"categories", "types"}:
            raise ValueError(f"PROFESSION_MATRIX[{code!r}] must be {{'categories': [...], 'types': [...]}}")
        entry: dict[str, list[str]] = {}
        for key in ("categories", "types"):
            items = rules.get(key, [])
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise ValueError(f"PROFESSION_MATRIX[{code!r}][{key!r}] must be a list of strings")
            entry[key] = list(items)
        matrix[str(code)] = entry
    return matrix


def configure(factory: sessionmaker[Session], settings: PolicySettings) -> None:
    """Every session the factory makes carries the policy settings (read by :func:`decide`)."""
    info = dict(factory.kw.get("info") or {})
    info[SETTINGS_KEY] = settings
    factory.configure(info=info)


def settings_of(session: Session) -> PolicySettings:
    found = session.info.get(SETTINGS_KEY)
    return found if isinstance(found, PolicySettings) else PolicySettings()


@dataclass(frozen=True)
class Scope:
    """What a granted access may see."""

    patient_id: int
    see_masked: bool = False
    see_unreleased: bool = False
    author_professional_id: int | None = None  # the author sees their own masked documents
    denied_categories: frozenset[str] = frozenset()
    denied_types: frozenset[str] = frozenset()
    only_categories: frozenset[str] | None = None  # services: only what their consent grants
    hide_from_legal_representatives: bool = False  # INVISIBLE_REPRESENTANTS_LEGAUX

    def permits(self, doc: Document) -> bool:
        if doc.patient_id != self.patient_id or doc.deleted_at is not None:
            return False
        if doc.invisible_patient and doc.released_at is None and not self.see_unreleased:
            return False
        if doc.masked and not self.see_masked and not (
                self.author_professional_id is not None and doc.author_professional_id == self.author_professional_id):
            return False
        if self.hide_from_legal_representatives and doc.invisible_legal_representatives:
            return False
        if doc.category in self.denied_categories or (doc.type_code or "") in self.denied_types:
            return False
        return self.only_categories is None or doc.category in self.only_categories

    def document_filter(self) -> ColumnElement[bool]:
        """The same rule as :meth:`permits`, as a SQL condition for listings."""
        conditions: list[Any] = [Document.patient_id == self.patient_id, Document.deleted_at.is_(None)]
        if not self.see_unreleased:
            conditions.append(or_(Document.invisible_patient.is_(False), Document.released_at.is_not(None)))
        if not self.see_masked:
            if self.author_professional_id is not None:
                conditions.append(or_(Document.masked.is_(False),
                                      Document.author_professional_id == self.author_professional_id))
            else:
                conditions.append(Document.masked.is_(False))
        if self.hide_from_legal_representatives:
            conditions.append(Document.invisible_legal_representatives.is_(False))
        if self.denied_categories:
            conditions.append(Document.category.not_in(sorted(self.denied_categories)))
        if self.denied_types:
            conditions.append(or_(Document.type_code.is_(None), Document.type_code.not_in(sorted(self.denied_types))))
        if self.only_categories is not None:
            conditions.append(Document.category.in_(sorted(self.only_categories)) if self.only_categories else false())
        return and_(true(), *conditions)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str                 # consent, medecin_traitant, administrator, owner, emergency_samu, break_the_glass,
                                # service_consent, blocked, no_consent, no_record, account_closed, insurer_feeds_only,
                                # emergency_disabled, reason_required, not_regulator, other_patient,
                                # purpose_not_allowed, legal_representative, carer, not_representative,
                                # not_carer, carer_scope
    purpose: Purpose = Purpose.TREAT
    scope: Scope | None = None
    emergency: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def require(self) -> Scope:
        if not self.allowed or self.scope is None:
            raise PermissionError(self.reason)
        return self.scope


def _deny(reason: str, purpose: Purpose = Purpose.TREAT) -> Decision:
    return Decision(False, reason, purpose)


@dataclass(frozen=True)
class _RecordState:
    state: AccountState
    emergency_samu: bool
    emergency_btg: bool
    emergency_masked: bool
    medecin_traitant_id: int | None
    administrator_id: int | None


def _record_state(session: Session, patient_id: int) -> _RecordState | None:
    # Columns, not the entity: an identity-mapped Record could be stale; a change made by the patient
    # in another transaction must count on the very next request.
    row = session.execute(_RECORD_STATE, {"patient_id": patient_id}).one_or_none()
    return None if row is None else _RecordState(*row)


# Built once (every authenticated read asks the policy): only the parameters change per request.
_RECORD_STATE = (select(Patient.state, Record.emergency_samu, Record.emergency_btg, Record.emergency_masked,
                        Record.medecin_traitant_id, Record.administrator_id)
                 .join(Patient, Patient.id == Record.patient_id).where(Record.patient_id == bindparam("patient_id")))
_BLOCKED = select(Block.id).where(Block.patient_id == bindparam("patient_id"), Block.rpps == bindparam("rpps"),
                                  Block.removed_at.is_(None)).limit(1)
# A professional's decision reads the record's state, the block and the consent in one statement.
_PROFESSIONAL_STATE = _RECORD_STATE.add_columns(
    exists().where(Block.patient_id == bindparam("patient_id"), Block.rpps == bindparam("rpps"),
                   Block.removed_at.is_(None)).label("blocked"),
    exists().where(Consent.patient_id == bindparam("patient_id"), Consent.professional_id == bindparam("professional_id"),
                   Consent.revoked_at.is_(None)).label("consented"))


def _professional_state(session: Session, patient_id: int, pro: Professional,
                        ) -> tuple[_RecordState | None, bool, bool]:
    """The record's state, whether the patient blocked this professional, whether a consent runs."""
    row = session.execute(_PROFESSIONAL_STATE, {"patient_id": patient_id, "rpps": pro.rpps,
                                                "professional_id": pro.id}).one_or_none()
    if row is None:
        return None, False, False
    return _RecordState(*row[:6]), bool(row.blocked), bool(row.consented)


def professional_scope(patient_id: int, pro: Professional, *, see_masked: bool,
                       matrix: Matrix | None = None) -> Scope:
    """The scope of a professional's granted access: profession matrix, masking, unreleased documents."""
    rules = (DEFAULT_PROFESSION_MATRIX if matrix is None else matrix).get(pro.profession_code, {})
    return Scope(patient_id, see_masked=see_masked, see_unreleased=True, author_professional_id=pro.id,
                 denied_categories=frozenset(rules.get("categories", [])),
                 denied_types=frozenset(rules.get("types", [])))


def owner_scope(patient_id: Any) -> Scope:
    """What the holder sees of their own record: everything not deleted, masked documents included, but not
    an INVISIBLE_PATIENT document before its release (``patient_id`` may be a bound parameter, for statements
    built once)."""
    return Scope(patient_id, see_masked=True)


def is_owner_scope(scope: Scope) -> bool:
    return scope == owner_scope(scope.patient_id)


def is_blocked(session: Session, patient_id: int, rpps: str) -> bool:
    return session.scalar(_BLOCKED, {"patient_id": patient_id, "rpps": rpps}) is not None


def decide(session: Session, actor: Actor, patient_id: int, *, purpose: Purpose = Purpose.TREAT,
           reason: str | None = None, matrix: dict[str, dict[str, list[str]]] | None = None,
           now: dt.datetime | None = None, area: Area = Area.DOCUMENTS) -> Decision:
    """The access decision for the whole record (``area``: the part read, for a carer's chosen scope). Costs
    a bounded number of queries (no per-document work): one for a professional (the record's state, the
    block and the consent together), and the running emergency access when there is no consent."""
    now = now or utcnow()
    matrix = settings_of(session).matrix if matrix is None else matrix
    blocked = consented = False
    if actor.kind == "professional" and actor.professional is not None:
        record, blocked, consented = _professional_state(session, patient_id, actor.professional)
    else:
        record = _record_state(session, patient_id)
    if record is None:
        return _deny("no_record", purpose)
    if actor.kind == "patient":
        if actor.id != patient_id:
            return _deny("other_patient", purpose)
        if record.state != AccountState.ACTIVE:
            return _deny("account_closed", purpose)
        return Decision(True, "owner", Purpose.PATRQT, owner_scope(patient_id))
    if actor.kind in ACTING_KINDS:
        return _decide_acting(session, actor, patient_id, record, area)
    if actor.kind == "insurer":
        return _deny("insurer_feeds_only", purpose)
    if record.state in (AccountState.CLOSED, AccountState.OPPOSED):
        return _deny("account_closed", purpose)
    if actor.kind == "service":
        # The catalogue checked the service's consent and passes the categories it grants.
        return Decision(True, "service_consent", purpose,
                        Scope(patient_id, only_categories=actor.granted_categories or frozenset()))
    if actor.kind != "professional" or actor.professional is None:
        return _deny("no_consent", purpose)
    pro = actor.professional
    if blocked:
        return _deny("blocked", purpose)
    is_admin = record.administrator_id == pro.id

    if purpose == Purpose.PATRQT:
        return _deny("purpose_not_allowed", purpose)
    if purpose in EMERGENCY_PURPOSES:
        return _emergency(record, pro, patient_id, purpose, reason, is_admin, matrix)

    if record.medecin_traitant_id == pro.id:
        why = "medecin_traitant"
    elif is_admin:
        why = "administrator"
    else:
        if not consented:
            # an emergency access still running keeps its scope until it expires (while its switch is on)
            running = session.execute(select(EmergencyAccess.purpose, EmergencyAccess.reason).where(
                EmergencyAccess.patient_id == patient_id, EmergencyAccess.professional_id == pro.id,
                EmergencyAccess.expires_at > now).order_by(EmergencyAccess.expires_at.desc()).limit(1)).one_or_none()
            if running is None:
                return _deny("no_consent", purpose)
            decision = _emergency(record, pro, patient_id, Purpose(running.purpose), running.reason, is_admin, matrix)
            return decision if decision.allowed else _deny("no_consent", purpose)
        why = "consent"
    return Decision(True, why, purpose, professional_scope(patient_id, pro, see_masked=is_admin, matrix=matrix))


_REPRESENTS = select(LegalRepresentative.id).where(
    LegalRepresentative.child_id == bindparam("patient_id"),
    LegalRepresentative.representative_id == bindparam("account_id"),
    LegalRepresentative.state == RepresentationState.ACTIVE).limit(1)
_CARER_SCOPES = select(CarerLink.scopes).where(
    CarerLink.patient_id == bindparam("patient_id"), CarerLink.carer_id == bindparam("account_id"),
    CarerLink.state == CarerState.ACCEPTED).limit(1)


def represents(session: Session, account_id: int, patient_id: int) -> bool:
    """Is this account an active legal representative of this (minor's) record?"""
    return session.scalar(_REPRESENTS, {"patient_id": patient_id, "account_id": account_id}) is not None


def carer_scopes(session: Session, account_id: int, patient_id: int) -> frozenset[str] | None:
    """The areas this account helps this patient with (an accepted carer link), or None."""
    raw = session.scalar(_CARER_SCOPES, {"patient_id": patient_id, "account_id": account_id})
    return None if raw is None else parse_scopes(raw)


def acting_actor(session: Session, account_id: int, patient_id: int) -> Actor | None:
    """Who this signed-in account is in this record: the holder, a representative, a carer, or nobody."""
    if account_id == patient_id:
        return Actor.patient(patient_id)
    if represents(session, account_id, patient_id):
        return Actor.representative(account_id)
    if carer_scopes(session, account_id, patient_id) is not None:
        return Actor.carer(account_id)
    return None


def _decide_acting(session: Session, actor: Actor, patient_id: int, record: _RecordState, area: Area) -> Decision:
    """Rule 8: a representative or a carer, read from their link on every request (revocation, majority and
    leaving count on the very next one)."""
    if record.state != AccountState.ACTIVE:
        return _deny("account_closed", Purpose.PATRQT)
    if actor.kind == "representative":
        if not represents(session, actor.id, patient_id):
            return _deny("not_representative", Purpose.PATRQT)
        return Decision(True, "legal_representative", Purpose.PATRQT,
                        Scope(patient_id, see_masked=True, hide_from_legal_representatives=True))
    scopes = carer_scopes(session, actor.id, patient_id)
    if scopes is None:
        return _deny("not_carer", Purpose.PATRQT)
    if area.value not in scopes:
        return _deny("carer_scope", Purpose.PATRQT)
    return Decision(True, "carer", Purpose.PATRQT, Scope(patient_id))


def _emergency(record: _RecordState, pro: Professional, patient_id: int, purpose: Purpose, reason: str | None,
               is_admin: bool, matrix: Matrix) -> Decision:
    if not reason or not reason.strip():
        return _deny("reason_required", purpose)
    if purpose == Purpose.ETREAT:
        if not pro.samu_regulator:
            return _deny("not_regulator", purpose)
        if not record.emergency_samu:
            return _deny("emergency_disabled", purpose)
        why = "emergency_samu"
    else:
        if not record.emergency_btg:
            return _deny("emergency_disabled", purpose)
        why = "break_the_glass"
    scope = professional_scope(patient_id, pro, see_masked=record.emergency_masked or is_admin, matrix=matrix)
    return Decision(True, why, purpose, scope, emergency=True, details={"reason": reason.strip()[:500]})


# --- writes -------------------------------------------------------------------------------------------------
#
# Writes are decided like reads (domain.md, "Writes are decided like reads"): every write a route makes on a
# patient's record, agenda, inbox or account is an ``Action``; ``WRITE_RULES`` says, for each action, which
# kinds of actor may make it and under which rule. A kind of actor absent from an action's row is refused
# ("not_permitted"): adding a kind of actor (a minor's legal representative, an adult's carer) is adding a
# column to this table, without touching the callers.
#
# A rule has two parts: ``actor`` decides the acting person on this record (a route decides it before it
# runs), ``target`` the object the write is about (the document replaced, the appointment cancelled…; the
# service that found the object decides it). Every rule starts from the same gate: the record exists (an
# opposed account has none) and is not closed; for the holder, the account is active.


class Action(str, enum.Enum):
    """Every write on a patient's record, agenda, inbox or account. Values name the audit entries of refusals
    (``<value>.refused``) and the history's labels (``history_action_<value with _>``)."""

    # what professionals do
    DOCUMENT_DEPOSIT = "document.deposit"              # ITI-65: a new document (feeding the record)
    DOCUMENT_REPLACE = "document.replace"              # ITI-65 relatesTo replaces (XDS RPLC)
    DOCUMENT_RELEASE = "document.release"              # $release of an INVISIBLE_PATIENT document
    APPOINTMENT_CREATE = "appointment.create"          # the practice books; the patient books online
    APPOINTMENT_CANCEL = "appointment.cancel"
    MESSAGE_SEND = "message.send"                      # a message, in a new conversation or in one
    CONVERSATION = "message.conversation"              # end it, forbid or allow replies; archive, delete
    ACCESS_BLOCKS = "access.blocks"                    # block / unblock (the administrator blocks others too)
    # what the holder does
    MESSAGE_START = "message.start"                    # the patient starts a conversation
    DOCUMENT_UPLOAD = "document.upload"                # their own document (upload, an attachment saved)
    DOCUMENT_DELETE = "document.delete"                # their own uploads only
    DOCUMENT_REMOVAL_REQUEST = "document.removal_request"  # others' documents: a request, not a deletion
    DOCUMENT_MASK = "document.mask"                    # mask, unmask, "mask new documents"
    ACCESS_CONSENTS = "access.consents"
    ACCESS_CARE_TEAM = "access.care_team"              # médecin traitant, administrator professional
    ACCESS_EMERGENCY = "access.emergency"              # the three emergency switches
    DIRECTIVES = "profile.directives"                  # advance directives, organ donation
    PROFILE_ENTRIES = "profile.entries"                # history, allergies, treatments, measures…
    LEGACY_REVIEW = "record.legacy_review"             # what the legacy DMP import asks the holder to decide
    APPOINTMENT_RESCHEDULE = "appointment.reschedule"
    AGENDA_ENTRIES = "agenda.entries"                  # their own entries, imports, prevention marks
    AGENDA_FEED = "agenda.feed"                        # the calendar feed's secret address
    CATALOGUE_CONNECTIONS = "catalogue.connections"    # connect, renew, revoke, report a service
    NOTIFICATION_SETTINGS = "notifications.settings"   # preferences, read marks, push subscription
    ACCOUNT = "account.manage"                         # password, devices, sign-out, closure
    FAMILY = "family.links"                            # their own family links: carers named, children, invitations


@dataclass(frozen=True)
class WriteContext:
    session: Session
    actor: Actor
    patient_id: int
    record: _RecordState
    now: dt.datetime


@dataclass(frozen=True)
class Correspondent:
    """The target of MESSAGE_START: the professional the patient writes to, and whether they wrote first."""

    professional_id: int
    has_written: bool


NO_TARGET: Any = object()  # the route's decision, before the object of the write is known

ActorRule = Callable[[WriteContext], Decision]
TargetRule = Callable[[WriteContext, Any, Decision], Decision]


@dataclass(frozen=True)
class Rule:
    actor: ActorRule
    target: TargetRule | None = None


# Refusals of writes: reason → the error code the caller answers with (403). Reasons absent here answer
# ``access_<reason>`` (the read side's codes: access_blocked, access_no_consent…).
WRITE_REFUSAL_CODES = {
    "not_own_upload": "document_not_own_upload",
    "not_author": "access_not_author",
    "not_insurer_history": "insurer_replace_not_own",
    "not_release_author": "document_release_not_author",
    "not_correspondent": "inbox_new_thread_not_allowed",
    "not_administrator": "not_record_administrator",
    "not_representative": "family_not_representative",
    "not_carer": "family_not_carer",
    "carer_scope": "family_carer_scope",
}


def _grant(reason: str, scope: Scope | None = None) -> Decision:
    return Decision(True, reason, scope=scope)


def write_refusal(reason: str) -> Decision:
    return Decision(False, reason, details={"code": WRITE_REFUSAL_CODES.get(reason, f"access_{reason}")})


def refusal_code(decision: Decision) -> str:
    return str(decision.details.get("code") or f"access_{decision.reason}")


def _professional(ctx: WriteContext) -> Professional | None:
    return ctx.actor.professional if ctx.actor.kind == "professional" else None


def _blocked(ctx: WriteContext) -> bool:
    pro = _professional(ctx)
    return pro is not None and is_blocked(ctx.session, ctx.patient_id, pro.rpps)


def _is_author(pro: Professional, doc: Document) -> bool:
    return doc.author_professional_id == pro.id or (doc.author_rpps is not None and doc.author_rpps == pro.rpps)


# The rules, in the domain's words. Each returns the reason the audit trail and the history show.

def holder(ctx: WriteContext) -> Decision:
    """The patient on their own record (their account is active: the gate checked it)."""
    return _grant("owner") if ctx.actor.id == ctx.patient_id else write_refusal("other_patient")


def feeds_the_record(ctx: WriteContext) -> Decision:
    """Any identified professional feeds the record, a blocked one too (the holder cannot oppose the feeding):
    it gives no read right, and touches no existing document."""
    return _grant("feeding") if _professional(ctx) is not None else write_refusal("not_permitted")


def unblocked_professional(reason: str) -> ActorRule:
    """A professional the holder did not block: what they add to the agenda or the inbox needs no consent
    (a practice books for a patient who called it), but a block beats it."""
    def rule(ctx: WriteContext) -> Decision:
        if _professional(ctx) is None:
            return write_refusal("not_permitted")
        return write_refusal("blocked") if _blocked(ctx) else _grant(reason)
    rule.__name__ = f"unblocked_professional_{reason}"
    return rule


def reads_the_record(ctx: WriteContext) -> Decision:
    """Replacing starts from reading: the read policy's decision (consent, médecin traitant, administrator,
    an emergency still running; blocked beats everything), whose scope the target rule applies."""
    if _professional(ctx) is None:
        return write_refusal("not_permitted")
    read = decide(ctx.session, ctx.actor, ctx.patient_id, now=ctx.now)
    if not read.allowed:
        return write_refusal(read.reason)
    return _grant(read.reason, read.scope)


def author_or_structure(ctx: WriteContext, doc: Document | None, granted: Decision) -> Decision:
    """The original must be one the professional may read (profession matrix, masking) and they must be its
    author or belong to its author's structure. An unknown original answers as one they may not read (the
    answer tells nothing of documents out of their scope)."""
    pro = _professional(ctx)
    assert pro is not None and granted.scope is not None
    if doc is None or not granted.scope.permits(doc):
        return write_refusal("not_readable")
    if _is_author(pro, doc):
        return _grant("author", granted.scope)
    if pro.structure_id and doc.author_structure_id == pro.structure_id:
        return _grant("author_structure", granted.scope)
    return write_refusal("not_author")


def any_professional(ctx: WriteContext) -> Decision:
    return _grant("professional") if _professional(ctx) is not None else write_refusal("not_permitted")


def releasing_author(ctx: WriteContext, doc: Document, granted: Decision) -> Decision:
    """Only the author releases an INVISIBLE_PATIENT document (after the announcement consultation); for
    anyone else the document does not exist. A blocked author is refused like every blocked professional."""
    pro = _professional(ctx)
    assert pro is not None
    if doc.patient_id != ctx.patient_id or not _is_author(pro, doc):
        return write_refusal("not_release_author")
    return write_refusal("blocked") if _blocked(ctx) else _grant("author")


def own_appointment(ctx: WriteContext, professional_id: int | None, granted: Decision) -> Decision:
    pro = _professional(ctx)
    assert pro is not None
    return granted if professional_id == pro.id else write_refusal("not_own_appointment")


def own_upload(ctx: WriteContext, doc: Document, granted: Decision) -> Decision:
    """The holder deletes what they added; for what others recorded, they ask for its removal."""
    return granted if doc.source == "patient" else write_refusal("not_own_upload")


def wrote_first(ctx: WriteContext, to: Correspondent, granted: Decision) -> Decision:
    """The patient starts a conversation only with a professional who already wrote to them."""
    return _grant("correspondent") if to.has_written else write_refusal("not_correspondent")


def record_administrator(ctx: WriteContext) -> Decision:
    """The record's administrator professional may block others (never themselves), unless blocked."""
    pro = _professional(ctx)
    if pro is None or ctx.record.administrator_id != pro.id or _blocked(ctx):
        return write_refusal("not_administrator")
    return _grant("administrator")


def not_themselves(ctx: WriteContext, rpps: str, granted: Decision) -> Decision:
    pro = _professional(ctx)
    return write_refusal("not_administrator") if pro is not None and pro.rpps == rpps else granted


def insurer_feed(ctx: WriteContext) -> Decision:
    """The insurer's feed (Assurance Maladie, a system actor with its own credentials) adds reimbursement
    histories: no consent (it feeds, it reads nothing); what it may send is ``insurer_may_deposit``."""
    return _grant("insurer_feed") if ctx.actor.kind == "insurer" else write_refusal("not_permitted")


def insurer_own_history(ctx: WriteContext, doc: Document | None, granted: Decision) -> Decision:
    """The feed replaces only a history it deposited (a month sent again, corrected)."""
    if doc is None or doc.patient_id != ctx.patient_id or doc.source != "insurer":
        return write_refusal("not_insurer_history")
    return granted


def connected_service(ctx: WriteContext) -> Decision:
    """A connected service writes what its consent's write permissions name (checked by the catalogue with
    its token); de-referencing or revoking ends it there."""
    return _grant("service_consent")


def representing(ctx: WriteContext) -> Decision:
    """A minor's legal representative acts with the patient's rights (an active link, read now)."""
    if ctx.actor.kind != "representative":
        return write_refusal("not_permitted")
    if not represents(ctx.session, ctx.actor.id, ctx.patient_id):
        return write_refusal("not_representative")
    return _grant("legal_representative")


def carer_for(area: Area) -> ActorRule:
    """A carer, in an area the patient chose for them (an accepted link, read now)."""
    def rule(ctx: WriteContext) -> Decision:
        if ctx.actor.kind != "carer":
            return write_refusal("not_permitted")
        scopes = carer_scopes(ctx.session, ctx.actor.id, ctx.patient_id)
        if scopes is None:
            return write_refusal("not_carer")
        return _grant("carer") if area.value in scopes else write_refusal("carer_scope")
    rule.__name__ = f"carer_for_{area.value}"
    return rule


HOLDER = Rule(holder)
REPRESENTATIVE = Rule(representing)
CARER_AGENDA = Rule(carer_for(Area.AGENDA))
CARER_MESSAGES = Rule(carer_for(Area.MESSAGES))

# The table: action × kind of actor → rule. Kinds: patient (the holder), professional, service,
# insurer (the Assurance Maladie feed: deposits and replaces its own histories, reads nothing),
# representative (a minor's legal representative: the patient's rights on the record, agenda, inbox, access
# control and emergency switches; not the connected services nor the account itself, which is the child's),
# carer (the agenda and the messages when the patient chose them; never access rights, emergency switches,
# directives or the account: domain.md).
WRITE_RULES: dict[Action, dict[str, Rule]] = {
    Action.DOCUMENT_DEPOSIT: {"professional": Rule(feeds_the_record), "insurer": Rule(insurer_feed)},
    Action.DOCUMENT_REPLACE: {"professional": Rule(reads_the_record, author_or_structure),
                              "insurer": Rule(insurer_feed, insurer_own_history)},
    Action.DOCUMENT_RELEASE: {"professional": Rule(any_professional, releasing_author)},
    Action.APPOINTMENT_CREATE: {"patient": HOLDER, "professional": Rule(unblocked_professional("feeding")),
                                "representative": REPRESENTATIVE, "carer": CARER_AGENDA},
    Action.APPOINTMENT_CANCEL: {"patient": HOLDER,
                                "professional": Rule(unblocked_professional("own_appointment"), own_appointment),
                                "representative": REPRESENTATIVE, "carer": CARER_AGENDA},
    Action.MESSAGE_SEND: {"patient": HOLDER, "professional": Rule(unblocked_professional("correspondent")),
                          "representative": REPRESENTATIVE, "carer": CARER_MESSAGES},
    Action.CONVERSATION: {"patient": HOLDER, "professional": Rule(unblocked_professional("correspondent")),
                          "representative": REPRESENTATIVE, "carer": CARER_MESSAGES},
    Action.ACCESS_BLOCKS: {"patient": HOLDER, "professional": Rule(record_administrator, not_themselves),
                           "representative": REPRESENTATIVE},
    Action.MESSAGE_START: {"patient": Rule(holder, wrote_first), "representative": Rule(representing, wrote_first),
                           "carer": Rule(carer_for(Area.MESSAGES), wrote_first)},
    Action.DOCUMENT_UPLOAD: {"patient": HOLDER, "representative": REPRESENTATIVE},
    Action.DOCUMENT_DELETE: {"patient": Rule(holder, own_upload), "representative": Rule(representing, own_upload)},
    Action.DOCUMENT_REMOVAL_REQUEST: {"patient": HOLDER, "representative": REPRESENTATIVE},
    Action.DOCUMENT_MASK: {"patient": HOLDER, "representative": REPRESENTATIVE},
    Action.ACCESS_CONSENTS: {"patient": HOLDER, "representative": REPRESENTATIVE},
    Action.ACCESS_CARE_TEAM: {"patient": HOLDER, "representative": REPRESENTATIVE},
    Action.ACCESS_EMERGENCY: {"patient": HOLDER, "representative": REPRESENTATIVE},
    Action.DIRECTIVES: {"patient": HOLDER, "representative": REPRESENTATIVE},
    Action.PROFILE_ENTRIES: {"patient": HOLDER, "service": Rule(connected_service), "representative": REPRESENTATIVE},
    Action.LEGACY_REVIEW: {"patient": HOLDER, "representative": REPRESENTATIVE},
    Action.APPOINTMENT_RESCHEDULE: {"patient": HOLDER, "representative": REPRESENTATIVE, "carer": CARER_AGENDA},
    Action.AGENDA_ENTRIES: {"patient": HOLDER, "representative": REPRESENTATIVE, "carer": CARER_AGENDA},
    Action.AGENDA_FEED: {"patient": HOLDER, "representative": REPRESENTATIVE},
    Action.CATALOGUE_CONNECTIONS: {"patient": HOLDER},
    Action.NOTIFICATION_SETTINGS: {"patient": HOLDER, "representative": REPRESENTATIVE},
    Action.ACCOUNT: {"patient": HOLDER},
    Action.FAMILY: {"patient": HOLDER},
}


def decide_write(session: Session, actor: Actor, patient_id: int, action: Action, *, target: Any = NO_TARGET,
                 now: dt.datetime | None = None) -> Decision:
    """May this actor make this write on this patient's record (and on ``target``, the object it is about)?

    Without ``target`` only the actor part of the rule is decided (a route, before it runs); a rule with a
    target part is then decided again, whole, by the service that found the object. Costs the record's
    state, the block and, for a replacement, the read decision: a bounded number of queries.
    """
    now = now or utcnow()
    rule = WRITE_RULES.get(action, {}).get(actor.kind)
    record = _record_state(session, patient_id)
    if record is None:
        return write_refusal("no_record")
    if record.state in (AccountState.CLOSED, AccountState.OPPOSED) or (
            actor.kind == "patient" and actor.id == patient_id and record.state != AccountState.ACTIVE) or (
            actor.kind in ACTING_KINDS and record.state != AccountState.ACTIVE):
        return write_refusal("account_closed")
    if rule is None:
        return write_refusal("not_permitted")
    ctx = WriteContext(session, actor, patient_id, record, now)
    decision = rule.actor(ctx)
    if not decision.allowed or rule.target is None or target is NO_TARGET:
        return decision
    return rule.target(ctx, target, decision)
