"""The professional API (IHE MHD on FHIR R4): ITI-65 deposit, ITI-67 search, ITI-68 retrieve, $release,
emergencies, errors as OperationOutcome; real CDA documents round-trip byte for byte; everything the API
emits validates with fhir.resources (R4)."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
from urllib.parse import parse_qsl, urlsplit

import pytest
import time_machine

from backend.accounts.models import AccountState, Patient
from backend.audit.models import AuditEntry
from backend.identity import OID_INS_NIR, OID_INS_NIR_TEST
from backend.records.documents.models import Document
from backend.records.access.models import EmergencyAccess
from tests.fhir_helpers import (FHIR_JSON, Doc, assert_outcome, audit_actions, cda_type, count, create_test_identity,
                                grant, make_pro, post_bundle, provide_bundle, r4, real_cda_documents, search,
                                set_record)
from tests.helpers import NIR_CAMILLE, NIR_LOUIS, blob_keys, create_patient, make_nir, sealed_document

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def camille(app):
    return create_patient(app)  # pre-created: a record exists, the account is not activated


@pytest.fixture
def doctor(app):
    return make_pro(app)


def deposit(client, pro, nir, *docs, oid=OID_INS_NIR):
    response = post_bundle(client, pro, provide_bundle(nir, list(docs), oid=oid))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    r4(body)
    return [e["response"]["location"].rsplit("/", 1)[-1] for e in body["entry"]
            if "DocumentReference/" in e["response"].get("location", "")]


# --- metadata and authentication -------------------------------------------------------------------------------

def test_capability_statement_is_public_and_valid(client):
    response = client.get("/fhir/R4/metadata")
    assert response.status_code == 200 and response.mimetype == FHIR_JSON
    statement = response.get_json()
    r4(statement)
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    types = {r["type"]: r for r in rest["resource"]}
    assert {"DocumentReference", "Binary"} <= set(types)
    params = {p["name"] for p in types["DocumentReference"]["searchParam"]}
    assert {"patient.identifier", "type", "date", "status"} <= params
    assert types["DocumentReference"]["operation"][0]["name"] == "release"
    assert {"code": "transaction", "documentation": rest["interaction"][0]["documentation"]} in rest["interaction"]
    assert "X-Purpose-Of-Use" in rest["security"]["description"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer forged"}, {"Authorization": "Basic abc"}])
def test_every_interaction_needs_a_professional_token(client, camille, headers):
    for method, path in [("get", f"/fhir/R4/DocumentReference?patient.identifier=urn:oid:{OID_INS_NIR}|{NIR_CAMILLE}"),
                         ("get", "/fhir/R4/Binary/1"), ("get", "/fhir/R4/DocumentReference/1"),
                         ("post", "/fhir/R4"), ("post", "/fhir/R4/DocumentReference/1/$release")]:
        response = getattr(client, method)(path, headers=headers)
        assert_outcome(response, 401, "fhir_unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_patient_token_is_not_a_professional_token(client, app):
    from tests.helpers import activate

    token = activate(client, create_patient(app))["access_token"]
    response = client.get(f"/fhir/R4/DocumentReference?patient.identifier=urn:oid:{OID_INS_NIR}|{NIR_CAMILLE}",
                          headers={"Authorization": f"Bearer {token}"})
    assert_outcome(response, 401)


# --- real CDA documents: ITI-65 in, ITI-67 found, ITI-68 out byte for byte -----------------------------------

@pytest.mark.parametrize("path", real_cda_documents(), ids=lambda p: p.name)
def test_real_cda_round_trip_is_byte_identical(client, app, camille, doctor, path):
    original = path.read_bytes()
    type_code, type_oid = cda_type(original)
    system = "http://loinc.org" if type_oid in (None, "2.16.840.1.113883.6.1") else f"urn:oid:{type_oid}"
    (doc_id,) = deposit(client, doctor, NIR_CAMILLE,
                        Doc(original, mime="text/xml", type_code=type_code, type_system=system, title=path.stem))
    grant(app, camille.patient_id, doctor)

    found = search(client, doctor, NIR_CAMILLE)
    assert found.status_code == 200
    bundle = found.get_json()
    r4(bundle)
    (entry,) = bundle["entry"]
    reference = entry["resource"]
    assert reference["id"] == doc_id and reference["content"][0]["attachment"]["size"] == len(original)
    assert reference["type"]["coding"][0]["code"] == type_code

    url = reference["content"][0]["attachment"]["url"]
    assert url.endswith(f"/fhir/R4/Binary/{doc_id}")
    raw = client.get(urlsplit(url).path, headers=doctor.headers())
    assert raw.status_code == 200
    assert raw.data == original  # BOM, CRLF, XSLT wrapper and all
    assert raw.mimetype == "text/xml"
    as_fhir = client.get(urlsplit(url).path, headers=doctor.headers(Accept=FHIR_JSON))
    assert as_fhir.mimetype == FHIR_JSON
    binary = as_fhir.get_json()
    r4(binary)
    assert base64.b64decode(binary["data"]) == original and binary["contentType"] == "text/xml"


def test_test_identity_oid_and_inline_data(client, app, doctor):
    nir = make_nir("1850599123456")
    patient_id = create_test_identity(app, nir, OID_INS_NIR_TEST, birth_date="1985-05-02", sex="M")
    content = (sorted(real_cda_documents())[0]).read_bytes()
    (doc_id,) = deposit(client, doctor, nir, Doc(content, inline=True, hash="sha256"), oid=OID_INS_NIR_TEST)
    grant(app, patient_id, doctor)
    # the production OID does not name a test identity
    assert_outcome(search(client, doctor, nir), 404, "fhir_unknown_patient")
    found = search(client, doctor, nir, oid=OID_INS_NIR_TEST).get_json()
    assert [e["resource"]["id"] for e in found["entry"]] == [doc_id]
    assert found["entry"][0]["resource"]["subject"]["identifier"]["system"] == f"urn:oid:{OID_INS_NIR_TEST}"
    assert client.get(f"/fhir/R4/Binary/{doc_id}", headers=doctor.headers()).data == content


def test_metadata_is_mapped(client, app, db, camille, doctor):
    other = make_pro(app, rpps="10000000002", family="Bernard", given="Paul")
    (doc_id,) = deposit(client, doctor, NIR_CAMILLE, Doc(
        PDF, mime="application/pdf", unique_id="urn:oid:1.2.250.1.999.7.42^abc", type_code="11502-2", class_code="10",
        title="Bilan sanguin", service_date="2024-02-01", confidentiality="R",
        labels=["INVISIBLE_REPRESENTANTS_LEGAUX"], author_rpps=doctor.rpps, author_name="Alice Durand",
        author_structure=("http://finess.sante.gouv.fr", "750712184")))
    db.expire_all()
    doc = db.get(Document, int(doc_id))
    assert doc.unique_id == "1.2.250.1.999.7.42^abc"
    assert (doc.type_code, doc.type_system, doc.class_code, doc.category) == (
        "11502-2", "2.16.840.1.113883.6.1", "10", "BIOLOGIE")
    assert (doc.title, doc.mime_type, doc.size) == ("Bilan sanguin", "application/pdf", len(PDF))
    assert doc.sha256 == hashlib.sha256(PDF).hexdigest()
    assert doc.service_date == dt.datetime(2024, 2, 1, tzinfo=dt.timezone.utc)
    assert (doc.confidentiality, doc.invisible_legal_representatives, doc.masked, doc.invisible_patient) == (
        "R", True, False, False)
    # the author is the depositing professional; the role the document gives them is kept, with the
    # structure (FINESS, as an idNat_Struct) whose members may replace the document
    assert (doc.author_professional_id, doc.author_rpps, doc.author_name) == (doctor.id, doctor.rpps, "Alice DURAND")
    assert (doc.author_profession, doc.author_specialty, doc.author_organisation) == ("10", "SM54", "Hôpital de test")
    assert doc.author_structure_id == "1750712184"
    assert doc.source == "professional"
    # stored encrypted: the ciphertext is not the document
    sealed = sealed_document(db, doc.id)
    assert PDF not in sealed

    grant(app, camille.patient_id, other)
    reference = client.get(f"/fhir/R4/DocumentReference/{doc_id}", headers=other.headers()).get_json()
    r4(reference)
    assert reference["masterIdentifier"]["value"] == "urn:oid:1.2.250.1.999.7.42^abc"
    labels = {c["code"] for label in reference["securityLabel"] for c in label["coding"]}
    assert labels == {"R", "INVISIBLE_REPRESENTANTS_LEGAUX"}
    author = {r["resourceType"]: r for r in reference["contained"]}
    assert author["Practitioner"]["identifier"][0]["value"] == "8" + doctor.rpps
    assert reference["context"]["period"]["start"].startswith("2024-02-01")


def test_depositor_is_the_author_when_none_is_named(client, db, camille, doctor):
    (doc_id,) = deposit(client, doctor, NIR_CAMILLE, Doc(PDF, mime="application/pdf"))
    db.expire_all()
    doc = db.get(Document, int(doc_id))
    assert (doc.author_professional_id, doc.author_rpps, doc.author_name) == (doctor.id, doctor.rpps, "Alice DURAND")


def test_same_document_sent_twice_is_stored_once_and_other_bytes_conflict(client, db, camille, doctor):
    first = deposit(client, doctor, NIR_CAMILLE, Doc(PDF, unique_id="urn:oid:1.2.3.4.5"))
    again = deposit(client, doctor, NIR_CAMILLE, Doc(PDF, unique_id="urn:oid:1.2.3.4.5"))
    assert first == again and count(db, Document) == 1
    other_bytes = Doc(PDF + b" ", unique_id="urn:oid:1.2.3.4.5")
    response = post_bundle(client, doctor, provide_bundle(NIR_CAMILLE, [other_bytes]))
    assert_outcome(response, 409, "document_unique_id_conflict")
    assert count(db, Document) == 1


def test_transaction_response_answers_each_entry_in_order(client, camille, doctor):
    bundle = provide_bundle(NIR_CAMILLE, [Doc(PDF), Doc(b"hello", mime="text/plain")])
    bundle["entry"].append(bundle["entry"].pop(0))  # the List last: order is the client's
    response = post_bundle(client, doctor, bundle)
    assert response.status_code == 200
    body = response.get_json()
    r4(body)
    assert body["type"] == "transaction-response" and len(body["entry"]) == len(bundle["entry"])
    for sent, answer in zip(bundle["entry"], body["entry"]):
        assert answer["response"]["status"].startswith("201")
        kind = sent["resource"]["resourceType"]
        assert f"/fhir/R4/{kind}/" in answer["response"]["location"]  # the List (SubmissionSet) too


# --- consent: deposit without, read with ---------------------------------------------------------------------

def test_deposit_needs_no_consent_but_reading_does(client, app, db, camille, doctor):
    assert db.get(Patient, camille.patient_id).state == AccountState.PRECREATED
    (doc_id,) = deposit(client, doctor, NIR_CAMILLE, Doc(PDF))
    assert "document.stored" in audit_actions(db, camille.patient_id)

    body = assert_outcome(search(client, doctor, NIR_CAMILLE), 403, "access_no_consent")
    assert "autorisé" in body["issue"][0]["diagnostics"]
    # one document or another, reading it without consent says nothing about it
    assert_outcome(client.get(f"/fhir/R4/Binary/{doc_id}", headers=doctor.headers()), 404, "fhir_not_found")
    assert_outcome(client.get(f"/fhir/R4/DocumentReference/{doc_id}", headers=doctor.headers()), 404)
    for unknown in ("99999", "17683664415928632", "2147483648", "0", "-1", "abc"):
        assert_outcome(client.get(f"/fhir/R4/Binary/{unknown}", headers=doctor.headers()), 404, "fhir_not_found")
    actions = audit_actions(db, camille.patient_id)
    assert actions.count("document.search.refused") == 1 and actions.count("document.read.refused") == 2

    grant(app, camille.patient_id, doctor)
    assert search(client, doctor, NIR_CAMILLE).status_code == 200
    assert client.get(f"/fhir/R4/Binary/{doc_id}", headers=doctor.headers()).data == PDF


def test_english_diagnostics_on_request(client, camille, doctor):
    deposit(client, doctor, NIR_CAMILLE, Doc(PDF))
    body = assert_outcome(search(client, doctor, NIR_CAMILLE, headers={"Accept-Language": "en"}), 403)
    assert "not authorised" in body["issue"][0]["diagnostics"]


def test_opposed_account_has_no_record_to_feed(client, app, db, doctor):
    created = create_patient(app)
    response = client.post("/api/v1/opposition", json={"nir": created.nir, "birth_date": created.birth_date,
                                                       "activation_code": created.code})
    assert response.status_code == 200
    before = count(db, AuditEntry)
    assert_outcome(post_bundle(client, doctor, provide_bundle(created.nir, [Doc(PDF)])), 422, "fhir_unknown_patient")
    assert count(db, Document) == 0 and count(db, AuditEntry) == before
    assert_outcome(search(client, doctor, created.nir), 404)


def test_blocked_professional_reads_nothing(client, app, db, camille, doctor):
    from backend.records.access.models import Block

    (doc_id,) = deposit(client, doctor, NIR_CAMILLE, Doc(PDF))
    grant(app, camille.patient_id, doctor)
    db.add(Block(patient_id=camille.patient_id, rpps=doctor.rpps))
    db.commit()
    assert_outcome(search(client, doctor, NIR_CAMILLE), 403, "access_blocked")
    assert_outcome(search(client, doctor, NIR_CAMILLE, headers={"X-Purpose-Of-Use": "BTG",
                                                                 "X-Purpose-Reason": "inconscient"}), 403)
    assert_outcome(client.get(f"/fhir/R4/Binary/{doc_id}", headers=doctor.headers()), 404)


# --- refused bundles write nothing ----------------------------------------------------------------------------

def _bad(bundle_change):
    bundle = provide_bundle(NIR_CAMILLE, [Doc(PDF), Doc(b"second", mime="text/plain")])
    bundle_change(bundle)
    return bundle


def _set(path, value):
    def change(bundle):
        target = bundle
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return change


BAD_BUNDLES = {
    "not a bundle": (lambda b: b.update(resourceType="Patient"), 400, "fhir_invalid_resource"),
    "batch not transaction": (_set(["type"], "batch"), 400, "fhir_not_a_transaction"),
    "unknown element": (_set(["entry", 1, "resource", "colour"], "blue"), 400, "fhir_invalid_resource"),
    "unknown resource type": (_set(["entry", 1, "resource", "resourceType"], "Nope"), 400, "fhir_invalid_resource"),
    "wrong primitive": (_set(["entry", 1, "resource", "date"], "last tuesday"), 400, "fhir_invalid_resource"),
    "no submission set": (lambda b: b["entry"].pop(0), 422, "fhir_mhd_rule"),
    "missing patient": (_set(["entry", 0, "resource", "subject"], KeyError), 422, "fhir_mhd_rule"),
    "patient not an INS": (_set(["entry", 1, "resource", "subject", "identifier", "system"], "urn:oid:1.2.3"),
                           422, "fhir_mhd_rule"),
    "two patients": (_set(["entry", 3, "resource", "subject", "identifier", "value"], NIR_LOUIS), 422, "fhir_mhd_rule"),
    "no masterIdentifier": (_set(["entry", 3, "resource", "masterIdentifier"], KeyError), 422, "fhir_mhd_rule"),
    "hash mismatch on the second document": (
        _set(["entry", 3, "resource", "content", 0, "attachment", "hash"],
             base64.b64encode(hashlib.sha1(b"other").digest()).decode()), 422, "fhir_hash_mismatch"),
    "size mismatch": (_set(["entry", 3, "resource", "content", 0, "attachment", "size"], 3), 422, "fhir_size_mismatch"),
    "binary missing": (lambda b: b["entry"].pop(4), 422, "fhir_mhd_rule"),
    "broken base64": (_set(["entry", 4, "resource", "data"], "@@@@"), 400, "fhir_invalid_resource"),
    "stray resource": (lambda b: b["entry"].append({"resource": {"resourceType": "Observation", "status": "final",
                                                                 "code": {"text": "x"}},
                                                    "request": {"method": "POST", "url": "Observation"}}),
                       422, "fhir_mhd_rule"),
    "superseded status": (_set(["entry", 1, "resource", "status"], "superseded"), 422, "fhir_mhd_rule"),
}


@pytest.mark.parametrize("name", BAD_BUNDLES)
def test_bad_bundles_are_refused_and_write_nothing(client, db, camille, doctor, name):
    change, status, code = BAD_BUNDLES[name]
    before = count(db, AuditEntry)
    assert_outcome(post_bundle(client, doctor, _bad(change)), status, code)
    assert count(db, Document) == 0 and blob_keys(db) == set()
    assert count(db, AuditEntry) == before


EXTERNAL_DTD = (b'<?xml version="1.0"?><!DOCTYPE ClinicalDocument SYSTEM "http://dtd.example.com/cda.dtd">'
                b'<ClinicalDocument xmlns="urn:hl7-org:v3"><title>CR</title></ClinicalDocument>')
# the DOCTYPE past the first megabyte of the prolog (behind a comment), and a byte order mark
ENTITY_PAST_THE_HEAD = (b"\xef\xbb\xbf<?xml version='1.0'?><!--" + b"x" * (1024 * 1024 + 16) + b"-->"
                        b"<!DOCTYPE r [<!ENTITY e 'boom'>]>"
                        b"<ClinicalDocument xmlns='urn:hl7-org:v3'>&e;</ClinicalDocument>")
# the same, with a text node past libxml2's 10 MB cap before the reference: the parser gives up before it
ENTITY_BEHIND_A_HUGE_TEXT = ENTITY_PAST_THE_HEAD.replace(b"&e;", b"<text>" + b"A" * (11 * 1024 * 1024) + b"</text>&e;")


@pytest.mark.parametrize("content, code", [(EXTERNAL_DTD, "fhir_xml_external_dtd"),
                                           (ENTITY_PAST_THE_HEAD, "fhir_xml_entities"),
                                           (ENTITY_BEHIND_A_HUGE_TEXT, "fhir_xml_entities")],
                         ids=["external_dtd", "entity_past_the_head", "entity_behind_a_huge_text"])
def test_unsafe_xml_refuses_the_whole_bundle(client, db, camille, doctor, content, code):
    """The one hardened parser decides (backend/cda.py): the second document, inline, makes
    the whole submission refused, the first one included; the diagnostics name the entry."""
    before = count(db, AuditEntry)
    bundle = provide_bundle(NIR_CAMILLE, [Doc(PDF, mime="application/pdf"), Doc(content, inline=True)])
    diagnostics = assert_outcome(post_bundle(client, doctor, bundle), 422, code)["issue"][0]["diagnostics"]
    assert diagnostics.startswith("Le document ") and "est refusé" in diagnostics
    assert count(db, Document) == 0 and blob_keys(db) == set() and count(db, AuditEntry) == before


def test_text_that_merely_starts_like_xml_is_not_refused(client, db, camille, doctor):
    """Only entity and DTD declarations are a deposit's business: other XML faults are the viewer's."""
    assert len(deposit(client, doctor, NIR_CAMILLE, Doc(b"<3 merci pour tout\n", mime="text/plain"),
                       Doc(b"<ClinicalDocument><unclosed></ClinicalDocument>"))) == 2


def test_unknown_nir_is_refused(client, db, camille, doctor):
    assert_outcome(post_bundle(client, doctor, provide_bundle(NIR_LOUIS, [Doc(PDF)])), 422, "fhir_unknown_patient")
    assert count(db, Document) == 0


def test_invalid_json_and_media_type(client, db, camille, doctor):
    assert_outcome(client.post("/fhir/R4", data=b"{not json", headers=doctor.headers(),
                               content_type=FHIR_JSON), 400, "fhir_invalid_json")
    assert_outcome(client.post("/fhir/R4", data=b"<Bundle/>", headers=doctor.headers(),
                               content_type="application/fhir+xml"), 415, "fhir_unsupported_media_type")
    assert_outcome(client.post("/fhir/R4", data=b"\xff\xfe", headers=doctor.headers(),
                               content_type="application/json"), 400)
    assert count(db, Document) == 0


def test_too_large_bundle_and_document(client, app, db, camille, doctor, monkeypatch):
    bundle = provide_bundle(NIR_CAMILLE, [Doc(PDF * 200)])
    monkeypatch.setitem(app.config, "FHIR_MAX_BUNDLE_BYTES", 4096)
    assert_outcome(post_bundle(client, doctor, bundle), 413, "fhir_too_large")
    monkeypatch.setitem(app.config, "FHIR_MAX_BUNDLE_BYTES", 10 * 1024 * 1024)
    monkeypatch.setitem(app.config, "FHIR_MAX_DOCUMENT_BYTES", 1024)
    assert_outcome(post_bundle(client, doctor, bundle), 413, "fhir_document_too_large")
    assert count(db, Document) == 0


# --- ITI-67 ------------------------------------------------------------------------------------------------

def test_search_filters(client, app, camille, doctor):
    with time_machine.travel(dt.datetime(2024, 1, 10, 9, tzinfo=dt.timezone.utc), tick=False):
        (lab,) = deposit(client, doctor, NIR_CAMILLE, Doc(b"lab", type_code="11502-2", class_code="10",
                                                           service_date="2023-12-20"))
    with time_machine.travel(dt.datetime(2024, 3, 15, 9, tzinfo=dt.timezone.utc), tick=False):
        (imaging,) = deposit(client, doctor, NIR_CAMILLE, Doc(b"img", type_code="18748-4", class_code="31",
                                                               service_date="2024-03-14"))
        (remb,) = deposit(client, doctor, NIR_CAMILLE, Doc(b"remb", type_code="REMB",
                                                            type_system="urn:oid:1.2.250.1.213.1.1.4.12",
                                                            class_code="60", service_date=None))
    grant(app, camille.patient_id, doctor)

    def ids(**params):
        response = search(client, doctor, NIR_CAMILLE, **params)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        r4(body)
        return [e["resource"]["id"] for e in body.get("entry", [])]  # FHIR JSON: no empty array

    assert ids() == [remb, imaging, lab]  # newest first
    assert ids(type="http://loinc.org|11502-2") == [lab]
    assert ids(type="11502-2,18748-4") == [imaging, lab]
    assert ids(type="urn:oid:1.2.250.1.213.1.1.4.12|REMB") == [remb]
    assert ids(category="urn:oid:1.2.250.1.213.1.1.4.1|31") == [imaging]
    assert ids(date=["ge2024-03-01", "le2024-03-31"]) == [remb, imaging]
    assert ids(date="le2024-01-10") == [lab]          # the whole day is included
    assert ids(date="lt2024-01-10") == []
    assert ids(date="2024-03") == [remb, imaging]
    assert ids(date="gt2024-01-10") == [remb, imaging]
    assert ids(period="ge2024-01-01") == [imaging]     # date of care; none for the reimbursement data
    assert ids(status="current") == [remb, imaging, lab]
    assert ids(status="superseded") == []
    assert ids(status="entered-in-error") == []


def test_replaced_document_is_superseded(client, app, camille, doctor):
    (old,) = deposit(client, doctor, NIR_CAMILLE, Doc(b"v1"))
    grant(app, camille.patient_id, doctor)  # replacing needs to be able to read the original
    (new,) = deposit(client, doctor, NIR_CAMILLE, Doc(b"v2", replaces=old))
    current = search(client, doctor, NIR_CAMILLE, status="current").get_json()
    assert [e["resource"]["id"] for e in current["entry"]] == [new]
    superseded = search(client, doctor, NIR_CAMILLE, status="superseded").get_json()
    assert [(e["resource"]["id"], e["resource"]["status"]) for e in superseded["entry"]] == [(old, "superseded")]
    # an unknown original answers as one the professional may not read (tests/test_records_write_policy.py)
    for unknown in ("424242", "99999999999999"):
        response = post_bundle(client, doctor, provide_bundle(NIR_CAMILLE, [Doc(b"v3", replaces=unknown)]))
        assert_outcome(response, 403, "access_not_readable")


@pytest.mark.parametrize("raw_id", ["0", "abc", "99999999999", "%C2%B2", "%D9%A3"])
def test_a_read_of_an_id_no_row_can_have_is_a_404(client, camille, doctor, raw_id):
    # "²" and the Arabic-Indic "٣" are digits to Python's str.isdigit, not to int(): still no row, never a 500
    for kind in ("DocumentReference", "Binary", "List", "Patient"):
        assert_outcome(client.get(f"/fhir/R4/{kind}/{raw_id}", headers=doctor.headers()), 404)


def test_paging_walks_every_document_once(client, app, camille, doctor):
    created = deposit(client, doctor, NIR_CAMILLE, *[Doc(f"doc {i}".encode()) for i in range(5)])
    grant(app, camille.patient_id, doctor)
    seen, pages = [], 0
    response = search(client, doctor, NIR_CAMILLE, _count=2)
    while True:
        body = response.get_json()
        r4(body)
        assert body["total"] == 5
        seen += [e["resource"]["id"] for e in body["entry"]]
        pages += 1
        following = [link["url"] for link in body.get("link", []) if link["relation"] == "next"]
        if not following:
            break
        parts = urlsplit(following[0])
        response = client.get(parts.path, query_string=parse_qsl(parts.query), headers=doctor.headers())
        assert response.status_code == 200
    assert sorted(seen, key=int) == sorted(created, key=int) and len(seen) == 5 and pages == 3


@pytest.mark.parametrize("params", [{"_count": "0"}, {"_count": "101"}, {"_count": "x"}, {"date": "yesterday"},
                                    {"date": "ne2024-01-01"}, {"status": "bogus"}, {"_cursor": "garbage!"},
                                    {"_cursor": "djE6OTk5OTk5OTk5OTk5OTk5"}])
def test_bad_search_parameters(client, camille, doctor, params):
    assert_outcome(search(client, doctor, NIR_CAMILLE, **params), 400, "fhir_invalid_search")


def test_search_needs_an_ins(client, camille, doctor):
    assert_outcome(client.get("/fhir/R4/DocumentReference", headers=doctor.headers()), 400, "fhir_invalid_search")
    assert_outcome(client.get(f"/fhir/R4/DocumentReference?patient.identifier=urn:oid:1.2.3|{NIR_CAMILLE}",
                              headers=doctor.headers()), 400, "fhir_invalid_search")
    assert_outcome(search(client, doctor, NIR_LOUIS), 404, "fhir_unknown_patient")


def test_every_search_is_audited(client, app, db, camille, doctor):
    deposit(client, doctor, NIR_CAMILLE, Doc(PDF))
    grant(app, camille.patient_id, doctor)
    for _ in range(3):
        assert search(client, doctor, NIR_CAMILLE).status_code == 200
    db.expire_all()
    rows = db.query(AuditEntry).filter(AuditEntry.patient_id == camille.patient_id,
                                       AuditEntry.action == "document.search").all()
    assert len(rows) == 3
    assert {(r.actor_type, r.actor_id, r.purpose) for r in rows} == {("professional", doctor.rpps, "TREAT")}


def test_search_query_count_does_not_grow_with_the_record(client, app, camille, doctor, count_queries):
    grant(app, camille.patient_id, doctor)
    deposit(client, doctor, NIR_CAMILLE, *[Doc(f"a{i}".encode()) for i in range(2)])
    search(client, doctor, NIR_CAMILLE)  # the day's access notification exists from now on
    count_queries.statements.clear()
    assert len(search(client, doctor, NIR_CAMILLE).get_json()["entry"]) == 2
    small = count_queries.count
    deposit(client, doctor, NIR_CAMILLE, *[Doc(f"b{i}".encode()) for i in range(25)])
    count_queries.statements.clear()
    assert len(search(client, doctor, NIR_CAMILLE, _count=50).get_json()["entry"]) == 27
    assert count_queries.count == small


def test_search_reads_what_a_page_replaced_through_an_index(client, app, db, camille, doctor):
    """The page's replaced documents are found by index (``ix_document_replaced_by``), not by reading the
    document table: the statement ITI-67 runs (its extras: the codes and the replaced documents, one
    statement), planned with sequential scans made as dear as possible."""
    from sqlalchemy import event

    from backend.db import get_db

    grant(app, camille.patient_id, doctor)
    deposit(client, doctor, NIR_CAMILLE, Doc(b"a"))
    search(client, doctor, NIR_CAMILLE)
    seen: list[tuple[str, object]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    engine = get_db(app).engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        search(client, doctor, NIR_CAMILLE)
    finally:
        event.remove(engine, "before_cursor_execute", before)
    [(statement, params)] = [(s, p) for s, p in seen if "UNION ALL" in s and "replaced_by_id" in s]
    conn = db.connection()
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params))
    else:
        plan = "\n".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
    assert "ix_document_replaced_by" in plan, plan
    db.rollback()


# --- the profession matrix and masking ----------------------------------------------------------------------

def test_profession_matrix_and_masked_documents(client, app, db, camille, doctor):
    dentist = make_pro(app, rpps="10000000003", profession="40")
    (directive,) = deposit(client, doctor, NIR_CAMILLE, Doc(b"da", type_code="EXPPAT_3",
                                                            type_system="urn:oid:1.2.250.1.213.1.1.4.12",
                                                            class_code=None))
    (masked,) = deposit(client, doctor, NIR_CAMILLE, Doc(b"masked", labels=["MASQUE_PS"]))
    (plain,) = deposit(client, doctor, NIR_CAMILLE, Doc(b"plain"))
    for pro in (doctor, dentist):
        grant(app, camille.patient_id, pro)
    seen = [e["resource"]["id"] for e in search(client, dentist, NIR_CAMILLE).get_json()["entry"]]
    assert seen == [plain]  # no advance directives for a dentist, no masked document
    assert_outcome(client.get(f"/fhir/R4/Binary/{masked}", headers=dentist.headers()), 404)
    assert_outcome(client.get(f"/fhir/R4/Binary/{directive}", headers=dentist.headers()), 404)
    assert "document.read.refused" in audit_actions(db, camille.patient_id)
    # the author still sees the document they deposited masked
    assert masked in [e["resource"]["id"] for e in search(client, doctor, NIR_CAMILLE).get_json()["entry"]]


def test_mask_new_documents_by_default(client, app, db, camille, doctor):
    set_record(app, camille.patient_id, mask_new_documents=True)
    (doc_id,) = deposit(client, doctor, NIR_CAMILLE, Doc(PDF))
    db.expire_all()
    assert db.get(Document, int(doc_id)).masked is True


# --- emergencies -------------------------------------------------------------------------------------------

def test_break_the_glass(client, app, db, camille, doctor):
    (doc_id,) = deposit(client, doctor, NIR_CAMILLE, Doc(PDF))
    urgentist = make_pro(app, rpps="10000000004")
    btg = {"X-Purpose-Of-Use": "BTG"}
    assert_outcome(search(client, urgentist, NIR_CAMILLE, headers=btg), 403, "access_reason_required")
    for path in (f"/fhir/R4/Binary/{doc_id}", "/fhir/R4/Binary/99999"):  # the same answer, existing or not
        assert_outcome(client.get(path, headers=urgentist.headers(**btg)), 403, "access_reason_required")
    reason = "Patient inconscient aux urgences".encode().decode("latin-1")  # UTF-8 on the wire
    response = search(client, urgentist, NIR_CAMILLE, headers={**btg, "X-Purpose-Reason": reason})
    assert response.status_code == 200 and len(response.get_json()["entry"]) == 1
    db.expire_all()
    access = db.query(EmergencyAccess).one()
    assert (access.purpose, access.reason) == ("BTG", "Patient inconscient aux urgences")
    entry = db.query(AuditEntry).filter(AuditEntry.action == "document.search", AuditEntry.purpose == "BTG").one()
    assert "Patient inconscient" in entry.details
    # the access lasts: the next read needs no header
    assert client.get(f"/fhir/R4/Binary/{doc_id}", headers=urgentist.headers()).data == PDF


def test_break_the_glass_switched_off(client, app, camille, doctor):
    deposit(client, doctor, NIR_CAMILLE, Doc(PDF))
    set_record(app, camille.patient_id, emergency_btg=False)
    urgentist = make_pro(app, rpps="10000000004")
    assert_outcome(search(client, urgentist, NIR_CAMILLE, headers={"X-Purpose-Of-Use": "BTG",
                                                                    "X-Purpose-Reason": "détresse"}),
                   403, "access_emergency_disabled")


def test_samu_regulator(client, app, camille, doctor):
    deposit(client, doctor, NIR_CAMILLE, Doc(PDF))
    (masked,) = deposit(client, doctor, NIR_CAMILLE, Doc(b"masked", labels=["MASQUE_PS"]))
    regulator = make_pro(app, rpps="10000000005", samu=True)
    etreat = {"X-Purpose-Of-Use": "ETREAT", "X-Purpose-Reason": "appel au 15"}
    assert_outcome(search(client, doctor, NIR_CAMILLE, headers=etreat), 403, "access_not_regulator")
    found = search(client, regulator, NIR_CAMILLE, headers=etreat).get_json()
    assert masked not in [e["resource"]["id"] for e in found["entry"]] and len(found["entry"]) == 1
    set_record(app, camille.patient_id, emergency_masked=True)
    found = search(client, regulator, NIR_CAMILLE, headers=etreat).get_json()
    assert masked in [e["resource"]["id"] for e in found["entry"]]
    set_record(app, camille.patient_id, emergency_samu=False)
    assert_outcome(search(client, regulator, NIR_CAMILLE, headers=etreat), 403, "access_emergency_disabled")


def test_unknown_purpose_of_use(client, camille, doctor):
    assert_outcome(search(client, doctor, NIR_CAMILLE, headers={"X-Purpose-Of-Use": "HMARKT"}), 400,
                   "fhir_invalid_purpose")


# --- INVISIBLE_PATIENT and $release --------------------------------------------------------------------------

def test_author_releases_a_document_hidden_from_the_patient(client, app, db, camille, doctor):
    (doc_id,) = deposit(client, doctor, NIR_CAMILLE, Doc(PDF, labels=["INVISIBLE_PATIENT"]))
    db.expire_all()
    doc = db.get(Document, int(doc_id))
    assert doc.invisible_patient is True and doc.released_at is None

    colleague = make_pro(app, rpps="10000000006")
    grant(app, camille.patient_id, colleague)
    assert_outcome(client.post(f"/fhir/R4/DocumentReference/{doc_id}/$release", headers=colleague.headers()), 404)
    assert_outcome(client.post("/fhir/R4/DocumentReference/777/$release", headers=doctor.headers()), 404)

    response = client.post(f"/fhir/R4/DocumentReference/{doc_id}/$release", headers=doctor.headers())
    assert response.status_code == 200
    released = response.get_json()
    r4(released)
    assert "INVISIBLE_PATIENT" not in {c["code"] for label in released["securityLabel"] for c in label["coding"]}
    db.expire_all()
    assert db.get(Document, int(doc_id)).released_at is not None
    assert "document.released" in audit_actions(db, camille.patient_id)
    # releasing twice changes nothing
    assert client.post(f"/fhir/R4/DocumentReference/{doc_id}/$release", headers=doctor.headers()).status_code == 200


def test_route_policies_are_declared_as_professional(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("fhir_mhd."):
            view = app.view_functions[rule.endpoint]
            expected = "public" if rule.rule.endswith("/metadata") else "professional"
            assert getattr(view, "_carnet_auth", None) == expected, rule.rule


def test_a_search_costs_a_fixed_number_of_statements(client, app, db, camille, doctor, count_queries):
    """ITI-67, once the day's access notification exists: the professional's token, the patient by INS, the
    policy (record state, block and consent in one), the notification's key, the total, the page, its
    extras (codes and replaced documents in one) and the audit chain (one statement on PostgreSQL; the lock,
    the entry and the head on SQLite): 8 on PostgreSQL (11 before), whatever the page holds."""
    grant(app, camille.patient_id, doctor)
    for n in range(3):
        deposit(client, doctor, NIR_CAMILLE, Doc(b"doc %d" % n))
    search(client, doctor, NIR_CAMILLE)
    expected = 8 if db.get_bind().dialect.name == "postgresql" else 10
    for _ in range(2):
        count_queries.statements.clear()
        assert len(search(client, doctor, NIR_CAMILLE).get_json()["entry"]) == 3
        assert len(count_queries.statements) == expected, "\n".join(s[:60] for s in count_queries.statements)
