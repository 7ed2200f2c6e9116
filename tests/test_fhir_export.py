""""Take my data with me": the whole record as a FHIR R4 Bundle that validates with fhir.resources, and as
a streamed ZIP whose files are the originals byte for byte, with a manifest."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections import Counter

import pytest

from backend.audit.models import AuditEntry
from backend.records.access.models import Block
from tests.fhir_helpers import Doc, count, grant, make_pro, post_bundle, provide_bundle, r4, real_cda_documents
from tests.helpers import NIR_CAMILLE, activate, bearer, create_patient

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def camille(app, client):
    created = create_patient(app)
    token = activate(client, created)["access_token"]
    return created, token


@pytest.fixture
def doctor(app):
    return make_pro(app)


def deposit(client, pro, *docs):
    response = post_bundle(client, pro, provide_bundle(NIR_CAMILLE, list(docs)))
    assert response.status_code == 200, response.get_json()
    return [int(e["response"]["location"].rsplit("/", 1)[-1]) for e in response.get_json()["entry"]
            if "DocumentReference/" in e["response"].get("location", "")]


def download(client, path, token):
    """The whole streamed body; closing the response ends the request (as a WSGI server does)."""
    with client.get(path, headers=bearer(token)) as response:
        assert response.is_streamed or response.status_code != 200
        return response, response.get_data()


def fill_profile(app, patient_id):
    from backend.db import get_session
    from backend.records.profile import service as profile
    from backend.records.profile import directives as directive_service
    from backend.records.profile import measures as measure_service
    from backend.records import vault
    from backend.records.access.policy import Scope

    with app.app_context():
        session = get_session()
        v = vault(session)
        profile.create_entry(session, v, patient_id, "allergy",
                             {"substance": "Pénicilline", "category": "medication", "reaction": "urticaire",
                              "severity": "moderate", "since": "2010"})
        profile.create_entry(session, v, patient_id, "disease", {"label": "Asthme", "onset_date": "1995-04",
                                                                 "status": "active"})
        profile.create_entry(session, v, patient_id, "hospitalisation",
                             {"reason": "Appendicectomie", "start_date": "2001-06-02", "end_date": "2001-06-05"})
        profile.create_entry(session, v, patient_id, "family_history", {"relative": "mother", "condition": "Diabète"})
        profile.create_entry(session, v, patient_id, "treatment", {"name": "Ventoline", "dosage": "2 bouffées",
                                                                   "start_date": "2020-01-01"})
        profile.create_entry(session, v, patient_id, "vaccination", {"vaccine": "DTP", "date": "2019-03-01",
                                                                     "batch": "AB12"})
        profile.create_entry(session, v, patient_id, "blood_group", {"group": "A", "rhesus": "positive"})
        profile.create_entry(session, v, patient_id, "contact", {"contact_kind": "emergency", "name": "Jean Martin",
                                                                 "phone": "+33 6 12 34 56 78"})
        profile.create_entry(session, v, patient_id, "lifestyle", {"topic": "tobacco", "description": "Non-fumeuse"})
        measure_service.add_measure(session, v, patient_id, {"type": "weight", "value": 62.5,
                                                     "measured_at": "2024-01-05T08:00:00+00:00"})
        measure_service.add_measure(session, v, patient_id, {"type": "blood_pressure", "systolic": 120, "diastolic": 80,
                                                     "measured_at": "2024-01-05T08:00:00+00:00"})
        directive_service.add_directive_version(session, v, Scope(patient_id, see_masked=True), "end_of_life",
                                      text="Pas d'acharnement thérapeutique.")
        directive_service.set_organ_donation(session, v, patient_id, {"position": "accepts", "informed_at": "2023-05-01"})
        session.commit()


def test_the_whole_record_as_a_fhir_bundle(client, app, db, camille, doctor):
    created, token = camille
    cda = real_cda_documents()[0].read_bytes()
    kept = deposit(client, doctor, Doc(PDF, mime="application/pdf", title="Ordonnance"),
                   Doc(cda, mime="text/xml", type_code="11502-2"))
    (hidden,) = deposit(client, doctor, Doc(b"announcement pending", labels=["INVISIBLE_PATIENT"]))
    grant(app, created.patient_id, doctor)
    db.add(Block(patient_id=created.patient_id, rpps="19999999999"))
    db.commit()
    fill_profile(app, created.patient_id)

    response, data = download(client, "/api/v1/record/export/fhir", token)
    assert response.status_code == 200
    assert response.mimetype == "application/fhir+json"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=\"carnet-dossier-")
    bundle = json.loads(data)
    model = r4(bundle)  # the whole bundle, every resource in it, against the R4 models
    assert model.type == "collection"
    kinds = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
    assert kinds["Patient"] == 1 and kinds["DocumentReference"] == 2 and kinds["Binary"] == 2
    for kind in ("AllergyIntolerance", "Condition", "MedicationStatement", "Immunization", "Observation",
                 "Consent", "AuditEvent", "FamilyMemberHistory"):
        assert kinds[kind] >= 1, kind
    assert kinds["Condition"] == 2  # the disease and the hospitalisation
    assert kinds["Consent"] == 3    # the authorisation, the block, the advance directives

    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    patient = bundle["entry"][0]["resource"]
    assert patient["identifier"][0]["value"] == NIR_CAMILLE and patient["contact"][0]["name"]["text"] == "Jean Martin"
    originals = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "DocumentReference":
            binary = by_url[resource["content"][0]["attachment"]["url"]]
            originals[int(resource["id"])] = base64.b64decode(binary["data"])
            assert by_url[resource["subject"]["reference"]] is patient
    assert originals == {kept[0]: PDF, kept[1]: cda}
    assert hidden not in originals  # not released by its author: not shown to the patient, not exported

    observations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    weight = next(o for o in observations if o["code"]["coding"][0]["code"] == "29463-7")
    assert weight["valueQuantity"] == {"value": 62.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    pressure = next(o for o in observations if o["code"]["coding"][0]["code"] == "85354-9")
    assert {c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in pressure["component"]} == {
        "8480-6": 120, "8462-4": 80}
    audits = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "AuditEvent"]
    assert any(a["subtype"][0]["code"] == "record.exported" for a in audits)
    assert any(a["subtype"][0]["code"] == "document.stored" and a["agent"][0]["who"]["identifier"]["value"]
               == "8" + doctor.rpps for a in audits)


def test_the_originals_as_a_zip_with_a_manifest(client, app, db, camille, doctor):
    created, token = camille
    documents = {path.name: path.read_bytes() for path in real_cda_documents()[:4]}
    ids = deposit(client, doctor, *[Doc(data, title=name) for name, data in documents.items()],
                  Doc(PDF, mime="application/pdf", title="Résultats d'analyse / mars"))
    deposit(client, doctor, Doc(b"hidden", labels=["INVISIBLE_PATIENT"]))

    response, data = download(client, "/api/v1/record/export/zip", token)
    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["patient"]["ins"]["value"] == NIR_CAMILLE
    assert [d["document_id"] for d in manifest["documents"]] == ids
    expected = [*documents.values(), PDF]
    for item, original in zip(manifest["documents"], expected):
        data = archive.read(item["file"])
        assert data == original
        assert item["sha256"] == hashlib.sha256(original).hexdigest() and item["size"] == len(original)
    assert manifest["documents"][-1]["file"].endswith("_Resultats-d-analyse-mars.pdf")
    assert len(archive.namelist()) == len(ids) + 1
    assert count(db, AuditEntry, AuditEntry.action == "record.exported") == 1


def test_zip_query_count_does_not_grow_with_the_record(client, app, camille, doctor, count_queries):
    created, token = camille
    deposit(client, doctor, *[Doc(f"a{i}".encode()) for i in range(2)])
    download(client, "/api/v1/record/export/zip", token)  # the session's first use is recorded once
    count_queries.statements.clear()
    assert download(client, "/api/v1/record/export/zip", token)[0].status_code == 200
    small = count_queries.count
    deposit(client, doctor, *[Doc(f"b{i}".encode()) for i in range(30)])
    count_queries.statements.clear()
    _, data = download(client, "/api/v1/record/export/zip", token)
    assert len(zipfile.ZipFile(io.BytesIO(data)).namelist()) == 33
    assert count_queries.count == small


def test_an_empty_record_exports_too(client, camille):
    _, token = camille
    bundle = json.loads(download(client, "/api/v1/record/export/fhir", token)[1])
    r4(bundle)
    assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"
    archive = zipfile.ZipFile(io.BytesIO(download(client, "/api/v1/record/export/zip", token)[1]))
    assert archive.namelist() == ["manifest.json"]


@pytest.mark.parametrize("path", ["/api/v1/record/export/fhir", "/api/v1/record/export/zip"])
def test_export_needs_the_patient_session(client, app, doctor, path):
    assert client.get(path).status_code == 401
    assert client.get(path, headers=doctor.headers()).status_code == 401
