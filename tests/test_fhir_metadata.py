"""IHE MHD Comprehensive metadata: what a professional's software sends comes back, each code with its system
and display (items 3 and 4); the ITI-65 answer (item 2); RESTful references that resolve, the optional Patient
entry, and a schedule's codes (item 7)."""
from __future__ import annotations

import base64
import copy
import csv
import hashlib

import fhirkit
import pytest

from backend.audit.models import AuditEntry
from backend.identity import OID_INS_NIR
from backend.records.documents.models import Document, SubmissionSet
from tests.fhir_helpers import (FHIR_JSON, Doc, audit_actions, count, grant, make_pro, post_bundle, provide_bundle, r4,
                                search)
from tests.helpers import NIR_CAMILLE, NIR_LOUIS, SHARED, activate, bearer, create_patient

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
J10 = SHARED / "fixtures" / "external" / "ans-jeux-de-valeurs" / "JDV_J10_XdsFormatCode_CISIS.derived.csv"
SNOMED = "http://snomed.info/sct"


def valid(body):
    issues = [str(i) for i in fhirkit.validate(body) if i.severity == "error"]
    assert not issues, issues
    r4(body)
    return body


def format_of_pdf() -> tuple[str, str, str]:
    """(FHIR system, code, display) of the XDS-SD PDF format, as the ANS JDV J10 value set gives it."""
    with J10.open(encoding="utf-8") as rows:
        for row in csv.DictReader(rows):
            if row["code"] == "urn:ihe:iti:xds-sd:pdf:2008":
                return f"urn:oid:{row['codingScheme_as_seen_in_XDS_metadata']}", row["code"], row["display"]
    raise AssertionError("the J10 value set lists the XDS-SD PDF format")


FORMAT_SYSTEM, FORMAT_CODE, FORMAT_DISPLAY = format_of_pdf()
FACILITY = {"system": "urn:oid:1.2.250.1.71.4.2.4", "code": "SA01", "display": "Etablissement public de santé"}
SETTING = {"system": "urn:oid:1.2.250.1.213.1.1.4.9", "code": "ETABLISSEMENT", "display": "Etablissement de santé"}
EVENTS = [{"system": SNOMED, "code": "363346000", "display": "Malignant neoplastic disease"},
          {"system": "urn:oid:1.2.250.1.213.2.5", "code": "GLC", "display": "Glycémie"}]
ENTRY_UUID = "urn:uuid:2b3c1e0a-8f5d-4c7a-9b1e-6d2f0a4c8e11"


def comprehensive(doc: Doc) -> Doc:
    """The elements of IHE.MHD.Comprehensive.DocumentReference a DMP-compatible EHR fills in."""
    out = copy.deepcopy(doc)
    out.extra = {
        "identifier": [{"use": "official", "system": "urn:ietf:rfc:3986", "value": ENTRY_UUID}],
        "description": "Résultats à contrôler dans trois mois (commentaire XDS)",
        "contained": [{"resourceType": "Patient", "id": "src",
                       "identifier": [{"system": "urn:oid:1.2.250.1.999.3", "value": "IPP-778899"}],
                       "name": [{"family": "MARTIN", "given": ["Camille"]}], "birthDate": "1984-07-14"}],
        "context": {"period": {"start": "2024-03-05T10:00:00+01:00", "end": "2024-03-05T11:30:00+01:00"},
                    "facilityType": {"coding": [FACILITY]}, "practiceSetting": {"coding": [SETTING]},
                    "event": [{"coding": [e]} for e in EVENTS], "sourcePatientInfo": {"reference": "#src"}},
        "securityLabel": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                                       "code": "N", "display": "normal"}]}],
    }
    return out


def with_attachment(bundle: dict, **values) -> dict:
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "DocumentReference":
            entry["resource"]["content"][0]["attachment"].update(values)
            entry["resource"]["content"][0]["format"] = {"system": FORMAT_SYSTEM, "code": FORMAT_CODE,
                                                         "display": FORMAT_DISPLAY}
            entry["resource"]["type"]["coding"][0]["display"] = "Compte rendu de consultation"
            entry["resource"]["category"][0]["coding"][0]["display"] = "Compte rendu"
    return bundle


@pytest.fixture
def camille(app):
    return create_patient(app)


@pytest.fixture
def doctor(app):
    return make_pro(app)


def deposit(client, pro, bundle):
    response = post_bundle(client, pro, bundle)
    assert response.status_code == 200, response.get_json()
    return valid(response.get_json())


def test_comprehensive_metadata_comes_back_with_its_systems(client, app, db, camille, doctor):
    bundle = with_attachment(provide_bundle(NIR_CAMILLE, [comprehensive(Doc(PDF, mime="application/pdf"))]),
                             language="fr-FR", creation="2024-03-05T11:45:00+01:00")
    sent = bundle["entry"][1]["resource"]
    answer = deposit(client, doctor, bundle)
    doc_id = answer["entry"][1]["response"]["location"].rsplit("/", 1)[-1]
    grant(app, camille.patient_id, doctor)

    found = search(client, doctor, NIR_CAMILLE).get_json()
    read = client.get(f"/fhir/R4/DocumentReference/{doc_id}", headers=doctor.headers()).get_json()
    for reference in (valid(found)["entry"][0]["resource"], valid(read)):
        attachment = reference["content"][0]["attachment"]
        assert reference["content"][0]["format"] == {"system": "urn:oid:1.3.6.1.4.1.19376.1.2.3",
                                                     "code": "urn:ihe:iti:xds-sd:pdf:2008", "display": FORMAT_DISPLAY}
        assert reference["type"]["coding"] == sent["type"]["coding"]
        assert reference["category"][0]["coding"] == sent["category"][0]["coding"]
        assert reference["context"]["facilityType"]["coding"] == [FACILITY]
        assert reference["context"]["practiceSetting"]["coding"] == [SETTING]
        assert [e["coding"][0] for e in reference["context"]["event"]] == EVENTS
        assert reference["context"]["period"] == {"start": "2024-03-05T09:00:00+00:00",
                                                  "end": "2024-03-05T10:30:00+00:00"}
        assert (attachment["language"], attachment["creation"]) == ("fr-FR", "2024-03-05T10:45:00+00:00")
        assert attachment["hash"] == base64.b64encode(hashlib.sha1(PDF).digest()).decode()
        assert reference["identifier"] == [{"use": "official", "system": "urn:ietf:rfc:3986", "value": ENTRY_UUID}]
        assert reference["masterIdentifier"]["use"] == "usual"
        assert reference["description"] == "Résultats à contrôler dans trois mois (commentaire XDS)"
        assert attachment["title"] == "Compte rendu de consultation"  # the title stays the title
        assert reference["securityLabel"] == [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N", "display": "normal"}]}]
        source = reference["context"]["sourcePatientInfo"]["reference"]
        [patient] = [c for c in reference["contained"] if f"#{c['id']}" == source]
        assert patient["identifier"] == [{"system": "urn:oid:1.2.250.1.999.3", "value": "IPP-778899"}]
        assert reference["subject"]["reference"] == f"Patient/{camille.patient_id}"
    db.expire_all()
    stored = db.get(Document, int(doc_id))
    assert (stored.format_system, stored.facility_type_code, stored.practice_setting_code) == (
        "1.3.6.1.4.1.19376.1.2.3", "SA01", "ETABLISSEMENT")


def test_iti67_finds_by_the_new_metadata(client, app, camille, doctor):
    bundle = with_attachment(provide_bundle(NIR_CAMILLE, [comprehensive(Doc(PDF, mime="application/pdf")),
                                                          Doc(b"plain text", mime="text/plain")]),
                             language="fr-FR", creation="2024-03-05T11:45:00+01:00")
    answer = deposit(client, doctor, bundle)
    rich = answer["entry"][1]["response"]["location"].rsplit("/", 1)[-1]
    grant(app, camille.patient_id, doctor)

    def ids(**params):
        response = search(client, doctor, NIR_CAMILLE, **params)
        assert response.status_code == 200, response.get_json()
        return [e["resource"]["id"] for e in valid(response.get_json()).get("entry", [])]

    assert len(ids()) == 2
    assert ids(facility="urn:oid:1.2.250.1.71.4.2.4|SA01") == [rich]
    assert ids(facility="urn:oid:9.9|SA01") == []                       # a system is a system
    assert ids(setting="ETABLISSEMENT") == [rich]
    assert ids(event=f"{SNOMED}|363346000") == [rich]
    assert ids(format="urn:oid:1.3.6.1.4.1.19376.1.2.3|urn:ihe:iti:xds-sd:pdf:2008") == ids(format=FORMAT_CODE)
    assert ids(identifier=ENTRY_UUID) == [rich]
    assert ids(creation="2024-03-05") == ids() and ids(creation="lt2024-03-05") == []  # both carry a creation time
    assert ids(**{"security-label": "N"}) != [] and ids(**{"security-label": "MASQUE_PS"}) == []
    assert rich in ids(**{"author.family": "durand"}) and ids(**{"author.given": "Zorro"}) == []
    form = client.post("/fhir/R4/DocumentReference/_search", headers=doctor.headers(),
                       data={"patient.identifier": f"urn:oid:{OID_INS_NIR}|{NIR_CAMILLE}", "setting": "ETABLISSEMENT"})
    assert [e["resource"]["id"] for e in valid(form.get_json())["entry"]] == [rich]


def test_the_replacing_document_says_what_it_replaces(client, app, camille, doctor):
    first = deposit(client, doctor, provide_bundle(NIR_CAMILLE, [Doc(b"v1")]))
    old = first["entry"][1]["response"]["location"].rsplit("/", 1)[-1]
    grant(app, camille.patient_id, doctor)  # replacing needs the read right (records.access.policy)
    second = deposit(client, doctor, provide_bundle(NIR_CAMILLE, [Doc(b"v2", replaces=old)]))
    new = second["entry"][1]["response"]["location"].rsplit("/", 1)[-1]
    replacing = valid(client.get(f"/fhir/R4/DocumentReference/{new}", headers=doctor.headers()).get_json())
    assert replacing["relatesTo"] == [{"code": "replaces", "target": {"reference": f"DocumentReference/{old}"}}]
    assert valid(client.get(f"/fhir/R4/DocumentReference/{old}", headers=doctor.headers()).get_json())[
        "status"] == "superseded"


# --- item 2: the ITI-65 answer ---------------------------------------------------------------------------------

def test_every_entry_has_a_status_and_a_location_and_a_replay_changes_nothing(client, db, camille, doctor):
    bundle = provide_bundle(NIR_CAMILLE, [Doc(PDF), Doc(b"second", mime="text/plain")])
    first = deposit(client, doctor, bundle)
    assert [e["response"]["status"] for e in first["entry"]] == ["201 Created"] * 5
    locations = [e["response"]["location"] for e in first["entry"]]
    assert [loc.split("/fhir/R4/")[1].split("/")[0] for loc in locations] == [
        "List", "DocumentReference", "Binary", "DocumentReference", "Binary"]
    audits = count(db, AuditEntry)

    again = deposit(client, doctor, bundle)
    assert [e["response"]["status"] for e in again["entry"]] == ["200 OK"] * 5
    assert [e["response"]["location"] for e in again["entry"]] == locations
    notice = again["entry"][0]["response"]["outcome"]["issue"][0]
    assert notice["severity"] == "information" and "déjà été reçu" in notice["diagnostics"]
    assert count(db, Document) == 2 and count(db, SubmissionSet) == 1 and count(db, AuditEntry) == audits

    # the same SubmissionSet uniqueId with another document: a conflict, nothing written
    reused = provide_bundle(NIR_CAMILLE, [Doc(b"another")])
    reused["entry"][0]["resource"]["identifier"] = bundle["entry"][0]["resource"]["identifier"]
    response = post_bundle(client, doctor, reused)
    assert response.status_code == 409 and response.mimetype == FHIR_JSON
    assert valid(response.get_json())["issue"][0]["details"]["coding"][0]["code"] == "fhir_submission_conflict"
    assert count(db, Document) == 2


# --- item 7: references that resolve, the Patient entry, the agenda's codes ------------------------------------

def test_the_optional_patient_entry_is_checked_against_the_ins(client, db, camille, doctor):
    def with_patient(nir: str) -> dict:
        bundle = provide_bundle(NIR_CAMILLE, [Doc(PDF)])
        bundle["entry"].append({"fullUrl": "urn:uuid:4f1c7d3e-2a9b-4c6d-8e0f-1a2b3c4d5e6f",
                                "resource": {"resourceType": "Patient",
                                             "identifier": [{"system": f"urn:oid:{OID_INS_NIR}", "value": nir}],
                                             "name": [{"family": "MARTIN", "given": ["Camille"]}]},
                                "request": {"method": "POST", "url": "Patient"}})
        return bundle

    answer = deposit(client, doctor, with_patient(NIR_CAMILLE))
    assert answer["entry"][-1]["response"] == {"status": "200 OK",
                                               "location": f"http://127.0.0.1:5000/fhir/R4/Patient/{camille.patient_id}"}
    refused = post_bundle(client, doctor, with_patient(NIR_LOUIS))
    assert refused.status_code == 422 and "autre INS" in refused.get_json()["issue"][0]["diagnostics"]
    assert count(db, Document) == 1


def test_patient_and_practitioner_references_resolve(client, app, db, camille, doctor):
    deposit(client, doctor, provide_bundle(NIR_CAMILLE, [Doc(PDF)]))
    stranger = make_pro(app, rpps="10000000009", family="Inconnu", given="Jean")
    path = f"/fhir/R4/Patient/{camille.patient_id}"
    # without the patient's consent: the same 404 as a patient that does not exist, traced
    missing = client.get("/fhir/R4/Patient/999999", headers=stranger.headers())
    refused = client.get(path, headers=stranger.headers())
    assert refused.status_code == missing.status_code == 404
    assert refused.get_json()["issue"][0]["diagnostics"] == missing.get_json()["issue"][0]["diagnostics"]
    assert "patient.read.refused" in audit_actions(db, camille.patient_id)

    grant(app, camille.patient_id, doctor)
    reference = search(client, doctor, NIR_CAMILLE).get_json()["entry"][0]["resource"]
    patient = valid(client.get(f"/fhir/R4/{reference['subject']['reference']}", headers=doctor.headers()).get_json())
    assert patient["identifier"][0]["value"] == NIR_CAMILLE and "telecom" not in patient
    assert "patient.read" in audit_actions(db, camille.patient_id)
    practitioner = valid(client.get(f"/fhir/R4/Practitioner/{doctor.id}", headers=doctor.headers()).get_json())
    assert practitioner["identifier"] == [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "8" + doctor.rpps}]
    assert client.get("/fhir/R4/Practitioner/999999", headers=doctor.headers()).status_code == 404


def test_a_schedule_keeps_its_specialty_system_and_its_actor_resolves(client, app):
    from tests.agenda.support import make_pro as agenda_pro
    from tests.agenda.support import schedule_body

    pro = agenda_pro(app)
    body = schedule_body()
    sent = body["specialty"][0]["coding"][0]
    created = client.post("/fhir/R4/Schedule", json=body, headers=pro.headers)
    assert created.status_code == 201, created.get_json()
    schedule = valid(created.get_json())
    assert schedule["specialty"][0]["coding"] == [sent]
    slots = client.get("/fhir/R4/Slot", query_string=[("schedule", f"Schedule/{schedule['id']}"),
                                                      ("start", "ge2026-03-02"), ("start", "lt2026-03-03")],
                       headers=pro.headers)
    slot = valid(slots.get_json())["entry"][0]["resource"]
    assert slot["specialty"][0]["coding"] == [sent]
    actor = next(a for a in schedule["actor"] if a["reference"].startswith("Practitioner/"))
    assert valid(client.get(f"/fhir/R4/{actor['reference']}", headers=pro.headers).get_json())["id"] == \
        actor["reference"].split("/")[1]


# --- item 4: the patient's screen shows the facility and practice setting --------------------------------------

def test_the_patient_document_detail_shows_facility_and_practice_setting(client, app, camille, doctor):
    bundle = with_attachment(provide_bundle(NIR_CAMILLE, [comprehensive(Doc(PDF, mime="application/pdf"))]))
    doc_id = deposit(client, doctor, bundle)["entry"][1]["response"]["location"].rsplit("/", 1)[-1]
    token = activate(client, camille)["access_token"]
    detail = client.get(f"/api/v1/record/documents/{doc_id}", headers=bearer(token))
    assert detail.status_code == 200, detail.get_json()
    body = detail.get_json()
    assert body["facility_type"] == {"code": "SA01", "display": "Etablissement public de santé"}
    assert body["practice_setting"] == {"code": "ETABLISSEMENT", "display": "Etablissement de santé"}


def test_legacy_documents_keep_their_xds_metadata(app, runner, db, tmp_path):
    """The legacy import feeds the same columns from METADATA.XML: the facility type and practice setting
    (with their coding schemes), the format's scheme, the XDS comments and entryUUID."""
    from sqlalchemy import select

    from tests.migration_support import BIRTH, NIR_SAUVEUR, build_legacy_dir

    legacy = build_legacy_dir(tmp_path, only=[NIR_SAUVEUR])
    create_patient(app, nir=NIR_SAUVEUR, birth_date=BIRTH[NIR_SAUVEUR])
    result = runner.invoke(args=["migrate", "import", str(legacy)])
    assert result.exit_code == 0, result.output
    db.expire_all()
    documents = list(db.scalars(select(Document)))
    coded = [d for d in documents if d.practice_setting_code]
    assert coded, [(d.title, d.facility_type_code) for d in documents]
    for doc in coded:
        assert doc.practice_setting_code == "AMBULATOIRE" and doc.practice_setting_system
        assert doc.facility_type_code and doc.facility_type_code.startswith("SA") and doc.facility_type_system
        assert doc.entry_uuid and doc.entry_uuid.startswith("urn:uuid:")
