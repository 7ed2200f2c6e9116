"""Documents of the record: storage (byte-identical, encrypted at rest, idempotent), the documents page
(filters, cursor pagination, sorting, counts), visibility (INVISIBLE_PATIENT, masking), the patient's
actions, isolation between patients, and constant query counts for the documents page and home."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging

import pytest
from sqlalchemy import func, select, text

from backend.audit.models import AuditEntry
from backend.db import get_session
from backend.errors import DomainError, Forbidden
from backend.notifications.models import Notification
from backend.professionals.models import Professional
from backend.records.documents import service as documents
from backend.records import vault
from backend.records.documents.service import DocumentMeta
from backend import blobs
from backend.records.access.models import Consent
from backend.records.documents.models import Document
from backend.records.models import Record
from backend.records.access.policy import Actor, decide
from tests.documents_support import BIO_L1, CDA3, IMG_PDF, LDL_SES, REAL_DOCUMENTS, deposit, make_pro, read
from tests.helpers import Patient, assert_problem, blob_keys, sealed_document

BASE = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.timezone.utc)


def page(client, patient: Patient, **params):
    r = client.get("/api/v1/record/documents", query_string=params, headers=patient.headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


# --- storage ------------------------------------------------------------------------------------------

def test_stored_document_comes_back_byte_identical_and_is_encrypted_at_rest(app, client, db, camille):
    original = read(LDL_SES)
    pro = make_pro(app)
    doc_id = deposit(app, camille.id, original, pro_id=pro).document.id

    r = client.get(f"/api/v1/record/documents/{doc_id}/content", headers=camille.headers)
    assert r.status_code == 200
    assert r.data == original
    assert r.headers["Content-Type"] == "text/xml"
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''Lettre%20de%20liaison.xml" in r.headers["Content-Disposition"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"

    doc = db.get(Document, doc_id)
    assert doc.size == len(original) and doc.sha256 == hashlib.sha256(original).hexdigest()
    assert doc.category == "CPT_REND" and doc.class_code == "10" and doc.type_code == "11490-0"
    # the bytes are not in the database: one sealed object of the blob store, under a key made of the id only
    assert blob_keys(db) == {blobs.document_key(doc_id)} and str(doc_id) in blobs.document_key(doc_id)
    ciphertext = sealed_document(db, doc_id)
    assert ciphertext != original and len(ciphertext) == len(original) + 12 + 16  # nonce + GCM tag
    for plain in (b"ClinicalDocument", "Lettre de liaison".encode(), original[:64], original[-64:],
                  original[len(original) // 2: len(original) // 2 + 32]):
        assert plain not in ciphertext


def test_content_is_bound_to_its_row(app, db, camille):
    """A ciphertext moved to another document's row does not decrypt (AAD document:<id>)."""
    pro = make_pro(app)
    first = deposit(app, camille.id, read(LDL_SES), pro_id=pro).document.id
    second = deposit(app, camille.id, read(BIO_L1), pro_id=pro, title="Biologie").document.id
    store = blobs.of(db)
    store.put(blobs.document_key(second), store.get(blobs.document_key(first)))
    with app.app_context():
        session = get_session()
        doc = session.get(Document, second)
        with pytest.raises(documents.ContentIntegrityError, match="does not open"):
            documents.read_content(session, vault(session), doc)


def test_store_is_idempotent_on_the_unique_id(app, db, camille):
    pro = make_pro(app)
    content = read(LDL_SES)
    first = deposit(app, camille.id, content, pro_id=pro, unique_id="1.2.250.1.213.1.1.1.17.2022.1.1")
    again = deposit(app, camille.id, content, pro_id=pro, unique_id="1.2.250.1.213.1.1.1.17.2022.1.1")
    assert first.created and not again.created and again.document.id == first.document.id
    assert db.scalar(select(func.count()).select_from(Document)) == 1
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "document.stored")) == 1
    assert db.scalar(select(func.count()).select_from(Notification).where(Notification.kind == "document")) == 1
    with pytest.raises(DomainError) as refused:
        deposit(app, camille.id, read(BIO_L1), pro_id=pro, unique_id="1.2.250.1.213.1.1.1.17.2022.1.1")
    assert refused.value.code == "document_unique_id_conflict" and refused.value.status == 409
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Document)) == 1


def test_metadata_category_mapping_notification_and_audit(app, db, camille, caplog):
    pro = make_pro(app)
    caplog.set_level(logging.DEBUG)
    bio = deposit(app, camille.id, read(BIO_L1), pro_id=pro, title="Résultats", type_code="11502-2",
                  class_code="10", mime="text/xml").document
    imaging = deposit(app, camille.id, read(IMG_PDF), pro_id=pro, title="Scanner", type_code="99999-9",
                      class_code="31", mime="application/pdf").document
    unknown = deposit(app, camille.id, read(CDA3 / "VAC-NOTE_2023.01.xml"), pro_id=pro, title="Note",
                      type_code=None, class_code=None).document
    vaccination = deposit(app, camille.id, read(CDA3 / "VAC_2023.01.xml"), pro_id=pro, title="Vaccins",
                          type_code="11369-6", class_code="11").document
    assert (bio.category, imaging.category, unknown.category, vaccination.category) == \
        ("BIOLOGIE", "RADIO_SC", "AUTR_DOC", "CAR_VAC")
    notes = db.scalars(select(Notification).where(Notification.patient_id == camille.id)
                       .where(Notification.kind == "document")).all()
    assert sorted(n.ref_id for n in notes) == sorted(str(d.id) for d in (bio, imaging, unknown, vaccination))
    assert all(n.ref_type == "document" for n in notes)
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "document.stored").order_by(AuditEntry.seq))
    assert entry.actor_type == "professional" and entry.actor_id == "10003456789"
    assert "Résultats" not in entry.details and '"category":"BIOLOGIE"' in entry.details
    # logs carry identifiers, never the content, the title or the NIR
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Résultats" not in logged and "ClinicalDocument" not in logged and "279035121518989" not in logged


def test_store_refuses_bad_metadata_and_unknown_records(app, db, camille):
    with app.app_context():
        session = get_session()
        for meta, field in [(DocumentMeta(title=" ", mime_type="text/xml"), "title"),
                            (DocumentMeta(title="x", mime_type="text/xml", category="NOPE"), "category"),
                            (DocumentMeta(title="x", mime_type="text/xml", confidentiality=("SECRET",)),
                             "confidentiality"),
                            (DocumentMeta(title="x", mime_type="text/xml", author_rpps="123456789012"), "author_rpps")]:
            with pytest.raises(DomainError) as refused:
                documents.store_document(session, vault(session), camille.id, b"<x/>", meta, source="professional")
            assert refused.value.errors[0]["field"] == field
        with pytest.raises(DomainError) as refused:
            documents.store_document(session, vault(session), camille.id + 999, read(LDL_SES),
                                     DocumentMeta(title="x", mime_type="text/xml"), source="professional")
        assert refused.value.status == 404
        session.rollback()
    assert db.scalar(select(func.count()).select_from(Document)) == 0


# --- visibility ---------------------------------------------------------------------------------------

def test_invisible_patient_is_hidden_until_its_author_releases_it(app, client, db, camille):
    author = make_pro(app)
    other = make_pro(app, "10009876543", family="Durand", given="Anne")
    doc_id = deposit(app, camille.id, read(BIO_L1), pro_id=author, title="Résultats génétiques",
                     type_code="51969-4", confidentiality=("N", "INVISIBLE_PATIENT")).document.id
    assert db.get(Document, doc_id).invisible_patient
    listing = page(client, camille)
    assert listing["items"] == [] and listing["total"] == 0 and listing["categories"] == []
    for suffix in ("", "/content", "/pages", "/narrative"):
        assert_problem(client.get(f"/api/v1/record/documents/{doc_id}{suffix}", headers=camille.headers), 404,
                       "document_not_found")
    assert_problem(client.post(f"/api/v1/record/documents/{doc_id}/mask", headers=camille.headers), 404)
    home = client.get("/api/v1/home", headers=camille.headers).get_json()
    assert home["records"]["new_documents_count"] == 0
    assert db.scalar(select(func.count()).select_from(Notification).where(Notification.kind == "document")) == 0

    with app.app_context():
        session = get_session()
        with pytest.raises(Forbidden):
            documents.release_document(session, Actor.of_professional(session.get(Professional, other)), doc_id)
        with pytest.raises(Forbidden):
            documents.release_document(session, Actor.patient(camille.id), doc_id)
        session.rollback()
        released = documents.release_document(session, Actor.of_professional(session.get(Professional, author)),
                                               doc_id)
        assert released.released_at is not None
        session.commit()

    listing = page(client, camille)
    assert [i["id"] for i in listing["items"]] == [doc_id]
    assert client.get(f"/api/v1/record/documents/{doc_id}", headers=camille.headers).status_code == 200
    home = client.get("/api/v1/home", headers=camille.headers).get_json()
    assert home["records"]["new_documents_count"] == 1
    assert home["records"]["new_documents"][0]["title"] == "Résultats génétiques"
    assert db.scalar(select(Notification.ref_id).where(Notification.kind == "document")) == str(doc_id)
    assert db.scalar(select(AuditEntry.actor_id).where(AuditEntry.action == "document.released")) == "10003456789"


def test_masking_hides_from_professionals_and_mask_by_default(app, client, db, camille):
    author = make_pro(app)
    reader = make_pro(app, "10009876543", family="Durand", given="Anne")
    db.add(Consent(patient_id=camille.id, professional_id=reader))
    db.commit()
    doc_id = deposit(app, camille.id, read(LDL_SES), pro_id=author).document.id

    def reader_sees(document_id: int) -> bool:
        db.expire_all()
        pro = db.get(Professional, reader)
        scope = decide(db, Actor.of_professional(pro), camille.id).require()
        return scope.permits(db.get(Document, document_id))

    assert reader_sees(doc_id)
    r = client.post(f"/api/v1/record/documents/{doc_id}/mask", headers=camille.headers)
    assert r.status_code == 200 and r.get_json()["masked"] is True
    assert not reader_sees(doc_id)
    # the patient still sees it, flagged
    assert page(client, camille)["items"][0]["masked"] is True
    r = client.post(f"/api/v1/record/documents/{doc_id}/unmask", headers=camille.headers)
    assert r.get_json()["masked"] is False and reader_sees(doc_id)
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.patient_id == camille.id)
                         .where(AuditEntry.action.like("document.%mask%")).order_by(AuditEntry.seq)).all()
    assert actions == ["document.masked", "document.unmasked"]

    assert client.get("/api/v1/record/documents/settings", headers=camille.headers).get_json() == \
        {"mask_new_documents": False}
    r = client.put("/api/v1/record/documents/settings", json={"mask_new_documents": True}, headers=camille.headers)
    assert r.status_code == 200 and r.get_json() == {"mask_new_documents": True}
    db.expire_all()
    assert db.scalar(select(Record.mask_new_documents).where(Record.patient_id == camille.id)) is True
    new_id = deposit(app, camille.id, read(BIO_L1), pro_id=author, title="Biologie", type_code="11502-2").document.id
    assert db.get(Document, new_id).masked and not reader_sees(new_id)
    # the patient's own uploads are not "professional documents": not masked by the setting
    upload = client.post("/api/v1/record/documents", headers=camille.headers, content_type="multipart/form-data",
                         data={"file": (io.BytesIO(read(IMG_PDF)), "scanner.pdf"), "category": "RADIO_SC"})
    assert upload.status_code == 201 and upload.get_json()["masked"] is False
    assert_problem(client.put("/api/v1/record/documents/settings", json={"mask_new_documents": "maybe"},
                              headers=camille.headers), 422)


def test_masque_ps_received_from_the_feeder(app, db, camille):
    pro = make_pro(app)
    doc = deposit(app, camille.id, read(LDL_SES), pro_id=pro,
                  confidentiality=("R", "MASQUE_PS", "INVISIBLE_REPRESENTANTS_LEGAUX")).document
    assert doc.masked and doc.invisible_legal_representatives and doc.confidentiality == "R"
    assert not doc.invisible_patient


# --- isolation ------------------------------------------------------------------------------------------

def test_another_patient_gets_404_and_nothing_leaks(app, client, db, camille, louis):
    pro = make_pro(app)
    doc_id = deposit(app, camille.id, read(LDL_SES), pro_id=pro, title="Compte rendu confidentiel").document.id
    missing = doc_id + 1000
    calls = [("get", ""), ("get", "/content"), ("get", "/pages"), ("get", "/pages/1"), ("get", "/narrative"),
             ("post", "/mask"), ("post", "/unmask"), ("delete", "")]
    for method, suffix in calls:
        theirs = getattr(client, method)(f"/api/v1/record/documents/{doc_id}{suffix}", headers=louis.headers)
        nothing = getattr(client, method)(f"/api/v1/record/documents/{missing}{suffix}", headers=louis.headers)
        body = assert_problem(theirs, 404, "document_not_found")
        assert body == assert_problem(nothing, 404, "document_not_found")
        assert "confidentiel" not in theirs.get_data(as_text=True)
    r = client.post(f"/api/v1/record/documents/{doc_id}/removal-request", json={"reason": "not_mine"},
                    headers=louis.headers)
    assert_problem(r, 404, "document_not_found")
    assert page(client, louis)["items"] == []
    db.expire_all()
    doc = db.get(Document, doc_id)
    assert not doc.masked and doc.deleted_at is None and doc.removal_requested_at is None
    assert page(client, camille)["total"] == 1


def test_routes_need_a_patient_session(app, client, camille):
    pro = make_pro(app)
    doc_id = deposit(app, camille.id, read(LDL_SES), pro_id=pro).document.id
    for url in ("/api/v1/record/documents", f"/api/v1/record/documents/{doc_id}",
                f"/api/v1/record/documents/{doc_id}/content", "/api/v1/record/documents/settings"):
        assert_problem(client.get(url), 401)
        assert_problem(client.get(url, headers={"Authorization": "Bearer nope"}), 401)


# --- the patient's actions ------------------------------------------------------------------------------

def test_patient_deletes_own_uploads_only_and_asks_removal_of_others(app, client, db, camille):
    pro = make_pro(app)
    theirs = deposit(app, camille.id, read(LDL_SES), pro_id=pro).document.id
    r = client.post("/api/v1/record/documents", headers=camille.headers, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(read(IMG_PDF)), "scanner-2023.pdf"), "category": "RADIO_SC"})
    mine = r.get_json()["id"]
    assert r.get_json()["actions"] == {"delete": True, "request_removal": False, "mask": True, "unmask": False}

    assert_problem(client.delete(f"/api/v1/record/documents/{theirs}", headers=camille.headers), 403,
                   "document_not_own_upload")
    assert client.delete(f"/api/v1/record/documents/{mine}", headers=camille.headers).status_code == 204
    assert [i["id"] for i in page(client, camille)["items"]] == [theirs]
    assert_problem(client.get(f"/api/v1/record/documents/{mine}", headers=camille.headers), 404)
    db.expire_all()
    assert db.get(Document, mine).deleted_at is not None  # soft delete
    assert db.scalar(select(AuditEntry.details).where(AuditEntry.action == "document.deleted")) == \
        f'{{"category":"RADIO_SC","document_id":{mine}}}'

    r = client.post(f"/api/v1/record/documents/{theirs}/removal-request", json={"reason": "not_mine"},
                    headers=camille.headers)
    assert r.status_code == 200 and r.get_json()["removal_requested_at"]
    again = client.post(f"/api/v1/record/documents/{theirs}/removal-request", json={"reason": "duplicate"},
                        headers=camille.headers)
    assert again.get_json()["removal_requested_at"] == r.get_json()["removal_requested_at"]
    db.expire_all()
    doc = db.get(Document, theirs)
    assert doc.deleted_at is None and doc.removal_requested_at is not None  # a request, not a deletion
    assert db.scalar(select(func.count()).select_from(AuditEntry)
                     .where(AuditEntry.action == "document.removal_requested")) == 1
    detail = client.get(f"/api/v1/record/documents/{theirs}", headers=camille.headers).get_json()
    assert detail["actions"]["request_removal"] is False and detail["actions"]["delete"] is False
    assert_problem(client.post(f"/api/v1/record/documents/{theirs}/removal-request", json={"reason": "because"},
                               headers=camille.headers), 422)

    kept = client.post("/api/v1/record/documents", headers=camille.headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(read(IMG_PDF)), "scanner-2023.pdf")}).get_json()["id"]
    assert_problem(client.post(f"/api/v1/record/documents/{kept}/removal-request", json={"reason": "other"},
                               headers=camille.headers), 409, "document_removal_own_upload")


# --- the documents page -------------------------------------------------------------------------------

def fill(app, patient_id: int, n: int, pro_id: int) -> list[int]:
    """n real documents, one day apart, service dates in the reverse order of submission."""
    ids = []
    types = [("11502-2", "BIOLOGIE"), ("18748-4", "RADIO_SC"), ("11490-0", "CPT_REND")]
    for i in range(n):
        type_code, _ = types[i % 3]
        ids.append(deposit(app, patient_id, read(REAL_DOCUMENTS[i % len(REAL_DOCUMENTS)]), pro_id=pro_id,
                           title=f"Document {i:02d}", type_code=type_code, unique_id=f"1.2.250.1.999.{i}",
                           submitted_at=BASE + dt.timedelta(days=i),
                           service_date=None if i % 5 == 0 else BASE - dt.timedelta(days=i)).document.id)
    return ids


def walk(client, patient: Patient, **params) -> list[int]:
    seen, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        body = page(client, patient, **query)
        assert len(body["items"]) <= params.get("limit", 20)
        seen.extend(i["id"] for i in body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            return seen


def test_pagination_and_sorting(app, client, db, camille):
    pro = make_pro(app)
    ids = fill(app, camille.id, 23, pro)
    docs_by_id = {d.id: d for d in db.scalars(select(Document))}

    def service_key(i: int) -> tuple[dt.datetime, int]:
        d = docs_by_id[i]
        return (d.service_date or d.submitted_at, i)

    assert walk(client, camille, limit=5) == list(reversed(ids))
    assert walk(client, camille, limit=7, order="asc") == ids
    assert walk(client, camille, limit=4, sort="service") == sorted(ids, key=service_key, reverse=True)
    assert walk(client, camille, limit=6, sort="service", order="asc") == sorted(ids, key=service_key)
    first = page(client, camille, limit=10)
    assert len(first["items"]) == 10 and first["total"] == 23
    # the same instant for several documents: the id breaks the tie, nothing skipped or repeated
    same = [deposit(app, camille.id, read(REAL_DOCUMENTS[i]), pro_id=pro, title="Même instant",
                    unique_id=f"1.2.250.1.998.{i}", submitted_at=BASE + dt.timedelta(days=100)).document.id
            for i in range(5)]
    assert walk(client, camille, limit=2)[:5] == list(reversed(same))


def test_filters_and_category_counts(app, client, camille):
    pro = make_pro(app)
    other = make_pro(app, "10009876543", family="Durand", given="Anne", organisation="Laboratoire des Charmes")
    ids = fill(app, camille.id, 9, pro)
    lab = deposit(app, camille.id, read(CDA3 / "BIO-TROD_2024.01_COVID-19.xml"), pro_id=other,
                  title="TROD Covid-19", type_code="96173-0", author_name="Anne DURAND",
                  organisation="Laboratoire des Charmes", submitted_at=BASE + dt.timedelta(days=40)).document.id

    body = page(client, camille, category="BIOLOGIE")
    assert {i["category"] for i in body["items"]} == {"BIOLOGIE"} and len(body["items"]) == 4
    assert {c["category"]: c["count"] for c in body["categories"]} == {"BIOLOGIE": 4, "RADIO_SC": 3, "CPT_REND": 3}
    assert body["total"] == 10
    assert {c["label"] for c in body["categories"]} == {"Biologie", "Imagerie", "Comptes rendus"}
    two = page(client, camille, category=["BIOLOGIE", "RADIO_SC"])
    assert len(two["items"]) == 7

    assert [i["id"] for i in page(client, camille, author="durand")["items"]] == [lab]
    assert [i["id"] for i in page(client, camille, author="10009876543")["items"]] == [lab]
    assert [i["id"] for i in page(client, camille, author="charmes")["items"]] == [lab]
    assert [i["id"] for i in page(client, camille, q="trod")["items"]] == [lab]
    assert [i["id"] for i in page(client, camille, q="Document 03")["items"]] == [ids[3]]
    assert page(client, camille, q="100%")["items"] == []  # LIKE wildcards are literal

    # dates (days in France), on the submission date, then on the service date
    window = page(client, camille, **{"from": "2024-03-03", "to": "2024-03-05"})
    assert sorted(i["id"] for i in window["items"]) == ids[2:5]
    assert window["total"] == 3
    by_service = page(client, camille, sort="service", **{"from": "2024-02-26", "to": "2024-02-28"})
    assert sorted(i["id"] for i in by_service["items"]) == [ids[2], ids[3], ids[4]]

    mine = page(client, camille, mine="true")
    assert mine["items"] == [] and mine["total"] == 0


def test_invalid_cursor_dates_and_filters_are_problems(app, client, camille):
    pro = make_pro(app)
    fill(app, camille.id, 4, pro)
    cursor = page(client, camille, limit=2)["next_cursor"]
    assert cursor
    for params, field in [({"cursor": "not-a-cursor"}, "cursor"), ({"cursor": "djE6MTI"}, "cursor"),
                          ({"cursor": cursor, "sort": "service"}, "cursor"),
                          ({"cursor": cursor, "order": "asc"}, "cursor"),
                          ({"from": "2024-13-01"}, "from"), ({"to": "hier"}, "to"),
                          ({"from": "2024-05-01", "to": "2024-04-01"}, "from"),
                          ({"category": "TOUT"}, "category.0"), ({"sort": "title"}, "sort"),
                          ({"limit": 0}, "limit"), ({"limit": 101}, "limit")]:
        r = client.get("/api/v1/record/documents", query_string={"limit": 2, **params}, headers=camille.headers)
        body = assert_problem(r, 422, "invalid_request")
        assert field in {e["field"] for e in body["errors"]}, (params, body)
        assert "invalide" in body["detail"] or "manquantes" in body["detail"]


# --- query counts ---------------------------------------------------------------------------------------

def test_documents_page_and_home_query_counts_do_not_grow(app, client, camille, count_queries):
    pro = make_pro(app)

    def measure(url: str, **params) -> int:
        client.get(url, query_string=params, headers=camille.headers)  # warm (token touch)
        count_queries.statements.clear()
        r = client.get(url, query_string=params, headers=camille.headers)
        assert r.status_code == 200
        return count_queries.count

    deposit(app, camille.id, read(LDL_SES), pro_id=pro, title="Premier document")
    small = {"page": measure("/api/v1/record/documents"),
             "filtered": measure("/api/v1/record/documents", q="document", sort="service", limit=50),
             "home": measure("/api/v1/home")}
    assert page(client, camille)["total"] == 1
    deposit_more = [deposit(app, camille.id, read(REAL_DOCUMENTS[i % len(REAL_DOCUMENTS)]), pro_id=pro,
                            title=f"Autre {i}", unique_id=f"1.2.250.1.997.{i}", type_code="18748-4").document.id
                    for i in range(29)]
    assert len(deposit_more) == 29
    large = {"page": measure("/api/v1/record/documents"),
             "filtered": measure("/api/v1/record/documents", q="document", sort="service", limit=50),
             "home": measure("/api/v1/home")}
    assert page(client, camille, limit=100)["total"] == 30
    assert client.get("/api/v1/home", headers=camille.headers).get_json()["records"]["new_documents_count"] == 30
    assert large == small
    assert small["page"] <= 5


def test_home_lists_recent_documents_from_others(app, client, camille):
    pro = make_pro(app)
    now = dt.datetime.now(dt.timezone.utc)
    old = deposit(app, camille.id, read(LDL_SES), pro_id=pro, title="Ancienne lettre",
                  submitted_at=now - dt.timedelta(days=90)).document.id
    recent = [deposit(app, camille.id, read(REAL_DOCUMENTS[i]), pro_id=pro, title=f"Récent {i}",
                      unique_id=f"1.2.250.1.996.{i}", submitted_at=now - dt.timedelta(days=5 - i)).document.id
              for i in range(4)]
    client.post("/api/v1/record/documents", headers=camille.headers, content_type="multipart/form-data",
                data={"file": (io.BytesIO(read(IMG_PDF)), "mon-scanner.pdf")})
    records = client.get("/api/v1/home", headers=camille.headers).get_json()["records"]
    assert records["new_documents_count"] == 4
    assert [d["id"] for d in records["new_documents"]] == list(reversed(recent))[:3]
    assert old not in [d["id"] for d in records["new_documents"]]
    assert records["new_documents_label"] == "4 nouveau(x) document(s) dans votre dossier"
    assert records["new_documents"][0]["category_label"] == "Comptes rendus"


def test_a_replaced_version_leaves_the_listing(app, client, db, camille):
    pro = make_pro(app)
    first = deposit(app, camille.id, read(LDL_SES), pro_id=pro, title="Lettre v1").document.id
    second = deposit(app, camille.id, read(CDA3 / "LDL-SES_2022.01.xml").replace(b"En cours", b"Valide"),
                     pro_id=pro, title="Lettre v2").document.id
    db.get(Document, first).replaced_by_id = second
    db.commit()
    listing = page(client, camille)
    assert [i["id"] for i in listing["items"]] == [second] and listing["total"] == 1
    home = client.get("/api/v1/home", headers=camille.headers).get_json()["records"]
    assert [d["id"] for d in home["new_documents"]] == [second]
    assert client.get(f"/api/v1/record/documents/{first}", headers=camille.headers).status_code == 200


def test_two_deposits_of_the_same_document_at_once_store_it_once(app, db, camille):
    """A retried ITI-65 racing the first: the second waits on the unique index, then returns the first."""
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: no two deposits are ever in flight together")
    import threading

    from backend.db import get_db
    from backend.records.crypto import Vault

    pro = make_pro(app)
    deposit(app, camille.id, read(BIO_L1), pro_id=pro, title="Biologie")  # the patient's key exists
    factory = get_db(app).session_factory
    keyring = app.extensions["carnet.keyring"]
    meta = DocumentMeta(title="Lettre de liaison", mime_type="text/xml", unique_id="1.2.250.1.213.1.1.9.77",
                        type_code="11490-0", class_code="10")
    content = read(LDL_SES)
    outcome: dict[str, object] = {}

    def second() -> None:
        session = factory()
        try:
            outcome["pid"] = session.scalar(text("SELECT pg_backend_pid()"))
            outcome["stored"] = documents.store_document(session, Vault(session, keyring), camille.id, content,
                                                         meta, source="professional")
            session.commit()
        except Exception as exc:  # reported to the test below
            outcome["error"] = exc
        finally:
            session.close()

    first = factory()
    try:
        stored = documents.store_document(first, Vault(first, keyring), camille.id, content, meta,
                                          source="professional")
        thread = threading.Thread(target=second)
        thread.start()
        waiting = 0
        for _ in range(400):  # until the second deposit is blocked on the first one's row lock
            waiting = "pid" in outcome and db.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid AND wait_event_type = 'Lock'"),
                {"pid": outcome["pid"]})
            db.rollback()
            if waiting or not thread.is_alive():
                break
            thread.join(0.025)
        assert waiting, outcome
        first.commit()
        thread.join(30)
    finally:
        first.close()
    assert "error" not in outcome, outcome
    again = outcome["stored"]
    assert stored.created and not again.created and again.document.id == stored.document.id
    assert db.scalar(select(func.count()).select_from(Document).where(Document.unique_id == meta.unique_id)) == 1


def test_one_content_disposition_for_every_file_served():
    from backend import web

    assert web.disposition() == "attachment"
    assert web.disposition("page-1.png", inline=True) == "inline; filename=\"page-1.png\"; filename*=UTF-8''page-1.png"
    # the ASCII name loses the accent, the quote and the backslash; the UTF-8 one keeps every character
    assert web.disposition('Échographie "T1"\\.pdf') == (
        "attachment; filename=\"Echographie T1.pdf\"; filename*=UTF-8''%C3%89chographie%20%22T1%22%5C.pdf")
    assert web.disposition("検査.pdf").startswith("attachment; filename=\".pdf\"; filename*=UTF-8''%E6%A4%9C")


def test_a_download_is_served_as_one_of_the_types_its_operation_declares(app, client, db, camille):
    """One rule for the document and the attachment downloads: a type of ``SERVED_TYPES``, anything else
    opaque; the OpenAPI document declares exactly those types (the fuzzer checks answers against it)."""
    from backend.records.documents import service as docs

    assert docs.served_type("text/plain") == "text/plain"
    assert docs.served_type("Application/PDF; name=x.pdf") == "application/pdf"
    assert docs.served_type("text/html") == docs.OPAQUE and docs.served_type(None) == docs.OPAQUE
    spec = client.get("/api/openapi.json").get_json()["paths"]
    for path in ("/api/v1/record/documents/{document_id}/content", "/api/v1/inbox/attachments/{attachment_id}/content"):
        declared = set(spec[path]["get"]["responses"]["200"]["content"])
        assert declared == docs.SERVED_TYPES | {docs.OPAQUE}, path
    r = client.post("/api/v1/record/documents", headers=camille.headers, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(b"Compte rendu\n"), "cr.txt"), "category": "CPT_REND"})
    assert r.status_code == 201, r.get_json()
    served = client.get(f"/api/v1/record/documents/{r.get_json()['id']}/content", headers=camille.headers)
    assert served.status_code == 200 and served.data == b"Compte rendu\n"
    assert served.headers["Content-Type"] == "text/plain"  # as received: no charset the file never declared


def test_the_documents_page_answers_exactly_what_its_schema_documents(app, client, db, camille):
    """The page skips marshmallow's dump (it is the app's hottest page): its answer must still be the
    schema's own serialisation, field for field (date-times in ISO 8601, no field more or less)."""
    from backend.records.documents.schemas import DocumentOut, DocumentPageOut

    pro = make_pro(app)
    deposit(app, camille.id, read(LDL_SES), pro_id=pro)
    r = client.post("/api/v1/record/documents", headers=camille.headers, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(b"Note\n"), "note.txt"), "category": "AUTR_DOC",
                          "service_date": "2024-02-03"})
    assert r.status_code == 201, r.get_json()
    for headers in (camille.headers, {**camille.headers, "Accept-Language": "en"}):
        body = page(client, camille, limit=1) if headers is camille.headers else client.get(
            "/api/v1/record/documents", headers=headers).get_json()
        schema = DocumentPageOut()
        assert schema.dump(schema.load(body)) == body
        assert all(set(item) == set(DocumentOut().fields) for item in body["items"])
    own = next(item for item in body["items"] if item["own_upload"])
    assert own["author"] is None and own["service_date"].startswith("2024-02-03T")
    assert any(item["author"] for item in body["items"])
    assert body["categories"][0]["label"] != page(client, camille)["categories"][0]["label"]  # English, then French
