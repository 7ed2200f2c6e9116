"""A property-based state machine over what the patient (and professionals) do to the record's access —
authorise, revoke, block, unblock, médecin traitant, administrator, mask, unmask, release, the three
switches, emergencies, time passing; a minor's legal representatives joining and leaving, the 18th
birthday, carers named with a scope and revoked — checking ``decide`` and ``Scope`` (one document, and the SQL
listing), and the write decisions (``decide_write``: deposit, replace, release, message, appointment),
against a small reference model written here from domain.md, independently of policy.py."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import select

from backend.errors import DomainError
from backend.records.access import consents
from backend.records.access.authorize import AccessRefused, authorize
from backend.records.documents.models import Document
from backend.records.models import Record
from backend.accounts.models import AccountState
from backend.family import service as family
from backend.family.models import CarerState, LegalRepresentative, RepresentationState
from backend.records.access.policy import Action, Actor, Area, Purpose, decide, decide_write
from tests.world import make_doc, make_patient, make_pro

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
EMERGENCY = dt.timedelta(hours=2)   # the default duration

# The cast: (profession, SAMU regulator)
PROS = {"doc_a": ("10", False), "doc_b": ("10", False), "dentist": ("40", False), "regulator": ("10", True),
        "nurse": ("60", False)}
HIDDEN_FROM = {"40": {"DIR_ANT", "VDP"}}     # the default profession matrix, for the cast above
STRUCTURE = {"doc_a": "1750712184", "doc_b": "1750712184", "nurse": "1750712184", "dentist": "1690000000"}
CATEGORIES = ["CPT_REND", "DIR_ANT", "BIOLOGIE", "VDP"]
# The family: the holder is a minor (born BORN) with a first legal representative; a second one may be invited;
# carers can be named only once the holder is an adult, with a scope of their choice.
BORN = dt.date(2010, 6, 15)
REPRESENTATIVES = ("mum", "dad")
CARERS = ("aide_a", "aide_b")
SCOPES = ["documents", "profile", "agenda", "messages"]


# --- the reference model -------------------------------------------------------------------------------------

@dataclass
class Doc:
    category: str
    author: str | None
    masked: bool = False
    invisible: bool = False
    released: bool = False
    legal_hidden: bool = False   # INVISIBLE_REPRESENTANTS_LEGAUX


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
    representatives: set[str] = field(default_factory=lambda: {"mum"})
    adult: bool = False
    carers: dict[str, frozenset[str]] = field(default_factory=dict)   # accepted carers and their scopes

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

    @staticmethod
    def representative_sees(doc: Doc) -> bool:
        return Model.patient_sees(doc) and not doc.legal_hidden

    @staticmethod
    def carer_sees(doc: Doc) -> bool:
        return Model.patient_sees(doc) and not doc.masked

    def may_replace(self, pro: str, doc: Doc, now: dt.datetime) -> bool:
        """Replacing: not blocked, may read the record and this document, and is its author or of the
        author's structure."""
        allowed, _, masked_ok = self.decide(pro, "TREAT", None, now)
        if not allowed or not self.pro_sees(pro, doc, masked_ok):
            return False
        same = doc.author is not None and STRUCTURE.get(pro) is not None and STRUCTURE.get(pro) == STRUCTURE.get(doc.author)
        return doc.author == pro or same


# --- the machine ---------------------------------------------------------------------------------------------

class AccessMachine(RuleBasedStateMachine):
    def __init__(self, app, db, pros) -> None:
        super().__init__()
        self.app, self.db, self.pros = app, db, pros
        self.model = Model()
        self.now = START
        self.patient = make_patient(self.app, self.db, 1)
        self.patient.birth_date = BORN
        self.people = {name: make_patient(self.app, self.db, 2 + i, given=name)
                       for i, name in enumerate(REPRESENTATIVES + CARERS)}
        self.family = family.FamilySettings(secret_key="state-machine", max_carers_per_patient=2)
        self.db.flush()
        self.db.add(LegalRepresentative(child_id=self.patient.id, representative_id=self.people["mum"].id,
                                               state=RepresentationState.ACTIVE))
        self.db.flush()
        self.rows: dict[int, Document] = {}

    def teardown(self) -> None:
        self.db.rollback()  # the professionals were committed before; everything else goes

    def tick(self, minutes: int = 1) -> None:
        self.now += dt.timedelta(minutes=minutes)  # no two events at the same instant

    def record(self) -> Record:
        return self.db.scalar(select(Record).where(Record.patient_id == self.patient.id))

    def add(self, category: str, author: str | None, invisible: bool, masked: bool, legal_hidden: bool = False) -> None:
        n = len(self.rows)
        row = make_doc(self.app, self.db, self.patient.id, f"d{n}", category=category, invisible=invisible,
                       masked=masked, author=self.pros[author] if author else None,
                       author_structure_id=STRUCTURE.get(author) if author else None, legal_hidden=legal_hidden)
        self.rows[row.id] = row
        self.model.docs[row.id] = Doc(category, author, masked=masked, invisible=invisible, legal_hidden=legal_hidden)

    @initialize()
    def documents(self) -> None:
        self.add("CPT_REND", "doc_a", False, False)
        self.add("DIR_ANT", "nurse", False, False)
        self.add("BIOLOGIE", "dentist", True, False)
        self.add("VDP", None, False, False)
        self.add("CPT_REND", "doc_b", False, False, legal_hidden=True)

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
          invisible=st.booleans(), masked=st.booleans(), legal_hidden=st.booleans())
    def new_document(self, category: str, author: str | None, invisible: bool, masked: bool,
                     legal_hidden: bool) -> None:
        self.add(category, author, invisible, masked, legal_hidden)

    # --- the family ---

    @rule(inviter=st.sampled_from(REPRESENTATIVES), invited=st.sampled_from(REPRESENTATIVES + CARERS))
    def representative_invited(self, inviter: str, invited: str) -> None:
        self.tick()
        try:
            _, code = family.invite_representative(self.db, self.family, self.people[inviter], self.patient.id,
                                                   now=self.now)
        except DomainError as refused:
            assert (refused.code == "family_child_not_found" and inviter not in self.model.representatives) or (
                refused.code == "family_representatives_limit" and len(self.model.representatives) >= 2), refused.code
            return
        assert inviter in self.model.representatives and len(self.model.representatives) < 2
        try:
            family.accept_representative(self.db, self.family, self.people[invited], code, now=self.now)
        except DomainError as refused:
            assert refused.code == "family_already_linked" and invited in self.model.representatives
            return
        self.model.representatives.add(invited)

    @rule(name=st.sampled_from(REPRESENTATIVES + CARERS))
    def representative_leaves(self, name: str) -> None:
        self.tick()
        try:
            family.leave_representation(self.db, self.people[name], self.patient.id, now=self.now)
        except DomainError as refused:
            assert refused.code == "family_child_not_found" and name not in self.model.representatives
            return
        self.model.representatives.discard(name)

    @precondition(lambda self: not self.model.adult)
    @rule()
    def comes_of_age(self) -> None:
        """The 18th birthday (the daily job), then the young adult activates with their own letter."""
        self.now = dt.datetime.combine(dt.date(BORN.year + 18, BORN.month, BORN.day), dt.time(9),
                                       tzinfo=dt.timezone.utc)
        with self.app.app_context():
            letters = family.come_of_age(self.db, self.family, self.app.extensions["carnet.account_settings"],
                                         now=self.now)
        assert [letter.patient_id for letter in letters] == [self.patient.id]
        self.patient.state, self.patient.password_hash = AccountState.ACTIVE, "activated-by-letter"
        self.db.flush()
        self.model.representatives.clear()
        self.model.adult = True

    @rule(name=st.sampled_from(CARERS + REPRESENTATIVES[:1]), scopes=st.sets(st.sampled_from(SCOPES), min_size=1))
    def carer_named(self, name: str, scopes: set[str]) -> None:
        self.tick()
        try:
            _, code = family.invite_carer(self.db, self.family, self.patient, sorted(scopes), now=self.now)
        except DomainError as refused:
            assert (refused.code == "family_carer_minor" and not self.model.adult) or (
                refused.code == "family_carers_limit"), refused.code
            return
        assert self.model.adult
        try:
            family.accept_carer(self.db, self.family, self.people[name], code, now=self.now)
        except DomainError as refused:
            assert refused.code in ("family_already_linked", "family_carers_limit"), refused.code
            assert name in self.model.carers or len(self.model.carers) >= 2
            self._withdraw_pending()
            return
        assert name not in self.model.carers and len(self.model.carers) < 2
        self.model.carers[name] = frozenset(scopes)

    def _withdraw_pending(self) -> None:
        for link, _person in family.patient_carers(self.db, self.patient.id):
            if link.state == CarerState.INVITED:
                family.end_carer(self.db, self.patient, link.id, now=self.now)

    @rule(name=st.sampled_from(CARERS + REPRESENTATIVES[:1]))
    def carer_revoked(self, name: str) -> None:
        self.tick()
        links = [link for link, person in family.patient_carers(self.db, self.patient.id)
                 if person is not None and person.id == self.people[name].id]
        assert bool(links) == (name in self.model.carers)
        for link in links:
            family.end_carer(self.db, self.patient, link.id, now=self.now)
        self.model.carers.pop(name, None)

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

    @invariant()
    def family_agrees_with_the_model(self) -> None:
        for name, person in self.people.items():
            rep = decide(self.db, Actor.representative(person.id), self.patient.id, now=self.now)
            assert rep.allowed == (name in self.model.representatives), (name, rep.reason)
            if rep.allowed:
                expected = {i for i, doc in self.model.docs.items() if Model.representative_sees(doc)}
                assert {i for i, row in self.rows.items() if rep.require().permits(row)} == expected
                assert set(self.db.scalars(select(Document.id).where(rep.require().document_filter()))) == expected
            scopes = self.model.carers.get(name)
            for area in (Area.DOCUMENTS, Area.AGENDA, Area.ACCESS):
                carer = decide(self.db, Actor.carer(person.id), self.patient.id, now=self.now, area=area)
                assert carer.allowed == (scopes is not None and area.value in scopes), (name, area, carer.reason)
                if carer.allowed and area == Area.DOCUMENTS:
                    expected = {i for i, doc in self.model.docs.items() if Model.carer_sees(doc)}
                    assert set(self.db.scalars(select(Document.id).where(carer.require().document_filter()))) == expected
            books = decide_write(self.db, Actor.carer(person.id), self.patient.id, Action.APPOINTMENT_CREATE,
                                 now=self.now)
            assert books.allowed == (scopes is not None and "agenda" in scopes), (name, books.reason)
            for never in (Action.ACCESS_CONSENTS, Action.ACCESS_EMERGENCY, Action.DIRECTIVES, Action.ACCOUNT):
                assert not decide_write(self.db, Actor.carer(person.id), self.patient.id, never, now=self.now).allowed
            switches = decide_write(self.db, Actor.representative(person.id), self.patient.id,
                                    Action.ACCESS_EMERGENCY, now=self.now)
            assert switches.allowed == (name in self.model.representatives), (name, switches.reason)

    @invariant()
    def writes_agree_with_the_model(self) -> None:
        for pro in PROS:
            actor = Actor.of_professional(self.pros[pro])
            blocked = pro in self.model.blocked

            def allowed(action: Action, **target: object) -> bool:
                return decide_write(self.db, actor, self.patient.id, action, now=self.now, **target).allowed

            assert allowed(Action.DOCUMENT_DEPOSIT), pro          # feeding: always, blocked or not
            for action in (Action.MESSAGE_SEND, Action.APPOINTMENT_CREATE, Action.CONVERSATION):
                assert allowed(action) == (not blocked), (pro, action)
            for doc_id, row in self.rows.items():
                doc = self.model.docs[doc_id]
                assert allowed(Action.DOCUMENT_REPLACE, target=row) == self.model.may_replace(pro, doc, self.now), (
                    pro, doc_id, doc)
                assert allowed(Action.DOCUMENT_RELEASE, target=row) == (doc.author == pro and not blocked), (pro, doc)
        holder = Actor.patient(self.patient.id)
        for doc_id, row in self.rows.items():
            assert decide_write(self.db, holder, self.patient.id, Action.DOCUMENT_DELETE, target=row).reason == (
                "owner" if self.model.docs[doc_id].author is None else "not_own_upload")


@pytest.fixture
def cast(app, db):
    pros = {name: make_pro(db, 700 + i, f"Cast{i}", name, profession=prof, samu=samu)[0]
            for i, (name, (prof, samu)) in enumerate(PROS.items())}
    for name, pro in pros.items():
        pro.structure_id = STRUCTURE.get(name)
    db.commit()
    return pros


def test_access_state_machine(app, db, cast, database_url):
    examples = 30 if database_url.startswith("sqlite") else 15
    run_state_machine_as_test(lambda: AccessMachine(app, db, cast), settings=settings(
        max_examples=examples, stateful_step_count=20, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
