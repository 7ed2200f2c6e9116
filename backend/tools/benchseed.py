"""Benchmark data: ``carnet bench seed --patients N`` fills a PostgreSQL database with realistic records
fast, with COPY (psycopg) in batches of patients, one transaction per batch.

What a batch writes, per patient: the account (a valid NIR, active, one shared argon2 password hash and
a sealed TOTP secret), the record and the data key (wrapped by the master key, ``records.crypto``),
documents with a long tail (Pareto: most records hold 5–20 documents, a few hold hundreds; the content
is a small CDA or text report sealed with the patient's key under ``document:<id>``, exactly as
``store_document`` seals it, put in the blob store before the batch's rows commit), profile entries
and measures (sealed JSON), consents to professionals (and a médecin traitant for some), appointments with their slot holds, notifications, inbox threads
when the messaging tables exist, and the access history: one audit entry per thing that happened
(pre-creation, activation, each document stored, professionals' searches, logins), chained in ``seq``
order under the ``audit_head`` row lock, so ``carnet audit verify`` passes afterwards.

Every patient of a seeded database has the password :data:`BENCH_PASSWORD`. The module also gives the
load benchmark what it cannot get through the API: access tokens for chosen patients, professional
tokens, and fresh schedules to book (``bench/load.py``). Never run it against a production database.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import random
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from backend.audit.service import GENESIS, canonical, entry_hash
from backend.blobs import BlobStore, app_store, document_key
from backend.identity import OID_INS_NIR, nir_key
from backend.records.crypto import Keyring, Vault, wrap
from backend.security import hash_password, seal, token_digest

BENCH_PASSWORD = "Banc-d'essai-2024!"  # noqa: S105 (benchmark data only)
UTC = dt.timezone.utc

FAMILY_NAMES = ("MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU",
                "LAURENT", "SIMON", "MICHEL", "LEFEBVRE", "LEROY", "ROUX", "DAVID", "BERTRAND", "MOREL",
                "FOURNIER", "GIRARD", "BONNET", "DUPONT", "LAMBERT", "FONTAINE", "ROUSSEAU", "VINCENT")
GIVEN_F = ("Camille", "Léa", "Manon", "Chloé", "Inès", "Jeanne", "Louise", "Alice", "Claire", "Nathalie")
GIVEN_M = ("Louis", "Gabriel", "Jules", "Hugo", "Arthur", "Lucas", "Paul", "Nicolas", "Thomas", "Olivier")

# (typeCode, classCode, category, title, mime) — a realistic mix of what professionals deposit
DOCUMENT_KINDS = (
    ("11502-2", "11", "BIOLOGIE", "CR d'examens biologiques", "text/xml"),
    ("11488-4", "11", "CPT_REND", "CR de consultation", "text/xml"),
    ("18748-4", "11", "RADIO_SC", "CR d'imagerie médicale", "text/xml"),
    ("57833-6", "31", "ORD_SOIN", "Prescription de produits de santé", "text/plain"),
    ("60593-1", "31", "ORD_SOIN", "Dispensation médicamenteuse", "text/xml"),
    ("11490-0", "11", "CPT_REND", "Lettre de liaison à la sortie", "text/xml"),
    ("34133-9", "10", "SYNTHESE", "Synthèse d'épisode de soins", "text/xml"),
    ("87273-9", "11", "CAR_VAC", "Note de vaccination", "text/xml"),
    ("75492-9", "11", "DEPISTAG", "CR de dépistage", "text/plain"),
)
ORGANISATIONS = ("CHU de Bordeaux", "Laboratoire Bioaxe", "Centre d'imagerie Saint-Michel", "Pharmacie du Centre",
                 "Hôpital Foch", "Cabinet médical des Lilas", "CH de Quimper")
SPECIALTIES = (("SM54", "Médecine générale"), ("SM04", "Cardiologie"), ("SM15", "Dermatologie"),
               ("SM21", "Gynécologie"), ("SM40", "Pédiatrie"), ("SM38", "Ophtalmologie"))


@dataclass
class SeedReport:
    patients: int = 0
    documents: int = 0
    professionals: int = 0
    consents: int = 0
    profile_entries: int = 0
    measures: int = 0
    appointments: int = 0
    notifications: int = 0
    threads: int = 0
    messages: int = 0
    audit_entries: int = 0
    skipped: list[str] = field(default_factory=list)
    patient_ids: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("patient_ids")
        out["seconds"] = round(self.seconds, 1)
        return out


def document_counts(patients: int, mean: float, rng: random.Random, cap: int = 3000) -> list[int]:
    """Documents per patient: Pareto with its minimum at 5 (or mean/2), capped, whose capped mean is the
    given mean (the shape is solved for it: with a mean of 20, half the records hold 5–9 documents and
    about 3 in 1,000 hold 500 or more)."""
    if mean <= 0:
        return [0] * patients
    xm = min(5.0, mean / 2)

    def capped_mean(alpha: float) -> float:  # E[min(X, cap)] for X ~ Pareto(xm, alpha)
        return (alpha * xm - xm ** alpha * cap ** (1 - alpha)) / (alpha - 1)

    low, high = 1.0001, 100.0
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if capped_mean(mid) > mean else (low, mid)
    alpha = (low + high) / 2
    return [min(cap, max(1, int(round(xm * rng.paretovariate(alpha))))) for _ in range(patients)]


def make_nir(patient_id: int, sex: str, birth: dt.date) -> str:
    """A valid NIR (control key included) that no other seeded patient has: the id picks place and serial."""
    dept = (patient_id // 1_000_000) % 95 + 1
    commune = (patient_id // 1000) % 990 + 1
    serial = patient_id % 1000 or 999
    first13 = f"{'1' if sex == 'M' else '2'}{birth.year % 100:02d}{birth.month:02d}{dept:02d}{commune:03d}{serial:03d}"
    return first13 + nir_key(first13)


class _SeedVault(Vault):
    """``Vault`` with the data keys the seeder made (no session): sealing is the vault's own code."""

    def __init__(self, keyring: Keyring) -> None:
        super().__init__(session=None, keyring=keyring)  # type: ignore[arg-type]

    def add(self, patient_id: int, key: bytes) -> None:
        self._cache[patient_id] = key

    def data_key(self, patient_id: int) -> bytes:
        return self._cache[patient_id]


def _content(kind: tuple[str, str, str, str, str], title: str, when: dt.datetime, author: str, n: int) -> bytes:
    """A small report: a CDA R2 body with a narrative, or plain text (0.5–2 kB)."""
    lines = " ".join(f"Résultat {i} : valeur dans les normes, contrôle dans {n % 12 + 1} mois." for i in range(n % 6 + 2))
    if kind[4] == "text/plain":
        return f"{title}\n{when:%d/%m/%Y} — {author}\n\n{lines}\n".encode()
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3">'
            f'<code code="{kind[0]}" codeSystem="2.16.840.1.113883.6.1"/><title>{title}</title>'
            f'<effectiveTime value="{when:%Y%m%d%H%M%S}+0000"/><component><structuredBody><component><section>'
            f'<title>Conclusion</title><text><paragraph>{lines}</paragraph><paragraph>{author}</paragraph></text>'
            f'</section></component></structuredBody></component></ClinicalDocument>\n').encode()


class _Ids:
    """Blocks of ids taken from the tables' own sequences, so the app's later inserts never collide."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def take(self, table: str, n: int) -> list[int]:
        if n == 0:
            return []
        self.cur.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)", (n,))
        return [row[0] for row in self.cur.fetchall()]


def _copy(cur: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    count = 0
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


@dataclass
class _Audit:
    """Entries of one batch, chained when the batch appends them."""

    rows: list[tuple[dt.datetime, str, str | None, str, int | None, str | None, str | None]] = field(default_factory=list)

    def add(self, at: dt.datetime, actor_type: str, actor_id: Any, action: str, patient_id: int | None,
            purpose: str | None = None, details: dict[str, Any] | None = None) -> None:
        self.rows.append((at, actor_type, None if actor_id is None else str(actor_id), action, patient_id, purpose,
                          canonical(details)))


def _append_audit(cur: Any, audit: _Audit) -> int:
    """Chain the batch's entries after the head (locked until commit) and write them with COPY."""
    cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
    row = cur.fetchone()
    if row is None:
        cur.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, %s)", (GENESIS,))
        seq, prev = 0, GENESIS
    else:
        seq, prev = row

    def chained() -> Iterable[tuple[Any, ...]]:
        nonlocal seq, prev
        for at, actor_type, actor_id, action, patient_id, purpose, details in audit.rows:
            seq += 1
            digest = hashlib.sha256((details or "").encode()).hexdigest()
            h = entry_hash(seq, at, actor_type, actor_id, action, patient_id, purpose, digest, prev)
            yield (seq, at, actor_type, actor_id, action, patient_id, purpose, details, digest, prev, h)
            prev = h

    n = _copy(cur, "audit_entry", ("seq", "at", "actor_type", "actor_id", "action", "patient_id", "purpose", "details",
                                   "details_digest", "prev_hash", "hash"), chained())
    cur.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", (seq, prev))
    return n


class _Unrepeated:
    """A random pick that, while the names last, moves on to the next name not yet given."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = names
        self.given: set[str] = set()

    def pick(self, name: str) -> str:
        if len(self.given) == len(self.names):
            self.given.clear()
        i = self.names.index(name)
        while self.names[i] in self.given:
            i = (i + 1) % len(self.names)
        self.given.add(self.names[i])
        return self.names[i]


def _professionals(cur: Any, ids: _Ids, count: int, rng: random.Random, now: dt.datetime,
                   audit: _Audit) -> list[tuple[int, str, str, str]]:
    """(id, rpps, display name, organisation) of ``count`` new professionals (médecins, pharmaciens…).
    Within one call no two share a family name, a given name or an organisation until the lists run out: the
    raw floor learns what a statement's text is made of from two requests (an appointment's professional and
    place), and two professionals alike would teach it a constant."""
    pro_ids = ids.take("professional", count)
    rows, out = [], []
    families, givens, places = _Unrepeated(FAMILY_NAMES), _Unrepeated(GIVEN_F + GIVEN_M), _Unrepeated(ORGANISATIONS)
    for pid in pro_ids:
        rpps = f"1{pid:010d}"
        family, given = families.pick(rng.choice(FAMILY_NAMES)), givens.pick(rng.choice(GIVEN_F + GIVEN_M))
        profession = rng.choice(("10", "10", "10", "21", "60", "70"))
        specialty = rng.choice(SPECIALTIES)[0] if profession == "10" else None
        org = places.pick(rng.choice(ORGANISATIONS))
        rows.append((pid, rpps, family, given, profession, specialty, org, False, now))
        out.append((pid, rpps, f"Dr {given} {family}" if profession == "10" else f"{given} {family}", org))
        audit.add(now, "operator", None, "professional.created", None, None, {"professional_id": pid, "rpps": rpps})
    _copy(cur, "professional", ("id", "rpps", "family_name", "given_name", "profession_code", "specialty_code",
                                "organisation", "samu_regulator", "created_at"), rows)
    return out


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def seed(engine: Engine, *, keyring: Keyring, secret_key: str, blobs: BlobStore, patients: int, docs_mean: float = 20.0,
         exact_docs: Sequence[int] | None = None, professionals: int | None = None, batch: int = 1000,
         seed_value: int = 1, now: dt.datetime | None = None,
         progress: Callable[[SeedReport], None] | None = None) -> SeedReport:
    """Create ``patients`` patients (or one per entry of ``exact_docs``, with exactly that many documents)
    and everything around them. PostgreSQL only. Returns counts; ``patient_ids`` in creation order."""
    if engine.dialect.name != "postgresql":
        raise ValueError("the benchmark seeder writes with PostgreSQL's COPY: point CARNET_DATABASE_URL at PostgreSQL")
    started = time.monotonic()
    now = now or dt.datetime.now(UTC)
    rng = random.Random(seed_value)
    counts = list(exact_docs) if exact_docs is not None else document_counts(patients, docs_mean, rng)
    report = SeedReport()
    tables = _tables(engine)
    password_hash = hash_password(BENCH_PASSWORD)  # one argon2 hash for everyone: hashing is the slow part
    vault = _SeedVault(keyring)
    messaging = {"inbox_thread", "inbox_message", "inbox_participant"} <= tables
    if not messaging:
        report.skipped.append("messages (no inbox tables)")
    n_pros = professionals if professionals is not None else max(20, min(5000, len(counts) // 50))

    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        assert conn is not None
        with conn.cursor() as cur:
            ids = _Ids(cur)
            audit = _Audit()
            pros = _professionals(cur, ids, n_pros, rng, now - dt.timedelta(days=3 * 365), audit)
            report.professionals = len(pros)
            report.audit_entries += _append_audit(cur, audit)
            conn.commit()
        for start in range(0, len(counts), batch):
            with conn.cursor() as cur:
                _seed_batch(cur, _Ids(cur), counts[start:start + batch], pros, vault, blobs, rng, now, password_hash,
                            secret_key, report, messaging)
            conn.commit()
            if progress:
                progress(report)
    except Exception:
        raw.rollback() if hasattr(raw, "rollback") else None
        raise
    finally:
        raw.close()
    report.seconds = time.monotonic() - started
    return report


def _seed_batch(cur: Any, ids: _Ids, counts: list[int], pros: list[tuple[int, str, str, str]], vault: _SeedVault,
                store: BlobStore, rng: random.Random, now: dt.datetime, password_hash: str, secret_key: str, report: SeedReport,
                messaging: bool) -> None:
    audit = _Audit()
    n = len(counts)
    patient_ids = ids.take("patient", n)
    doc_ids = iter(ids.take("document", sum(counts)))
    patient_rows, record_rows, key_rows, consent_rows, doc_rows, content_rows = [], [], [], [], [], []
    entry_rows, measure_rows, appt_rows, hold_rows, notif_rows = [], [], [], [], []
    thread_plan: list[tuple[int, int, dt.datetime, int]] = []
    sealed_totp = seal(secret_key, "totp:" + base64.b32encode(b"carnet-bench-totp!!!").decode())

    entry_ids = iter(ids.take("profile_entry", 3 * n))
    measure_ids = iter(ids.take("profile_measure", 4 * n))
    appt_counts = [rng.choice((0, 0, 1, 1, 2, 3)) for _ in range(n)]
    appt_ids = iter(ids.take("agenda_appointment", sum(appt_counts)))
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)

    for i, (pid, ndocs) in enumerate(zip(patient_ids, counts)):
        sex = "F" if rng.random() < 0.52 else "M"
        birth = dt.date(rng.randint(1935, 2020), rng.randint(1, 12), rng.randint(1, 28))
        nir = make_nir(pid, sex, birth)
        created = now - dt.timedelta(days=rng.randint(400, 1500), seconds=rng.randint(0, 86400))
        activated = created + dt.timedelta(days=rng.randint(1, 40))
        last_login = now - dt.timedelta(days=rng.randint(0, 90), seconds=rng.randint(0, 86400))
        given = rng.choice(GIVEN_F if sex == "F" else GIVEN_M)
        family = rng.choice(FAMILY_NAMES)
        patient_rows.append((pid, nir, OID_INS_NIR, family, given, birth, sex,
                             f"patient{pid}@exemple.fr" if rng.random() < 0.7 else None, "active", password_hash,
                             "totp", sealed_totp, created, activated, last_login))
        mt = rng.choice(pros)[0] if rng.random() < 0.6 else None
        record_rows.append((pid, created, False, True, True, False, mt))
        key = os.urandom(32)
        vault.add(pid, key)
        key_rows.append((pid, wrap(vault.keyring, pid, key), vault.keyring.current_id, created))
        audit.add(created, "system", None, "account.precreated", pid)
        audit.add(activated, "patient", pid, "account.activated", pid)
        audit.add(activated, "patient", pid, "account.mfa_enrolled", pid)

        consented = rng.sample(pros, k=min(len(pros), rng.randint(1, 3)))
        for pro in consented:
            granted = activated + dt.timedelta(days=rng.randint(0, 300))
            consent_rows.append((pid, pro[0], granted, "patient"))
            audit.add(granted, "patient", pid, "access.consent_granted", pid, None, {"professional_id": pro[0], "rpps": pro[1]})

        # documents: spread over the record's life, a few in the last month (the home screen's "new")
        span = max(1, (now - created).days)
        for k in range(ndocs):
            doc_id = next(doc_ids)
            kind = DOCUMENT_KINDS[rng.randrange(len(DOCUMENT_KINDS))]
            pro = consented[k % len(consented)] if rng.random() < 0.7 else pros[rng.randrange(len(pros))]
            recent = rng.random() < 0.05
            submitted = now - dt.timedelta(days=rng.randint(0, 29) if recent else rng.randint(0, span),
                                           seconds=rng.randint(0, 86400))
            service = submitted - dt.timedelta(days=rng.randint(0, 10))
            own = rng.random() < 0.05
            title = kind[3] if not own else "Mon document"
            content = _content(kind, title, service, pro[2], doc_id)
            digest = hashlib.sha256(content).hexdigest()
            source = "patient" if own else "professional"
            doc_rows.append((doc_id, pid, f"2.25.{uuid.uuid4().int}", kind[1], kind[0],
                             "2.16.840.1.113883.6.1", kind[2], title, kind[4], len(content), digest,
                             None if own else pro[0], None if own else pro[1], None if own else pro[2],
                             None if own else "10", None if own else pro[3], source, service, submitted, "N",
                             False, False, False))
            content_rows.append((document_key(doc_id), vault.seal(pid, content, f"document:{doc_id}")))
            audit.add(submitted, "patient" if own else "professional", pid if own else pro[1], "document.stored", pid,
                      None, {"document_id": doc_id, "category": kind[2], "source": source, "masked": False,
                             "invisible_patient": False})
            if not own and recent:
                notif_rows.append((pid, "document", "document", str(doc_id), submitted, secrets.token_urlsafe(16), submitted))
            if k % 7 == 3:  # professionals read the record now and then: the access history
                audit.add(submitted + dt.timedelta(hours=1), "professional", pro[1], "document.search", pid, "TREAT",
                          {"decision": "consent", "interaction": "ITI-67"})

        # medical profile: blood group, an allergy, a treatment; weight and blood pressure
        for kind_name, data in (("blood_group", {"group": rng.choice("ABO"), "rhesus": "positive"}),
                                ("allergy", {"substance": rng.choice(("Pénicilline", "Pollen", "Arachide")),
                                             "severity": "moderate"}),
                                ("treatment", {"name": rng.choice(("Lévothyrox 50 µg", "Doliprane 1000 mg")),
                                               "dosage": "1 comprimé le matin"})):
            eid = next(entry_ids)
            entry_rows.append((eid, pid, kind_name, vault.seal_text(pid, json.dumps(data, ensure_ascii=False),
                                                                     f"profile:{kind_name}:{eid}"),
                               False, "patient", "patient", activated))
        for m in range(4):
            mid = next(measure_ids)
            at = activated + dt.timedelta(days=30 * m)
            data = {"unit": "kg", "value": round(rng.uniform(50, 95), 1)} if m % 2 == 0 else \
                {"unit": "mmHg", "systolic": rng.randint(110, 145), "diastolic": rng.randint(65, 90)}
            measure_rows.append((mid, pid, "weight" if m % 2 == 0 else "blood_pressure", at,
                                 vault.seal_text(pid, json.dumps(data), f"profile:measure:{mid}"), "patient", "patient", at))

        for a in range(appt_counts[i]):
            aid = next(appt_ids)
            # the id picks the professional and, among that professional's appointments, a slot of its own
            # (day from 200 days ago to 60 ahead, 07:00–21:00 every 5 minutes): slot holds are unique
            pro = pros[aid % len(pros)]
            k = aid // len(pros)
            start = today + dt.timedelta(days=k % 260 - 200, hours=6, minutes=5 * ((k // 260) % 168))
            end = start + dt.timedelta(minutes=20)
            appt_rows.append((aid, pid, "professional", "booked", pro[0], start, end, "Europe/Paris", False, pro[2],
                              "Médecine générale", "in_person", pro[3], 0, "professional", start - dt.timedelta(days=10),
                              start - dt.timedelta(days=10)))
            hold_rows.append((pro[0], start, end, aid))
            audit.add(start - dt.timedelta(days=10), "professional", pro[0], "agenda.appointment_created", pid, None,
                      {"appointment_id": aid})

        for _ in range(rng.choice((0, 0, 1, 2))):
            thread_plan.append((pid, consented[0][0], last_login - dt.timedelta(days=rng.randint(1, 200)),
                                rng.randint(1, 4)))
        for _ in range(rng.randint(0, 3)):
            audit.add(last_login - dt.timedelta(days=rng.randint(0, 60)), "patient", pid, "account.login", pid, None,
                      {"device": "Téléphone"})

    report.patient_ids.extend(patient_ids)
    report.patients += _copy(cur, "patient", (
        "id", "nir", "ins_oid", "birth_family_name", "given_names", "birth_date", "sex", "email", "state",
        "password_hash", "mfa_method", "mfa_secret", "created_at", "activated_at", "last_login_at"), patient_rows)
    _copy(cur, "record", ("patient_id", "created_at", "mask_new_documents", "emergency_samu", "emergency_btg",
                          "emergency_masked", "medecin_traitant_id"), record_rows)
    _copy(cur, "patient_key", ("patient_id", "wrapped", "master_key_id", "created_at"), key_rows)
    report.consents += _copy(cur, "consent", ("patient_id", "professional_id", "granted_at", "granted_by"), consent_rows)
    store.put_many(content_rows)  # the bytes first: the rows commit after them (backend/blobs.py)
    report.documents += _copy(cur, "document", (
        "id", "patient_id", "unique_id", "class_code", "type_code", "type_system", "category", "title", "mime_type",
        "size", "sha256", "author_professional_id", "author_rpps", "author_name", "author_profession",
        "author_organisation", "source", "service_date", "submitted_at", "confidentiality", "invisible_patient",
        "invisible_legal_representatives", "masked"), doc_rows)
    report.profile_entries += _copy(cur, "profile_entry", (
        "id", "patient_id", "kind", "data", "needs_confirmation", "source", "author_kind", "created_at"), entry_rows)
    report.measures += _copy(cur, "profile_measure", (
        "id", "patient_id", "type", "measured_at", "data", "source", "author_kind", "created_at"), measure_rows)
    report.appointments += _copy(cur, "agenda_appointment", (
        "id", "patient_id", "kind", "status", "professional_id", "starts_at", "ends_at", "tz", "all_day",
        "professional_name", "specialty_label", "visit_type", "place_name", "sequence", "created_by", "created_at",
        "updated_at"), appt_rows)
    _copy(cur, "agenda_slot_hold", ("professional_id", "starts_at", "ends_at", "appointment_id"), hold_rows)
    report.notifications += _copy(cur, "notification", (
        "patient_id", "kind", "ref_type", "ref_id", "created_at", "public_id", "dispatched_at"), notif_rows)
    if messaging and thread_plan:
        _seed_threads(cur, ids, thread_plan, vault, rng, audit, report)
    report.audit_entries += _append_audit(cur, audit)


def _seed_threads(cur: Any, ids: _Ids, plan: list[tuple[int, int, dt.datetime, int]], vault: _SeedVault,
                  rng: random.Random, audit: _Audit, report: SeedReport) -> None:
    """Inbox conversations started by a professional, with replies. A savepoint: a messaging schema
    that moved on is reported as skipped, the rest of the batch stands."""
    try:
        from backend.messaging.service import body_context, subject_context
    except ImportError as exc:
        report.skipped.append(f"messages ({type(exc).__name__})")
        return
    thread_ids = ids.take("inbox_thread", len(plan))
    message_ids = iter(ids.take("inbox_message", sum(p[3] for p in plan)))
    threads, participants, messages = [], [], []
    for tid, (pid, pro_id, started, count) in zip(thread_ids, plan):
        mids = [next(message_ids) for _ in range(count)]
        for j, mid in enumerate(mids):
            from_pro = j % 2 == 0
            sent = started + dt.timedelta(hours=6 * j)
            messages.append((mid, tid, pid, "professional" if from_pro else "patient", pro_id,
                             mids[j - 1] if j else None, False,
                             vault.seal_text(pid, "Bonjour, voici les résultats de votre bilan. Bien cordialement."
                                             if from_pro else "Merci docteur.", body_context(mid)),
                             sent, sent + dt.timedelta(hours=2)))
        threads.append((tid, pid, pro_id, "professional", vault.seal_text(pid, "Résultats de votre bilan",
                                                                           subject_context(tid)),
                        True, started, started + dt.timedelta(hours=6 * (count - 1)), mids[0], mids[-1], count, 0, 0))
        participants.append((tid, pro_id, "sender", started))
        audit.add(started, "professional", pro_id, "inbox.message_sent", pid, None, {"thread_id": tid})
    try:
        cur.execute("SAVEPOINT bench_inbox")
        _copy(cur, "inbox_thread", ("id", "patient_id", "professional_id", "started_by", "subject_sealed",
                                    "replies_allowed", "created_at", "last_message_at", "first_message_id",
                                    "last_message_id", "message_count", "attachment_count", "unread_count"), threads)
        _copy(cur, "inbox_participant", ("thread_id", "professional_id", "role", "added_at"), participants)
        report.messages += _copy(cur, "inbox_message", ("id", "thread_id", "patient_id", "author_kind",
                                                        "author_professional_id", "in_reply_to_id", "reply_all",
                                                        "body_sealed", "sent_at", "read_at"), messages)
        report.threads += len(threads)
        cur.execute("RELEASE SAVEPOINT bench_inbox")
    except Exception as exc:  # the inbox schema is another feature's and may have moved on
        cur.execute("ROLLBACK TO SAVEPOINT bench_inbox")
        note = f"messages ({type(exc).__name__})"
        if note not in report.skipped:
            report.skipped.append(note)


# --- what the load benchmark needs beside the data -------------------------------------------------------

def issue_access_tokens(engine: Engine, patient_ids: Sequence[int], days: int = 30) -> list[str]:
    """One device session per patient (as if each had signed in on a phone): the raw bearer tokens."""
    from backend.security import new_token

    now = dt.datetime.now(UTC)
    tokens = [new_token() for _ in patient_ids]
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cur:  # type: ignore[union-attr]
            _copy(cur, "auth_token", ("patient_id", "kind", "token_hash", "device_name", "created_at", "last_used_at",
                                      "expires_at"),
                  ((pid, "access", token_digest(t), "Banc d'essai", now, now, now + dt.timedelta(days=days))
                   for pid, t in zip(patient_ids, tokens)))
        raw.commit()
    finally:
        raw.close()
    return tokens


def issue_professional_tokens(engine: Engine, professional_ids: Sequence[int]) -> list[str]:
    from backend.security import new_token

    now = dt.datetime.now(UTC)
    tokens = [new_token() for _ in professional_ids]
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cur:  # type: ignore[union-attr]
            _copy(cur, "professional_token", ("professional_id", "token_hash", "created_at"),
                  ((pid, token_digest(t), now) for pid, t in zip(professional_ids, tokens)))
        raw.commit()
    finally:
        raw.close()
    return tokens


def bookable_schedules(engine: Engine, count: int, *, days: int = 30, slot_minutes: int = 10,
                       now: dt.datetime | None = None) -> list[str]:
    """``count`` new professionals, each open every day 07:00–21:00 (Paris) from tomorrow, and the ids of
    their free slots in the next ``days`` days (for the booking benchmark: each booking takes its own)."""
    from sqlalchemy.orm import Session

    from backend.agenda.availability import schedule_slots
    from backend.agenda.models import OpeningRule, Schedule

    now = now or dt.datetime.now(UTC)
    paris = __import__("zoneinfo").ZoneInfo("Europe/Paris")
    tomorrow = (now.astimezone(paris) + dt.timedelta(days=1)).date()
    first_start = dt.datetime.combine(tomorrow, dt.time(7), paris).astimezone(UTC)
    first_end = dt.datetime.combine(tomorrow, dt.time(21), paris).astimezone(UTC)
    rng = random.Random(int(now.timestamp()))
    slot_ids: list[str] = []
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cur:  # type: ignore[union-attr]
            audit = _Audit()
            pros = _professionals(cur, _Ids(cur), count, rng, now, audit)
            _append_audit(cur, audit)
        raw.commit()
    finally:
        raw.close()
    with Session(engine) as session:
        for pro_id, _rpps, _name, org in pros:
            schedule = Schedule(professional_id=pro_id, active=True, visit_type="in_person", specialty_code="SM54",
                                specialty_label="Médecine générale", place_name=org, place_city="Paris",
                                tz="Europe/Paris", slot_minutes=slot_minutes, created_at=now, updated_at=now)
            session.add(schedule)
            session.flush()
            opening = OpeningRule(schedule_id=schedule.id, starts_at=first_start, ends_at=first_end,
                                  rrule="FREQ=DAILY")
            session.add(opening)
            session.flush()
            slots = schedule_slots(schedule, first_start, first_start + dt.timedelta(days=days),
                                   openings=[opening], exceptions=[])
            slot_ids.extend(s.id for s in slots)
        session.commit()
    return slot_ids


# --- command ------------------------------------------------------------------------------------------------

@click.group("bench")
def bench_group() -> None:
    """Benchmark tooling (never against production data)."""


@bench_group.command("seed")
@click.option("--patients", required=True, type=click.IntRange(min=1))
@click.option("--docs-per-patient-mean", default=20.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--professionals", type=click.IntRange(min=1), help="default: one per 50 patients (20 to 5,000)")
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(min=1), help="patients per transaction")
@click.option("--seed", "seed_value", default=1, show_default=True, type=int, help="random seed")
@with_appcontext
def bench_seed(patients: int, docs_per_patient_mean: float, professionals: int | None, batch: int,
               seed_value: int) -> None:
    """Fill the database (PostgreSQL) with realistic patients, records and history, fast (COPY)."""
    from backend.db import get_db

    engine = get_db().engine
    assert engine is not None
    if engine.dialect.name != "postgresql":
        click.echo("error: `carnet bench seed` writes with PostgreSQL's COPY: set CARNET_DATABASE_URL to a "
                   "PostgreSQL database of its own (e.g. carnet_bench)", err=True)
        raise SystemExit(2)
    keyring: Keyring = current_app.extensions["carnet.keyring"]

    def progress(report: SeedReport) -> None:
        click.echo(f"  {report.patients} patients, {report.documents} documents", err=True)

    report = seed(engine, keyring=keyring, secret_key=current_app.config["SECRET_KEY"], blobs=app_store(),
                  patients=patients,
                  docs_mean=docs_per_patient_mean, professionals=professionals, batch=batch, seed_value=seed_value,
                  progress=progress)
    click.echo(json.dumps({**report.as_dict(), "password": BENCH_PASSWORD}, ensure_ascii=False))
