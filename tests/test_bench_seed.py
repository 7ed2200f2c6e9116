"""`carnet bench seed`: realistic benchmark data written with COPY — counts, a valid audit chain,
documents that decrypt, accounts that sign in, and the helpers the load benchmark uses."""
from __future__ import annotations

import json
import random
import statistics

import pytest
from sqlalchemy import func, select, text

from backend.tools import benchseed
from backend.accounts.models import Patient
from backend.audit import service as audit
from backend.audit.models import AuditEntry
from backend.db import get_db
from backend.identity import validate_nir
from backend.records.documents import service as docs
from backend.records.crypto import Vault
from backend import blobs
from backend.records.access.models import Consent
from backend.records.documents.models import Document
from backend.records.models import PatientKey, Record
from backend.records.profile.models import ProfileEntry, ProfileMeasure
from tests.helpers import bearer, blob_keys


def test_documents_per_patient_have_a_long_tail():
    counts = benchseed.document_counts(20_000, 20, random.Random(3))
    assert 16 <= statistics.mean(counts) <= 24          # the mean asked for (the cap trims the tail a little)
    assert 5 <= statistics.median(counts) <= 12         # most records are small…
    assert sum(c >= 500 for c in counts) >= 5           # …and a few are very large
    assert min(counts) >= 1


def test_nirs_are_valid_and_follow_the_birth_date():
    import datetime as dt

    nir = benchseed.make_nir(1_234_567, "F", dt.date(1984, 7, 14))
    assert validate_nir(nir) == nir
    assert nir[:5] == "28407"


def _engine(app):
    return get_db(app).engine


def test_the_seeder_refuses_sqlite(app, runner):
    if _engine(app).dialect.name != "sqlite":
        pytest.skip("the SQLite refusal")
    result = runner.invoke(args=["bench", "seed", "--patients", "2"])
    assert result.exit_code == 2
    assert "PostgreSQL" in result.output


@pytest.fixture
def pg_app(app):
    if _engine(app).dialect.name != "postgresql":
        pytest.skip("the seeder writes with PostgreSQL's COPY")
    return app


def _seed(app, sizes):
    return benchseed.seed(_engine(app), keyring=app.extensions["carnet.keyring"], secret_key=app.config["SECRET_KEY"],
                          blobs=app.extensions["carnet.blobs"], patients=0, exact_docs=sizes, professionals=6, batch=2, seed_value=11)


def test_seeded_rows_add_up_and_the_audit_chain_verifies(pg_app, db):
    sizes = [3, 1, 12, 0, 5]
    report = _seed(pg_app, sizes)
    assert report.patients == len(sizes) and report.documents == sum(sizes) and report.professionals == 6

    def count(model):
        return db.scalar(select(func.count()).select_from(model))

    assert count(Patient) == count(Record) == count(PatientKey) == len(sizes)
    assert count(Document) == len(blob_keys(db, "documents")) == sum(sizes)  # each row has its object
    assert count(ProfileEntry) == 3 * len(sizes) and count(ProfileMeasure) == 4 * len(sizes)
    assert count(Consent) == report.consents >= len(sizes)
    assert count(AuditEntry) == report.audit_entries
    per_patient = dict(db.execute(select(Document.patient_id, func.count()).group_by(Document.patient_id)).all())
    assert [per_patient.get(pid, 0) for pid in report.patient_ids] == sizes

    result = audit.verify(db)
    assert result.ok, result.reason
    assert result.checked == report.audit_entries
    # every document is in the access history, as store_document would have written it
    stored = db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "document.stored"))
    assert stored == sum(sizes)
    # the app appends after the seeded entries and the chain still holds
    audit.record(db, actor_type="system", actor_id=None, action="bench.after", patient_id=report.patient_ids[0])
    db.commit()
    assert audit.verify(db).ok


def test_a_second_batch_continues_the_chain_and_the_ids(pg_app, db):
    first = _seed(pg_app, [2, 2])
    second = _seed(pg_app, [1])
    assert set(first.patient_ids).isdisjoint(second.patient_ids)
    assert audit.verify(db).ok


def test_seeded_documents_decrypt_and_match_their_hash(pg_app, db):
    report = _seed(pg_app, [4, 2])
    vault = Vault(db, pg_app.extensions["carnet.keyring"])
    rows = db.scalars(select(Document).order_by(Document.id)).all()
    assert len(rows) == 6
    for doc in rows:
        content = docs.read_content(db, vault, doc)  # AES-GCM with the patient's key, then the sha256 check
        assert doc.size == len(content) and doc.title.encode() in content
    ciphertexts = [blobs.of(db).get(key) for key in blob_keys(db)]
    assert all(b"ClinicalDocument" not in c and b"valeur" not in c for c in ciphertexts)  # nothing in clear
    nirs = db.scalars(select(Patient.nir).where(Patient.id.in_(report.patient_ids))).all()
    assert all(validate_nir(n) == n for n in nirs)


def test_a_seeded_patient_signs_in_and_reads_their_records(pg_app, client):
    report = _seed(pg_app, [7])
    engine = _engine(pg_app)
    with engine.connect() as conn:
        nir = conn.execute(text("SELECT nir FROM patient WHERE id = :id"), {"id": report.patient_ids[0]}).scalar_one()
    response = client.post("/api/v1/auth/login", json={"nir": nir, "password": benchseed.BENCH_PASSWORD})
    assert response.status_code == 200 and response.get_json()["next"] == "otp"

    token = benchseed.issue_access_tokens(engine, report.patient_ids)[0]
    page = client.get("/api/v1/record/documents?limit=5", headers=bearer(token)).get_json()
    assert page["total"] == 7 and len(page["items"]) == 5
    home = client.get("/api/v1/home", headers=bearer(token))
    assert home.status_code == 200
    profile = client.get("/api/v1/record/profile", headers=bearer(token))
    assert profile.status_code == 200


def test_professional_tokens_search_a_consenting_patient(pg_app, client):
    report = _seed(pg_app, [3])
    engine = _engine(pg_app)
    with engine.connect() as conn:
        pro_id, nir = conn.execute(text(
            "SELECT c.professional_id, p.nir FROM consent c JOIN patient p ON p.id = c.patient_id "
            "WHERE c.patient_id = :id LIMIT 1"), {"id": report.patient_ids[0]}).one()
    token = benchseed.issue_professional_tokens(engine, [pro_id])[0]
    response = client.get(f"/fhir/R4/DocumentReference?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|{nir}",
                          headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert json.loads(response.data)["total"] == 3


def test_bookable_schedules_offer_slots_a_patient_can_book(pg_app, client):
    report = _seed(pg_app, [1])
    engine = _engine(pg_app)
    slots = benchseed.bookable_schedules(engine, 2, days=2)
    assert len(slots) == len(set(slots)) and len(slots) >= 2 * 84  # 07:00–21:00 every 10 minutes, two days
    # the raw floor tells a row's value from a constant by two bookings: no two professionals of a batch alike
    benchseed.bookable_schedules(engine, 5, days=1)
    with engine.connect() as conn:
        batch = conn.execute(text("SELECT family_name, given_name, organisation FROM professional "
                                  "ORDER BY id DESC LIMIT 5")).all()
    assert [len({row[k] for row in batch}) for k in range(3)] == [5, 5, 5]
    token = benchseed.issue_access_tokens(engine, report.patient_ids)[0]
    response = client.post("/api/v1/agenda/appointments", json={"slot_id": slots[0]}, headers=bearer(token))
    assert response.status_code == 201, response.get_json()


def test_the_professionals_of_one_batch_are_no_namesakes():
    """Twenty-six draws from a seed that repeats names: each family name, and each given name until the
    twenty run out, comes once (the raw floor tells a row's value from a constant by two requests)."""
    families = benchseed._Unrepeated(benchseed.FAMILY_NAMES)
    givens = benchseed._Unrepeated(benchseed.GIVEN_F + benchseed.GIVEN_M)
    rng = random.Random(3)
    drawn = [(families.pick(rng.choice(benchseed.FAMILY_NAMES)),
              givens.pick(rng.choice(benchseed.GIVEN_F + benchseed.GIVEN_M))) for _ in range(26)]
    assert len({f for f, _ in drawn}) == 26
    assert len({g for _, g in drawn[:20]}) == 20 and len({g for _, g in drawn[20:]}) == 6
    assert len({rng.choice(benchseed.FAMILY_NAMES) for _ in range(26)}) < 26  # the draws alone repeat


def test_the_command_prints_its_report(pg_app, runner, db):
    result = runner.invoke(args=["bench", "seed", "--patients", "3", "--docs-per-patient-mean", "4",
                                 "--professionals", "5"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["patients"] == 3 and report["professionals"] == 5
    assert report["password"] == benchseed.BENCH_PASSWORD
    assert audit.verify(db).ok
