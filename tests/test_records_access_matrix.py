"""The generated authorization matrix: every route of the app × every kind of actor, and the policy
itself × every document state. "No unexpected success": a response may only succeed where the table
says so, and may only contain the documents the table lets that actor see.

How it is built
- Documents carry sentinels (title ``TITLE-<name>-<patient>``, bytes ``CONTENT-…``); every response is
  searched for them (raw, base64 strings inside JSON, members of a ZIP). Finding one the actor may not
  see is a failure, whatever the route and its status.
- ``ROUTES`` (tests/access_matrix.py) declares, for each route family, how to call it and what it is:
  patient routes (the patient's bearer) are covered automatically; professional routes (``/fhir/R4``, a professional's
  bearer and ``X-Purpose-Of-Use``/``X-Purpose-Reason``) and public routes must be declared. A route
  that matches no declaration, or has a path parameter ``PARAMS`` does not know, fails the suite:
  a route added later is covered, or the suite says what to declare.
- ``EXPECTED`` is written by hand, independently of ``policy.py``: what each actor sees in each phase of
  the emergency switches.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from backend.accounts.models import AccountState, AuthToken, Patient, TokenKind
from backend.family.models import CarerLink, CarerState, LegalRepresentative, RepresentationState
from backend.notifications.service import notify
from backend.records.access import consents
from backend.records.access.models import Block, Consent
from backend.records.documents.models import Document
from backend.records.models import Record
from backend.records.access.policy import (NO_TARGET, WRITE_RULES, Action, Actor, Correspondent, Purpose, decide,
                                           decide_write)
from tests.access_matrix import (PARAM_RE, Family, World, assert_every_route_is_in_the_matrix, expand, family_of,
                                 rule_policies)
from tests.helpers import NIR_LOUIS, activate, bearer, create_patient, make_nir
from tests.world import make_doc, make_patient, make_pro

# --- the hand-written expectations -----------------------------------------------------------------------------

# The owner's documents (all authored by a professional who is none of the actors below, except
# "masked_own", authored by the authorised doctor).
OWNER_DOCS = {
    "plain": {"category": "CPT_REND"},
    "directive": {"category": "DIR_ANT"},                                  # a dentist may not see it
    "masked": {"category": "BIOLOGIE", "masked": True},
    "masked_own": {"category": "BIOLOGIE", "masked": True},                # authored by "authorised"
    "unreleased": {"category": "RADIO_SC", "invisible": True},             # hidden from the patient only
    "released": {"category": "RADIO_SC", "invisible": True, "released": True},
    "deleted": {"category": "CPT_REND", "deleted": True},                  # nobody
    "legal_hidden": {"category": "CPT_REND", "legal_hidden": True},        # INVISIBLE_REPRESENTANTS_LEGAUX
}
ALL = frozenset(OWNER_DOCS)
NORMAL = frozenset({"plain", "directive", "unreleased", "released", "legal_hidden"})
OWNER_SEES = frozenset({"plain", "directive", "masked", "masked_own", "released", "legal_hidden"})
# acting in the owner's record from their own account (backend.family): a legal representative has the
# patient's rights but never sees INVISIBLE_REPRESENTANTS_LEGAUX; a carer with the documents scope sees the
# documents the patient sees except masked ones; a carer without it, a revoked or an ended link, nothing.
REPRESENTATIVE_SEES = OWNER_SEES - {"legal_hidden"}
CARER_DOCUMENTS_SEES = OWNER_SEES - {"masked", "masked_own"}

# Phases of the three switches: (samu, btg, masked)
PHASES = {"on": (True, True, False), "masked_on": (True, True, True), "off": (False, False, False)}

# Professional actors: profession, samu regulator, declared purpose and reason, and what they see in each
# phase (a set, or None: refused at the record level).
@dataclass(frozen=True)
class ProActor:
    profession: str = "10"
    samu: bool = False
    purpose: str | None = None
    reason: str | None = None
    sees: dict[str, frozenset[str] | None] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        out = {}
        if self.purpose:
            out["X-Purpose-Of-Use"] = self.purpose
        if self.reason:
            out["X-Purpose-Reason"] = self.reason
        return out


def _same(value: frozenset[str] | None) -> dict[str, frozenset[str] | None]:
    return {phase: value for phase in PHASES}


PRO_ACTORS: dict[str, ProActor] = {
    "authorised": ProActor(sees=_same(NORMAL | {"masked_own"})),
    "authorised_dentist": ProActor(profession="40", sees=_same(NORMAL - {"directive"})),
    "unauthorised": ProActor(sees=_same(None)),
    "revoked": ProActor(sees=_same(None)),
    "blocked": ProActor(sees=_same(None)),
    "blocked_in_emergency": ProActor(purpose="BTG", reason="malaise en salle d'attente", sees=_same(None)),
    "medecin_traitant": ProActor(sees=_same(NORMAL)),
    "administrator": ProActor(sees=_same(NORMAL | {"masked", "masked_own"})),
    "samu": ProActor(samu=True, purpose="ETREAT", reason="appel au 15 : détresse respiratoire",
                     sees={"on": NORMAL, "masked_on": NORMAL | {"masked", "masked_own"}, "off": None}),
    "samu_not_regulator": ProActor(purpose="ETREAT", reason="se dit régulateur", sees=_same(None)),
    "btg": ProActor(purpose="BTG", reason="patient inconscient aux urgences",
                    sees={"on": NORMAL, "masked_on": NORMAL | {"masked", "masked_own"}, "off": None}),
    "btg_without_reason": ProActor(purpose="BTG", sees=_same(None)),
}
# "blocked_in_emergency" is the blocked professional declaring BTG (same person, same token).
SAME_PERSON = {"blocked_in_emergency": "blocked"}
EMERGENCY_ACTORS = {"samu", "btg"}


# --- the world ------------------------------------------------------------------------------------------------

def build_world(app, client, db) -> World:
    owner = create_patient(app, given="Owneria", family="Zyxowner")
    owner_tokens = activate(client, owner)
    other = create_patient(app, NIR_LOUIS, "1990-02-01", given="Otheria", family="Qwother")
    other_tokens = activate(client, other)
    author, _ = make_pro(db, 900, "Auteur", "Paul")
    made = {}
    for i, (name, actor) in enumerate(PRO_ACTORS.items()):
        if name in SAME_PERSON:
            continue
        made[name] = make_pro(db, 901 + i, f"Acteur{i:02d}", name, profession=actor.profession, samu=actor.samu)
    for name, same in SAME_PERSON.items():
        made[name] = made[same]
    pid = owner.patient_id
    for name in ("authorised", "authorised_dentist", "revoked", "blocked"):
        consents.grant(db, pid, made[name][0].id)
    consents.revoke(db, pid, made["revoked"][0].id)
    consents.set_medecin_traitant(db, pid, made["medecin_traitant"][0].id)
    consents.set_administrator(db, pid, made["administrator"][0].id)
    consents.block(db, pid, made["blocked"][0].rpps)
    docs = {}
    for name, spec in OWNER_DOCS.items():
        by = made["authorised"][0] if name == "masked_own" else author
        docs[name] = make_doc(app, db, pid, name, author=by, **spec).id
    other_doc = make_doc(app, db, other.patient_id, "other", author=author).id
    notification = notify(db, pid, "document", ref_type="document", ref_id=docs["plain"]).id
    device = db.scalar(select(AuthToken.id).where(AuthToken.patient_id == pid, AuthToken.kind == TokenKind.ACCESS))
    db.commit()
    family_headers = {}
    for n, (name, (scopes, state)) in enumerate(FAMILY_LINKS.items()):
        person = create_patient(app, make_nir(f"1{70 + n}0175123{456 + n}"), f"19{70 + n}-01-15",
                                given=name.title().replace("_", ""), family="Famille", sex="M")
        if scopes is None:
            db.add(LegalRepresentative(child_id=pid, representative_id=person.patient_id, state=state))
        else:
            db.add(CarerLink(patient_id=pid, carer_id=person.patient_id, scopes=scopes, state=state))
        db.commit()
        token = activate(client, person)["access_token"]
        family_headers[name] = {**bearer(token), "X-Carnet-Record": str(pid)}
    owner_row, other_row = db.get(Patient, pid), db.get(Patient, other.patient_id)
    return World(pid, owner_row.nir, owner_row.ins_oid, bearer(owner_tokens["access_token"]), other.patient_id,
                 other_row.nir, other_row.ins_oid, bearer(other_tokens["access_token"]), docs, other_doc,
                 {n: p.id for n, (p, _) in made.items()}, {n: p.rpps for n, (p, _) in made.items()},
                 {n: t for n, (_, t) in made.items()}, device, notification, family_headers)


# People acting in the owner's record from their own accounts (header X-Carnet-Record): carers' scopes (None:
# a legal representative) and the link's state. What each may read, by hand: the GET routes (regex) of the
# areas a carer was given; a representative reads every route, without INVISIBLE_REPRESENTANTS_LEGAUX.
FAMILY_LINKS = {
    "representative": (None, RepresentationState.ACTIVE),
    "representative_left": (None, RepresentationState.LEFT),
    "carer_documents": ("documents,profile", CarerState.ACCEPTED),
    "carer_agenda": ("agenda,messages", CarerState.ACCEPTED),
    "carer_revoked": ("agenda,messages,documents,profile", CarerState.REVOKED),
}
FAMILY_SEES = {"representative": REPRESENTATIVE_SEES, "carer_documents": CARER_DOCUMENTS_SEES}
FAMILY_READS = {"carer_documents": r"/api/v1/record/(documents|profile|directives)(/.*)?",
                "carer_agenda": r"/api/v1/(agenda|inbox)(/.*)?",
                "representative": r"/api/v1/.*"}
FAMILY_WRITES = {"carer_agenda": r"/api/v1/(agenda|inbox)(/.*)?", "representative": r"/api/v1/.*"}


def family_callers(world: World) -> list[Caller]:
    return [Caller(name, headers, FAMILY_SEES.get(name, frozenset()), patient="family")
            for name, headers in world.family_headers.items()]


def family_must_fail(caller: Caller, method: str, rule: str, docs: set[str]) -> bool:
    allowed = (FAMILY_READS if method == "GET" else FAMILY_WRITES).get(caller.name)
    return allowed is None or re.fullmatch(allowed, rule) is None or bool(docs - (caller.sees or frozenset()))


def set_phase(db, world: World, phase: str) -> None:
    samu, btg, masked = PHASES[phase]
    record = db.scalar(select(Record).where(Record.patient_id == world.owner_id))
    record.emergency_samu, record.emergency_btg, record.emergency_masked = samu, btg, masked
    db.commit()


def test_every_route_is_in_the_matrix(app):
    """A route without a policy, without a family, or with an unknown path parameter fails here."""
    assert_every_route_is_in_the_matrix(app)


def test_the_registry_rejects_what_it_does_not_know():
    assert family_of("/fhir/R4/Observation", "professional") is None
    assert family_of("/api/v1/new-public-thing", "public") is None
    assert family_of("/api/v1/anything", None) is None
    assert family_of("/api/v1/record/documents", "patient") is not None


# --- calling and judging ------------------------------------------------------------------------------------

def haystack(response) -> bytes:
    """Everything a client could read out of a response: bytes, base64 strings in JSON, ZIP members."""
    data = response.get_data()
    parts = [data]
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for name in archive.namelist():
                    parts += [name.encode(), archive.read(name)]
        except zipfile.BadZipFile:
            pass
    try:
        payload = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        payload = None

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str) and len(node) >= 16 and re.fullmatch(r"[A-Za-z0-9+/=_-]+", node):
            try:
                parts.append(base64.b64decode(node + "=" * (-len(node) % 4), altchars=b"-_" if "-" in node or "_" in node else None))
            except (binascii.Error, ValueError):
                pass

    walk(payload)
    return b"\n".join(parts)


@dataclass
class Caller:
    name: str
    headers: dict[str, str]
    sees: frozenset[str] | None          # owner's documents this caller may see (None: none, refused)
    sees_other: bool = False             # the other patient's document
    patient: str | None = None           # owner | other (patient callers)


@dataclass
class Judge:
    world: World
    failures: list[str] = field(default_factory=list)
    calls: int = 0

    def check(self, caller: Caller, method: str, url: str, response, *, must_fail: bool, why: str) -> None:
        self.calls += 1
        status = response.status_code
        if must_fail and 200 <= status < 300:
            self.failures.append(f"{caller.name}: {method} {url} → {status}, expected a refusal ({why})")
        text = haystack(response)
        allowed = caller.sees or frozenset()
        for name, needles in self.world.sentinels().items():
            visible = caller.sees_other if name == "other" else name in allowed
            if not visible and any(n in text for n in needles):
                self.failures.append(f"{caller.name}: {method} {url} → {status} shows document {name!r}")
        if caller.patient == "other" or caller.name == "anonymous":
            for needle in (b"Zyxowner", b"ZYXOWNER", self.world.owner_nir.encode()):
                if needle in text:
                    self.failures.append(f"{caller.name}: {method} {url} → {status} shows the owner's identity")


def _call(client, method: str, url: str, caller: Caller, family: Family, world: World,
          query: dict[str, str] | None = None):
    headers = dict(caller.headers)
    kwargs: dict[str, Any] = {"headers": headers, "query_string": query or {}}
    if method in ("POST", "PUT", "PATCH"):
        body = family.body(world)
        if body is not None:
            kwargs["data"] = json.dumps(body)
            headers["Content-Type"] = family.content_type
    return client.open(url, method=method, **kwargs)


def pro_callers(world: World, phase: str) -> list[Caller]:
    """Each professional actor as this phase of the owner's switches sees them. The other patient keeps
    the default switches (SAMU and break-the-glass on): the emergency actors may read their record."""
    out = []
    for name, actor in PRO_ACTORS.items():
        if phase != "on" and name not in EMERGENCY_ACTORS:
            continue  # only emergencies depend on the switches
        # the blocked professional is blocked by the owner only: their break-the-glass on the other
        # patient's record is allowed (and then runs for their normal requests too)
        out.append(Caller(name, {**bearer(world.pro_tokens[name]), **actor.headers()}, actor.sees[phase],
                          sees_other=name in EMERGENCY_ACTORS | {"blocked", "blocked_in_emergency"}))
    return out


def patient_callers(world: World) -> list[Caller]:
    return [Caller("owner", world.owner_headers, OWNER_SEES, patient="owner"),
            Caller("other_patient", world.other_headers, frozenset(), sees_other=True, patient="other"),
            Caller("anonymous", {}, frozenset())]


def run_patient_routes(app, client, world: World, judge: Judge) -> None:
    """Patient routes × owner, other patient, anonymous and every professional's bearer."""
    mutating: list[tuple[str, str, Family]] = []
    for rule, method, policy in rule_policies(app):
        family = family_of(rule, policy)
        if family is None or family.policy != "patient":
            continue
        if method != "GET":
            mutating.append((rule, method, family))
            continue
        for url, values in expand(rule, world):
            docs = {v.doc for v in values if v.doc}
            owned = any(v.owned for v in values)
            for caller in patient_callers(world):
                if caller.name == "anonymous":
                    must_fail, why = True, "no session"
                elif caller.patient == "other":
                    must_fail, why = owned or docs - {"other"} != set(), "the owner's object"
                else:
                    must_fail, why = bool(docs - OWNER_SEES), "a document the patient may not see"
                judge.check(caller, method, url, _call(client, method, url, caller, family, world),
                            must_fail=must_fail, why=why)
            if not rule.startswith("/api/v1/family/"):  # the family routes are the account's own
                for caller in family_callers(world):
                    judge.check(caller, method, url, _call(client, method, url, caller, family, world),
                                must_fail=family_must_fail(caller, method, rule, docs),
                                why="outside what this representative or carer may read")
        # a professional's bearer is not a patient session
        url, _ = next(expand(rule, world))
        for caller in pro_callers(world, "on"):
            judge.check(caller, method, url, _call(client, method, url, caller, family, world),
                        must_fail=True, why="a professional's token on the patient API")
    # Changes: only the calls that must be refused are made (the owner acting on their own record is
    # their right, and would change the world): the other patient with the owner's objects, the owner
    # with documents they may not see, anyone without a patient session.
    for rule, method, family in mutating:
        for url, values in expand(rule, world):
            docs = {v.doc for v in values if v.doc}
            owned = any(v.owned for v in values)
            for caller in patient_callers(world):
                if caller.name == "anonymous":
                    pass
                elif caller.patient == "other" and (owned or docs - {"other"}):
                    pass
                elif caller.patient == "owner" and docs - OWNER_SEES:
                    pass
                else:
                    continue
                judge.check(caller, method, url, _call(client, method, url, caller, family, world),
                            must_fail=True, why="refused change")
            if not rule.startswith("/api/v1/family/"):
                for caller in family_callers(world):
                    if family_must_fail(caller, method, rule, docs):
                        judge.check(caller, method, url, _call(client, method, url, caller, family, world),
                                    must_fail=True, why="a change this representative or carer may not make")
        url, _ = next(expand(rule, world))
        for caller in pro_callers(world, "on"):
            judge.check(caller, method, url, _call(client, method, url, caller, family, world),
                        must_fail=True, why="a professional's token on the patient API")


def run_professional_routes(app, client, db, world: World, judge: Judge) -> None:
    """Professional routes × every professional actor in each phase of the switches, and patients."""
    rules = [(rule, method, family_of(rule, policy)) for rule, method, policy in rule_policies(app)]
    rules = [(r, m, f) for r, m, f in rules if f is not None and f.policy == "professional"]
    release_calls = [(r, m, f) for r, m, f in rules if f.role == "release"]
    for phase in PHASES:
        set_phase(db, world, phase)
        for rule, method, family in rules:
            if family.role == "release":
                continue
            for url, values in expand(rule, world):
                docs = {v.doc for v in values if v.doc}
                for query in family.query(world):
                    about_other = world.other_nir in json.dumps(query)
                    for caller in pro_callers(world, phase):
                        if about_other:  # searching the other patient's record: only their document
                            caller = Caller(caller.name, caller.headers, None, sees_other=caller.sees_other)
                        sees = caller.sees or frozenset()
                        visible = sees | ({"other"} if caller.sees_other else set())
                        must_fail, why = False, ""
                        if family.role == "record_read":
                            if docs:
                                must_fail, why = not docs <= visible, "a document outside the actor's scope"
                            elif about_other:
                                must_fail, why = not caller.sees_other, "no access to the other patient's record"
                            else:
                                must_fail, why = caller.sees is None, "no access to this record"
                        judge.check(caller, method, url, _call(client, method, url, caller, family, world, query),
                                    must_fail=must_fail, why=why)
                    if phase == "on":
                        for caller in patient_callers(world):
                            judge.check(caller, method, url, _call(client, method, url, caller, family, world, query),
                                        must_fail=True, why="a patient's token on the professional API")
    set_phase(db, world, "on")
    # $release: nobody here is an author of the owner's documents but "authorised" (of masked_own)
    for rule, method, family in release_calls:
        for url, values in expand(rule, world):
            docs = {v.doc for v in values if v.doc}
            for caller in pro_callers(world, "on") + patient_callers(world):
                judge.check(caller, method, url, _call(client, method, url, caller, family, world),
                            must_fail=not (caller.name == "authorised" and docs == {"masked_own"}),
                            why="only the author releases a document")


def run_public_routes(app, client, world: World, judge: Judge) -> None:
    for rule, method, policy in rule_policies(app):
        family = family_of(rule, policy)
        if family is None or family.policy != "public":
            continue
        url, _ = next(expand(rule, world))
        for caller in patient_callers(world) + pro_callers(world, "on"):
            caller = Caller(caller.name, caller.headers, frozenset(), patient=caller.patient)
            judge.check(caller, method, url, _call(client, method, url, caller, family, world),
                        must_fail=False, why="")


def run_service_routes(app, client, world: World, judge: Judge) -> None:
    """Connected services' routes refuse every patient and professional token, and show nothing."""
    for rule, method, policy in rule_policies(app):
        family = family_of(rule, policy)
        if family is None or family.policy != "service":
            continue
        for url, _ in expand(rule, world):
            for caller in patient_callers(world) + pro_callers(world, "on"):
                caller = Caller(caller.name, caller.headers, frozenset(), patient=caller.patient)
                judge.check(caller, method, url, _call(client, method, url, caller, family, world),
                            must_fail=True, why="not a connected service's token")


def snapshot(db, world: World) -> Any:
    db.expire_all()
    pid = world.owner_id
    return (
        sorted((c.professional_id, c.revoked_at is None) for c in db.scalars(select(Consent).where(Consent.patient_id == pid))),
        sorted((b.rpps, b.removed_at is None) for b in db.scalars(select(Block).where(Block.patient_id == pid))),
        db.execute(select(Record.medecin_traitant_id, Record.administrator_id).where(Record.patient_id == pid)).one(),
        sorted((d.id, d.masked, d.deleted_at is None, d.released_at is None, d.removal_requested_at is None)
               for d in db.scalars(select(Document).where(Document.patient_id == pid))),
        db.get(Patient, pid).state,
    )


def test_every_route_every_actor_no_unexpected_success(app, client, db):
    world = build_world(app, client, db)
    before = snapshot(db, world)
    judge = Judge(world)
    run_patient_routes(app, client, world, judge)
    run_public_routes(app, client, world, judge)
    run_service_routes(app, client, world, judge)
    run_professional_routes(app, client, db, world, judge)
    assert not judge.failures, f"{len(judge.failures)} unexpected results:\n" + "\n".join(judge.failures[:60])
    assert snapshot(db, world) == before, "a refused call changed the owner's record"
    assert judge.calls > 100


# --- the policy itself: every actor × every document state × the switches ----------------------------------------

@dataclass
class PolicyWorld:
    owner: int
    other: int
    docs: dict[str, Document]
    actors: dict[str, Actor]


def _policy_world(app, db) -> PolicyWorld:
    owner = make_patient(app, db, 1, given="Owneria", family="Zyxowner")
    other = make_patient(app, db, 2, given="Otheria", family="Qwother")
    author, _ = make_pro(db, 900, "Auteur")
    pros = {}
    for i, (name, actor) in enumerate(PRO_ACTORS.items()):
        if name not in SAME_PERSON:
            pros[name] = make_pro(db, 901 + i, f"Acteur{i:02d}", profession=actor.profession, samu=actor.samu)[0]
    for name, same in SAME_PERSON.items():
        pros[name] = pros[same]
    for name in ("authorised", "authorised_dentist", "revoked", "blocked"):
        consents.grant(db, owner.id, pros[name].id)
    consents.revoke(db, owner.id, pros["revoked"].id)
    consents.set_medecin_traitant(db, owner.id, pros["medecin_traitant"].id)
    consents.set_administrator(db, owner.id, pros["administrator"].id)
    consents.block(db, owner.id, pros["blocked"].rpps)
    docs = {name: make_doc(app, db, owner.id, name, author=pros["authorised"] if name == "masked_own" else author,
                           **spec) for name, spec in OWNER_DOCS.items()}
    docs["other"] = make_doc(app, db, other.id, "other", author=author)
    db.commit()
    actors = {name: Actor.of_professional(p) for name, p in pros.items()}
    actors["owner"] = Actor.patient(owner.id)
    actors["other_patient"] = Actor.patient(other.id)
    actors["service"] = Actor("service", 77, granted_categories=frozenset({"CPT_REND", "BIOLOGIE"}))
    actors["carer"] = Actor("carer", 78)
    actors["insurer"] = Actor.of_insurer(79)
    for n, name in enumerate(("representative", "representative_left", "carer_documents", "carer_agenda",
                              "carer_revoked")):
        person = make_patient(app, db, 10 + n, given=name.title().replace("_", ""), family="Famille")
        actors[name] = (Actor.representative if name.startswith("representative") else Actor.carer)(person.id)
        if name.startswith("representative"):
            db.add(LegalRepresentative(child_id=owner.id, representative_id=person.id,
                                       state=RepresentationState.ACTIVE if name == "representative"
                                       else RepresentationState.LEFT))
        else:
            db.add(CarerLink(patient_id=owner.id, carer_id=person.id,
                             scopes="documents,profile" if name == "carer_documents" else "agenda,messages",
                             state=CarerState.REVOKED if name == "carer_revoked" else CarerState.ACCEPTED))
    db.commit()
    return PolicyWorld(owner.id, other.id, docs, actors)


# Non-professional actors: (allowed, reason, what they see), whatever the switches.
OTHER_ACTORS = {
    "owner": (True, "owner", OWNER_SEES),
    "other_patient": (False, "other_patient", frozenset()),
    # a connected service: the categories its consent grants, never masked nor unreleased
    "service": (True, "service_consent", frozenset({"plain", "legal_hidden"})),
    "carer": (False, "not_carer", frozenset()),
    "representative": (True, "legal_representative", REPRESENTATIVE_SEES),
    "representative_left": (False, "not_representative", frozenset()),
    "carer_documents": (True, "carer", CARER_DOCUMENTS_SEES),
    "carer_agenda": (False, "carer_scope", frozenset()),
    "carer_revoked": (False, "not_carer", frozenset()),
    # the Assurance Maladie's feed deposits reimbursement data and reads nothing
    "insurer": (False, "insurer_feeds_only", frozenset()),
}
PRO_REASONS = {
    "authorised": "consent", "authorised_dentist": "consent", "unauthorised": "no_consent",
    "revoked": "no_consent", "blocked": "blocked", "blocked_in_emergency": "blocked",
    "medecin_traitant": "medecin_traitant", "administrator": "administrator", "samu": "emergency_samu",
    "samu_not_regulator": "not_regulator", "btg": "break_the_glass", "btg_without_reason": "reason_required",
}
SWITCHED_OFF = {"samu": "emergency_disabled", "btg": "emergency_disabled"}


@pytest.mark.parametrize("phase", list(PHASES))
def test_policy_matrix_every_actor_every_document_state(app, db, phase):
    world = _policy_world(app, db)
    samu, btg, masked = PHASES[phase]
    record = db.scalar(select(Record).where(Record.patient_id == world.owner))
    record.emergency_samu, record.emergency_btg, record.emergency_masked = samu, btg, masked
    db.commit()
    failures = []
    table: dict[str, tuple[bool, str, frozenset[str]]] = dict(OTHER_ACTORS)
    for name, actor in PRO_ACTORS.items():
        sees = actor.sees[phase]
        reason = SWITCHED_OFF.get(name, PRO_REASONS[name]) if sees is None and name in SWITCHED_OFF else PRO_REASONS[name]
        table[name] = (sees is not None, reason, sees or frozenset())
    for name, (allowed, reason, sees) in table.items():
        pro_actor = PRO_ACTORS.get(name)
        purpose = Purpose(pro_actor.purpose) if pro_actor and pro_actor.purpose else Purpose.TREAT
        decision = decide(db, world.actors[name], world.owner, purpose=purpose,
                          reason=pro_actor.reason if pro_actor else None)
        if (decision.allowed, decision.reason) != (allowed, reason):
            failures.append(f"{name}: decided {decision.allowed}/{decision.reason}, expected {allowed}/{reason}")
            continue
        if not allowed:
            continue
        scope = decision.require()
        listed = set(db.scalars(select(Document.id).where(scope.document_filter())))
        for doc_name, doc in world.docs.items():
            expected = doc_name in sees
            if scope.permits(doc) != expected:
                failures.append(f"{name} × {doc_name}: permits={not expected}, expected {expected}")
            if (doc.id in listed) != expected:
                failures.append(f"{name} × {doc_name}: listed={not expected}, expected {expected}")
    assert not failures, "\n".join(failures)


def test_policy_refuses_closed_and_unknown_records(app, db):
    world = _policy_world(app, db)
    assert decide(db, world.actors["authorised"], 987654).reason == "no_record"
    db.get(Patient, world.owner).state = AccountState.CLOSED
    db.commit()
    for name in ("owner", "authorised", "administrator", "samu"):
        pro_actor = PRO_ACTORS.get(name)
        decision = decide(db, world.actors[name], world.owner,
                          purpose=Purpose(pro_actor.purpose) if pro_actor and pro_actor.purpose else Purpose.TREAT,
                          reason=pro_actor.reason if pro_actor else None)
        assert (decision.allowed, decision.reason) == (False, "account_closed"), name
    # a professional may not claim to act at the patient's request
    db.get(Patient, world.owner).state = AccountState.ACTIVE
    db.commit()
    assert decide(db, world.actors["authorised"], world.owner, purpose=Purpose.PATRQT).reason == "purpose_not_allowed"


def test_the_profession_matrix_is_a_setting(database_url):
    from backend.config import ConfigError
    from backend.db import get_db
    from tests.conftest import make_app

    custom = make_app(database_url, PROFESSION_MATRIX='{"10": {"categories": ["BIOLOGIE"], "types": ["11502-2"]}}',
                      EMERGENCY_ACCESS_MINUTES=15)
    try:
        factory = get_db(custom).session_factory
        with factory() as session:
            from backend.records.access.policy import settings_of

            settings = settings_of(session)
            assert settings.matrix == {"10": {"categories": ["BIOLOGIE"], "types": ["11502-2"]}}
            assert settings.emergency_duration.total_seconds() == 15 * 60
    finally:
        get_db(custom).engine.dispose()
    for bad in ('{"10": ["BIOLOGIE"]}', "not json", '{"10": {"categories": "BIOLOGIE"}}', '[1]'):
        with pytest.raises(ConfigError):
            make_app(database_url, PROFESSION_MATRIX=bad)


# --- writes: the rule every write route is decided by, and every actor against it ------------------------------
#
# Patient routes declare their write in the code (``@web.writes(Action.X)``, decided for the acting person
# before the route runs). The professional and service write routes are declared here, with the policy
# action their service decides. A write route declared nowhere fails the suite, as does an action without a
# row in ``policy.WRITE_RULES`` or a row that no route uses.

@dataclass(frozen=True)
class Write:
    methods: str                 # regex on the method
    pattern: str                 # regex on the rule
    action: Action | None        # None: not a patient's data (why says whose)
    why: str = ""


PRO_WRITES: list[Write] = [
    Write("POST", r"/fhir/R4/?", Action.DOCUMENT_DEPOSIT, "ITI-65; each relatesTo replaces: DOCUMENT_REPLACE"),
    Write("POST", r"/fhir/R4/DocumentReference/<doc_id>/\$release", Action.DOCUMENT_RELEASE),
    Write("POST", r"/fhir/R4/Appointment", Action.APPOINTMENT_CREATE),
    Write("POST", r"/fhir/R4/Appointment/<int:appointment_id>/\$cancel", Action.APPOINTMENT_CANCEL),
    Write("POST", r"/fhir/R4/Communication", Action.MESSAGE_SEND, "a new conversation, or inResponseTo"),
    Write("POST", r"/fhir/R4/Communication/<int:message_id>/\$(end|forbid-replies|allow-replies)",
          Action.CONVERSATION),
    Write("POST|PUT|DELETE", r"/fhir/R4/Schedule(/<int:schedule_id>)?", None,
          "the practice's own availability, no patient's data"),
    Write("POST", r"/api/service/v1/fhir/Observation", Action.PROFILE_ENTRIES, "a connected service's measure"),
]
# Actions a service decides inside a route declared for another one.
DECIDED_INSIDE = {Action.DOCUMENT_REPLACE: "POST /fhir/R4 (relatesTo replaces)"}


def write_rule(method: str, rule: str, policy: str | None, handler_action: Action | None) -> Write | None:
    if policy == "patient":
        return Write(method, rule, handler_action) if isinstance(handler_action, Action) else None
    return next((w for w in PRO_WRITES if re.fullmatch(w.methods, method) and re.fullmatch(w.pattern, rule)), None)


def write_routes(app) -> Iterator[tuple[str, str, str | None, Action | None]]:
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/api/openapi"):
            continue
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS", "GET"}):
            if method == "POST" and rule.rule.endswith("/_search"):
                continue  # FHIR search by POST (a form body instead of the query): a read, in the read matrix
            handler = getattr(view_class, method.lower(), None) if view_class is not None else view
            yield rule.rule, method, getattr(handler, "_carnet_auth", None), getattr(handler, "_carnet_write", None)


def test_every_write_route_declares_its_rule(app):
    problems, used = [], set(DECIDED_INSIDE)
    for rule, method, policy, action in write_routes(app):
        family = family_of(rule, policy)
        if family is not None and family.role == "pre_auth":
            continue  # before any session: no record to write to (activation, sign-in, opposition, OAuth)
        declared = write_rule(method, rule, policy, action)
        if declared is None:
            where = "@web.writes(Action.…) under @web.patient_required" if policy == "patient" else "PRO_WRITES"
            problems.append(f"{method} {rule} (policy {policy!r}) changes something without a declared rule: {where}")
        elif declared.action is not None:
            used.add(declared.action)
            if declared.action not in WRITE_RULES:
                problems.append(f"{method} {rule}: {declared.action} has no row in policy.WRITE_RULES")
    for action in set(WRITE_RULES) - used:
        problems.append(f"policy.WRITE_RULES[{action}] is used by no route")
    for action in Action:
        if action not in WRITE_RULES:
            problems.append(f"{action} has no row in policy.WRITE_RULES")
    assert not problems, "\n".join(problems)


def test_the_write_registry_rejects_what_it_does_not_know():
    assert write_rule("POST", "/fhir/R4/Observation", "professional", None) is None
    assert write_rule("DELETE", "/fhir/R4/Appointment/<int:appointment_id>", "professional", None) is None
    assert write_rule("POST", "/api/v1/record/anything", "patient", None) is None
    with pytest.raises(TypeError):
        from backend.web import writes

        writes("document.deposit")  # an Action, not a string that looks like one


def test_the_write_table_refuses_what_it_does_not_name(app, db):
    """Deny by default: an actor kind without a rule (a carer on access rights) and a professional on the
    holder's own actions are refused, whatever the action; a carer without a link is no carer."""
    world = _policy_world(app, db)
    pro = world.actors["authorised"]
    holder_only = {a for a, row in WRITE_RULES.items() if not set(row) & {"professional", "service", "insurer"}}
    assert Action.ACCESS_CONSENTS in holder_only and Action.ACCOUNT in holder_only
    for action in Action:
        expected = "not_carer" if action in CARER_WRITES else "not_permitted"
        assert decide_write(db, world.actors["carer"], world.owner, action).reason == expected, action
        if action in holder_only:
            assert decide_write(db, pro, world.owner, action).reason == "not_permitted", action
        owner = decide_write(db, world.actors["owner"], world.owner, action)
        if "patient" in WRITE_RULES[action]:
            assert (owner.allowed, owner.reason) == (True, "owner"), action
            other = decide_write(db, world.actors["other_patient"], world.owner, action)
            assert (other.allowed, other.reason) == (False, "other_patient"), action
        else:
            assert owner.reason == "not_permitted", action


# The family space's writes, by hand: what a carer may do with the agenda or messages scope (nothing else,
# ever), and what a legal representative may not do (the connected services and the account: the child's).
CARER_WRITES = {Action.APPOINTMENT_CREATE, Action.APPOINTMENT_CANCEL, Action.APPOINTMENT_RESCHEDULE,
                Action.AGENDA_ENTRIES, Action.MESSAGE_SEND, Action.CONVERSATION, Action.MESSAGE_START}
HOLDER_WRITES = {a for a in Action if a not in (Action.DOCUMENT_DEPOSIT, Action.DOCUMENT_REPLACE,
                                                 Action.DOCUMENT_RELEASE)}
REPRESENTATIVE_WRITES = HOLDER_WRITES - {Action.CATALOGUE_CONNECTIONS, Action.ACCOUNT, Action.FAMILY}
NEVER_A_CARER = {Action.ACCESS_CONSENTS, Action.ACCESS_CARE_TEAM, Action.ACCESS_EMERGENCY, Action.ACCESS_BLOCKS,
                 Action.DIRECTIVES, Action.ACCOUNT}


def test_the_family_write_matrix(app, db):
    """Every action × representative, a representative who left, carers of each scope, a revoked carer."""
    world = _policy_world(app, db)
    expected_by_actor = {
        "representative": {a: ("legal_representative" if a in REPRESENTATIVE_WRITES else "not_permitted")
                           for a in Action},
        "representative_left": {a: ("not_representative" if a in REPRESENTATIVE_WRITES else "not_permitted")
                                for a in Action},
        "carer_agenda": {a: ("carer" if a in CARER_WRITES else "not_permitted") for a in Action},
        "carer_documents": {a: ("carer_scope" if a in CARER_WRITES else "not_permitted") for a in Action},
        "carer_revoked": {a: ("not_carer" if a in CARER_WRITES else "not_permitted") for a in Action},
    }
    assert not NEVER_A_CARER & CARER_WRITES
    failures = []
    for name, table in expected_by_actor.items():
        for action, reason in table.items():
            target = Correspondent(1, has_written=False) if action == Action.MESSAGE_START else NO_TARGET
            got = decide_write(db, world.actors[name], world.owner, action, target=target)
            want_allowed = reason in ("legal_representative", "carer") and action != Action.MESSAGE_START
            want_reason = "not_correspondent" if reason in ("legal_representative", "carer") and \
                action == Action.MESSAGE_START else reason
            if (got.allowed, got.reason) != (want_allowed, want_reason):
                failures.append(f"{name} × {action.value}: {got.allowed}/{got.reason}, expected {want_allowed}/{want_reason}")
    # a closed record: nobody acts in it
    db.get(Patient, world.owner).state = AccountState.CLOSED
    db.commit()
    for name in ("representative", "carer_agenda"):
        got = decide_write(db, world.actors[name], world.owner, Action.APPOINTMENT_CREATE)
        if got.reason != "account_closed":
            failures.append(f"{name} on a closed record: {got.reason}")
    assert not failures, "\n".join(failures)


# The write matrix: each professional and service write, as every kind of actor, with the outcome written
# here by hand (independently of policy.py): "ok", or the status of the refusal.
S_AUTHOR, S_OTHER = "1750712184", "1690000000"   # idNat_Struct of two structures
WRITE_PROS: dict[str, dict[str, Any]] = {
    "authorised": {"consent": True},                              # no structure
    "unauthorised": {"structure": S_AUTHOR},                      # of the author's structure, not authorised
    "blocked": {"consent": True, "structure": S_AUTHOR},          # would replace, but blocked
    "medecin_traitant": {"structure": S_OTHER},
    "administrator": {},
    "author": {"consent": True, "structure": S_AUTHOR},
    "colleague": {"consent": True, "structure": S_AUTHOR},
    "other_structure": {"consent": True, "structure": S_OTHER},
    "emergency": {"structure": S_AUTHOR},                         # break-the-glass, running
}
OK = "ok"
NO_PRO = {"owner": 401, "other_patient": 401, "anonymous": 401, "service": 401}


def _all_but(status: int, *names: str, **others: int | str) -> dict[str, int | str]:
    return {**{p: status if p in names else OK for p in WRITE_PROS}, **NO_PRO, **others}


EXPECTED_WRITES: dict[str, dict[str, int | str]] = {
    # feeding: every identified professional, a blocked one too
    "document.deposit": _all_but(403),
    # replacing: may read it and is its author or of its structure
    "document.replace": {**{p: 403 for p in WRITE_PROS}, "author": OK, "colleague": OK, "emergency": OK, **NO_PRO},
    # releasing: its author; for anyone else the document does not exist
    "document.release": {**{p: 404 for p in WRITE_PROS}, "author": OK, **NO_PRO},
    "appointment.create": _all_but(403, "blocked"),
    "appointment.cancel": _all_but(403, "blocked"),        # their own appointment
    "message.send": _all_but(403, "blocked"),
    "message.conversation": _all_but(403, "blocked"),      # $forbid-replies in their own conversation
    "profile.entries": {**{p: 401 for p in WRITE_PROS}, "owner": 401, "other_patient": 401, "anonymous": 401,
                        "service": OK},                    # a connected service's measure
}
WRITE_ORDER = ["author", "colleague", "emergency", "authorised", "unauthorised", "blocked", "medecin_traitant",
               "administrator", "other_structure", "owner", "other_patient", "anonymous", "service"]


def _appointment(nir: str, day: int) -> dict[str, Any]:
    return {"resourceType": "Appointment", "status": "booked", "start": f"2031-03-{day:02d}T10:00:00+01:00",
            "end": f"2031-03-{day:02d}T10:20:00+01:00",
            "participant": [{"actor": {"identifier": {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": nir}}}]}


def _communication(nir: str) -> dict[str, Any]:
    return {"resourceType": "Communication", "status": "completed", "topic": {"text": "Vos résultats"},
            "subject": {"identifier": {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": nir}},
            "payload": [{"contentString": "Bonjour, vos résultats sont arrivés."}]}


def _bundle(nir: str, content: bytes, *, replaces: int | None = None, invisible: bool = False) -> dict[str, Any]:
    from tests.fhir_helpers import Doc, provide_bundle

    return provide_bundle(nir, [Doc(content, replaces=str(replaces) if replaces else None,
                                    labels=["INVISIBLE_PATIENT"] if invisible else [])])


@dataclass
class WriteWorld:
    owner_id: int
    nir: str
    headers: dict[str, dict[str, str]]      # actor → headers
    original: int                           # the author's document (structure S_AUTHOR)
    unreleased: int                         # the author's INVISIBLE_PATIENT document
    appointments: dict[str, int] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)


def _fhir_post(client, url: str, body: Any, headers: dict[str, str]):
    return client.post(url, data=json.dumps(body) if body is not None else None,
                       headers={**headers, "Content-Type": "application/fhir+json"})


def build_write_world(app, client, db) -> WriteWorld:
    from tests.catalog_support import authorize as oauth_authorize
    from tests.catalog_support import exchange, load, service_spec

    owner = create_patient(app, given="Owneria", family="Zyxowner")
    owner_headers = bearer(activate(client, owner)["access_token"])
    other = create_patient(app, NIR_LOUIS, "1990-02-01", given="Otheria", family="Qwother")
    headers = {"owner": owner_headers, "other_patient": bearer(activate(client, other)["access_token"]),
               "anonymous": {}}
    pros = {}
    for i, (name, spec) in enumerate(WRITE_PROS.items()):
        pro, token = make_pro(db, 950 + i, f"Ecrit{i:02d}", name)
        pro.structure_id = spec.get("structure")
        pros[name] = pro
        headers[name] = bearer(token)
    pid = owner.patient_id
    for name, spec in WRITE_PROS.items():
        if spec.get("consent"):
            consents.grant(db, pid, pros[name].id)
    consents.set_medecin_traitant(db, pid, pros["medecin_traitant"].id)
    consents.set_administrator(db, pid, pros["administrator"].id)
    db.commit()
    nir = db.get(Patient, pid).nir
    # the author's documents, deposited under their structure's FINESS
    from tests.fhir_helpers import Doc, provide_bundle

    ids = []
    for content, labels in ((b"<original/>", []), (b"<unreleased/>", ["INVISIBLE_PATIENT"])):
        bundle = provide_bundle(nir, [Doc(content, labels=labels, author_rpps=pros["author"].rpps,
                                          author_structure=("http://finess.sante.gouv.fr", S_AUTHOR[1:]))])
        r = _fhir_post(client, "/fhir/R4", bundle, headers["author"])
        assert r.status_code == 200, r.get_data(as_text=True)
        ids.append(int(r.get_json()["entry"][1]["response"]["location"].rsplit("/", 1)[1]))
    world = WriteWorld(pid, nir, headers, ids[0], ids[1])
    # the one to be blocked wrote and booked before the block
    r = _fhir_post(client, "/fhir/R4/Appointment", _appointment(nir, 1), headers["blocked"])
    assert r.status_code == 201, r.get_data(as_text=True)
    world.appointments["blocked"] = int(r.get_json()["id"])
    r = _fhir_post(client, "/fhir/R4/Communication", _communication(nir), headers["blocked"])
    assert r.status_code == 201, r.get_data(as_text=True)
    world.messages["blocked"] = int(r.get_json()["id"])
    consents.block(db, pid, pros["blocked"].rpps)
    db.commit()
    # the emergency: a break-the-glass read, still running when they write
    r = client.get("/fhir/R4/DocumentReference", query_string={"patient.identifier": f"urn:oid:1.2.250.1.213.1.4.8|{nir}"},
                   headers={**headers["emergency"], "X-Purpose-Of-Use": "BTG", "X-Purpose-Reason": "inconscient"})
    assert r.status_code == 200, r.get_data(as_text=True)
    # a connected service allowed to write glucose measures
    load(app, [service_spec("ecrivain", "Écrivain", permissions=["measures.glucose.write"],
                            redirect="https://ecrivain.example.fr/cb")])
    code, verifier = oauth_authorize(client, owner_headers, "ecrivain-client", ["measures.glucose.write"])
    r = exchange(client, "ecrivain-client", code, verifier, redirect_uri="https://ecrivain.example.fr/cb")
    assert r.status_code == 200, r.get_json()
    headers["service"] = bearer(r.get_json()["access_token"])
    return world


def _counts(db, pid: int) -> tuple[int, ...]:
    from sqlalchemy import func

    from backend.agenda.models import Appointment
    from backend.audit.models import AuditEntry
    from backend.messaging.models import Message
    from backend.records.profile.models import ProfileMeasure

    db.expire_all()

    def count(model: Any, *where: Any) -> int:
        return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    return (count(Document, Document.patient_id == pid),
            count(Document, Document.patient_id == pid, Document.replaced_by_id.is_not(None)),
            count(Document, Document.patient_id == pid, Document.released_at.is_not(None)),
            count(Appointment, Appointment.patient_id == pid, Appointment.status == "booked"),
            count(Message, Message.patient_id == pid),
            count(ProfileMeasure, ProfileMeasure.patient_id == pid),
            db.scalar(select(func.count()).select_from(AuditEntry).where(
                AuditEntry.patient_id == pid, AuditEntry.action.like("%.refused"))) or 0)


def _make(case: str, actor: str, world: WriteWorld, n: int) -> tuple[str, Any]:
    """(url, body) of this write by this actor."""
    if case == "document.deposit":
        return "/fhir/R4", _bundle(world.nir, f"<new {actor}/>".encode())
    if case == "document.replace":
        return "/fhir/R4", _bundle(world.nir, f"<v2 {actor}/>".encode(), replaces=world.original)
    if case == "document.release":
        return f"/fhir/R4/DocumentReference/{world.unreleased}/$release", None
    if case == "appointment.create":
        return "/fhir/R4/Appointment", _appointment(world.nir, 2 + n)
    if case == "appointment.cancel":
        return f"/fhir/R4/Appointment/{world.appointments.get(actor, 987654)}/$cancel", None
    if case == "message.send":
        return "/fhir/R4/Communication", _communication(world.nir)
    if case == "message.conversation":
        return f"/fhir/R4/Communication/{world.messages.get(actor, 987654)}/$forbid-replies", None
    assert case == "profile.entries"
    return "/api/service/v1/fhir/Observation", {
        "resourceType": "Observation", "status": "final", "identifier": [{"value": f"obs-{actor}"}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
        "effectiveDateTime": "2026-03-02T08:15:00+01:00",
        "valueQuantity": {"value": 1.1, "unit": "g/L", "system": "http://unitsofmeasure.org", "code": "g/L"}}


def test_every_write_route_every_actor(app, client, db):
    """Each professional and service write as every kind of actor: the hand-written outcome, nothing
    written by a refusal (documents, replacements, releases, appointments, messages, measures), every 403
    traced for the patient, and no identity trait of the patient in any answer."""
    world = build_write_world(app, client, db)
    cases = [c for c in EXPECTED_WRITES]
    assert set(EXPECTED_WRITES) == {w.action.value for w in PRO_WRITES if w.action} | {"document.replace"}
    failures, calls = [], 0
    for case in cases:
        for n, actor in enumerate(WRITE_ORDER):
            expected = EXPECTED_WRITES[case][actor]
            url, body = _make(case, actor, world, n)
            before = _counts(db, world.owner_id)
            r = _fhir_post(client, url, body, world.headers[actor])
            calls += 1
            got = OK if r.status_code in (200, 201) else r.status_code
            if got != expected:
                failures.append(f"{case} by {actor}: {r.status_code}, expected {expected} — {r.get_data(as_text=True)[:160]}")
                continue
            text = r.get_data(as_text=True)
            for trait in ("Owneria", "Zyxowner", "ZYXOWNER"):
                if trait in text:
                    failures.append(f"{case} by {actor}: the answer shows the patient's {trait!r}")
            after = _counts(db, world.owner_id)
            if got == OK:
                if case == "appointment.create":
                    world.appointments[actor] = int(r.get_json()["id"])
                if case == "message.send":
                    world.messages[actor] = int(r.get_json()["id"])
                continue
            refusals = after[-1] - before[-1]
            if after[:-1] != before[:-1]:
                failures.append(f"{case} by {actor}: refused ({got}) but wrote {before} → {after}")
            if got == 403 and refusals != 1:
                failures.append(f"{case} by {actor}: refused without a trace in the patient's history")
            if got == 401 and refusals:
                failures.append(f"{case} by {actor}: an unauthenticated call left a trace")
    # the holder's own write routes: no professional's, service's or other patient's credential opens them
    # for this record (the other patient acts on their own record only: see run_patient_routes)
    for rule, method, policy, _ in write_routes(app):
        if policy != "patient":
            continue
        url = PARAM_RE.sub("987654", rule)
        for actor in ("service", "anonymous", *WRITE_PROS):
            before = _counts(db, world.owner_id)
            r = client.open(url, method=method, headers=world.headers[actor], json={})
            calls += 1
            # 401, or 422 when the body is checked before the session (flask-smorest's arguments come first)
            if r.status_code not in (401, 422) or _counts(db, world.owner_id) != before:
                failures.append(f"{method} {rule} by {actor}: {r.status_code}, expected a refusal, nothing written")
    assert not failures, f"{len(failures)} unexpected results:\n" + "\n".join(failures)
    assert calls > len(cases) * len(WRITE_ORDER)
