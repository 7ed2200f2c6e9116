"""Profile views built from real documents (eDISP-MED dispensation, CNAM-HR reimbursement history, RCP/PPS),
the dispensed window over time, and the functions other features call: the export, professionals' reads
through the access decision, the legacy importer (idempotent, with conflicts for the patient to settle)."""
from __future__ import annotations

import datetime as dt
import hashlib
import itertools

import pytest
import time_machine
from sqlalchemy import select

from backend.audit.models import AuditEntry
from backend.db import get_session, utcnow
from backend.professionals.models import Professional
from backend.professionals.service import create_professional
from backend.records.profile import service as profile
from backend.records import vault
from backend.records.access.authorize import AccessRefused
from backend.records.documents.service import write_content
from backend.records.access.models import Consent
from backend.records.documents.models import Document
from backend.records.models import Record
from backend.records.access.policy import Actor, Purpose
from backend.records.profile.models import ProfileEntry
from tests.helpers import SHARED, Patient, assert_problem, bearer, login

CDA3 = SHARED / "fixtures" / "external" / "ans-testcontenucda-3.0"
EDISP = (CDA3 / "eDISP-MED_2024.01.xml").read_bytes()
CNAM_HR = (CDA3 / "CNAM-HR_2021.01.xml").read_bytes()
PROFILE = "/api/v1/record/profile"
_ids = itertools.count(1)


def deposit(app, patient_id: int, raw: bytes, *, when: dt.datetime, title: str, class_code: str | None,
            type_code: str | None, category: str, mime: str = "text/xml", organisation: str | None = None,
            **flags) -> int:
    """A document stored as the documents feature stores it: metadata in clear, content sealed with the
    patient's key and the AAD ``document:<id>``."""
    with app.app_context():
        session = get_session()
        doc = Document(patient_id=patient_id, unique_id=f"1.2.250.1.999.{next(_ids)}", class_code=class_code,
                       type_code=type_code, category=category, title=title, mime_type=mime, size=len(raw),
                       sha256=hashlib.sha256(raw).hexdigest(), source="professional", service_date=when,
                       submitted_at=when, author_name="Pierre DELIVE", author_organisation=organisation, **flags)
        session.add(doc)
        session.flush()
        write_content(session, vault(session), doc, raw)
        session.commit()
        return doc.id


def make_pro(app, rpps: str, profession: str) -> Professional:
    with app.app_context():
        session = get_session()
        pro, _ = create_professional(session, rpps=rpps, family_name="Lenoir", given_name="Anne",
                                     profession=profession)
        session.commit()
        return pro


# --- medicines dispensed ------------------------------------------------------------------------------

def test_dispensed_medicines_of_the_last_four_months(app, client, camille, count_queries):
    now = utcnow()
    recent = deposit(app, camille.id, EDISP, when=now - dt.timedelta(days=20), title="Dispensation médicamenteuse",
                     class_code="43", type_code="60593-1", category="ORD_SOIN", organisation="Pharmacie du village")
    scanned = deposit(app, camille.id, b"%PDF-1.4 ticket", when=now - dt.timedelta(days=100),
                      title="Délivrance (scan)", class_code="43", type_code=None, category="ORD_SOIN",
                      mime="application/pdf")
    deposit(app, camille.id, EDISP, when=now - dt.timedelta(days=130), title="Trop ancienne", class_code="43",
            type_code="60593-1", category="ORD_SOIN")
    deposit(app, camille.id, EDISP, when=now - dt.timedelta(days=5), title="Pas encore annoncée", class_code="43",
            type_code="60593-1", category="ORD_SOIN", invisible_patient=True)
    deposit(app, camille.id, b"<x/>", when=now - dt.timedelta(days=3), title="Compte rendu", class_code="10",
            type_code="11490-0", category="CPT_REND")

    client.get("/api/v1/me", headers=camille.headers)  # the token's first use is recorded once
    count_queries.statements.clear()
    body = client.get(f"{PROFILE}/dispensed", headers=camille.headers).get_json()
    first = count_queries.count
    assert body["months"] == 4
    assert [d["document"]["id"] for d in body["items"]] == [recent, scanned]
    structured, unstructured = body["items"]
    assert structured["structured"] is True and structured["pharmacy"] == "Pharmacie du village"
    names = [i["name"] for i in structured["items"]]
    assert names[0].startswith("PARACETAMOL VIATRIS 500 mg") and names[1].startswith("Préparation magistrale")
    assert structured["items"][0]["quantity"] == 2 and structured["items"][0]["code"] == "3400933516390"
    assert structured["items"][0]["package"] == "Boîte" and structured["items"][0]["generic"] == "paracetamol"
    assert unstructured == {**unstructured, "structured": False, "items": []}
    assert client.get(PROFILE, headers=camille.headers).get_json()["views"]["dispensed"] == 2

    # more dispensations: the same number of queries
    for days in (30, 40, 50):
        deposit(app, camille.id, EDISP, when=now - dt.timedelta(days=days), title="Dispensation",
                class_code="43", type_code="60593-1", category="ORD_SOIN")
    count_queries.statements.clear()
    assert len(client.get(f"{PROFILE}/dispensed", headers=camille.headers).get_json()["items"]) == 5
    assert count_queries.count == first

    page = client.get(f"{PROFILE}/dispensed", query_string={"limit": 2}, headers=camille.headers).get_json()
    rest = client.get(f"{PROFILE}/dispensed", query_string={"limit": 10, "cursor": page["next_cursor"]},
                      headers=camille.headers).get_json()
    assert len(page["items"]) == 2 and len(rest["items"]) == 3 and rest["next_cursor"] is None

    # later on, older dispensations leave the window (a new session each time: tokens expire)
    with time_machine.travel(now + dt.timedelta(days=60), tick=False):
        headers = bearer(login(client, camille.nir, camille.secret))
        later = client.get(f"{PROFILE}/dispensed", headers=headers).get_json()
        # 20…50 days old became 80…110 days; the scan (now 160 days) is out
        assert [d["document"]["id"] for d in later["items"]][0] == recent and len(later["items"]) == 4
    with time_machine.travel(now + dt.timedelta(days=95), tick=False):
        headers = bearer(login(client, camille.nir, camille.secret))
        later = client.get(f"{PROFILE}/dispensed", headers=headers).get_json()
        assert [d["document"]["id"] for d in later["items"]] == [recent]  # 115 days; 125 days and more are out
    with time_machine.travel(now + dt.timedelta(days=110), tick=False):
        headers = bearer(login(client, camille.nir, camille.secret))
        assert client.get(f"{PROFILE}/dispensed", headers=headers).get_json()["items"] == []


def test_the_window_is_a_setting(app, client, camille, monkeypatch):
    now = utcnow()
    deposit(app, camille.id, EDISP, when=now - dt.timedelta(days=130), title="Il y a plus de 4 mois",
            class_code="43", type_code="60593-1", category="ORD_SOIN")
    assert client.get(f"{PROFILE}/dispensed", headers=camille.headers).get_json()["items"] == []
    monkeypatch.setitem(app.config, "DISPENSED_MONTHS", 6)
    body = client.get(f"{PROFILE}/dispensed", headers=camille.headers).get_json()
    assert body["months"] == 6 and len(body["items"]) == 1


# --- reimbursements -----------------------------------------------------------------------------------

def test_reimbursement_history_as_episodes_by_kind(app, client, camille, count_queries):
    first = deposit(app, camille.id, CNAM_HR, when=dt.datetime(2019, 8, 1, tzinfo=dt.timezone.utc),
                    title="Historique de remboursement", class_code="60", type_code="REMB", category="REMB")
    # the ANS example's episodes are of 2019: read within their 24 months
    with time_machine.travel(dt.datetime(2020, 12, 1, 9, tzinfo=dt.timezone.utc), tick=False):
        headers = camille.headers   # (a session opened "later": the second factor refuses an older code)
        client.get("/api/v1/me", headers=headers)  # the token's first use is recorded once
        count_queries.statements.clear()
        body = client.get(f"{PROFILE}/reimbursements", query_string={"limit": 100}, headers=headers).get_json()
        queries = count_queries.count
        counts = {k["kind"]: k["count"] for k in body["kinds"]}
        assert counts == {"consultations": 8, "medicines": 3, "biology": 4, "imaging": 3, "hospital": 2,
                          "devices": 2, "vaccines": 3}
        assert body["months"] == 24 and body["since"] == "2018-11-30T23:00:00+00:00"  # 1 Dec 2018, Paris
        assert next(k["label"] for k in body["kinds"] if k["kind"] == "biology") == "Biologie"
        dates = [e["date"] for e in body["episodes"]]
        assert dates == sorted(dates, reverse=True) and len(dates) == 25
        stay = next(e for e in body["episodes"] if e["kind"] == "hospital" and e["end"])
        assert stay["where"] == "CLINIQUE SAINTE GENEVIEVE" and stay["end"].startswith("2019-05-29")
        assert body["documents"][0]["id"] == first and body["documents"][0]["structured"] is True

        biology = client.get(f"{PROFILE}/reimbursements", query_string={"kind": "biology"},
                             headers=headers).get_json()["episodes"]
        assert {e["label"] for e in biology} >= {"T.S.H. (SANG)", "SANG : GLUCOSE (GLYCEMIE)"} and len(biology) == 4
        assert_problem(client.get(f"{PROFILE}/reimbursements", query_string={"kind": "astrology"},
                                  headers=headers), 422)

        # the next cumulative history repeats the same episodes: shown once, same number of queries
        deposit(app, camille.id, CNAM_HR, when=dt.datetime(2019, 9, 1, tzinfo=dt.timezone.utc),
                title="Historique de remboursement", class_code="60", type_code="REMB", category="REMB")
        count_queries.statements.clear()
        body = client.get(f"{PROFILE}/reimbursements", query_string={"limit": 10}, headers=headers).get_json()
        assert count_queries.count == queries
        assert len(body["documents"]) == 2 and sum(k["count"] for k in body["kinds"]) == 25
        assert len(body["episodes"]) == 10 and body["next_cursor"]
        more = client.get(f"{PROFILE}/reimbursements", query_string={"limit": 10, "cursor": body["next_cursor"]},
                          headers=headers).get_json()
        assert len(more["episodes"]) == 10

    # 24 months after the episodes, the history is out of the window (the documents stay in the record)
    with time_machine.travel(dt.datetime(2021, 10, 1, 9, tzinfo=dt.timezone.utc), tick=False):
        body = client.get(f"{PROFILE}/reimbursements", headers=headers).get_json()
        assert body["episodes"] == [] and body["documents"] == []
        assert client.get(f"/api/v1/record/documents/{first}", headers=headers).status_code == 200


# --- oncology pathway ---------------------------------------------------------------------------------

def test_oncology_pathway_in_date_order(app, client, camille):
    base = dt.datetime(2024, 1, 10, tzinfo=dt.timezone.utc)
    pps = deposit(app, camille.id, b"%PDF pps", when=base + dt.timedelta(days=20), title="PPS",
                  class_code="44", type_code="18776-5", category="SYNTHESE", mime="application/pdf")
    rcp1 = deposit(app, camille.id, b"%PDF rcp1", when=base, title="Fiche RCP initiale",
                   class_code="11", type_code="34794-8", category="SYNTHESE", mime="application/pdf")
    rcp2 = deposit(app, camille.id, b"%PDF rcp2", when=base + dt.timedelta(days=90), title="Fiche RCP de suivi",
                   class_code="11", type_code="34794-8", category="SYNTHESE", mime="application/pdf")
    biology = deposit(app, camille.id, b"<x/>", when=base + dt.timedelta(days=5), title="Biologie", class_code="10",
                      type_code="11502-2", category="BIOLOGIE")
    deposit(app, camille.id, b"%PDF masked", when=base + dt.timedelta(days=6), title="RCP remplacée",
            class_code="11", type_code="34794-8", category="SYNTHESE", deleted_at=base + dt.timedelta(days=7))
    body = client.get(f"{PROFILE}/oncology", headers=camille.headers).get_json()
    # the biology report of the episode is a step of the pathway (tests/test_records_pathways.py for the rest)
    assert [s["document"]["id"] for s in body["steps"]] == [rcp1, biology, pps, rcp2]
    assert [s["step"] for s in body["steps"]] == ["rcp", "biology", "pps", "rcp"]
    assert body["steps"][2]["label"] == "Programme personnalisé de soins (PPS)"
    page = client.get(f"{PROFILE}/oncology", query_string={"limit": 2}, headers=camille.headers).get_json()
    assert len(page["steps"]) == 2 and page["next_cursor"]
    assert client.get(PROFILE, headers=camille.headers).get_json()["views"]["oncology"] == 4


# --- what other features call -------------------------------------------------------------------------

def seed_profile(client, camille: Patient) -> dict[str, int]:
    ids = {}
    for kind, fields in (("allergy", {"substance": "Pénicilline", "severity": "severe"}),
                         ("disease", {"label": "Asthme", "onset_date": "1998"}),
                         ("vaccination", {"vaccine": "ROR", "date": "1986-05-01"}),
                         ("contact", {"contact_kind": "trusted_person", "name": "Jeanne Martin"}),
                         ("wish", {"text": "Prévenir ma sœur."})):
        ids[kind] = client.post(f"{PROFILE}/{kind}", json=fields, headers=camille.headers).get_json()["id"]
    client.post(f"{PROFILE}/measures", json={"type": "blood_pressure", "systolic": 125, "diastolic": 80},
                headers=camille.headers)
    client.post(f"{PROFILE}/measures", json={"type": "glucose", "value": 5.2, "unit": "mmol/L"},
                headers=camille.headers)
    client.post("/api/v1/record/directives/end_of_life", json={"text": "Pas d'acharnement."}, headers=camille.headers)
    client.post("/api/v1/record/directives/organ-donation", json={"position": "accepts"}, headers=camille.headers)
    return ids


def test_profile_for_export_gives_plain_dicts_per_kind(app, client, camille, count_queries):
    seed_profile(client, camille)
    with app.app_context():
        session = get_session()
        v = vault(session)
        count_queries.statements.clear()
        export = profile.profile_for_export(session, v, camille.id)
        assert count_queries.count <= 5
    assert export["allergy"][0]["fields"] == {"substance": "Pénicilline", "severity": "severe"}
    assert export["allergy"][0]["source"] == "patient" and export["allergy"][0]["needs_confirmation"] is False
    assert export["disease"][0]["fields"]["onset_date"] == "1998"
    bp = next(m for m in export["measure"] if m["type"] == "blood_pressure")
    assert bp["loinc"] == "85354-9" and bp["ucum"] == "mm[Hg]"
    assert bp["components"] == [{"name": "systolic", "loinc": "8480-6", "value": 125},
                                {"name": "diastolic", "loinc": "8462-4", "value": 80}]
    glucose = next(m for m in export["measure"] if m["type"] == "glucose")
    assert glucose["value"] == 5.2 and glucose["ucum"] == "mmol/L" and glucose["unit_loinc"] == "15074-8"
    assert export["directive"][0]["text"] == "Pas d'acharnement." and export["directive"][0]["version"] == 1
    assert export["organ_donation"][0]["position"] == "accepts"
    assert export["blood_group"] == [] and set(export) >= {"treatment", "family_history", "hospitalisation"}


def test_professionals_read_through_the_policy_and_its_matrix(app, client, db, camille):
    ids = seed_profile(client, camille)
    doctor = make_pro(app, "10003456789", "10")   # médecin
    dentist = make_pro(app, "10003456790", "40")  # chirurgien-dentiste: no directives, no wishes
    stranger = make_pro(app, "10003456791", "10")
    with app.app_context():
        session = get_session()
        for pro in (doctor, dentist):
            session.add(Consent(patient_id=camille.id, professional_id=pro.id))
        session.commit()
    client.post(f"{PROFILE}/disease/{ids['disease']}/hide", headers=camille.headers)
    with app.app_context():
        session = get_session()
        v = vault(session)
        seen = profile.read_profile_as(session, v, Actor.of_professional(session.get(Professional, doctor.id)),
                                       camille.id)
        assert [a["fields"]["substance"] for a in seen["allergy"]] == ["Pénicilline"]
        assert seen["directive"] and seen["wish"] and seen["organ_donation"]
        assert seen["disease"] == []  # hidden by the patient: like a masked document
        dentist_view = profile.read_profile_as(session, v, Actor.of_professional(session.get(Professional, dentist.id)),
                                               camille.id)
        assert dentist_view["allergy"] and dentist_view["directive"] == [] and dentist_view["wish"] == []
        assert dentist_view["contact"] == [] and dentist_view["organ_donation"] == []
        session.commit()
        with pytest.raises(AccessRefused):
            profile.read_profile_as(session, v, Actor.of_professional(session.get(Professional, stranger.id)),
                                    camille.id)
        session.commit()
        # the administrator sees hidden entries, as they see masked documents
        session.get(Record, session.scalar(select(Record.id).where(Record.patient_id == camille.id))
                    ).administrator_id = doctor.id
        session.flush()
        admin = profile.read_profile_as(session, v, Actor.of_professional(session.get(Professional, doctor.id)),
                                        camille.id)
        assert [d["fields"]["label"] for d in admin["disease"]] == ["Asthme"] and admin["disease"][0]["hidden"]
        session.commit()
    db.expire_all()
    actions = db.execute(select(AuditEntry.actor_id, AuditEntry.action).where(
        AuditEntry.action.like("profile.read%"))).all()
    assert ("10003456789", "profile.read") in actions and ("10003456791", "profile.read.refused") in actions


def test_emergency_read_needs_a_reason(app, client, camille):
    seed_profile(client, camille)
    pro = make_pro(app, "10003456789", "10")
    with app.app_context():
        session = get_session()
        actor = Actor.of_professional(session.get(Professional, pro.id))
        with pytest.raises(AccessRefused) as refused:
            profile.read_profile_as(session, vault(session), actor, camille.id, purpose=Purpose.BTG)
        assert refused.value.decision.reason == "reason_required"
        session.commit()
        seen = profile.read_profile_as(session, vault(session), actor, camille.id, purpose=Purpose.BTG,
                                       reason="Patiente inconsciente aux urgences")
        assert seen["allergy"]
        session.commit()


def test_legacy_import_is_idempotent_and_flags_conflicts(app, client, db, camille):
    client.post(f"{PROFILE}/allergy", json={"substance": "Pollens"}, headers=camille.headers)
    items = [
        {"substance": "Pénicilline", "source_key": "legacy:allergy:1.2.3:0",
         "author": {"kind": "professional", "rpps": "10003456789", "name": "Dr Bideault"}},
        {"substance": "Aspirine", "source_key": "legacy:allergy:1.2.3:1"},
        {"substance": "", "source_key": "legacy:allergy:1.2.3:2"},
        {"substance": "Latex", "since": "2999", "source_key": "legacy:allergy:1.2.3:3"},
    ]
    with app.app_context():
        session = get_session()
        first = profile.add_entries(session, vault(session), camille.id, "allergy", items, conflict_group="allergies")
        measures = profile.add_entries(session, vault(session), camille.id, "measure", [
            {"type": "weight", "value": 64.2, "unit": "kg", "measured_at": "2019-03-01T12:00:00+00:00",
             "source_key": "legacy:measure:1"},
            {"type": "weight", "value": 900, "source_key": "legacy:measure:2"}])
        session.commit()
    assert len(first.created) == 2 and first.skipped == []
    assert [(r["index"], r["errors"][0]["message_code"]) for r in first.rejected] == [
        (2, "profile_required"), (3, "profile_future_date")]
    assert len(measures.created) == 1 and measures.rejected[0]["index"] == 1
    with app.app_context():
        session = get_session()
        again = profile.add_entries(session, vault(session), camille.id, "allergy", items, conflict_group="allergies")
        session.commit()
    assert again.created == [] and again.skipped == ["legacy:allergy:1.2.3:0", "legacy:allergy:1.2.3:1"]

    imported = db.scalars(select(ProfileEntry).where(ProfileEntry.source == "migration")
                          .order_by(ProfileEntry.id)).all()
    assert [e.author_kind for e in imported] == ["professional", "patient"]
    own = db.scalar(select(ProfileEntry.id).where(ProfileEntry.source == "patient"))
    with app.app_context():
        session = get_session()
        assert profile.flag_conflict(session, camille.id, [own], "allergies") == 1
        session.commit()

    page = client.get(PROFILE, headers=camille.headers).get_json()
    assert page["conflicts"] == [{"group": "allergies", "kind": "allergy", "count": 3}]
    groups = client.get(f"{PROFILE}/conflicts", headers=camille.headers).get_json()["items"]
    assert {e["fields"]["substance"] for e in groups[0]["entries"]} == {"Pénicilline", "Aspirine", "Pollens"}
    # the patient confirms one, hides another, and the third stays to settle
    penicillin, aspirin = imported
    assert client.post(f"{PROFILE}/allergy/{penicillin.id}/confirm", headers=camille.headers
                       ).get_json()["needs_confirmation"] is False
    assert client.post(f"{PROFILE}/allergy/{aspirin.id}/hide", headers=camille.headers).get_json()["hidden"] is True
    page = client.get(PROFILE, headers=camille.headers).get_json()
    assert page["conflicts"] == [{"group": "allergies", "kind": "allergy", "count": 1}]

    # an imported entry the patient wrote and deleted does not come back with the next import
    assert client.delete(f"{PROFILE}/allergy/{aspirin.id}", headers=camille.headers).get_json()["status"] == "deleted"
    with app.app_context():
        session = get_session()
        third = profile.add_entries(session, vault(session), camille.id, "allergy", items)
        session.commit()
    assert third.created == []
    db.expire_all()
    tomb = db.get(ProfileEntry, aspirin.id)
    assert tomb.deleted_at is not None and tomb.data == ""


def test_a_second_blood_group_from_an_import_asks_the_patient(app, client, camille):
    client.post(f"{PROFILE}/blood_group", json={"group": "A", "rhesus": "positive"}, headers=camille.headers)
    with app.app_context():
        session = get_session()
        result = profile.add_entries(session, vault(session), camille.id, "blood_group",
                                     [{"group": "B", "rhesus": "positive", "source_key": "legacy:bg"}])
        session.commit()
    assert len(result.created) == 1
    conflicts = client.get(f"{PROFILE}/conflicts", headers=camille.headers).get_json()["items"]
    assert conflicts[0]["kind"] == "blood_group" and conflicts[0]["entries"][0]["fields"]["group"] == "B"
