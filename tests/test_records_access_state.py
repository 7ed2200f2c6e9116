"""A property-based state machine over what the patient (and professionals) do to the record's access —
authorise, revoke, block, unblock, médecin traitant, administrator, mask, unmask, release, the three
switches, emergencies, time passing — checking ``decide`` and ``Scope`` (one document, and the SQL
listing) against a small reference model written here from domain.md, independently of policy.py."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import select

from backend.errors import DomainError
from backend.records import consents
from backend.records.access import AccessRefused, authorize
from backend.records.models import Document, Record
from backend.records.policy import Actor, Purpose, decide
from tests.test_records_access_world import make_doc, make_patient, make_pro

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
EMERGENCY = dt.timedelta(hours=2)   # the default duration

# The cast: (profession, SAMU regulator)
PROS = {"doc_a": ("10", False), "doc_b": ("10", False), "dentist": ("40", False), "regulator": ("10", True),
        "nurse": ("60", False)}
HIDDEN_FROM = {"40": {"DIR_ANT", "VDP"}}     # the default profession matrix, for the cast above
CATEGORIES = ["CPT_REND", "DIR_ANT", "BIOLOGIE", "VDP"]


# --- the reference model -------------------------------------------------------------------------------------

@dataclass
class Doc:
    category: str
    author: str | None
    masked: bool = False
    invisible: bool = False
    released: bool = False


@dataclass
class Model:
    consents: set[str] = field(default_factory=set)
    blocked: set[str] = field(default_factory=set)
    mt: str | None = None
    admin: str | None = None
    samu: bool = True
    btg: bool = True
    masked_in_emergency: bool = False
    emergencies: list[tuple[str, str, dt.datetime]] = field(default_factory=list)  # (pro, purpose, expires)
    docs: dict[int, Doc] = field(default_factory=dict)

    def emergency_allowed(self, pro: str, purpose: str, reason: str | None) -> tuple[bool, str]:
        if not reason:
            return False, "reason_required"
        if purpose == "ETREAT":
            if not PROS[pro][1]:
                return False, "not_regulator"
            return (True, "emergency_samu") if self.samu else (False, "emergency_disabled")
        return (True, "break_the_glass") if self.btg else (False, "emergency_disabled")

    def decide(self, pro: str, purpose: str, reason: str | None, now: dt.datetime) -> tuple[bool, str, bool]:
        """(allowed, reason, sees masked documents)."""
        if pro in self.blocked:
            return False, "blocked", False
        if purpose != "TREAT":
            ok, why = self.emergency_allowed(pro, purpose, reason)
            return ok, why, ok and (self.masked_in_emergency or pro == self.admin)
        if pro == self.mt:
            return True, "medecin_traitant", pro == self.admin
        if pro == self.admin:
            return True, "administrator", True
        if pro in self.consents:
            return True, "consent", False
        running = [(exp, p) for who, p, exp in self.emergencies if who == pro and exp > now]
        if running:
            _, p = max(running)
            ok, _ = self.emergency_allowed(pro, p, "still running")
            if ok:
                return True, "emergency_samu" if p == "ETREAT" else "break_the_glass", (
                    self.masked_in_emergency or pro == self.admin)
        return False, "no_consent", False

    def pro_sees(self, pro: str, doc: Doc, masked_ok: bool) -> bool:
        if doc.category in HIDDEN_FROM.get(PROS[pro][0], set()):
            return False
        return not doc.masked or masked_ok or doc.author == pro

    @staticmethod
    def patient_sees(doc: Doc) -> bool:
        return not doc.invisible or doc.released


# --- the machine ---------------------------------------------------------------------------------------------

class AccessMachine(RuleBasedStateMachine):
    def __init__(self, app, db, pros) -> None:
        super().__init__()
        self.app, self.db, self.pros = app, db, pros
        self.model = Model()
        self.now = START
        self.patient = make_patient(self.app, self.db, 1)
        self.rows: dict[int, Document] = {}

    def teardown(self) -> None:
        self.db.rollback()  # the professionals were committed before; everything else goes

    def tick(self, minutes: int = 1) -> None:
        self.now += dt.timedelta(minutes=minutes)  # no two events at the same instant

    def record(self) -> Record:
        return self.db.scalar(select(Record).where(Record.patient_id == self.patient.id))

    def add(self, category: str, author: str | None, invisible: bool, masked: bool) -> None:
        n = len(self.rows)
        row = make_doc(self.app, self.db, self.patient.id, f"d{n}", category=category, invisible=invisible,
                       masked=masked, author=self.pros[author] if author else None)
        self.rows[row.id] = row
        self.model.docs[row.id] = Doc(category, author, masked=masked, invisible=invisible)

    @initialize()
    def documents(self) -> None:
        self.add("CPT_REND", "doc_a", False, False)
        self.add("DIR_ANT", "nurse", False, False)
        self.add("BIOLOGIE", "dentist", True, False)
        self.add("VDP", None, False, False)

    # --- what the patient does ---

    @rule(pro=st.sampled_from(sorted(PROS)))
    def grant(self, pro: str) -> None:
        self.tick()
        try:
            consents.grant(self.db, self.patient.id, self.pros[pro].id, now=self.now)
        except DomainError as refused:
            assert refused.code == "professional_blocked" and pro in self.model.blocked
            return
        assert pro not in self.model.blocked
        self.model.consents.add(pro)

    @rule(pro=st.sampled_from(sorted(PROS)))
    def revoke(self, pro: str) -> None:
        self.tick()
        try:
            consents.revoke(self.db, self.patient.id, self.pros[pro].id, now=self.now)
        except DomainError as refused:
            assert refused.code == "consent_not_found" and pro not in self.model.consents
            return
        self.model.consents.discard(pro)

    @rule(pro=st.sampled_from(sorted(PROS)))
    def block(self, pro: str) -> None:
        self.tick()
        consents.block(self.db, self.patient.id, self.pros[pro].rpps, now=self.now)
        self.model.blocked.add(pro)

    @rule(pro=st.sampled_from(sorted(PROS)))
    def unblock(self, pro: str) -> None:
        self.tick()
        try:
            consents.unblock(self.db, self.patient.id, self.pros[pro].rpps, now=self.now)
        except DomainError as refused:
            assert refused.code == "block_not_found" and pro not in self.model.blocked
            return
        self.model.blocked.discard(pro)

    @rule(pro=st.none() | st.sampled_from(sorted(PROS)))
    def set_medecin_traitant(self, pro: str | None) -> None:
        self.tick()
        try:
            consents.set_medecin_traitant(self.db, self.patient.id, self.pros[pro].id if pro else None, now=self.now)
        except DomainError as refused:
            assert pro is not None and (
                (refused.code == "medecin_traitant_not_doctor" and PROS[pro][0] != "10")
                or (refused.code == "professional_blocked" and pro in self.model.blocked))
            return
        assert pro is None or (PROS[pro][0] == "10" and pro not in self.model.blocked)
        self.model.mt = pro

    @rule(pro=st.none() | st.sampled_from(sorted(PROS)))
    def set_administrator(self, pro: str | None) -> None:
        self.tick()
        try:
            consents.set_administrator(self.db, self.patient.id, self.pros[pro].id if pro else None, now=self.now)
        except DomainError as refused:
            assert refused.code == "professional_blocked" and pro in self.model.blocked
            return
        self.model.admin = pro

    @rule(switch=st.sampled_from(["samu", "btg", "masked"]), on=st.booleans())
    def switch(self, switch: str, on: bool) -> None:
        self.tick()
        setattr(self.record(), f"emergency_{switch}", on)
        self.db.flush()
        setattr(self.model, "masked_in_emergency" if switch == "masked" else switch, on)

    @rule(data=st.data(), masked=st.booleans())
    def mask(self, data: st.DataObject, masked: bool) -> None:
        doc_id = data.draw(st.sampled_from(sorted(self.rows)))
        self.rows[doc_id].masked = masked
        self.db.flush()
        self.model.docs[doc_id].masked = masked

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        doc_id = data.draw(st.sampled_from(sorted(self.rows)))
        if self.rows[doc_id].invisible_patient:
            self.rows[doc_id].released_at = self.now
            self.db.flush()
            self.model.docs[doc_id].released = True

    @precondition(lambda self: len(self.rows) < 8)
    @rule(category=st.sampled_from(CATEGORIES), author=st.none() | st.sampled_from(sorted(PROS)),
          invisible=st.booleans(), masked=st.booleans())
    def new_document(self, category: str, author: str | None, invisible: bool, masked: bool) -> None:
        self.add(category, author, invisible, masked)

    # --- what professionals do, and time ---

    @rule(pro=st.sampled_from(sorted(PROS)), purpose=st.sampled_from(["ETREAT", "BTG"]), with_reason=st.booleans())
    def emergency(self, pro: str, purpose: str, with_reason: bool) -> None:
        self.tick()
        reason = "inconscient, aucun proche joignable" if with_reason else None
        expected = self.model.decide(pro, purpose, reason, self.now)
        try:
            authorize(self.db, Actor.of_professional(self.pros[pro]), self.patient.id, "document.search",
                      purpose=Purpose(purpose), reason=reason, now=self.now)
        except AccessRefused as refused:
            assert (False, refused.decision.reason) == expected[:2]
            return
        assert expected[0], expected
        running = [1 for who, p, exp in self.model.emergencies if who == pro and p == purpose and exp > self.now]
        if not running:
            self.model.emergencies.append((pro, purpose, self.now + EMERGENCY))

    @rule(minutes=st.sampled_from([5, 30, 61, 119, 121, 24 * 60]))
    def time_passes(self, minutes: int) -> None:
        self.tick(minutes)

    # --- the property ---

    @invariant()
    def policy_agrees_with_the_model(self) -> None:
        for pro in PROS:
            expected_allowed, expected_reason, masked_ok = self.model.decide(pro, "TREAT", None, self.now)
            decision = decide(self.db, Actor.of_professional(self.pros[pro]), self.patient.id, now=self.now)
            assert (decision.allowed, decision.reason) == (expected_allowed, expected_reason), pro
            if not decision.allowed:
                continue
            scope = decision.require()
            expected = {i for i, doc in self.model.docs.items() if self.model.pro_sees(pro, doc, masked_ok)}
            assert {i for i, row in self.rows.items() if scope.permits(row)} == expected, pro
            listed = set(self.db.scalars(select(Document.id).where(scope.document_filter())))
            assert listed == expected, pro
        owner = decide(self.db, Actor.patient(self.patient.id), self.patient.id, now=self.now).require()
        expected = {i for i, doc in self.model.docs.items() if Model.patient_sees(doc)}
        assert {i for i, row in self.rows.items() if owner.permits(row)} == expected
        assert set(self.db.scalars(select(Document.id).where(owner.document_filter()))) == expected


@pytest.fixture
def cast(app, db):
    pros = {name: make_pro(db, 700 + i, f"Cast{i}", name, profession=prof, samu=samu)[0]
            for i, (name, (prof, samu)) in enumerate(PROS.items())}
    db.commit()
    return pros


def test_access_state_machine(app, db, cast, database_url):
    examples = 30 if database_url.startswith("sqlite") else 15
    run_state_machine_as_test(lambda: AccessMachine(app, db, cast), settings=settings(
        max_examples=examples, stateful_step_count=20, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
