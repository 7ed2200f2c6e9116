"""IHE MHD ITI-66 Find Document Lists: SubmissionSets as resources, kept at ITI-65 time (and for every other
way a document arrives), searched with the MHD parameters, read by id, under the read policy: a List shows
only the entries the reader may see, and a reader without access gets what ITI-67 would answer."""
from __future__ import annotations

import datetime as dt
import io
from urllib.parse import parse_qsl, urlsplit

import fhirkit
import pytest
import sqlalchemy as sa
import time_machine

from backend import migrate
from backend.identity import OID_INS_NIR
from tests.fhir_helpers import Doc, audit_actions, grant, make_pro, post_bundle, provide_bundle, r4, search
from tests.helpers import NIR_CAMILLE, NIR_LOUIS, activate, bearer, create_patient

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
SOURCE_ID = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId"
DESIGNATION = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType"


def valid(body):
    issues = [str(i) for i in fhirkit.validate(body) if i.severity == "error"]
    assert not issues, issues
    r4(body)
    return body


@pytest.fixture
def camille(app):
    return create_patient(app)


@pytest.fixture
def doctor(app):
    return make_pro(app)


def submission(nir: str, docs: list[Doc], *, unique_id: str, source_id: str = "urn:oid:1.2.250.1.999.44",
               designation: tuple[str, str] = ("http://loinc.org", "11488-4"), family: str = "Durand",
               given: str = "Alice") -> dict:
    bundle = provide_bundle(nir, docs)
    listed = bundle["entry"][0]["resource"]
    listed["identifier"] = [{"use": "usual", "system": "urn:ietf:rfc:3986", "value": unique_id}]
    listed["extension"] = [{"url": SOURCE_ID, "valueIdentifier": {"value": source_id}},
                           {"url": DESIGNATION, "valueCodeableConcept": {"coding": [
                               {"system": designation[0], "code": designation[1]}]}}]
    listed["contained"] = [{"resourceType": "Practitioner", "id": "a1", "name": [{"family": family, "given": [given]}],
                            "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810000000001"}]}]
    listed["source"] = {"reference": "#a1"}
    listed["title"] = "Consultation du 5 mars"
    listed["note"] = [{"text": "Envoyé par le logiciel du cabinet"}]
    return bundle


def deposit(client, pro, bundle) -> tuple[str, list[str]]:
    response = post_bundle(client, pro, bundle)
    assert response.status_code == 200, response.get_json()
    locations = [e["response"]["location"].split("/fhir/R4/")[1] for e in response.get_json()["entry"]]
    return locations[0].split("/")[1], [loc.split("/")[1] for loc in locations if loc.startswith("DocumentReference")]


def lists(client, pro, nir=NIR_CAMILLE, **params):
    query = [("patient.identifier", f"urn:oid:{OID_INS_NIR}|{nir}"), ("code", "submissionset")]
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            query.append((key.replace("__", "."), str(item)))
    return client.get("/fhir/R4/List", query_string=query, headers=pro.headers())


def ids(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [e["resource"]["id"] for e in valid(response.get_json()).get("entry", [])]


def test_a_provided_bundle_is_found_as_a_submission_set(client, app, camille, doctor):
    list_id, docs = deposit(client, doctor, submission(NIR_CAMILLE, [Doc(PDF), Doc(b"two", mime="text/plain")],
                                                       unique_id="urn:oid:1.2.250.1.999.9.1"))
    grant(app, camille.patient_id, doctor)
    found = lists(client, doctor)
    assert ids(found) == [list_id]
    resource = found.get_json()["entry"][0]["resource"]
    assert resource["code"]["coding"][0]["code"] == "submissionset" and resource["mode"] == "working"
    assert resource["status"] == "current" and resource["title"] == "Consultation du 5 mars"
    assert {"use": "usual", "system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.250.1.999.9.1"} in resource["identifier"]
    entry_uuid = next(i["value"] for i in resource["identifier"] if i["use"] == "official")
    assert entry_uuid.startswith("urn:uuid:")
    extensions = {e["url"]: e for e in resource["extension"]}
    assert extensions[SOURCE_ID]["valueIdentifier"]["value"] == "urn:oid:1.2.250.1.999.44"
    assert extensions[DESIGNATION]["valueCodeableConcept"]["coding"][0] == {"system": "http://loinc.org",
                                                                           "code": "11488-4"}
    assert [e["item"]["reference"] for e in resource["entry"]] == [f"DocumentReference/{d}" for d in docs]
    author = {c["id"]: c for c in resource["contained"]}[resource["source"]["reference"][1:]]
    assert author["resourceType"] in ("Practitioner", "PractitionerRole")
    assert resource["subject"]["reference"] == f"Patient/{camille.patient_id}"
    assert resource["note"] == [{"text": "Envoyé par le logiciel du cabinet"}]
    # the same by id, and by POST _search
    assert valid(client.get(f"/fhir/R4/List/{list_id}", headers=doctor.headers()).get_json()) == resource
    form = client.post("/fhir/R4/List/_search", headers=doctor.headers(),
                       data={"patient.identifier": f"urn:oid:{OID_INS_NIR}|{NIR_CAMILLE}", "code": "submissionset"})
    assert ids(form) == [list_id]
    assert ids(client.get("/fhir/R4/List", headers=doctor.headers(),
                          query_string={"patient": f"Patient/{camille.patient_id}", "code": "submissionset"})) == [list_id]


def test_search_parameters(client, app, camille, doctor):
    with time_machine.travel(dt.datetime(2024, 1, 10, 9, tzinfo=dt.timezone.utc), tick=False):
        early, _ = deposit(client, doctor, submission(NIR_CAMILLE, [Doc(b"a")], unique_id="urn:oid:1.2.250.1.999.9.2",
                                                      designation=("http://loinc.org", "11502-2"),
                                                      family="Bernard", given="Paul"))
    with time_machine.travel(dt.datetime(2024, 3, 15, 9, tzinfo=dt.timezone.utc), tick=False):
        late, _ = deposit(client, doctor, submission(NIR_CAMILLE, [Doc(b"b")], unique_id="urn:oid:1.2.250.1.999.9.3",
                                                     source_id="urn:oid:1.2.250.1.999.45"))
    grant(app, camille.patient_id, doctor)
    assert ids(lists(client, doctor)) == [late, early]                          # newest first
    assert ids(lists(client, doctor, date="ge2024-03-01")) == [late]
    assert ids(lists(client, doctor, date=["ge2024-01-01", "lt2024-02-01"])) == [early]
    assert ids(lists(client, doctor, designationType="http://loinc.org|11502-2")) == [early]
    assert ids(lists(client, doctor, designationType="11488-4")) == [late]
    assert ids(lists(client, doctor, identifier="urn:oid:1.2.250.1.999.9.2")) == [early]
    assert ids(lists(client, doctor, sourceId="urn:oid:1.2.250.1.999.45")) == [late]
    assert ids(lists(client, doctor, source__family="bern")) == [early]        # starts with, any case
    assert ids(lists(client, doctor, source__given="Alice")) == [late]
    assert ids(lists(client, doctor, status="current")) == [late, early]
    assert ids(lists(client, doctor, status="superseded")) == []
    # no Folders are kept: code=folder finds nothing
    folders = client.get("/fhir/R4/List", headers=doctor.headers(), query_string={
        "patient.identifier": f"urn:oid:{OID_INS_NIR}|{NIR_CAMILLE}", "code": "folder"})
    assert ids(folders) == []
    # paging walks every set once
    first = lists(client, doctor, _count=1)
    body = valid(first.get_json())
    assert body["total"] == 2 and ids(first) == [late]
    [next_link] = [link["url"] for link in body["link"] if link["relation"] == "next"]
    parts = urlsplit(next_link)
    assert ids(client.get(parts.path, query_string=parse_qsl(parts.query), headers=doctor.headers())) == [early]


@pytest.mark.parametrize("params", [{"code": None}, {"code": "bogus"}, {"status": "nope"}, {"date": "yesterday"},
                                    {"_count": "0"}])
def test_bad_list_searches(client, camille, doctor, params):
    query = {"patient.identifier": f"urn:oid:{OID_INS_NIR}|{NIR_CAMILLE}", "code": "submissionset", **params}
    query = {k: v for k, v in query.items() if v is not None}
    response = client.get("/fhir/R4/List", query_string=query, headers=doctor.headers())
    assert response.status_code == 400 and valid(response.get_json())["issue"][0]["details"]["coding"][0]["code"] \
        == "fhir_invalid_search"


def test_a_list_shows_only_what_the_reader_may_see(client, app, db, camille, doctor):
    dentist = make_pro(app, rpps="10000000003", profession="40")
    mixed, (plain, masked) = deposit(client, doctor, submission(
        NIR_CAMILLE, [Doc(b"plain"), Doc(b"masked", labels=["MASQUE_PS"])], unique_id="urn:oid:1.2.250.1.999.9.4"))
    hidden, _ = deposit(client, doctor, submission(NIR_CAMILLE, [Doc(b"only masked", labels=["MASQUE_PS"])],
                                                   unique_id="urn:oid:1.2.250.1.999.9.5"))
    for pro in (doctor, dentist):
        grant(app, camille.patient_id, pro)
    # the author sees everything they deposited
    assert ids(lists(client, doctor)) == [hidden, mixed]
    # the dentist: the masked entry is not listed, and a set of masked documents only is not shown at all
    found = lists(client, dentist)
    assert ids(found) == [mixed] and found.get_json()["total"] == 1
    [resource] = [e["resource"] for e in found.get_json()["entry"]]
    assert [e["item"]["reference"] for e in resource["entry"]] == [f"DocumentReference/{plain}"]
    assert f"DocumentReference/{masked}" not in found.get_data(as_text=True)
    read = client.get(f"/fhir/R4/List/{mixed}", headers=dentist.headers()).get_json()
    assert [e["item"]["reference"] for e in read["entry"]] == [f"DocumentReference/{plain}"]
    assert client.get(f"/fhir/R4/List/{hidden}", headers=dentist.headers()).status_code == 404
    assert audit_actions(db, camille.patient_id).count("document.search.refused") == 1


def test_a_reader_without_access_gets_what_iti67_answers(client, app, db, camille, doctor):
    list_id, _ = deposit(client, doctor, submission(NIR_CAMILLE, [Doc(PDF)], unique_id="urn:oid:1.2.250.1.999.9.6"))
    stranger = make_pro(app, rpps="10000000007")
    for_lists, for_documents = lists(client, stranger), search(client, stranger, NIR_CAMILLE)
    assert for_lists.status_code == for_documents.status_code == 403
    assert for_lists.get_json()["issue"][0]["details"] == for_documents.get_json()["issue"][0]["details"]
    # reading by id: the same 404 as a list that does not exist
    refused = client.get(f"/fhir/R4/List/{list_id}", headers=stranger.headers())
    missing = client.get("/fhir/R4/List/987654", headers=stranger.headers())
    assert refused.status_code == missing.status_code == 404 and refused.get_json() == missing.get_json()
    # an unknown patient: the same 404 as ITI-67
    assert lists(client, stranger, nir=NIR_LOUIS).status_code == search(client, stranger, NIR_LOUIS).status_code == 404
    actions = audit_actions(db, camille.patient_id)
    assert actions.count("document.search.refused") == 3


def test_every_way_in_makes_a_submission_set(client, app, camille, doctor):
    """A patient's upload is a submission too: ITI-66 finds it, with the patient as author."""
    token = activate(client, camille)["access_token"]
    upload = client.post("/api/v1/record/documents", headers=bearer(token), data={
        "file": (io.BytesIO("Glycémie à jeun : 0,95 g/L\n".encode()), "bilan.txt"), "category": "BIOLOGIE"},
        content_type="multipart/form-data")
    assert upload.status_code == 201, upload.get_json()
    grant(app, camille.patient_id, doctor)
    found = lists(client, doctor)
    [resource] = [e["resource"] for e in valid(found.get_json())["entry"]]
    author = {c["id"]: c for c in resource["contained"]}[resource["source"]["reference"][1:]]
    assert author["resourceType"] == "Patient"
    assert [e["item"]["reference"] for e in resource["entry"]] == [f"DocumentReference/{upload.get_json()['id']}"]


def test_the_migration_builds_submission_sets_for_documents_already_there(tmp_path):
    """0014 on a database holding documents: one ITI-65 bundle (the same submission instant) is one set again,
    every other document a set of its own; class and format codes get their systems; entryUUIDs are set."""
    url = f"sqlite:///{tmp_path / 'before.db'}"
    migrate.upgrade(url, "0011_document_released_index")
    migrate.upgrade(url, "0003_agenda")
    engine = sa.create_engine(url)
    bundle_time = "2024-03-05 09:30:00.123456"
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO patient (id, nir, ins_oid, birth_family_name, given_names, birth_date, sex,"
                             " state, created_at) VALUES (1, :nir, :oid, 'MARTIN', 'Camille', '1984-07-14', 'F',"
                             " 'active', '2024-01-01')"), {"nir": NIR_CAMILLE, "oid": OID_INS_NIR})
        rows = [(1, "professional", bundle_time, "urn:ihe:iti:xds-sd:pdf:2008", "10"),
                (2, "professional", bundle_time, "urn:asip:ci-sis:cr-bio:2013", "10"),
                (3, "professional", "2024-03-06 10:00:00", None, None),
                (4, "patient", "2024-03-07 10:00:00", None, "90"),
                (5, "patient", "2024-03-07 10:00:00", None, "90")]
        for doc_id, source, when, fmt, cls in rows:
            conn.execute(sa.text(
                "INSERT INTO document (id, patient_id, unique_id, class_code, category, title, mime_type, format_code,"
                " size, sha256, source, submitted_at, confidentiality, invisible_patient,"
                " invisible_legal_representatives, masked) VALUES (:id, 1, :uid, :cls, 'AUTR_DOC', 't', 'text/plain',"
                " :fmt, 1, 'x', :source, :when, 'N', 0, 0, 0)"),
                {"id": doc_id, "uid": f"1.2.3.{doc_id}", "cls": cls, "fmt": fmt, "source": source, "when": when})
    migrate.upgrade(url)
    with engine.connect() as conn:
        sets = conn.execute(sa.text("SELECT submission_set_id, group_concat(document_id) FROM submission_set_entry"
                                    " GROUP BY submission_set_id ORDER BY min(document_id)")).all()
        assert [members for _, members in sets] == ["1,2", "3", "4", "5"]
        documents = conn.execute(sa.text("SELECT id, class_system, format_system, entry_uuid FROM document"
                                         " ORDER BY id")).all()
        assert [(d.class_system, d.format_system) for d in documents] == [
            ("1.2.250.1.213.1.1.4.1", "1.3.6.1.4.1.19376.1.2.3"), ("1.2.250.1.213.1.1.4.1", "1.2.250.1.213.1.1.4.2.282"),
            (None, None), ("1.2.250.1.213.1.1.4.1", None), ("1.2.250.1.213.1.1.4.1", None)]
        assert len({d.entry_uuid for d in documents}) == 5 and all(d.entry_uuid.startswith("urn:uuid:")
                                                                   for d in documents)
    engine.dispose()
