"""The seeds' other records, whole (issue 20): implanted devices read from real ANS documents (LDL-SES, IPS,
the legacy 2.x organizer), vaccinations proposed from a dispensed vaccine (eDISP-MED) and followed by the
prevention calendar once confirmed, the cancer pathway as one timeline with its care team and the inbox
rule, and the FHIR export of implants (Device + DeviceUseStatement, validated by fhir.resources)."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from backend.audit.models import AuditEntry
from backend.db import get_session
from backend.records.profile import service as profile
from backend.records import vault
from backend.records.documents.models import Document
from backend.records.access.policy import Actor
from backend.records.profile.models import ProfileEntry
from tests.fhir_helpers import EDISP, Doc, make_pro, post_bundle, provide_bundle, r4, vaccine_dispensation
from tests.helpers import SHARED, Patient, activate, assert_problem, bearer, create_patient, make_nir

EXT = SHARED / "fixtures" / "external"
V3 = EXT / "ans-testcontenucda-3.0"
V222 = EXT / "ans-testcontenucda-2.22-legacy"
LDL_SES = (V3 / "LDL-SES_2022.01.xml").read_bytes()
IPS = (V3 / "IPS-FR_2024.01.xml").read_bytes()
PRESCRIPTION = (V3 / "eP-MED-DM_2024.01_PosoStruct.xml").read_bytes()
CNAM_HR = (V3 / "CNAM-HR_2021.01.xml").read_bytes()
IMAGING = (V3 / "IMG_CR_IMG_2024.01.xml").read_bytes()
BIOLOGY = (V3 / "BIO-CR-BIO_2024.01_Microbiologie_V2.xml").read_bytes()
PROFILE = "/api/v1/record/profile"
LOINC = "http://loinc.org"


@pytest.fixture
def doctor(app):
    return make_pro(app, "10000000001", family="Durand", given="Alice")


def deposit(client, pro, nir: str, docs: list[Doc]) -> list[int]:
    response = post_bundle(client, pro, provide_bundle(nir, docs))
    assert response.status_code == 200, response.get_data(as_text=True)[:400]
    return [int(e["response"]["location"].rsplit("/", 1)[1]) for e in response.get_json()["entry"]
            if "DocumentReference/" in e["response"].get("location", "")]


def legacy_import(app, client, root, nir: str, birth_date: str, sex: str = "F") -> int:
    """Activation runs the legacy import (the queue is inline in tests), as it does for a real patient."""
    app.config["LEGACY_DIR"] = str(root)
    try:
        created = create_patient(app, nir=nir, birth_date=birth_date, sex=sex)
        activate(client, created)
    finally:
        app.config["LEGACY_DIR"] = None
    return created.patient_id


def entries(client, holder: Patient, kind: str) -> list[dict]:
    body = client.get(f"{PROFILE}/{kind}", query_string={"include_hidden": "true"}, headers=holder.headers)
    assert body.status_code == 200, body.get_json()
    return body.get_json()["items"]


# --- implanted devices -----------------------------------------------------------------------------------

def test_a_discharge_letter_brings_its_implanted_device_linked_to_it(app, client, camille, doctor):
    """LDL-SES 2022.01 (ANS): FR-Dispositif-medical with EMDN, CLADIMED and LPP codes and a GS1 UDI."""
    [doc_id] = deposit(client, doctor, camille.nir, [Doc(LDL_SES, type_code="11490-0", type_system=LOINC,
                                                         class_code="11", title="Lettre de liaison")])
    [implant] = entries(client, camille, "implant")
    assert implant["fields"] == {
        "device": "STIMULATEUR CARDIAQUE IMPLANTABLE TRIPLE CHAMBRE", "device_code": "J010104",
        "brand_model": "STIMULATEUR CARDIAQUE DE RE-SYNCHRO VENTRICULAIRE, BIOTRONIK, EDORA 8 HF-T.",
        "udi": "{01}00844588003288{17}141120{10}7654321D{21}10987654d321",
        "lot_serial": "lot 7654321D, n° de série 10987654d321", "implant_date": "2018-12-03",
        "implanted_by": "Alice DURAND, Cabinet du Parc"}
    assert implant["document_id"] == doc_id and implant["source"] == "professional"
    assert implant["author"]["rpps"] == "10000000001" and implant["editable"] is False
    assert implant["needs_confirmation"] is False and implant["title"].startswith("STIMULATEUR")
    # the profile page shows it as a kind of its own, with its French label
    page = client.get(PROFILE, headers=camille.headers).get_json()
    assert page["entries"]["implant"]["total"] == 1
    assert page["entries"]["implant"]["label"] == "Dispositifs médicaux implantés"
    kinds = client.get(f"{PROFILE}/kinds", headers={**camille.headers, "Accept-Language": "en"}).get_json()
    implant_kind = next(k for k in kinds["kinds"] if k["kind"] == "implant")
    assert implant_kind["label"] == "Implanted medical devices"
    assert {f["name"]: f["label"] for f in implant_kind["fields"]}["implant_date"] == "Implant date"

    # the same letter again (a new uniqueId): the same device, not a second one
    deposit(client, doctor, camille.nir, [Doc(LDL_SES, type_code="11490-0", type_system=LOINC, class_code="11")])
    assert len(entries(client, camille, "implant")) == 1


def test_a_summary_gives_only_its_implantable_devices(app, client, camille, doctor):
    """IPS-FR 2024.01 lists a pacemaker (EMDN J010104, implantable) and "Autre dispositif médical" (not)."""
    deposit(client, doctor, camille.nir, [Doc(IPS, type_code="60591-5", type_system=LOINC, class_code="11")])
    [implant] = entries(client, camille, "implant")
    assert implant["fields"]["device"] == "STIMULATEUR CARDIAQUE IMPLANTABLE TRIPLE CHAMBRE"
    assert implant["fields"]["implant_date"] == "2019-08-11"
    assert implant["fields"]["comment"] == "(texte libre)"
    assert "implanted_by" not in implant["fields"]   # a summary does not say who implanted it


def test_prescribed_and_reimbursed_devices_are_not_implants(app, client, camille, doctor):
    deposit(client, doctor, camille.nir, [Doc(PRESCRIPTION, type_code="57833-6", type_system=LOINC, class_code="42"),
                                          Doc(CNAM_HR, type_code="REMB", type_system="urn:oid:1.2.250.1.213.1.1.4.12",
                                              class_code="60")])
    assert entries(client, camille, "implant") == []


def test_the_patient_enters_an_implant_and_gets_french_messages(app, client, camille):
    created = client.post(f"{PROFILE}/implant", json={
        "device": "Prothèse totale de hanche", "brand_model": "Corail / Pinnacle", "lot_serial": "LOT 8841",
        "implant_date": "2021-06", "site": "Hanche gauche", "implanted_by": "Clinique du Parc, Dr Morel"},
        headers=camille.headers)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["editable"] is True and created.get_json()["document_id"] is None
    refused = client.post(f"{PROFILE}/implant", json={"implant_date": "2999-01-01"}, headers=camille.headers)
    problem = assert_problem(refused, 422, "profile_invalid")
    fields = {e["field"]: e["message"] for e in problem["errors"]}
    assert set(fields) == {"device", "implant_date"} and "futur" in fields["implant_date"]


def test_the_legacy_import_reads_the_2x_device_organizer(app, client, db, tmp_path):
    """LDL-SES v2.3 (2.22 legacy set): the device is an organizer of TA_PRC observations ("implantable")."""
    nir = make_nir("2460375106693")   # the document's INS-NIR (given without its key), and its INS-C below
    legacy = tmp_path / "legacy" / nir
    legacy.mkdir(parents=True)
    (legacy / "LDL-SES_v2.3.xml").write_bytes((V222 / "LDL-SES_v2.3.xml").read_bytes())
    (legacy / "settings.json").write_text('{"version": 1, "identifiers": [{"oid": "1.2.250.1.213.1.4.2", '
                                          '"value": "1234567890112345678901"}]}', encoding="utf-8")
    patient_id = legacy_import(app, client, tmp_path / "legacy", nir, birth_date="1946-03-15")
    rows = db.scalars(select(ProfileEntry).where(ProfileEntry.patient_id == patient_id,
                                                 ProfileEntry.kind == "implant")).all()
    assert len(rows) == 1 and rows[0].source == "migration" and rows[0].document_id is not None
    with app.app_context():
        fields = json.loads(vault(get_session()).open_text(patient_id, rows[0].data, f"profile:implant:{rows[0].id}"))
    assert fields["device"] == "Dispositif médical implantable" and fields["implant_date"] == "2018-09-24"


# --- the FHIR export -------------------------------------------------------------------------------------------

def test_the_export_holds_device_and_device_use_statement(app, client, camille, doctor):
    [doc_id] = deposit(client, doctor, camille.nir, [Doc(LDL_SES, type_code="11490-0", type_system=LOINC,
                                                         class_code="11")])
    client.post(f"{PROFILE}/implant", json={"device": "Prothèse totale de hanche", "implant_date": "2021-06-14",
                                            "site": "Hanche gauche", "device_code": "P0908"},
                headers=camille.headers)
    response = client.get("/api/v1/record/export/fhir", headers=camille.headers)
    assert response.status_code == 200
    bundle = json.loads(b"".join(response.response))
    r4(bundle)   # the whole Bundle validates as FHIR R4 (fhir.resources)
    resources = [e["resource"] for e in bundle["entry"]]
    devices = [r for r in resources if r["resourceType"] == "Device"]
    uses = [r for r in resources if r["resourceType"] == "DeviceUseStatement"]
    assert len(devices) == 2 and len(uses) == 2
    pacemaker = next(d for d in devices if d["type"].get("coding", [{}])[0].get("code") == "J010104")
    assert pacemaker["udiCarrier"][0]["carrierHRF"].startswith("{01}00844588003288")
    assert pacemaker["lotNumber"] == "lot 7654321D, n° de série 10987654d321"
    assert {"name": "STIMULATEUR CARDIAQUE DE RE-SYNCHRO VENTRICULAIRE, BIOTRONIK, EDORA 8 HF-T.",
            "type": "model-name"} in pacemaker["deviceName"]
    use = next(u for u in uses if u["device"]["reference"] == f"Device/{pacemaker['id']}")
    assert use["timingDateTime"] == "2018-12-03" and use["status"] == "active"
    document_url = next(e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"
                        and e["resource"]["id"] == str(doc_id))
    assert use["derivedFrom"] == [{"reference": document_url}]
    assert use["source"]["identifier"]["value"] == "810000000001"
    hip = next(u for u in uses if u is not use)
    assert hip["bodySite"] == {"text": "Hanche gauche"} and hip["timingDateTime"] == "2021-06-14"
    assert "derivedFrom" not in hip and "source" not in hip   # the patient's own entry
    ids = {e["resource"]["resourceType"] + "/" + e["resource"]["id"] for e in bundle["entry"]}
    assert all(u["device"]["reference"] in ids for u in uses)   # every reference resolves in the bundle


# --- vaccinations from dispensing ----------------------------------------------------------------------------

@pytest.fixture
def senior(app, client) -> Patient:
    created = create_patient(app, nir=make_nir("1450263220011"), birth_date="1945-02-03", sex="M",
                             family="Bernard", given="Louis")
    return Patient(created.patient_id, bearer(activate(client, created)["access_token"]), created.nir)


def test_a_dispensed_vaccine_proposes_a_vaccination_the_calendar_follows_once_confirmed(app, client, senior,
                                                                                       doctor):
    day = dt.date.today() - dt.timedelta(days=30)
    pharmacist = make_pro(app, "10000000777", profession="21", family="Delive", given="Pierre")
    [doc_id] = deposit(client, pharmacist, senior.nir, [Doc(vaccine_dispensation(day), type_code="60593-1",
                                                            type_system=LOINC, class_code="43", service_date=at(day),
                                                            title="Dispensation médicamenteuse")])
    # the dispensed view says which item is a vaccine; paracetamol is not proposed
    dispensed = client.get(f"{PROFILE}/dispensed", headers=senior.headers).get_json()
    items = dispensed["items"][0]["items"]
    assert [i["vaccine"] for i in items] == [True] + [False] * (len(items) - 1)
    assert items[0]["atc"] == "J07BB02" and items[0]["lot"] == "W3B52"

    proposals = client.get(f"{PROFILE}/proposals", headers=senior.headers).get_json()["items"]
    assert len(proposals) == 1
    proposal = proposals[0]
    assert proposal["fields"] == {"vaccine": "VAXIGRIPTETRA, suspension injectable en seringue préremplie",
                                  "date": day.isoformat(), "atc": "J07BB02", "batch": "W3B52"}
    assert proposal["needs_confirmation"] is True and proposal["proposal"] is True
    assert proposal["document"]["id"] == doc_id and proposal["document"]["title"] == "Dispensation médicamenteuse"
    page = client.get(PROFILE, headers=senior.headers).get_json()
    assert page["views"]["proposals"] == 1 and page["conflicts"] == []   # a proposal is not a conflict
    assert client.get(f"{PROFILE}/conflicts", headers=senior.headers).get_json()["items"] == []

    def flu() -> dict:
        items = client.get("/api/v1/agenda/prevention", headers=senior.headers).get_json()["items"]
        return next(i for i in items if i["code"] == "vaccin_grippe")

    assert flu()["status"] == "to_plan"   # not before the patient confirms
    confirmed = client.post(f"{PROFILE}/vaccination/{proposal['id']}/confirm", headers=senior.headers)
    assert confirmed.status_code == 200 and confirmed.get_json()["needs_confirmation"] is False
    item = flu()
    assert item["status"] == "done" and item["done_on"] == day.isoformat()
    assert item["vaccination_entry_id"] == proposal["id"]
    assert client.get(f"{PROFILE}/proposals", headers=senior.headers).get_json()["items"] == []
    assert [v["id"] for v in entries(client, senior, "vaccination")] == [proposal["id"]]

    # the same dispensation deposited again (under another uniqueId) proposes nothing new: its items are known
    deposit(client, pharmacist, senior.nir, [Doc(vaccine_dispensation(day), type_code="60593-1", type_system=LOINC,
                                                 class_code="43")])
    assert len(entries(client, senior, "vaccination")) == 1


def test_a_declined_proposal_leaves_the_calendar_alone(app, client, senior):
    pharmacist = make_pro(app, "10000000778", profession="21")
    deposit(client, pharmacist, senior.nir, [Doc(vaccine_dispensation(dt.date.today() - dt.timedelta(days=3),
                                                                      atc=None, name="VACCIN GRIPPAL TETRAVALENT"),
                                                 type_code="60593-1",
                                                 type_system=LOINC, class_code="43")])
    [proposal] = client.get(f"{PROFILE}/proposals", headers=senior.headers).get_json()["items"]
    assert "atc" not in proposal["fields"]   # recognised by its name ("vaccin"), without an ATC code
    hidden = client.post(f"{PROFILE}/vaccination/{proposal['id']}/hide", headers=senior.headers).get_json()
    assert hidden["hidden"] is True and hidden["needs_confirmation"] is False
    items = client.get("/api/v1/agenda/prevention", headers=senior.headers).get_json()["items"]
    assert next(i for i in items if i["code"] == "vaccin_grippe")["status"] == "to_plan"
    assert client.get(f"{PROFILE}/proposals", headers=senior.headers).get_json()["items"] == []


def test_a_medicine_dispensation_proposes_nothing_and_the_calendar_reads_atc_codes(app, client, senior):
    pharmacist = make_pro(app, "10000000779", profession="21")
    deposit(client, pharmacist, senior.nir, [Doc(EDISP, type_code="60593-1", type_system=LOINC, class_code="43")])
    assert client.get(f"{PROFILE}/proposals", headers=senior.headers).get_json()["items"] == []
    # a pneumococcal vaccination the patient enters with its ATC code counts too; one without a code does not
    client.post(f"{PROFILE}/vaccination", json={"vaccine": "Prevenar 20", "atc": "J07AL02", "date": "2024-10-02"},
                headers=senior.headers)
    client.post(f"{PROFILE}/vaccination", json={"vaccine": "Zona (Shingrix)", "date": "2024-10-02"},
                headers=senior.headers)
    items = {i["code"]: i for i in client.get("/api/v1/agenda/prevention", headers=senior.headers).get_json()["items"]}
    assert items["vaccin_pneumocoque"]["status"] == "done" and items["vaccin_pneumocoque"]["done_on"] == "2024-10-02"
    assert items["vaccin_zona"]["status"] == "to_plan"


# --- the cancer pathway -------------------------------------------------------------------------------------

def _pdf(text: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(text=text)
    return bytes(pdf.output())


def at(day: dt.date) -> str:
    return f"{day.isoformat()}T09:00:00+01:00"


def test_the_cancer_pathway_is_one_timeline_with_its_care_team(app, client, camille, doctor):
    radiologist = make_pro(app, "10000000002", family="Imbert", given="Rémi")
    pathologist = make_pro(app, "10000000003", family="Pasteur", given="Lise")
    oncologist = make_pro(app, "10000000004", family="Onco", given="Marc")
    surgeon = make_pro(app, "10000000005", family="Bistouri", given="Jeanne")
    d0 = dt.date(2025, 3, 3)
    pdf = "application/pdf"
    old_bio = deposit(client, doctor, camille.nir, [Doc(BIOLOGY, type_code="11502-2", type_system=LOINC,
                                                        class_code="10", service_date=at(d0 - dt.timedelta(days=400)))])
    # the ANS PAERPA care plan (18776-5, an elderly-care plan) opens no cancer pathway
    paerpa = (EXT / "ans-testcontenucda-2.41" / "PPS-PAERPA_2021.01.xml").read_bytes()
    deposit(client, doctor, camille.nir, [Doc(paerpa, type_code="18776-5", type_system=LOINC, class_code="44",
                                              service_date=at(d0 - dt.timedelta(days=300)))])
    empty = client.get(f"{PROFILE}/oncology", headers=camille.headers).get_json()
    assert empty["steps"] == [] and empty["care_team"] == [] and empty["started_on"] is None   # no episode
    assert client.get(PROFILE, headers=camille.headers).get_json()["views"]["oncology"] == 0
    [imaging] = deposit(client, radiologist, camille.nir, [Doc(IMAGING, type_code="18748-4", type_system=LOINC,
                                                               class_code="31", title="Mammographie",
                                                               service_date=at(d0 - dt.timedelta(days=20)))])
    [anapath] = deposit(client, pathologist, camille.nir, [Doc(_pdf("CR ACP"), mime=pdf, type_code="60568-3",
                                                               type_system=LOINC, class_code="10",
                                                               title="Biopsie mammaire", service_date=at(d0))])
    [biology] = deposit(client, doctor, camille.nir, [Doc(BIOLOGY, type_code="11502-2", type_system=LOINC,
                                                          class_code="10", service_date=at(d0 + dt.timedelta(days=5)))])
    [rcp] = deposit(client, oncologist, camille.nir, [Doc(_pdf("Fiche RCP"), mime=pdf, type_code="34794-8",
                                                          type_system=LOINC, class_code="11", title="Fiche RCP",
                                                          service_date=at(d0 + dt.timedelta(days=10)))])
    [pps] = deposit(client, oncologist, camille.nir, [Doc(_pdf("PPS"), mime=pdf, type_code="18776-5", type_system=LOINC,
                                                          class_code="44", title="Programme personnalisé de soins",
                                                          service_date=at(d0 + dt.timedelta(days=12)))])
    [operative] = deposit(client, surgeon, camille.nir, [Doc(_pdf("CRO"), mime=pdf, type_code="34874-8",
                                                             type_system=LOINC, class_code="10",
                                                             title="Compte rendu opératoire",
                                                             service_date=at(d0 + dt.timedelta(days=30)))])
    [ppac] = deposit(client, oncologist, camille.nir, [Doc(_pdf("PPAC"), mime=pdf, type_code="18776-5",
                                                           type_system=LOINC, class_code="44",
                                                           title="Programme personnalisé de l'après-cancer",
                                                           service_date=at(d0 + dt.timedelta(days=200)))])
    # a document still hidden from the patient (announcement consultation pending) is not a step for them
    deposit(client, pathologist, camille.nir, [Doc(_pdf("ACP 2"), mime=pdf, type_code="60568-3", type_system=LOINC,
                                                   class_code="10", labels=["INVISIBLE_PATIENT"],
                                                   service_date=at(d0 + dt.timedelta(days=40)))])

    body = client.get(f"{PROFILE}/oncology", headers=camille.headers).get_json()
    assert [s["document"]["id"] for s in body["steps"]] == [imaging, anapath, biology, rcp, pps, operative, ppac]
    assert [s["step"] for s in body["steps"]] == ["imaging", "pathology", "biology", "rcp", "pps", "operative",
                                                  "ppac"]
    assert old_bio[0] not in [s["document"]["id"] for s in body["steps"]]   # long before the episode
    assert body["steps"][6]["label"] == "Programme personnalisé de l'après-cancer (PPAC)"
    assert body["started_on"].startswith("2025-03-03")
    team = {m["name"]: m for m in body["care_team"]}
    assert set(team) == {"Alice DURAND", "Rémi IMBERT", "Lise PASTEUR", "Marc ONCO", "Jeanne BISTOURI"}
    assert team["Marc ONCO"]["steps"] == ["rcp", "pps", "ppac"] and team["Marc ONCO"]["professional_id"] == oncologist.id
    assert body["care_team"][0]["name"] == "Marc ONCO"   # the latest first
    english = client.get(f"{PROFILE}/oncology", headers={**camille.headers, "Accept-Language": "en"}).get_json()
    assert english["steps"][1]["label"] == "Pathology report"
    only = client.get(f"{PROFILE}/oncology", query_string={"step": "ppac"}, headers=camille.headers).get_json()
    assert [s["document"]["id"] for s in only["steps"]] == [ppac]
    assert client.get(PROFILE, headers=camille.headers).get_json()["views"]["oncology"] == 7
    # each step opens its document
    opened = client.get(f"/api/v1/record/documents/{rcp}", headers=camille.headers)
    assert opened.status_code == 200 and opened.get_json()["title"] == "Fiche RCP"

    # "one tap from a new secure message": the inbox rule stays — the oncologist who wrote can be written to,
    # the surgeon who never wrote cannot (403, in French), and the inbox lists only the first
    from tests.messaging_support import send

    send(client, oncologist, camille.nir, "Votre parcours", "Je reste disponible.")
    correspondents = client.get("/api/v1/inbox/correspondents", headers=camille.headers).get_json()["items"]
    assert [c["professional_id"] for c in correspondents] == [oncologist.id]
    ok = client.post("/api/v1/inbox/threads", data={"professional_id": str(oncologist.id), "subject": "Mon PPAC",
                                                    "body": "Une question sur le suivi."}, headers=camille.headers,
                     content_type="multipart/form-data")
    assert ok.status_code == 201, ok.get_json()
    refused = client.post("/api/v1/inbox/threads", data={"professional_id": str(surgeon.id), "subject": "Cicatrice",
                                                         "body": "Bonjour"}, headers=camille.headers,
                          content_type="multipart/form-data")
    assert_problem(refused, 403, "inbox_new_thread_not_allowed")


def test_the_pathway_costs_a_fixed_number_of_queries(app, client, camille, doctor, count_queries):
    d0 = dt.date(2025, 1, 6)
    deposit(client, doctor, camille.nir, [Doc(_pdf("RCP"), mime="application/pdf", type_code="34794-8",
                                              type_system=LOINC, class_code="11", service_date=at(d0))])
    client.get(f"{PROFILE}/oncology", headers=camille.headers)
    count_queries.statements.clear()
    client.get(f"{PROFILE}/oncology", headers=camille.headers)
    small = count_queries.count
    for n in range(12):
        deposit(client, doctor, camille.nir, [Doc(BIOLOGY, type_code="11502-2", type_system=LOINC, class_code="10",
                                                  service_date=at(d0 + dt.timedelta(days=n + 1)))])
    count_queries.statements.clear()
    body = client.get(f"{PROFILE}/oncology", headers=camille.headers).get_json()
    assert count_queries.count == small and len(body["steps"]) == 13


# --- the legacy import maps the same documents to the same views ---------------------------------------

def test_a_legacy_dispensation_of_a_vaccine_proposes_the_same_vaccination(app, client, db, tmp_path):
    nir = "277076322082910"
    legacy = tmp_path / "legacy" / nir
    legacy.mkdir(parents=True)
    (legacy / "eDISP-vaccin.xml").write_bytes(vaccine_dispensation(dt.date(2025, 11, 20)))
    patient_id = legacy_import(app, client, tmp_path / "legacy", nir, birth_date="1977-07-10")
    with app.app_context():
        session = get_session()
        items, _ = profile.proposals(session, vault(session), patient_id, limit=10)
    assert len(items) == 1 and items[0]["source"] == "migration"
    assert items[0]["fields"]["atc"] == "J07BB02" and items[0]["fields"]["date"] == "2025-11-20"
    doc = db.get(Document, items[0]["document_id"])
    assert doc.type_code == "60593-1" and doc.source == "migration"
    assert db.scalar(select(AuditEntry.seq).where(AuditEntry.patient_id == patient_id,
                                                 AuditEntry.action == "profile.imported")) is not None


# --- the demo -----------------------------------------------------------------------------------------------

def test_the_demo_patient_carries_an_implant_and_a_whole_cancer_pathway(app, runner, client, db):
    from backend.tools.demo import DEMO_NIR, DEMO_PASSWORD
    from backend.accounts.models import Patient

    assert runner.invoke(args=["demo"]).exit_code == 0
    patient = db.scalar(select(Patient).where(Patient.nir == DEMO_NIR))
    documents = db.scalar(select(func.count()).select_from(Document).where(Document.patient_id == patient.id))
    assert runner.invoke(args=["demo"]).exit_code == 0   # idempotent
    assert db.scalar(select(func.count()).select_from(Document).where(Document.patient_id == patient.id)) == documents
    r = client.post("/api/v1/auth/login", json={"nir": DEMO_NIR, "password": DEMO_PASSWORD})
    code = runner.invoke(args=["demo", "otp"]).output.strip()
    token = client.post("/api/v1/auth/verify", json={"code": code}, headers=bearer(r.get_json()["token"])).get_json()
    headers = bearer(token["access_token"])

    [implant] = client.get(f"{PROFILE}/implant", headers=headers).get_json()["items"]
    assert implant["fields"]["device"] == "Chambre à cathéter implantable" and implant["document_id"]
    assert implant["fields"]["lot_serial"] == "lot DEMO-2025-118, n° de série PT8F-0042"
    pathway = client.get(f"{PROFILE}/oncology", headers=headers).get_json()
    assert {s["step"] for s in pathway["steps"]} == {"imaging", "pathology", "biology", "rcp", "pps", "operative",
                                                   "ppac"}
    # the five authors of the pathway's own documents, and whoever else wrote its biology or imaging since the
    # episode began (the lived-in demo's GP and laboratory)
    assert 5 <= len(pathway["care_team"]) <= 8, pathway["care_team"]
    assert {m["professional_id"] for m in pathway["care_team"]} >= {
        s["author_professional_id"] for s in pathway["steps"] if s["author_professional_id"]}
    writers = {c["professional_id"] for c in client.get("/api/v1/inbox/correspondents",
                                                         headers=headers).get_json()["items"]}
    oncologist = next(m for m in pathway["care_team"] if "rcp" in m["steps"])
    assert oncologist["professional_id"] in writers
    [proposal] = client.get(f"{PROFILE}/proposals", headers=headers).get_json()["items"]
    assert proposal["fields"]["atc"] == "J07CA02"
    client.post(f"{PROFILE}/vaccination/{proposal['id']}/confirm", headers=headers)
    items = client.get("/api/v1/agenda/prevention", headers=headers).get_json()["items"]
    assert next(i for i in items if i["code"] == "vaccin_dtcap_25")["status"] == "done"
    remb = client.get(f"{PROFILE}/reimbursements", headers=headers).get_json()
    assert remb["documents"] and remb["episodes"]


# --- an entry follows its document's visibility ----------------------------------------------------------

def test_entries_follow_the_visibility_of_their_document(app, client, db, camille, doctor):
    from backend.professionals.models import Professional

    ldl = dict(type_code="11490-0", type_system=LOINC, class_code="11")
    # hidden from the patient until the announcement consultation: nothing in the profile either
    [hidden] = deposit(client, doctor, camille.nir, [Doc(LDL_SES, labels=["INVISIBLE_PATIENT"], **ldl)])
    assert entries(client, camille, "implant") == []
    released = client.post(f"/fhir/R4/DocumentReference/{hidden}/$release", headers=doctor.headers())
    assert released.status_code == 200, released.get_data(as_text=True)[:300]
    [implant] = entries(client, camille, "implant")
    assert implant["document_id"] == hidden and implant["hidden"] is False

    # from a masked document the entry is hidden: the patient sees it among hidden ones, a professional
    # who may not see the document does not read it in the profile
    client.put("/api/v1/record/documents/settings", json={"mask_new_documents": True}, headers=camille.headers)
    [masked] = deposit(client, doctor, camille.nir, [Doc(IPS, type_code="60591-5", type_system=LOINC,
                                                         class_code="11")])
    from_ips = next(e for e in entries(client, camille, "implant") if e["document_id"] == masked)
    assert from_ips["hidden"] is True
    page = client.get(PROFILE, headers=camille.headers).get_json()
    assert page["entries"]["implant"]["total"] == 1 and page["hidden_count"] == 1
    other = make_pro(app, "10000000009", family="Autre", given="Paul")
    from backend.records.access.models import Consent

    with app.app_context():
        session = get_session()
        session.add(Consent(patient_id=camille.id, professional_id=other.id, granted_by="patient"))
        session.commit()
        seen = profile.read_profile_as(session, vault(session), Actor.of_professional(session.get(Professional, other.id)),
                                       camille.id)
        session.commit()
    assert [i["document_id"] for i in seen["implant"]] == [hidden]

    # hidden from legal representatives: no entry (profile entries cannot be hidden from them)
    deposit(client, doctor, camille.nir, [Doc(vaccine_dispensation(dt.date.today()), type_code="60593-1",
                                              type_system=LOINC, class_code="43",
                                              labels=["INVISIBLE_REPRESENTANTS_LEGAUX"])])
    assert client.get(f"{PROFILE}/proposals", headers=camille.headers).get_json()["items"] == []
