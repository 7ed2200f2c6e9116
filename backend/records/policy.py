"""Who may see what: the one decision point of the record.

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
7. Anything else is refused ("no_consent").

The profession matrix and the emergency duration are settings (``CARNET_PROFESSION_MATRIX`` JSON,
``CARNET_EMERGENCY_ACCESS_MINUTES``): :func:`configure` attaches them to the app's session factory so
every caller of ``decide`` gets them without passing them around; ``matrix=`` overrides per call.
"""
from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, false, or_, select, true
from sqlalchemy.orm import Session, sessionmaker

from backend.accounts.models import AccountState, Patient
from backend.db import utcnow
from backend.professionals.models import Professional
from backend.records.models import Block, Consent, Document, EmergencyAccess, Record


class Purpose(str, enum.Enum):
    TREAT = "TREAT"      # normal care
    ETREAT = "ETREAT"    # emergency, SAMU regulator
    BTG = "BTG"          # break-the-glass
    PATRQT = "PATRQT"    # the patient's own request


EMERGENCY_PURPOSES = (Purpose.ETREAT, Purpose.BTG)


@dataclass(frozen=True)
class Actor:
    kind: str  # patient | professional | service | carer
    id: int
    professional: Professional | None = None
    granted_categories: frozenset[str] | None = None  # services: the categories their consent grants

    @classmethod
    def patient(cls, patient_id: int) -> Actor:
        return cls("patient", patient_id)

    @classmethod
    def of_professional(cls, pro: Professional) -> Actor:
        return cls("professional", pro.id, professional=pro)


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
                                # service_consent, blocked, no_consent, no_record, account_closed,
                                # emergency_disabled, reason_required, not_regulator, other_patient,
                                # purpose_not_allowed
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


def professional_scope(patient_id: int, pro: Professional, *, see_masked: bool,
                       matrix: Matrix | None = None) -> Scope:
    """The scope of a professional's granted access: profession matrix, masking, unreleased documents."""
    rules = (DEFAULT_PROFESSION_MATRIX if matrix is None else matrix).get(pro.profession_code, {})
    return Scope(patient_id, see_masked=see_masked, see_unreleased=True, author_professional_id=pro.id,
                 denied_categories=frozenset(rules.get("categories", [])),
                 denied_types=frozenset(rules.get("types", [])))


def is_blocked(session: Session, patient_id: int, rpps: str) -> bool:
    return session.scalar(_BLOCKED, {"patient_id": patient_id, "rpps": rpps}) is not None


def decide(session: Session, actor: Actor, patient_id: int, *, purpose: Purpose = Purpose.TREAT,
           reason: str | None = None, matrix: dict[str, dict[str, list[str]]] | None = None,
           now: dt.datetime | None = None) -> Decision:
    """The access decision for the whole record. Costs a bounded number of queries (no per-document work)."""
    now = now or utcnow()
    matrix = settings_of(session).matrix if matrix is None else matrix
    record = _record_state(session, patient_id)
    if record is None:
        return _deny("no_record", purpose)
    if actor.kind == "patient":
        if actor.id != patient_id:
            return _deny("other_patient", purpose)
        if record.state != AccountState.ACTIVE:
            return _deny("account_closed", purpose)
        return Decision(True, "owner", Purpose.PATRQT, Scope(patient_id, see_masked=True))
    if record.state in (AccountState.CLOSED, AccountState.OPPOSED):
        return _deny("account_closed", purpose)
    if actor.kind == "service":
        # The catalogue checked the service's consent and passes the categories it grants.
        return Decision(True, "service_consent", purpose,
                        Scope(patient_id, only_categories=actor.granted_categories or frozenset()))
    if actor.kind != "professional" or actor.professional is None:
        return _deny("no_consent", purpose)
    pro = actor.professional
    if is_blocked(session, patient_id, pro.rpps):
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
        consent = session.scalar(select(Consent.id).where(Consent.patient_id == patient_id,
                                                          Consent.professional_id == pro.id,
                                                          Consent.revoked_at.is_(None)).limit(1))
        if consent is None:
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
