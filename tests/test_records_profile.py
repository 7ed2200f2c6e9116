"""The medical profile over HTTP: entries of every kind, French validation that writes nothing, measures
(range and unit per type, history for charts), encryption at rest, isolation between patients, what a
professional recorded (removal request, never a deletion), advance directives in kept versions, organ
donation, and the profile page's constant query count."""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from sqlalchemy import func, select, text

from backend.audit.models import AuditEntry
from backend.db import get_session
from backend.professionals.models import Professional
from backend.professionals.service import create_professional
from backend.records.profile import service as profile
from backend.records.profile.common import Author
from backend.records.profile import measures as measure_service
from backend.records import vault
from backend.records.documents.service import write_content
from backend.records.documents.models import Document
from backend.records.profile.kinds import MEASURE_TYPES
from backend.records.profile.models import AdvanceDirective, OrganDonation, ProfileEntry, ProfileMeasure
from tests.helpers import Patient, assert_problem

PROFILE = "/api/v1/record/profile"
DIRECTIVES = "/api/v1/record/directives"

# One valid entry per kind, and a field to correct afterwards.
SAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "disease": ({"label": "Asthme", "code": "J45", "onset_date": "1998", "status": "active"}, {"status": "resolved"}),
    "hospitalisation": ({"reason": "Appendicectomie", "establishment": "CHU de Nantes", "start_date": "2009-05-02",
                         "end_date": "2009-05-05"}, {"end_date": "2009-05-06"}),
    "family_history": ({"relative": "mother", "condition": "Diabète de type 2"}, {"relative": "father"}),
    "allergy": ({"substance": "Pénicilline", "category": "medication", "severity": "severe", "since": "2012-06"},
                {"reaction": "Urticaire géante"}),
    "treatment": ({"name": "Ventoline 100 µg", "dosage": "2 bouffées si besoin", "start_date": "2015-01-10"},
                  {"dosage": "1 bouffée si besoin"}),
    "vaccination": ({"vaccine": "Boostrixtetra", "date": "2021-09-14", "dose": "rappel", "batch": "AB123"},
                    {"batch": "AB124"}),
    "blood_group": ({"group": "A", "rhesus": "positive"}, {"rhesus": "negative"}),
    "disability": ({"label": "Surdité partielle de l'oreille gauche"}, {"comment": "Appareillée depuis 2020"}),
    "lifestyle": ({"topic": "physical_activity", "description": "Course à pied 3 fois par semaine"},
                  {"description": "Vélo tous les jours"}),
    "contact": ({"contact_kind": "trusted_person", "name": "Jeanne Martin", "relationship": "sœur",
                 "phone": "+33 6 12 34 56 78"}, {"email": "jeanne.martin@example.org"}),
    "wish": ({"text": "Je souhaite que ma sœur soit informée de toute hospitalisation."},
             {"text": "Je souhaite que ma sœur et mon frère soient informés."}),
}

VALID_MEASURES = {
    "weight": ({"value": 72.5}, "kg", (0.1, 501)),
    "height": ({"value": 168}, "cm", (19, 273)),
    "waist": ({"value": 81}, "cm", (19, 301)),
    "temperature": ({"value": "37,8"}, "°C", (24.9, 45.1)),
    "glucose": ({"value": 0.95}, "g/L", (0.05, 10.5)),
    "blood_pressure": ({"systolic": 128, "diastolic": 82}, "mmHg", None),
    "heart_rate": ({"value": 64}, "bpm", (19, 301)),
    "pain": ({"value": 3}, "/10", (-1, 11)),
    "head_circumference": ({"value": 35}, "cm", (14, 81)),
    "steps": ({"value": 8542}, "steps", (-1, 200_001)),
    "hba1c": ({"value": 6.4}, "%", (1.9, 25.1)),
    "oxygen_saturation": ({"value": 97}, "%", (49, 101)),
}


def make_pro(app, rpps: str = "10003456789", profession: str = "10") -> Professional:
    with app.app_context():
        session = get_session()
        pro, _ = create_professional(session, rpps=rpps, family_name="Bideault", given_name="Jacques",
                                     profession=profession, organisation="Cabinet du Parc")
        session.commit()
        return pro


def pro_entry(app, patient_id: int, pro: Professional, kind: str, fields: dict[str, Any]) -> int:
    """An entry a professional recorded (through the service their software would call)."""
    with app.app_context():
        session = get_session()
        view = profile.create_entry(session, vault(session), patient_id, kind, fields,
                                    author=Author.of_professional(pro), source="professional")
        session.commit()
        return view["id"]


def deposit_document(app, patient_id: int, title: str = "Directives anticipées (scan)") -> int:
    """A patient upload, stored as the documents feature stores it (content sealed, AAD document:<id>)."""
    raw = b"%PDF-1.4 directives"
    with app.app_context():
        session = get_session()
        doc = Document(patient_id=patient_id, unique_id=f"test.upload.{title}", class_code="90", type_code="EXPPAT_1",
                       category="DIR_ANT", title=title, mime_type="application/pdf", size=len(raw),
                       sha256=hashlib.sha256(raw).hexdigest(),
                       source="patient")
        session.add(doc)
        session.flush()
        write_content(session, vault(session), doc, raw)
        session.commit()
        return doc.id


def counts(db) -> tuple[int, ...]:
    db.expire_all()
    return tuple(db.scalar(select(func.count()).select_from(model))
                 for model in (ProfileEntry, ProfileMeasure, AdvanceDirective, OrganDonation, AuditEntry))


# --- entries ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_create_read_correct_delete_each_kind(client, camille, kind):
    fields, correction = SAMPLES[kind]
    r = client.post(f"{PROFILE}/{kind}", json=fields, headers=camille.headers)
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert created["fields"] == fields and created["source"] == "patient" and created["editable"] is True
    assert created["author"]["kind"] == "patient"

    listed = client.get(f"{PROFILE}/{kind}", headers=camille.headers).get_json()
    assert [i["id"] for i in listed["items"]] == [created["id"]] and listed["next_cursor"] is None

    r = client.patch(f"{PROFILE}/{kind}/{created['id']}", json=correction, headers=camille.headers)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["fields"] == {**fields, **correction} and r.get_json()["updated_at"]
    one = client.get(f"{PROFILE}/{kind}/{created['id']}", headers=camille.headers).get_json()
    assert one["fields"] == {**fields, **correction}

    page = client.get(PROFILE, headers=camille.headers).get_json()
    assert page["entries"][kind]["total"] == 1 and page["entries"][kind]["items"][0]["id"] == created["id"]

    r = client.delete(f"{PROFILE}/{kind}/{created['id']}", headers=camille.headers)
    assert r.status_code == 200 and r.get_json() == {"status": "deleted", "entry": None}
    assert_problem(client.get(f"{PROFILE}/{kind}/{created['id']}", headers=camille.headers), 404,
                   "profile_entry_not_found")


def test_null_clears_a_field_and_blood_group_is_single(client, camille):
    r = client.post(f"{PROFILE}/allergy", json={"substance": "Arachide", "reaction": "Œdème"}, headers=camille.headers)
    entry = r.get_json()
    r = client.patch(f"{PROFILE}/allergy/{entry['id']}", json={"reaction": None}, headers=camille.headers)
    assert r.get_json()["fields"] == {"substance": "Arachide"}
    assert client.post(f"{PROFILE}/blood_group", json={"group": "O", "rhesus": "negative"},
                       headers=camille.headers).status_code == 201
    body = assert_problem(client.post(f"{PROFILE}/blood_group", json={"group": "A", "rhesus": "positive"},
                                      headers=camille.headers), 409, "profile_single_exists")
    assert "déjà renseignée" in body["detail"]


@pytest.mark.parametrize(("kind", "payload", "field", "french"), [
    ("allergy", {}, "substance", "obligatoire"),
    ("allergy", {"substance": "x" * 201}, "substance", "200 caractères au maximum"),
    ("allergy", {"substance": "Latex", "severity": "terrible"}, "severity",
     "Valeurs possibles : mild, moderate, severe"),
    ("allergy", {"substance": "Latex", "since": "14/07/2012"}, "since", "AAAA-MM-JJ"),
    ("allergy", {"substance": "Latex", "since": "2012-02-30"}, "since", "AAAA-MM-JJ"),
    ("allergy", {"substance": "Latex", "favourite_colour": "bleu"}, "favourite_colour", "n'existe pas"),
    ("allergy", {"substance": 12}, "substance", "doit être un texte"),
    ("vaccination", {"vaccine": "ROR"}, "date", "obligatoire"),
    ("vaccination", {"vaccine": "ROR", "date": "2999-01-01"}, "date", "dans le futur"),
    ("vaccination", {"vaccine": "ROR", "date": "1980-01-01"}, "date", "date de naissance"),
    ("treatment", {"name": "Doliprane", "start_date": "2020-03", "end_date": "2019-12-31"}, "end_date",
     "précède la date de début"),
    ("contact", {"contact_kind": "emergency", "name": "Paul"}, "phone", "numéro de téléphone"),
    ("contact", {"contact_kind": "carer", "name": "Paul", "email": "paul-at-example"}, "email", "e-mail invalide"),
])
def test_invalid_entries_are_refused_in_french_and_nothing_is_written(client, db, camille, kind, payload, field,
                                                                      french):
    before = counts(db)
    body = assert_problem(client.post(f"{PROFILE}/{kind}", json=payload, headers=camille.headers), 422,
                          "profile_invalid")
    assert body["detail"] == "Certaines informations saisies sont invalides."
    errors = {e["field"]: e["message"] for e in body["errors"]}
    assert french in errors[field], errors
    assert counts(db) == before


def test_unknown_kind_is_a_french_422_and_writes_nothing(client, db, camille):
    before = counts(db)
    body = assert_problem(client.post(f"{PROFILE}/horoscope", json={"sign": "lion"}, headers=camille.headers), 422,
                          "profile_unknown_kind")
    assert "Rubrique du profil inconnue" in body["detail"] and "allergy" in body["detail"]
    assert_problem(client.get(f"{PROFILE}/horoscope", headers=camille.headers), 422, "profile_unknown_kind")
    english = client.post(f"{PROFILE}/horoscope", json={}, headers={**camille.headers, "Accept-Language": "en"})
    assert english.get_json()["detail"].startswith("Unknown profile section")
    body = assert_problem(client.post(f"{PROFILE}/allergy", json=["Pénicilline"], headers=camille.headers), 422)
    assert counts(db) == before


def test_a_failed_correction_changes_nothing(client, db, camille):
    entry = client.post(f"{PROFILE}/treatment", json={"name": "Kardegic 75 mg"}, headers=camille.headers).get_json()
    before = counts(db)
    assert_problem(client.patch(f"{PROFILE}/treatment/{entry['id']}", json={"start_date": "demain"},
                                headers=camille.headers), 422, "profile_invalid")
    assert counts(db) == before
    assert client.get(f"{PROFILE}/treatment/{entry['id']}", headers=camille.headers).get_json()["fields"] == {
        "name": "Kardegic 75 mg"}


def test_profile_needs_a_session(client):
    assert_problem(client.get(PROFILE), 401, "unauthorized")
    assert_problem(client.post(f"{PROFILE}/allergy", json={"substance": "Latex"}), 401)
    assert_problem(client.get(DIRECTIVES), 401)


def test_entries_paginate(client, camille):
    ids = [client.post(f"{PROFILE}/vaccination", json={"vaccine": f"Vaccin {i}", "date": "2020-01-01"},
                       headers=camille.headers).get_json()["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        page = client.get(f"{PROFILE}/vaccination", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})},
                          headers=camille.headers).get_json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    assert_problem(client.get(f"{PROFILE}/vaccination", query_string={"cursor": "forged!"}, headers=camille.headers),
                   422)


# --- measures -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("mtype", sorted(MEASURE_TYPES))
def test_each_measure_type_checks_its_range_and_unit(client, db, camille, mtype):
    fields, unit, outside = VALID_MEASURES[mtype]
    r = client.post(f"{PROFILE}/measures", json={"type": mtype, **fields, "measured_at": "2024-05-02T08:15"},
                    headers=camille.headers)
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert created["unit"] == unit and created["type"] == mtype
    # without an offset, the time is French local time (CEST in May)
    assert created["measured_at"].startswith("2024-05-02T06:15")
    before = counts(db)
    if outside is None:  # blood pressure: two values, each with its range, systolic above diastolic
        for bad, field_name in (({"systolic": 301, "diastolic": 80}, "systolic"),
                                ({"systolic": 120, "diastolic": 19}, "diastolic"),
                                ({"systolic": 80, "diastolic": 90}, "diastolic")):
            body = assert_problem(client.post(f"{PROFILE}/measures", json={"type": mtype, **bad},
                                              headers=camille.headers), 422, "profile_invalid")
            assert field_name in {e["field"] for e in body["errors"]}
    else:
        for value in outside:
            body = assert_problem(client.post(f"{PROFILE}/measures", json={"type": mtype, "value": value},
                                              headers=camille.headers), 422, "profile_invalid")
            message = body["errors"][0]["message"]
            assert message.startswith("La valeur doit être comprise entre") and message.endswith(f" {unit}."), message
    body = assert_problem(client.post(f"{PROFILE}/measures", json={"type": mtype, **fields, "unit": "furlongs"},
                                      headers=camille.headers), 422, "profile_invalid")
    assert body["errors"][0]["field"] == "unit" and "Unités possibles" in body["errors"][0]["message"]
    assert_problem(client.post(f"{PROFILE}/measures", json={"type": mtype, **fields, "measured_at": "2999-01-01"},
                               headers=camille.headers), 422, "profile_invalid")
    assert counts(db) == before


def test_measure_details(client, camille):
    r = client.post(f"{PROFILE}/measures", json={"type": "glucose", "value": 5.5, "unit": "mmol/L"},
                    headers=camille.headers)
    assert r.status_code == 201 and r.get_json()["chart_value"] == pytest.approx(0.9909, abs=1e-4)
    body = assert_problem(client.post(f"{PROFILE}/measures", json={"type": "glucose", "value": 60, "unit": "mmol/L"},
                                      headers=camille.headers), 422)
    assert body["errors"][0]["message"] == "La valeur doit être comprise entre 0,5 et 55,5 mmol/L."
    body = assert_problem(client.post(f"{PROFILE}/measures", json={"type": "pain", "value": 4.5},
                                      headers=camille.headers), 422)
    assert body["errors"][0]["message"] == "Ce champ doit être un nombre entier."
    body = assert_problem(client.post(f"{PROFILE}/measures", json={"type": "mood", "value": 3},
                                      headers=camille.headers), 422, "profile_unknown_measure")
    assert "Type de mesure inconnu" in body["detail"]
    assert_problem(client.post(f"{PROFILE}/measures", json={"type": "weight", "value": True},
                               headers=camille.headers), 422, "profile_invalid")
    assert_problem(client.post(f"{PROFILE}/measures", json={"type": "weight", "value": "NaN"},
                               headers=camille.headers), 422, "profile_invalid")
    weight = client.post(f"{PROFILE}/measures", json={"type": "weight", "value": 70},
                         headers=camille.headers).get_json()
    assert_problem(client.patch(f"{PROFILE}/measures/{weight['id']}", json={"type": "height"},
                                headers=camille.headers), 422, "profile_measure_type_fixed")
    r = client.patch(f"{PROFILE}/measures/{weight['id']}", json={"value": 69.4, "note": "après le footing"},
                     headers=camille.headers)
    assert r.status_code == 200 and r.get_json()["value"] == 69.4
    assert r.get_json()["measured_at"] == weight["measured_at"]
    deleted = client.delete(f"{PROFILE}/measures/{weight['id']}", headers=camille.headers).get_json()
    assert deleted["status"] == "deleted"


def test_measure_history_for_charts_paginates_in_time_order(client, camille, count_queries):
    start = dt.datetime(2024, 1, 1, 7, 0, tzinfo=dt.timezone.utc)
    # entered out of order: the history is ordered by the time of measurement, not of entry
    days = [9, 2, 14, 5, 0, 11, 7, 3, 13, 1, 8, 12, 4, 10, 6]
    for day in days:
        r = client.post(f"{PROFILE}/measures", json={"type": "weight", "value": 70 + day / 10,
                                                      "measured_at": (start + dt.timedelta(days=day)).isoformat()},
                        headers=camille.headers)
        assert r.status_code == 201
    client.post(f"{PROFILE}/measures", json={"type": "blood_pressure", "systolic": 130, "diastolic": 85},
                headers=camille.headers)
    values, cursor, queries = [], None, []
    while True:
        count_queries.statements.clear()
        args = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{PROFILE}/measures/weight", query_string=args, headers=camille.headers).get_json()
        queries.append(count_queries.count)
        values += [i["value"] for i in page["items"]]
        assert [p[1] for p in page["series"]["value"]] == sorted(i["value"] for i in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert values == [70 + d / 10 for d in sorted(days, reverse=True)]
    # the same cost for every page (after the first, one more to find the cursor's row)
    assert len(set(queries[1:])) == 1 and queries[0] == queries[1] - 1, queries
    since, until = (start + dt.timedelta(days=3)).isoformat(), (start + dt.timedelta(days=5)).isoformat()
    window = client.get(f"{PROFILE}/measures/weight", query_string={"since": since, "until": until},
                        headers=camille.headers).get_json()
    assert [i["value"] for i in window["items"]] == [70.5, 70.4, 70.3]
    bp = client.get(f"{PROFILE}/measures/blood_pressure", headers=camille.headers).get_json()
    assert bp["label"] == "Tension artérielle" and bp["series"]["systolic"][0][1] == 130
    assert bp["series"]["diastolic"][0][1] == 85
    assert_problem(client.get(f"{PROFILE}/measures/mood", headers=camille.headers), 422, "profile_unknown_measure")


# --- encryption at rest -------------------------------------------------------------------------------

def test_values_are_encrypted_at_rest(app, client, db, camille):
    secret_words = ["Pénicilline-Zorglub", "Marguerite Zorglub", "72.125", "Zorglub-directive", "Zorglub-don"]
    client.post(f"{PROFILE}/allergy", json={"substance": secret_words[0]}, headers=camille.headers)
    client.post(f"{PROFILE}/contact", json={"contact_kind": "emergency", "name": secret_words[1],
                                             "phone": "0612345678"}, headers=camille.headers)
    client.post(f"{PROFILE}/measures", json={"type": "weight", "value": 72.125}, headers=camille.headers)
    client.post(f"{DIRECTIVES}/end_of_life", json={"text": f"{secret_words[3]} : pas d'acharnement"},
                headers=camille.headers)
    client.post(f"{DIRECTIVES}/organ-donation", json={"position": "refuses", "comment": secret_words[4]},
                headers=camille.headers)
    pro = make_pro(app)
    entry_id = pro_entry(app, camille.id, pro, "disease", {"label": "Hypertension"})
    client.delete(f"{PROFILE}/disease/{entry_id}", json={"reason": "Zorglub-raison"}, headers=camille.headers)
    dumped = []
    for table in ("profile_entry", "profile_measure", "advance_directive", "organ_donation", "audit_entry"):
        dumped += [repr(tuple(row)) for row in db.execute(text(f"SELECT * FROM {table}"))]
    assert len(dumped) >= 7
    blob = "\n".join(dumped)
    for word in [*secret_words, "Zorglub", "Hypertension", "pas d'acharnement", "refuses"]:
        assert word not in blob, word
    # and the ciphertext is bound to its row: moved to another row it does not open
    rows = db.scalars(select(ProfileEntry).where(ProfileEntry.patient_id == camille.id).order_by(ProfileEntry.id)).all()
    with app.app_context():
        v = vault(get_session())
        assert "Zorglub" in v.open_text(camille.id, rows[0].data, f"profile:allergy:{rows[0].id}")
        with pytest.raises(Exception):
            v.open_text(camille.id, rows[0].data, f"profile:allergy:{rows[1].id}")


# --- isolation ----------------------------------------------------------------------------------------

def test_another_patient_gets_404_and_nothing_leaks(app, client, db, camille, louis):
    allergy = client.post(f"{PROFILE}/allergy", json={"substance": "Pénicilline"}, headers=camille.headers).get_json()
    measure = client.post(f"{PROFILE}/measures", json={"type": "weight", "value": 61},
                          headers=camille.headers).get_json()
    client.post(f"{DIRECTIVES}/good_health", json={"text": "Texte de Camille"}, headers=camille.headers)
    document_id = deposit_document(app, camille.id)
    before = counts(db)
    for response in (
        client.get(f"{PROFILE}/allergy/{allergy['id']}", headers=louis.headers),
        client.patch(f"{PROFILE}/allergy/{allergy['id']}", json={"substance": "Rien"}, headers=louis.headers),
        client.delete(f"{PROFILE}/allergy/{allergy['id']}", headers=louis.headers),
        client.post(f"{PROFILE}/allergy/{allergy['id']}/hide", headers=louis.headers),
        client.patch(f"{PROFILE}/measures/{measure['id']}", json={"value": 80}, headers=louis.headers),
        client.delete(f"{PROFILE}/measures/{measure['id']}", headers=louis.headers),
    ):
        body = assert_problem(response, 404, "profile_entry_not_found")
        assert "Pénicilline" not in response.get_data(as_text=True)
        assert body["detail"] == "Cette information n'existe pas dans votre profil."
    assert_problem(client.post(f"{DIRECTIVES}/good_health", json={"document_id": document_id}, headers=louis.headers),
                   404, "directive_document_not_found")
    page = client.get(PROFILE, headers=louis.headers).get_json()
    assert all(bucket["total"] == 0 for bucket in page["entries"].values())
    assert all(m["count"] == 0 for m in page["measures"])
    assert page["directives"]["good_health"]["current"] is None
    assert client.get(f"{PROFILE}/measures/weight", headers=louis.headers).get_json()["items"] == []
    assert client.get(f"{DIRECTIVES}/good_health", headers=louis.headers).get_json()["items"] == []
    assert counts(db) == before
    assert client.get(f"{PROFILE}/allergy/{allergy['id']}", headers=camille.headers).status_code == 200


# --- what a professional recorded ---------------------------------------------------------------------

def test_a_professional_entry_cannot_be_deleted_only_a_removal_request(app, client, db, camille):
    pro = make_pro(app)
    entry_id = pro_entry(app, camille.id, pro, "allergy", {"substance": "Iode", "severity": "moderate"})
    listed = client.get(f"{PROFILE}/allergy", headers=camille.headers).get_json()["items"][0]
    assert listed["source"] == "professional" and listed["editable"] is False
    assert listed["author"] == {"kind": "professional", "name": "Jacques BIDEAULT", "rpps": "10003456789"}

    body = assert_problem(client.patch(f"{PROFILE}/allergy/{entry_id}", json={"severity": "mild"},
                                       headers=camille.headers), 403, "profile_not_author")
    assert "demander sa suppression" in body["detail"]
    r = client.delete(f"{PROFILE}/allergy/{entry_id}", json={"reason": "Je ne suis pas allergique à l'iode"},
                      headers=camille.headers)
    assert r.status_code == 200 and r.get_json()["status"] == "removal_requested"
    assert r.get_json()["entry"]["removal_requested_at"]
    db.expire_all()
    row = db.get(ProfileEntry, entry_id)
    assert row is not None and row.deleted_at is None and row.removal_requested_at is not None
    assert row.removal_reason and "iode" not in row.removal_reason
    with app.app_context():
        reason = vault(get_session()).open_text(camille.id, row.removal_reason, f"profile:allergy:{entry_id}:removal")
        assert reason == "Je ne suis pas allergique à l'iode"
    assert db.scalar(select(AuditEntry.details).where(AuditEntry.action == "profile.removal_requested")) == (
        f'{{"entry_id":{entry_id},"kind":"allergy"}}')
    # asking again is harmless; the entry is still shown, with its request
    assert client.delete(f"{PROFILE}/allergy/{entry_id}", headers=camille.headers).get_json()["status"] == \
        "removal_requested"
    page = client.get(PROFILE, headers=camille.headers).get_json()
    assert page["entries"]["allergy"]["total"] == 1 and page["removal_requests"] == 1

    with app.app_context():
        session = get_session()
        measure = measure_service.add_measure(session, vault(session), camille.id, {"type": "heart_rate", "value": 58},
                                      author=Author.of_professional(pro), source="professional")
        session.commit()
    assert_problem(client.patch(f"{PROFILE}/measures/{measure['id']}", json={"value": 60}, headers=camille.headers),
                   403, "profile_not_author")
    r = client.delete(f"{PROFILE}/measures/{measure['id']}", headers=camille.headers)
    assert r.get_json()["status"] == "removal_requested"
    db.expire_all()
    assert db.get(ProfileMeasure, measure["id"]).removal_requested_at is not None


def test_hiding_keeps_the_entry(client, db, camille):
    entry = client.post(f"{PROFILE}/disease", json={"label": "Migraine"}, headers=camille.headers).get_json()
    assert client.post(f"{PROFILE}/disease/{entry['id']}/hide", headers=camille.headers).get_json()["hidden"] is True
    page = client.get(PROFILE, headers=camille.headers).get_json()
    assert page["entries"]["disease"]["total"] == 0 and page["hidden_count"] == 1
    assert client.get(f"{PROFILE}/disease", headers=camille.headers).get_json()["items"] == []
    hidden = client.get(f"{PROFILE}/disease", query_string={"include_hidden": "true"}, headers=camille.headers)
    assert [i["id"] for i in hidden.get_json()["items"]] == [entry["id"]]
    assert client.post(f"{PROFILE}/disease/{entry['id']}/show", headers=camille.headers).get_json()["hidden"] is False


# --- directives and organ donation --------------------------------------------------------------------

def test_directives_are_dated_versions_never_overwritten(app, client, db, camille):
    v1 = client.post(f"{DIRECTIVES}/end_of_life", json={"text": "Pas de réanimation prolongée."},
                     headers=camille.headers)
    assert v1.status_code == 201 and v1.get_json()["version"] == 1
    document_id = deposit_document(app, camille.id)
    v2 = client.post(f"{DIRECTIVES}/end_of_life", json={"text": "Pas de réanimation ; soins palliatifs à domicile.",
                                                         "document_id": document_id}, headers=camille.headers)
    assert v2.get_json()["version"] == 2
    assert v2.get_json()["document"] == {"id": document_id, "title": "Directives anticipées (scan)"}

    versions = client.get(f"{DIRECTIVES}/end_of_life", headers=camille.headers).get_json()["items"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["text"] == "Pas de réanimation prolongée."  # the first version is kept as written
    current = client.get(DIRECTIVES, headers=camille.headers).get_json()
    assert current["end_of_life"]["current"]["version"] == 2 and current["end_of_life"]["versions"] == 2
    assert current["good_health"] == {"label": "Rédigées en bonne santé", "current": None, "versions": 0}

    before = counts(db)
    assert_problem(client.post(f"{DIRECTIVES}/end_of_life", json={"text": "   "}, headers=camille.headers), 422,
                   "directive_empty")
    body = assert_problem(client.post(f"{DIRECTIVES}/sometime", json={"text": "x"}, headers=camille.headers), 422,
                          "directive_unknown_context")
    assert "Contexte inconnu" in body["detail"]
    assert_problem(client.post(f"{DIRECTIVES}/good_health", json={"withdrawn": True}, headers=camille.headers), 409,
                   "directive_nothing_to_withdraw")
    assert_problem(client.post(f"{DIRECTIVES}/good_health", json={"document_id": 999999}, headers=camille.headers),
                   404, "directive_document_not_found")
    assert counts(db) == before

    v3 = client.post(f"{DIRECTIVES}/end_of_life", json={"withdrawn": True}, headers=camille.headers).get_json()
    assert v3["version"] == 3 and v3["withdrawn"] is True and v3["text"] is None
    assert client.get(DIRECTIVES, headers=camille.headers).get_json()["end_of_life"]["current"]["withdrawn"] is True
    assert [v["version"] for v in client.get(f"{DIRECTIVES}/end_of_life", query_string={"limit": 2},
                                             headers=camille.headers).get_json()["items"]] == [3, 2]
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(AdvanceDirective)) == 3


def test_organ_donation_position_and_history(client, db, camille):
    r = client.post(f"{DIRECTIVES}/organ-donation", json={"position": "accepts", "informed_at": "2023-03-01"},
                    headers=camille.headers)
    assert r.status_code == 201 and r.get_json()["label"] == "J'accepte le don de mes organes et tissus"
    r = client.post(f"{DIRECTIVES}/organ-donation", json={"position": "refuses_partially",
                                                           "comment": "Pas les cornées"}, headers=camille.headers)
    assert r.status_code == 201
    history = client.get(f"{DIRECTIVES}/organ-donation", headers=camille.headers).get_json()["items"]
    assert [h["position"] for h in history] == ["refuses_partially", "accepts"]
    assert history[1]["informed_at"] == "2023-03-01"
    assert client.get(DIRECTIVES, headers=camille.headers).get_json()["organ_donation"]["position"] == \
        "refuses_partially"
    before = counts(db)
    body = assert_problem(client.post(f"{DIRECTIVES}/organ-donation", json={"position": "maybe"},
                                      headers=camille.headers), 422, "profile_invalid")
    assert "Valeurs possibles" in body["errors"][0]["message"]
    assert_problem(client.post(f"{DIRECTIVES}/organ-donation", json={"position": "accepts",
                                                                      "informed_at": "2999-01-01"},
                               headers=camille.headers), 422, "profile_invalid")
    assert counts(db) == before


# --- the profile page (BFF) ---------------------------------------------------------------------------

def fill(client, app, patient: Patient, n: int, pro: Professional) -> None:
    for i in range(n):
        for kind, (fields, _) in SAMPLES.items():
            if kind == "blood_group":
                continue
            assert client.post(f"{PROFILE}/{kind}", json=fields, headers=patient.headers).status_code == 201
        for mtype, (fields, _, _) in VALID_MEASURES.items():
            assert client.post(f"{PROFILE}/measures", json={"type": mtype, **fields}, headers=patient.headers
                               ).status_code == 201
        for context in ("good_health", "end_of_life"):
            client.post(f"{DIRECTIVES}/{context}", json={"text": f"Version {i}"}, headers=patient.headers)
        client.post(f"{DIRECTIVES}/organ-donation", json={"position": "accepts"}, headers=patient.headers)
    with app.app_context():
        session = get_session()
        profile.add_entries(session, vault(session), patient.id, "allergy",
                            [{"substance": f"Import {n}-{i}", "source_key": f"k{n}-{i}"} for i in range(n)],
                            conflict_group=f"allergies-{n}", author=Author.of_professional(pro))
        session.commit()


def test_profile_page_has_everything_in_a_constant_number_of_queries(app, client, camille, count_queries):
    pro = make_pro(app)
    client.post(f"{PROFILE}/blood_group", json={"group": "B", "rhesus": "negative"}, headers=camille.headers)
    fill(client, app, camille, 1, pro)
    count_queries.statements.clear()
    small = client.get(PROFILE, headers=camille.headers)
    assert small.status_code == 200
    small_count = count_queries.count
    fill(client, app, camille, 4, pro)
    count_queries.statements.clear()
    large = client.get(PROFILE, headers=camille.headers)
    assert count_queries.count == small_count, (small_count, count_queries.statements)
    assert small_count <= 14, count_queries.statements

    page = large.get_json()
    assert page["entries"]["allergy"]["total"] == 1 + 1 + 4 + 4 and page["entries"]["allergy"]["label"] == "Allergies"
    assert page["entries"]["blood_group"]["total"] == 1
    weight = next(m for m in page["measures"] if m["type"] == "weight")
    assert weight["count"] == 5 and weight["latest"]["value"] == 72.5 and weight["label"] == "Poids"
    assert len(weight["series"]["value"]) == 5
    assert page["directives"]["end_of_life"]["current"]["text"] == "Version 3"
    assert page["directives"]["end_of_life"]["versions"] == 5
    assert page["directives"]["organ_donation"]["position"] == "accepts"
    assert {(c["group"], c["count"]) for c in page["conflicts"]} == {("allergies-1", 1), ("allergies-4", 4)}
    assert page["views"] == {"dispensed": 0, "reimbursements": 0, "oncology": 0, "proposals": 0}


def test_the_page_caps_each_kind(app, client, camille):
    with app.app_context():
        session = get_session()
        result = profile.add_entries(session, vault(session), camille.id, "vaccination",
                                     [{"vaccine": f"Vaccin {i}", "date": "2020-01-01"} for i in range(55)],
                                     source="patient")
        session.commit()
    assert len(result.created) == 55
    bucket = client.get(PROFILE, headers=camille.headers).get_json()["entries"]["vaccination"]
    assert bucket["total"] == 55 and len(bucket["items"]) == profile.PER_KIND_ON_PAGE and bucket["has_more"] is True


def test_kinds_describe_the_forms_in_french(client, camille):
    spec = client.get(f"{PROFILE}/kinds", headers=camille.headers).get_json()
    contact = next(k for k in spec["kinds"] if k["kind"] == "contact")
    role = next(f for f in contact["fields"] if f["name"] == "contact_kind")
    assert {c["label"] for c in role["choices"]} == {"Personne à prévenir en cas d'urgence", "Personne de confiance",
                                                     "Aidant", "Personne aidée"}
    glucose = next(m for m in spec["measure_types"] if m["type"] == "glucose")
    assert [u["unit"] for u in glucose["units"]] == ["g/L", "mmol/L"] and glucose["label"] == "Glycémie"
    assert [c["value"] for c in spec["directive_contexts"]] == ["good_health", "end_of_life"]


def test_profile_routes_are_documented(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for path in ("/api/v1/record/profile", "/api/v1/record/profile/{kind}", "/api/v1/record/profile/{kind}/{entry_id}",
                 "/api/v1/record/profile/measures/{mtype}", "/api/v1/record/profile/dispensed",
                 "/api/v1/record/directives/{context}", "/api/v1/record/directives/organ-donation"):
        assert path in paths, path
