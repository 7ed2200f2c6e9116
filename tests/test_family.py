"""The family space: a minor's legal representatives and an adult's carers, through the real routes.

Each representative or carer signs in with their own account and opens the other record with the
``X-Carnet-Record`` header; what they may read and write is the policy's (``records.access.policy``).
"""
from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, select

from backend.accounts.models import AccountState, Patient
from backend.audit.models import AuditEntry
from backend.db import get_db, utcnow
from backend.family import service
from backend.family.models import CarerLink, CarerState, LegalRepresentative, RepresentationState
from backend.notifications.models import Notification
from tests.helpers import NIR_CAMILLE, NIR_LOUIS, Created, activate, bearer, create_patient, make_nir
from tests.world import make_doc, make_pro

NIR_LEA = make_nir("2240375123456")        # a girl born in March 2024
NIR_JULES = make_nir("1240375123457")
NIR_ROSE = make_nir("2500175123458")       # an adult (1950)


def record(headers: dict[str, str], patient_id: int) -> dict[str, str]:
    return {**headers, "X-Carnet-Record": str(patient_id)}


def problem(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, (r.status_code, r.get_json())
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["code"] == code, r.get_json()


@pytest.fixture
def parent(app, client) -> dict[str, Any]:
    created = create_patient(app, NIR_CAMILLE, "1984-07-14", family="Dupont", given="Marie", sex="F")
    return {"id": created.patient_id, "h": bearer(activate(client, created)["access_token"])}


@pytest.fixture
def other(app, client) -> dict[str, Any]:
    created = create_patient(app, NIR_LOUIS, "1990-02-01", family="Durand", given="Louis", sex="M")
    return {"id": created.patient_id, "h": bearer(activate(client, created)["access_token"])}


@pytest.fixture
def child(app) -> Created:
    return create_patient(app, NIR_LEA, "2024-03-05", family="Dupont", given="Léa", sex="F")


def activate_child(client, parent: dict[str, Any], child: Created) -> dict[str, Any]:
    r = client.post("/api/v1/family/children/activation", headers=parent["h"],
                    json={"nir": child.nir, "birth_date": child.birth_date, "code": child.code})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_a_parent_activates_the_childs_record_and_acts_in_it(app, client, db, parent, other, child):
    space = activate_child(client, parent, child)
    assert (space["kind"], space["record_id"], space["given_name"]) == ("child", str(child.patient_id), "Léa")
    assert db.get(Patient, child.patient_id).state == AccountState.ACTIVE
    spaces = client.get("/api/v1/family/spaces", headers=parent["h"]).get_json()["items"]
    assert [s["kind"] for s in spaces] == ["own", "child"]
    assert spaces[0]["colour"] != spaces[1]["colour"]

    pro, _ = make_pro(db, 1, "Pediatre")
    plain = make_doc(app, db, child.patient_id, "vaccins", author=pro, category="CAR_VAC")
    secret = make_doc(app, db, child.patient_id, "secret", author=pro, legal_hidden=True)
    db.commit()
    h = record(parent["h"], child.patient_id)
    r = client.get("/api/v1/record/documents", headers=h)
    assert r.status_code == 200, r.get_json()
    ids = {d["id"] for d in r.get_json()["items"]}
    assert plain.id in ids and secret.id not in ids
    problem(client.get(f"/api/v1/record/documents/{secret.id}", headers=h), 404, "document_not_found")
    home = client.get("/api/v1/home", headers=h).get_json()
    assert home["given_name"] == "Léa"
    assert [d["id"] for d in home["records"]["new_documents"]] == [plain.id]
    assert client.get("/api/v1/agenda/appointments", headers=h).status_code == 200
    # the parent's own record is still theirs, without the header
    assert client.get("/api/v1/home", headers=parent["h"]).get_json()["given_name"] == "Marie"
    # someone else may not open the child's record
    problem(client.get("/api/v1/record/documents", headers=record(other["h"], child.patient_id)), 403,
            "access_other_patient")
    problem(client.get("/api/v1/record/documents", headers=record(other["h"], 999999)), 403, "access_other_patient")
    problem(client.get("/api/v1/record/documents", headers=record(other["h"], "x1")), 403, "access_other_patient")
    # what the parent did is in the child's history as themselves, never as the child
    hist = client.get("/api/v1/record/history", headers=h).get_json()["items"]
    names = {i["actor"]["name"] for i in hist if i["actor"]["kind"] == "representative"}
    assert names == {"Marie DUPONT, représentante légale"}, hist
    hist_en = client.get("/api/v1/record/history", headers={**h, "Accept-Language": "en"}).get_json()["items"]
    assert {i["actor"]["name"] for i in hist_en if i["actor"]["kind"] == "representative"} == {
        "Marie DUPONT, legal representative"}
    assert not db.scalar(select(func.count(AuditEntry.seq)).where(
        AuditEntry.patient_id == child.patient_id, AuditEntry.actor_type == "patient"))


def test_a_representative_writes_with_the_patients_rights_but_not_the_account(app, client, db, parent, child):
    activate_child(client, parent, child)
    h = record(parent["h"], child.patient_id)
    r = client.put("/api/v1/record/access/emergency", headers=h, json={"samu": False, "password": "Lune-Verte-42!x"})
    assert r.status_code == 200, r.get_json()
    problem(client.post("/api/v1/account/close", headers=h, json={"password": "Lune-Verte-42!x"}), 403,
            "access_not_permitted")
    entry = db.scalars(select(AuditEntry).where(AuditEntry.patient_id == child.patient_id,
                                                AuditEntry.action.like("%emergency%"))).all()
    assert entry and {e.actor_type for e in entry} == {"representative"}


def test_only_a_minor_is_activated_by_a_representative(app, client, parent):
    adult = create_patient(app, NIR_ROSE, "1950-01-20", family="Dupont", given="Rose")
    r = client.post("/api/v1/family/children/activation", headers=parent["h"],
                    json={"nir": adult.nir, "birth_date": adult.birth_date, "code": adult.code})
    problem(r, 409, "family_not_minor")
    r = client.post("/api/v1/family/children/activation", headers={**parent["h"], "Accept-Language": "en"},
                    json={"nir": adult.nir, "birth_date": adult.birth_date, "code": "WRONGCODE123"})
    problem(r, 422, "invalid_activation")
    assert "profile" in r.get_json()["detail"]


def test_a_minors_letter_opens_no_account_of_its_own(app, client, db, parent, child):
    # the child's letter typed at the adult activation: refused with the way to do it, the code not consumed
    letter = {"nir": child.nir, "birth_date": child.birth_date, "activation_code": child.code}
    r = client.post("/api/v1/activation/check", json=letter)
    problem(r, 409, "activation_minor")
    assert "représentants légaux" in r.get_json()["detail"]
    r = client.post("/api/v1/activation", json={**letter, "password": "Un-Mot-De-Passe-2026!"},
                    headers={"Accept-Language": "en"})
    problem(r, 409, "activation_minor")
    assert "legal representatives" in r.get_json()["detail"]
    db.expire_all()
    assert db.get(Patient, child.patient_id).password_hash is None
    assert db.get(Patient, child.patient_id).state == AccountState.PRECREATED
    # a wrong code says only that the code is wrong (the age is told to whoever holds the letter)
    problem(client.post("/api/v1/activation/check", json={**letter, "activation_code": "WRONGCODE123"}), 422,
            "invalid_activation")
    # the representative opens it from her own session, with the same code
    activate_child(client, parent, child)


def test_a_second_representative_is_invited_accepts_and_either_leaves(app, client, db, parent, other, child):
    activate_child(client, parent, child)
    r = client.post(f"/api/v1/family/children/{child.patient_id}/invitations", headers=parent["h"])
    assert r.status_code == 201, r.get_json()
    code = r.get_json()["code"]
    problem(client.post("/api/v1/family/representatives/accept", headers=other["h"], json={"code": "NOPE"}), 404,
            "family_invitation_not_found")
    r = client.post("/api/v1/family/representatives/accept", headers=other["h"], json={"code": code})
    assert r.status_code == 200 and r.get_json()["kind"] == "child", r.get_json()
    problem(client.post("/api/v1/family/representatives/accept", headers=other["h"], json={"code": code}), 404,
            "family_invitation_not_found")
    # two representatives: a third invitation is refused
    problem(client.post(f"/api/v1/family/children/{child.patient_id}/invitations", headers=parent["h"]), 409,
            "family_representatives_limit")
    names = client.get(f"/api/v1/family/children/{child.patient_id}/representatives", headers=other["h"]).get_json()
    assert [p["given_name"] for p in names["items"]] == ["Marie", "Louis"]
    h = record(other["h"], child.patient_id)
    assert client.get("/api/v1/record/documents", headers=h).status_code == 200
    assert client.delete(f"/api/v1/family/children/{child.patient_id}/representation", headers=other["h"]).status_code == 204
    problem(client.get("/api/v1/record/documents", headers=h), 403, "access_other_patient")
    assert db.scalar(select(func.count(Notification.id)).where(Notification.patient_id == parent["id"],
                                                               Notification.ref_type.like("family_%"))) == 2


def test_a_carer_acts_in_the_scope_chosen_and_never_on_rights(app, client, db, parent, other):
    r = client.post("/api/v1/family/carers", headers=parent["h"], json={"scopes": ["agenda", "messages"]})
    assert r.status_code == 201, r.get_json()
    code = r.get_json()["code"]
    problem(client.post("/api/v1/family/carers/accept", headers=parent["h"], json={"code": code}), 409,
            "family_invitation_own")
    r = client.post("/api/v1/family/carers/accept", headers=other["h"], json={"code": code})
    assert r.status_code == 200 and r.get_json()["kind"] == "helped", r.get_json()
    assert r.get_json()["scopes"] == ["agenda", "messages"]
    h = record(other["h"], parent["id"])
    assert client.get("/api/v1/agenda/appointments", headers=h).status_code == 200
    assert client.get("/api/v1/inbox/threads", headers=h).status_code == 200
    problem(client.get("/api/v1/record/documents", headers=h), 403, "access_carer_scope")
    problem(client.get("/api/v1/record/profile", headers=h), 403, "access_carer_scope")
    problem(client.put("/api/v1/record/access/emergency", headers=h, json={"samu": False, "password": "x"}), 403,
            "access_not_permitted")
    problem(client.post("/api/v1/account/close", headers=h, json={"password": "x"}), 403, "access_not_permitted")
    mine = client.get("/api/v1/family/carers", headers=parent["h"]).get_json()["items"]
    assert [(c["state"], c["given_name"]) for c in mine] == [("accepted", "Louis")]
    hist = client.get("/api/v1/record/history", headers=parent["h"]).get_json()["items"]
    assert "Louis DURAND, aidant" in {i["actor"]["name"] for i in hist}
    assert client.delete(f"/api/v1/family/carers/{mine[0]['id']}", headers=parent["h"]).status_code == 204
    problem(client.get("/api/v1/agenda/appointments", headers=h), 403, "access_other_patient")
    problem(client.post("/api/v1/family/carers", headers=parent["h"], json={"scopes": ["everything"]}), 422,
            "family_carer_scopes_invalid")


def test_three_carers_per_patient(app, client, parent):
    for _ in range(3):
        assert client.post("/api/v1/family/carers", headers=parent["h"], json={"scopes": ["agenda"]}).status_code == 201
    problem(client.post("/api/v1/family/carers", headers=parent["h"], json={"scopes": ["agenda"]}), 409,
            "family_carers_limit")


def _people(app, db, n: int) -> list[Patient]:
    from tests.world import make_patient

    people = [make_patient(app, db, 40 + i, given=f"P{i}") for i in range(n)]
    db.commit()
    return people


def test_five_people_per_carer_under_concurrent_acceptances(app, db):
    """Eight people invite the same carer; the eight acceptances run at once, each in its own session: five
    pass, three are refused, whatever the interleaving."""
    carer, *helped = _people(app, db, 9)
    settings = service.FamilySettings.from_config(app.config)
    codes = []
    with app.app_context():
        for person in helped:
            codes.append(service.invite_carer(db, settings, person, ["agenda"])[1])
        db.commit()
    factory = get_db(app).session_factory
    gate = threading.Barrier(len(codes))
    outcomes: list[str] = []

    def accept(code: str) -> None:
        session = factory()
        try:
            with app.app_context():
                me = session.get(Patient, carer.id)
                gate.wait(timeout=30)
                try:
                    service.accept_carer(session, settings, me, code)
                    session.commit()
                    outcomes.append("accepted")
                except service.DomainError as exc:
                    session.rollback()
                    outcomes.append(exc.code)
        finally:
            session.close()

    threads = [threading.Thread(target=accept, args=(c,)) for c in codes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["accepted"] * 5 + ["family_helped_limit"] * 3, outcomes
    db.expire_all()
    assert db.scalar(select(func.count(CarerLink.id)).where(CarerLink.carer_id == carer.id,
                                                            CarerLink.state == CarerState.ACCEPTED)) == 5


def test_three_carers_per_patient_under_concurrent_acceptances(app, db):
    """Max 3 per patient with invitations issued while the limit was higher: four acceptances at once, three
    pass."""
    patient, *carers = _people(app, db, 5)
    wide = service.FamilySettings(secret_key=app.config["SECRET_KEY"], max_carers_per_patient=10)
    with app.app_context():
        codes = [service.invite_carer(db, wide, patient, ["agenda"])[1] for _ in carers]
        db.commit()
    settings = service.FamilySettings.from_config(app.config)
    factory = get_db(app).session_factory
    gate = threading.Barrier(len(codes))
    outcomes: list[str] = []

    def accept(carer_id: int, code: str) -> None:
        session = factory()
        try:
            with app.app_context():
                me = session.get(Patient, carer_id)
                gate.wait(timeout=30)
                try:
                    service.accept_carer(session, settings, me, code)
                    session.commit()
                    outcomes.append("accepted")
                except service.DomainError as exc:
                    session.rollback()
                    outcomes.append(exc.code)
        finally:
            session.close()

    threads = [threading.Thread(target=accept, args=(c.id, code)) for c, code in zip(carers, codes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["accepted"] * 3 + ["family_carers_limit"], outcomes


def test_majority_ends_representation_and_gives_the_young_adult_their_letter(app, client, db, parent, child):
    activate_child(client, parent, child)
    pro, _ = make_pro(db, 2, "Pediatre")
    doc = make_doc(app, db, child.patient_id, "carnet", author=pro)
    db.commit()
    h = record(parent["h"], child.patient_id)
    assert client.get("/api/v1/record/documents", headers=h).status_code == 200
    settings = service.FamilySettings.from_config(app.config)
    accounts_settings = app.extensions["carnet.account_settings"]
    eve = dt.datetime(2042, 3, 4, 12, tzinfo=dt.timezone.utc)        # the day before the 18th birthday
    with app.app_context():
        assert service.come_of_age(db, settings, accounts_settings, now=eve) == []
        db.commit()
    assert client.get("/api/v1/record/documents", headers=h).status_code == 200
    birthday = dt.datetime(2042, 3, 4, 23, 30, tzinfo=dt.timezone.utc)  # 00:30 on 5 March in Paris
    with app.app_context():
        letters = service.come_of_age(db, settings, accounts_settings, now=birthday)
        db.commit()
        assert service.come_of_age(db, settings, accounts_settings, now=birthday) == []  # once
    assert [letter.patient_id for letter in letters] == [child.patient_id]
    problem(client.get("/api/v1/record/documents", headers=h), 403, "access_other_patient")
    spaces = client.get("/api/v1/family/spaces", headers=parent["h"]).get_json()["items"]
    assert [s["kind"] for s in spaces] == ["own"]
    db.expire_all()
    assert db.get(Patient, child.patient_id).state == AccountState.PRECREATED
    assert db.scalar(select(LegalRepresentative.state).where(LegalRepresentative.child_id == child.patient_id)) \
        == RepresentationState.ENDED
    kinds = {(n.patient_id, n.ref_type) for n in db.scalars(select(Notification).where(
        Notification.ref_type.in_(("family_majority", "family_child_of_age"))))}
    assert kinds == {(child.patient_id, "family_majority"), (parent["id"], "family_child_of_age")}
    # the young adult activates with their own letter (on the morning of the birthday: the day before, the
    # letter would be a minor's) and finds the whole record and its history
    grown = Created(child.patient_id, child.nir, child.birth_date, letters[0].activation_code)
    with time_machine.travel(dt.datetime(2042, 3, 5, 8, tzinfo=dt.timezone.utc)):
        mine = bearer(activate(client, grown)["access_token"])
        assert doc.id in {d["id"] for d in client.get("/api/v1/record/documents", headers=mine).get_json()["items"]}
        hist = client.get("/api/v1/record/history", headers=mine).get_json()["items"]
        assert "Marie DUPONT, représentante légale" in {i["actor"]["name"] for i in hist}


def test_secret_care_never_reaches_a_representative(app, client, db, parent, child):
    """INVISIBLE_REPRESENTANTS_LEGAUX: not in notifications nor in the history for the representative; the
    professionals' deposit (ITI-65 path) into the minor's record is as into any other."""
    from backend.notifications.service import notify

    activate_child(client, parent, child)
    pro, _ = make_pro(db, 3, "Medecin")
    secret = make_doc(app, db, child.patient_id, "secret", author=pro, legal_hidden=True)
    plain = make_doc(app, db, child.patient_id, "plain", author=pro)
    notify(db, child.patient_id, "document", ref_type="document", ref_id=secret.id)
    notify(db, child.patient_id, "document", ref_type="document", ref_id=plain.id)
    from backend.audit import service as audit

    audit.record(db, actor_type="professional", actor_id=pro.rpps, action="document.stored",
                 patient_id=child.patient_id, details={"document_id": secret.id, "category": "CPT_REND"})
    db.commit()
    h = record(parent["h"], child.patient_id)
    notes = client.get("/api/v1/notifications", headers=h).get_json()
    assert [n["ref_id"] for n in notes["items"] if n["ref_type"] == "document"] == [str(plain.id)]
    assert notes["unread_count"] == len(notes["items"])
    hist = client.get("/api/v1/record/history", headers=h).get_json()["items"]
    assert all(i.get("document_id") != secret.id for i in hist)
    assert not any(i["action"] == "document.stored" for i in hist)
    r = client.get("/api/v1/record/documents", headers=h, query_string={"q": "secret"})
    assert str(secret.id) not in r.get_data(as_text=True) or r.status_code != 200


def test_iti65_deposits_into_a_minors_record(app, client, db, parent, child):
    """A paediatrician deposits two documents (ITI-65) into the child's record, one flagged
    INVISIBLE_REPRESENTANTS_LEGAUX: the parent lists the first, never the second; the deposit's trace names
    the professional."""
    from tests.fhir_helpers import Doc, make_pro as fhir_pro, post_bundle, provide_bundle

    activate_child(client, parent, child)
    paediatrician = fhir_pro(app, rpps="10000000077", family="Pediatre")
    bundle = provide_bundle(child.nir, [Doc(b"%PDF-1.4 vaccins", mime="application/pdf", title="Vaccinations"),
                                        Doc(b"%PDF-1.4 secret", mime="application/pdf", title="Consultation secrete",
                                            labels=["INVISIBLE_REPRESENTANTS_LEGAUX"])])
    r = post_bundle(client, paediatrician, bundle)
    assert r.status_code == 200, r.get_json()
    titles = {d["title"] for d in client.get("/api/v1/record/documents",
                                             headers=record(parent["h"], child.patient_id)).get_json()["items"]}
    assert titles == {"Vaccinations"}


def test_the_majority_job_runs_on_the_task_queue(app, client, db, parent):
    """The periodic task (huey, in `carnet worker`) finds a child whose 18th birthday is today."""
    from backend.family import tasks
    from backend.tasks import queue

    today = service._today(utcnow())
    born = service.birthday(today, -18)
    grown = create_patient(app, NIR_JULES, born.isoformat(), family="Dupont", given="Jules", sex="M")
    db.get(Patient, grown.patient_id).state = AccountState.ACTIVE
    db.add(LegalRepresentative(child_id=grown.patient_id, representative_id=parent["id"],
                               state=RepresentationState.ACTIVE))
    db.commit()
    assert any(queue._registry.task_to_string(t).endswith(".majority_periodically")
               for t in queue._registry._periodic_tasks)
    assert tasks.majority_periodically.call_local() == 1
    db.expire_all()
    assert db.get(Patient, grown.patient_id).state == AccountState.PRECREATED
    assert tasks.majority_periodically.call_local() == 0


def test_the_majority_command_prints_the_letters(app, client, runner, parent, child):
    activate_child(client, parent, child)
    assert runner.invoke(args=["family", "majority", "--at", "2042-03-04T12:00:00+00:00"]).output.strip() \
        == '{"letters": []}'
    done = runner.invoke(args=["family", "majority", "--at", "2042-03-05T09:00:00+01:00"])
    assert done.exit_code == 0, done.output
    import json as _json

    letters = _json.loads(done.output)["letters"]
    assert [item["patient_id"] for item in letters] == [child.patient_id] and len(letters[0]["activation_code"]) == 12
    bad = runner.invoke(args=["family", "majority", "--at", "tomorrow"])
    assert bad.exit_code != 0 and "ISO 8601" in bad.output


def test_profile_entries_read_from_secret_care_stay_secret(app, client, db, parent, child):
    """An entry read from a document under the minor's secrecy is not the representative's either (profile
    page, the kind's list, the entry itself); the child's own entries are."""
    from backend.records.profile import service as profile
    from backend.records import vault

    activate_child(client, parent, child)
    pro, _ = make_pro(db, 5, "Medecin")
    secret = make_doc(app, db, child.patient_id, "contraception", author=pro, legal_hidden=True)
    with app.app_context():
        box = vault(db)
        result = profile.add_entries(db, box, child.patient_id, "treatment", [
            {"source_key": "secret-1", "name": "SECRET-TREATMENT", "document_id": secret.id},
            {"source_key": "plain-1", "name": "Paracétamol"}], source="professional")
        db.commit()
    assert not result.rejected
    h = record(parent["h"], child.patient_id)
    page = client.get("/api/v1/record/profile", headers=h)
    assert page.status_code == 200 and "SECRET-TREATMENT" not in page.get_data(as_text=True)
    assert "Paracétamol" in page.get_data(as_text=True)
    listed = client.get("/api/v1/record/profile/treatment", headers=h).get_json()["items"]
    assert "SECRET-TREATMENT" not in str(listed) and "Paracétamol" in str(listed) and len(listed) == 1
    secret_entry = next(e for e in db.scalars(select(profile.ProfileEntry).where(
        profile.ProfileEntry.document_id == secret.id)))
    problem(client.get(f"/api/v1/record/profile/treatment/{secret_entry.id}", headers=h), 404,
            "profile_entry_not_found")


def test_a_directive_given_as_secret_care_does_not_show_its_document_to_a_representative(app, client, db, parent,
                                                                                          child):
    """The directive's text is the child's record (the representatives manage it), but a document under the
    minor's secrecy it points to is named to nobody who may not see it: not its title, not its id."""
    from backend.records.profile import directives as directive_service
    from backend.records import vault
    from backend.records.access.policy import Scope
    from tests.world import sentinel_title

    activate_child(client, parent, child)
    pro, _ = make_pro(db, 6, "Medecin")
    secret = make_doc(app, db, child.patient_id, "directive-letter", author=pro, legal_hidden=True)
    with app.app_context():
        directive_service.add_directive_version(db, vault(db), Scope(child.patient_id, see_masked=True), "end_of_life",
                                      text="Pas d'acharnement", document_id=secret.id)
        db.commit()
    h = record(parent["h"], child.patient_id)
    title = sentinel_title("directive-letter", child.patient_id)
    for path in ("/api/v1/record/directives", "/api/v1/record/directives/end_of_life", "/api/v1/record/profile"):
        r = client.get(path, headers=h)
        assert r.status_code == 200, (path, r.get_json())
        assert title not in r.get_data(as_text=True) and "Pas d'acharnement" in r.get_data(as_text=True), path
    current = client.get("/api/v1/record/directives", headers=h).get_json()
    assert current["end_of_life"]["current"]["document"] is None
    with app.app_context():  # the holder's own view names it
        own = directive_service.current_directives(db, vault(db), child.patient_id,
                                         scope=Scope(child.patient_id, see_masked=True))
    assert own["end_of_life"]["current"]["document"] == {"id": secret.id, "title": title}
