"""The generated authorization matrix: every route of the app × every kind of actor, and the policy
itself × every document state. "No unexpected success": a response may only succeed where the table
says so, and may only contain the documents the table lets that actor see.

How it is built
- Documents carry sentinels (title ``TITLE-<name>-<patient>``, bytes ``CONTENT-…``); every response is
  searched for them (raw, base64 strings inside JSON, members of a ZIP). Finding one the actor may not
  see is a failure, whatever the route and its status.
- ``ROUTES`` declares, for each route family, how to call it and what it is: patient routes (the
  patient's bearer) are covered automatically; professional routes (``/fhir/R4``, a professional's
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from backend.accounts.models import AccountState, AuthToken, Patient, TokenKind
from backend.notifications.service import notify
from backend.records import consents
from backend.records.models import Block, Consent, Document, Record
from backend.records.policy import Actor, Purpose, decide
from tests.helpers import NIR_LOUIS, activate, bearer, create_patient
from tests.test_records_access_world import make_doc, make_patient, make_pro, sentinel_content, sentinel_title

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
}
ALL = frozenset(OWNER_DOCS)
NORMAL = frozenset({"plain", "directive", "unreleased", "released"})
OWNER_SEES = frozenset({"plain", "directive", "masked", "masked_own", "released"})

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

@dataclass
class World:
    owner_id: int
    owner_nir: str
    owner_oid: str
    owner_headers: dict[str, str]
    other_id: int
    other_nir: str
    other_oid: str
    other_headers: dict[str, str]
    docs: dict[str, int]                 # name → id (the owner's)
    other_doc: int                       # the other patient's only document
    pro_ids: dict[str, int]
    pro_rpps: dict[str, str]
    pro_tokens: dict[str, str]
    owner_device: int
    owner_notification: int

    def sentinels(self) -> dict[str, list[bytes]]:
        """name → byte strings whose presence in a response means that document was shown."""
        out = {n: [sentinel_title(n, self.owner_id).encode(), sentinel_content(n, self.owner_id)] for n in self.docs}
        out["other"] = [sentinel_title("other", self.other_id).encode(), sentinel_content("other", self.other_id)]
        return out


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
    owner_row, other_row = db.get(Patient, pid), db.get(Patient, other.patient_id)
    return World(pid, owner_row.nir, owner_row.ins_oid, bearer(owner_tokens["access_token"]), other.patient_id,
                 other_row.nir, other_row.ins_oid, bearer(other_tokens["access_token"]), docs, other_doc,
                 {n: p.id for n, (p, _) in made.items()}, {n: p.rpps for n, (p, _) in made.items()},
                 {n: t for n, (_, t) in made.items()}, device, notification)


def set_phase(db, world: World, phase: str) -> None:
    samu, btg, masked = PHASES[phase]
    record = db.scalar(select(Record).where(Record.patient_id == world.owner_id))
    record.emergency_samu, record.emergency_btg, record.emergency_masked = samu, btg, masked
    db.commit()


# --- path parameters ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Value:
    value: Any
    doc: str | None = None      # an owner's document name, "other" for the other patient's document
    owned: bool = False         # belongs to the owner: the other patient must never succeed with it


def _doc_values(w: World) -> list[Value]:
    return [Value(i, doc=n, owned=True) for n, i in w.docs.items()] + [Value(w.other_doc, doc="other"),
                                                                       Value(987654)]


NEUTRAL_ID = [Value(987654)]

# Every path parameter of every route must be known here (by name).
PARAMS: dict[str, Callable[[World], list[Value]]] = {
    "document_id": _doc_values,
    "doc_id": _doc_values,
    "device_id": lambda w: [Value(w.owner_device, owned=True), Value(987654)],
    "notification_id": lambda w: [Value(w.owner_notification, owned=True), Value(987654)],
    "professional_id": lambda w: [Value(w.pro_ids["authorised"]), Value(w.pro_ids["administrator"])],
    "rpps": lambda w: [Value(w.pro_rpps["blocked"])],
    # identifiers of other features' objects (appointments, profile entries, measures, schedules…):
    # none is created here; the matrix checks they never reveal a document
    "appointment_id": lambda w: NEUTRAL_ID, "entry_id": lambda w: NEUTRAL_ID, "measure_id": lambda w: NEUTRAL_ID,
    "schedule_id": lambda w: NEUTRAL_ID, "number": lambda w: [Value(1)],
    "kind": lambda w: [Value("document")], "context": lambda w: [Value("end_of_life")],
    "code": lambda w: [Value("unknown")], "mtype": lambda w: [Value("weight")], "token": lambda w: [Value("x" * 32)],
    "anything": lambda w: [Value("Nothing/1")], "service_id": lambda w: NEUTRAL_ID,
    "thread_id": lambda w: NEUTRAL_ID, "message_id": lambda w: NEUTRAL_ID, "attachment_id": lambda w: NEUTRAL_ID,
}

PARAM_RE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def path_params(rule: str) -> list[str]:
    return PARAM_RE.findall(rule)


def expand(rule: str, world: World) -> Iterator[tuple[str, list[Value]]]:
    """Every URL of a rule: the product of its parameters' values."""
    names = path_params(rule)
    combos: list[list[Value]] = [[]]
    for name in names:
        combos = [c + [v] for c in combos for v in PARAMS[name](world)]
    for combo in combos:
        values = iter(combo)
        yield PARAM_RE.sub(lambda m: str(next(values).value), rule), combo


# --- the route registry ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Family:
    """How to call a family of routes and what they are."""

    pattern: str                 # regex on the rule
    policy: str                  # patient | professional | public
    role: str                    # record_read | record_write | release | not_record | pre_auth
    why: str = ""
    query: Callable[[World], list[dict[str, str]]] = lambda w: [{}]
    body: Callable[[World], Any] = lambda w: {}
    content_type: str = "application/json"

    def matches(self, rule: str, policy: str | None) -> bool:
        return policy == self.policy and re.fullmatch(self.pattern, rule) is not None


def _search_queries(w: World) -> list[dict[str, str]]:
    return [{"patient.identifier": f"urn:oid:{w.owner_oid}|{w.owner_nir}"},
            {"patient.identifier": f"urn:oid:{w.other_oid}|{w.other_nir}"}]


EMPTY_TRANSACTION = {"resourceType": "Bundle", "type": "transaction", "entry": []}

ROUTES: list[Family] = [
    # the patient's own API: every route, automatically
    Family(r"/api/v1/.*", "patient", "record_read", "the patient's bearer; acts on their own record only"),
    # the professional API (IHE MHD)
    Family(r"/fhir/R4/DocumentReference", "professional", "record_read", "ITI-67", query=_search_queries),
    Family(r"/fhir/R4/DocumentReference/<doc_id>", "professional", "record_read", "one DocumentReference"),
    Family(r"/fhir/R4/Binary/<doc_id>", "professional", "record_read", "ITI-68"),
    Family(r"/fhir/R4/DocumentReference/<doc_id>/\$release", "professional", "release",
           "only the author releases", body=lambda w: None),
    Family(r"/fhir/R4/?", "professional", "record_write", "ITI-65: depositing needs no consent",
           body=lambda w: EMPTY_TRANSACTION, content_type="application/fhir+json"),
    # the agenda's FHIR API: not the record; checked for leaks only
    Family(r"/fhir/R4/(Schedule|Slot|Appointment)(/.*)?", "professional", "not_record",
           "the agenda's practice API (no record data)"),
    # the API of connected services (their own OAuth tokens): no patient or professional token opens it
    Family(r"/api/service/.*", "service", "service_api", "a connected service's token only"),
    # the inbox's professional side (FHIR Communication): not the record; checked for leaks only
    Family(r"/fhir/R4/Communication(/.*)?", "professional", "not_record", "the secure inbox (no record data)"),
    # public routes: each one named, with why it needs no session
    Family(r"/api/health", "public", "pre_auth", "liveness"),
    Family(r"/api/ready", "public", "pre_auth", "readiness: the database and Redis answer (load balancers)"),
    Family(r"/fhir/R4/metadata", "public", "pre_auth", "CapabilityStatement"),
    Family(r"/fhir/R4/<path:anything>", "public", "pre_auth", "unknown FHIR paths answer an OperationOutcome"),
    Family(r"/api/v1/(password-policy|activation|activation/check|opposition|auth/login|auth/verify|"
           r"auth/otp/resend|mfa/enrol|mfa/confirm|account/reactivate)", "public", "pre_auth",
           "the account lifecycle before two factors"),
    Family(r"/api/v1/push/vapid-public-key", "public", "pre_auth", "the server's public push key"),
    Family(r"/api/v1/agenda/feed/<token>\.ics", "public", "pre_auth",
           "calendar feed authenticated by its secret token in the URL"),
    Family(r"/oauth/token", "public", "pre_auth", "connected services obtain their token (OAuth 2)"),
]


def rule_policies(app) -> Iterator[tuple[str, str, str | None]]:
    """(rule, method, declared policy) for every route, as tests/test_errors.py sees them."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/api/openapi"):
            continue
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            handler = getattr(view_class, method.lower(), None) if view_class is not None else view
            yield rule.rule, method, getattr(handler, "_carnet_auth", None)


def family_of(rule: str, policy: str | None) -> Family | None:
    return next((f for f in ROUTES if f.matches(rule, policy)), None)


def test_every_route_is_in_the_matrix(app):
    """A route without a policy, without a family, or with an unknown path parameter fails here."""
    problems = []
    for rule, method, policy in rule_policies(app):
        if family_of(rule, policy) is None:
            problems.append(f"{method} {rule} (policy {policy!r}): declare it in ROUTES of {__name__}")
        for name in path_params(rule):
            if name not in PARAMS:
                problems.append(f"{method} {rule}: path parameter {name!r} unknown: add it to PARAMS")
    assert not problems, "\n".join(problems)


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
    return PolicyWorld(owner.id, other.id, docs, actors)


# Non-professional actors: (allowed, reason, what they see), whatever the switches.
OTHER_ACTORS = {
    "owner": (True, "owner", OWNER_SEES),
    "other_patient": (False, "other_patient", frozenset()),
    # a connected service: the categories its consent grants, never masked nor unreleased
    "service": (True, "service_consent", frozenset({"plain"})),
    "carer": (False, "no_consent", frozenset()),
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
            from backend.records.policy import settings_of

            settings = settings_of(session)
            assert settings.matrix == {"10": {"categories": ["BIOLOGIE"], "types": ["11502-2"]}}
            assert settings.emergency_duration.total_seconds() == 15 * 60
    finally:
        get_db(custom).engine.dispose()
    for bad in ('{"10": ["BIOLOGIE"]}', "not json", '{"10": {"categories": "BIOLOGIE"}}', '[1]'):
        with pytest.raises(ConfigError):
            make_app(database_url, PROFESSION_MATRIX=bad)
