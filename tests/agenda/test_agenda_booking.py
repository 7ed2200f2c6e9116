"""Searching, booking, cancelling and rescheduling; the practice's appointments; the patient's own entries."""
import datetime as dt
import threading

import pytest
import time_machine
from sqlalchemy import func, select

from backend.agenda.models import Appointment, Reminder, SlotHold
from backend.audit.models import AuditEntry
from backend.notifications.models import Notification
from tests.agenda.support import FHIR_JSON, book, make_pro, publish, schedule_body, sign_in, slots, utc
from tests.conftest import make_app
from tests.helpers import assert_problem

NOW = utc(2026, 3, 2, 7)  # Monday 2 March 2026, 08:00 in Paris


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def practice(app, client, clock):
    """Two doctors in Lyon and a teleconsulting dermatologist; one patient signed in."""
    alice = make_pro(app)
    luc = make_pro(app, rpps="10109876543", family="Petit", given="Luc")
    derm = make_pro(app, rpps="10105555555", family="Roux", given="Inès", specialty="SM15")
    publish(client, alice, schedule_body())
    publish(client, luc, schedule_body(place={"name": "Maison de santé", "line": ["3 place Bellecour"],
                                              "postalCode": "69002", "city": "Lyon"}, slot_minutes=60))
    publish(client, derm, schedule_body(visit="teleconsultation", specialty=("SM15", "Dermatologie et vénéréologie"),
                                        place={"name": "Téléconsultation", "city": "Paris", "postalCode": "75011"}))
    return {"alice": alice, "luc": luc, "derm": derm, "patient": sign_in(app, client)}


def test_search_by_specialty_place_professional_and_date(client, practice):
    patient = practice["patient"]
    day = {"date": "2026-03-03", "days": 1}
    all_tuesday = slots(client, patient, **day)
    assert len(all_tuesday) == 6 + 3 + 6
    assert [s["starts_at"] for s in all_tuesday] == sorted(s["starts_at"] for s in all_tuesday)
    derm = slots(client, patient, specialty="dermato", **day)
    assert {s["professional_name"] for s in derm} == {"Inès ROUX"}
    assert derm[0]["visit_type"] == "teleconsultation" and derm[0]["visit_type_label"] == "Téléconsultation"
    assert {s["professional_name"] for s in slots(client, patient, specialty="SM26", **day)} == {
        "Alice DURAND", "Luc PETIT"}
    assert {s["place"]["name"] for s in slots(client, patient, place="69002", **day)} == {"Maison de santé"}
    assert {s["professional_name"] for s in slots(client, patient, place="lyon", name="petit", **day)} == {"Luc PETIT"}
    by_id = slots(client, patient, professional_id=practice["alice"].id, **day)
    assert [s["local_time"] for s in by_id] == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
    assert by_id[0]["starts_at"] == "2026-03-03T09:00:00+01:00"
    # today: slots already begun are not offered (it is 08:00, so all of Monday's still are)
    assert len(slots(client, patient, professional_id=practice["alice"].id, days=1)) == 6
    assert slots(client, patient, visit_type="teleconsultation", place="lyon", **day) == []


def test_search_pages_are_complete_and_cost_the_same_queries(client, practice, count_queries):
    patient = practice["patient"]
    client.get("/api/v1/me", headers=patient.headers)  # the first use of a token records it once
    seen = []
    cursor = None
    costs = []
    while True:
        query = {"days": 14, "limit": 7, **({"cursor": cursor} if cursor else {})}
        before = count_queries.count
        body = client.get("/api/v1/agenda/slots", query_string=query, headers=patient.headers).get_json()
        costs.append(count_queries.count - before)
        seen.extend(s["slot_id"] for s in body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 10 * (6 + 3 + 6)
    assert len(set(costs)) == 1, costs  # the same number of queries on every page
    assert_problem(client.get("/api/v1/agenda/slots", query_string={"days": 40}, headers=patient.headers), 422)
    assert_problem(client.get("/api/v1/agenda/slots", query_string={"cursor": "garbage"}, headers=patient.headers), 422)
    assert_problem(client.get("/api/v1/agenda/slots"), 401)


def test_book_then_the_slot_is_taken_for_everyone(app, client, practice, db):
    patient = practice["patient"]
    other = sign_in(app, client, 1)
    slot = slots(client, patient, professional_id=practice["alice"].id, date="2026-03-04", days=1)[0]
    r = book(client, patient, slot["slot_id"])
    assert r.status_code == 201, r.get_json()
    booked = r.get_json()
    assert booked["status"] == "booked" and booked["kind"] == "booking"
    assert booked["title"] == "Consultation — Alice DURAND"
    assert booked["starts_at"] == "2026-03-04T09:00:00+01:00" and booked["can_cancel"] is True
    assert booked["place"]["city"] == "Lyon"
    assert booked["reminders"] == ["2026-03-03T08:00:00+00:00", "2026-03-04T06:00:00+00:00"]

    body = assert_problem(book(client, other, slot["slot_id"]), 409, "agenda_slot_taken")
    assert body["detail"] == "Ce créneau vient d'être réservé par quelqu'un d'autre. Choisissez un autre créneau."
    assert_problem(book(client, patient, slot["slot_id"]), 409, "agenda_slot_taken")
    assert slot["slot_id"] not in {s["slot_id"] for s in slots(client, other, date="2026-03-04", days=1)}

    # the practice sees the slot busy and the appointment with the patient's INS
    pro = practice["alice"]
    fhir_slots = client.get("/fhir/R4/Slot", query_string={"start": "2026-03-04"}, headers=pro.headers).get_json()
    status = {e["resource"]["id"]: e["resource"]["status"] for e in fhir_slots["entry"]}
    assert status[slot["slot_id"]] == "busy" and list(status.values()).count("busy") == 1
    appointments = client.get("/fhir/R4/Appointment", query_string={"date": "2026-03-04"}, headers=pro.headers)
    assert appointments.mimetype == FHIR_JSON
    resource = appointments.get_json()["entry"][0]["resource"]
    assert resource["status"] == "booked" and resource["slot"] == [{"reference": f"Slot/{slot['slot_id']}"}]
    assert resource["participant"][0]["actor"]["identifier"]["value"] == patient.nir
    assert db.scalar(select(AuditEntry.action).where(AuditEntry.patient_id == patient.patient_id,
                                                     AuditEntry.action.like("agenda.%"))) == "agenda.appointment_booked"

    for bad in ["nope", "999-20260304T0800Z", slot["slot_id"].replace("T0800Z", "T0810Z")]:
        assert_problem(book(client, patient, bad), 404, "agenda_slot_not_found")
    past = slots(client, patient, professional_id=pro.id, days=1)[0]["slot_id"]
    with time_machine.travel(utc(2026, 3, 2, 9), tick=False):
        assert_problem(book(client, patient, past), 409, "agenda_slot_past")


def test_a_booking_costs_a_fixed_number_of_statements(app, client, practice, db, count_queries):
    """Token, record state, the slot (schedule, openings, exceptions), the appointment, the hold in one
    statement (no overlapping hold, the unique start: no savepoint), the reminders (one multi-row INSERT on
    PostgreSQL, one per reminder on SQLite), the audit chain (one statement on PostgreSQL, 3 on SQLite): 9
    on PostgreSQL (15, then 11 before). The answer's reminders are the ones just scheduled, not read back."""
    patient = practice["patient"]
    found = slots(client, patient, professional_id=practice["alice"].id, date="2026-03-05", days=1)
    count_queries.statements.clear()
    r = book(client, patient, found[0]["slot_id"])
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["reminders"] == ["2026-03-04T08:00:00+00:00", "2026-03-05T06:00:00+00:00"]
    expected = 9 if db.get_bind().dialect.name == "postgresql" else 12
    assert len(count_queries.statements) == expected, "\n".join(s[:50] for s in count_queries.statements)
    assert not [s for s in count_queries.statements if s.startswith(("SAVEPOINT", "RELEASE", "SELECT agenda_reminder"))]


def test_a_slot_overlapping_a_booking_of_another_schedule_is_taken(app, client, practice):
    """One professional, two schedules (30-minute and 60-minute slots over the same morning): a booking
    on one takes the overlapping slots of the other."""
    alice, patient = practice["alice"], practice["patient"]
    publish(client, alice, schedule_body(slot_minutes=60, visit="teleconsultation"))
    day = {"professional_id": alice.id, "date": "2026-03-05", "days": 1}
    by_length = {}
    for s in slots(client, patient, **day):
        by_length.setdefault(s["visit_type"], []).append(s)
    half_hour, hour = by_length["in_person"][1], by_length["teleconsultation"][0]   # 09:30 and 09:00–10:00
    assert book(client, patient, half_hour["slot_id"]).status_code == 201
    assert_problem(book(client, sign_in(app, client, 1), hour["slot_id"]), 409, "agenda_slot_taken")


def test_cancel_before_the_cutoff_frees_the_slot_and_the_reminders(app, client, practice, db):
    patient = practice["patient"]
    slot = slots(client, patient, professional_id=practice["alice"].id, date="2026-03-04", days=1)[0]
    appointment = book(client, patient, slot["slot_id"]).get_json()
    assert db.scalar(select(func.count()).select_from(Reminder)) == 2

    # 23 hours before: too late for the default 24-hour cut-off
    with time_machine.travel(utc(2026, 3, 3, 9), tick=False):
        detail = client.get(f"/api/v1/agenda/appointments/{appointment['id']}", headers=patient.headers).get_json()
        assert detail["can_cancel"] is False
        body = assert_problem(client.post(f"/api/v1/agenda/appointments/{appointment['id']}/cancel",
                                          headers=patient.headers), 409, "agenda_cutoff_passed")
        assert "moins de 24 heures" in body["detail"]

    r = client.post(f"/api/v1/agenda/appointments/{appointment['id']}/cancel", headers=patient.headers)
    assert r.status_code == 200 and r.get_json()["status"] == "cancelled" and r.get_json()["reminders"] == []
    assert db.scalar(select(func.count()).select_from(Reminder)) == 0
    assert db.scalar(select(func.count()).select_from(SlotHold)) == 0
    assert_problem(client.post(f"/api/v1/agenda/appointments/{appointment['id']}/cancel", headers=patient.headers),
                   409, "agenda_already_cancelled")
    # the slot is offered again, and someone else can book it
    assert book(client, sign_in(app, client, 1), slot["slot_id"]).status_code == 201
    listed = client.get("/api/v1/agenda/appointments", headers=patient.headers).get_json()["items"]
    assert listed == []
    listed = client.get("/api/v1/agenda/appointments", query_string={"include_cancelled": "true"},
                        headers=patient.headers).get_json()["items"]
    assert [a["status"] for a in listed] == ["cancelled"]


def test_the_cutoff_is_configurable(database_url, monkeypatch):
    monkeypatch.setenv("CARNET_AGENDA_CANCEL_CUTOFF_HOURS", "48")
    monkeypatch.setenv("CARNET_AGENDA_REMINDER_OFFSETS", "72h,30m")
    app = make_app(database_url)
    try:
        settings = app.extensions["carnet.agenda_settings"]
        assert settings.cancel_cutoff == dt.timedelta(hours=48)
        assert settings.reminder_offsets == (dt.timedelta(hours=72), dt.timedelta(minutes=30))
    finally:
        from backend.db import get_db

        get_db(app).engine.dispose()


def test_reschedule_moves_the_booking_atomically(app, client, practice, db):
    patient = practice["patient"]
    alice_slots = slots(client, patient, professional_id=practice["alice"].id, date="2026-03-05", days=1)
    appointment = book(client, patient, alice_slots[0]["slot_id"]).get_json()
    other = sign_in(app, client, 1)
    assert book(client, other, alice_slots[1]["slot_id"]).status_code == 201

    # taken by someone else: refused, and nothing moved
    assert_problem(client.post(f"/api/v1/agenda/appointments/{appointment['id']}/reschedule",
                               json={"slot_id": alice_slots[1]["slot_id"]}, headers=patient.headers), 409,
                   "agenda_slot_taken")
    # another professional: refused
    luc_slot = slots(client, patient, professional_id=practice["luc"].id, date="2026-03-05", days=1)[0]
    assert_problem(client.post(f"/api/v1/agenda/appointments/{appointment['id']}/reschedule",
                               json={"slot_id": luc_slot["slot_id"]}, headers=patient.headers), 409,
                   "agenda_reschedule_other_professional")
    db.expire_all()
    assert db.get(Appointment, appointment["id"]).starts_at == utc(2026, 3, 5, 8)

    target = slots(client, patient, professional_id=practice["alice"].id, date="2026-03-30", days=1)[0]
    r = client.post(f"/api/v1/agenda/appointments/{appointment['id']}/reschedule",
                    json={"slot_id": target["slot_id"]}, headers=patient.headers)
    assert r.status_code == 200, r.get_json()
    moved = r.get_json()
    assert moved["id"] == appointment["id"] and moved["starts_at"] == "2026-03-30T09:00:00+02:00"
    # reminders follow, in elapsed time across the spring change (24 h before is 08:00 CET on Sunday)
    assert moved["reminders"] == ["2026-03-29T07:00:00+00:00", "2026-03-30T05:00:00+00:00"]
    held = set(db.scalars(select(SlotHold.starts_at)))
    assert utc(2026, 3, 5, 8) not in held and utc(2026, 3, 30, 7) in held
    assert book(client, other, alice_slots[0]["slot_id"]).status_code == 201


def test_appointments_made_by_the_practice_appear_and_their_cancellation_notifies(app, client, practice, db):
    patient = practice["patient"]
    pro = practice["luc"]
    slot = slots(client, patient, professional_id=pro.id, date="2026-03-06", days=1)[1]
    body = {"resourceType": "Appointment", "status": "booked", "slot": [{"reference": f"Slot/{slot['slot_id']}"}],
            "participant": [{"actor": {"identifier": {"system": "urn:oid:1.2.250.1.213.1.4.8",
                                                      "value": patient.nir}}}]}
    r = client.post("/fhir/R4/Appointment", json=body, headers=pro.headers)
    assert r.status_code == 201, r.get_data(as_text=True)
    created = r.get_json()
    assert r.headers["Location"].endswith(f"/fhir/R4/Appointment/{created['id']}")
    from fhir.resources import construct_fhir_element

    construct_fhir_element("Appointment", created)

    mine = client.get("/api/v1/agenda/appointments", headers=patient.headers).get_json()["items"]
    assert [(a["kind"], a["professional_name"], a["local_time"]) for a in mine] == [
        ("professional", "Luc PETIT", "10:00")]
    kinds = [(n.kind, n.ref_type, n.ref_id) for n in db.scalars(select(Notification).order_by(Notification.id))]
    assert kinds == [("appointment", "appointment", created["id"])]

    # a free-time appointment (no slot), then the same start again is refused
    free = {**body, "start": "2026-03-07T15:00:00+01:00", "end": "2026-03-07T15:20:00+01:00"}
    free.pop("slot")
    assert client.post("/fhir/R4/Appointment", json=free, headers=pro.headers).status_code == 201
    r = client.post("/fhir/R4/Appointment", json=free, headers=pro.headers)
    assert r.status_code == 409 and r.mimetype == FHIR_JSON
    unknown = {**free, "participant": [{"actor": {"identifier": {"system": "urn:oid:1.2.250.1.213.1.4.8",
                                                                 "value": "184127645108946"}}}]}
    assert client.post("/fhir/R4/Appointment", json=unknown, headers=pro.headers).status_code in (404, 422)

    # the practice cancels late (no cut-off for it); the patient is told
    with time_machine.travel(utc(2026, 3, 6, 8), tick=False):
        r = client.post(f"/fhir/R4/Appointment/{created['id']}/$cancel", headers=pro.headers)
    assert r.status_code == 200 and r.get_json()["status"] == "cancelled"
    assert db.scalar(select(func.count()).select_from(Notification)) == 3
    # another practice cannot see or cancel it
    other = practice["alice"]
    assert client.get(f"/fhir/R4/Appointment/{created['id']}", headers=other.headers).status_code == 404

    # the patient's access history names the practice (the trail keeps the RPPS, as for record reads)
    history = client.get("/api/v1/record/history", headers=patient.headers).get_json()["items"]
    by_action = {h["action"]: h for h in history if h["action"].startswith("agenda.appointment_")}
    assert set(by_action) == {"agenda.appointment_created", "agenda.appointment_cancelled"}, history
    for entry in by_action.values():
        assert entry["actor"]["rpps"] == "10109876543" and "PETIT" in entry["actor"]["name"].upper(), entry
    # the trail itself keeps the practice's RPPS, as for every professional action, not an internal id
    actors = set(db.scalars(select(AuditEntry.actor_id).where(AuditEntry.action.like("agenda.%"),
                                                               AuditEntry.actor_type == "professional")))
    assert "10109876543" in actors and str(pro.id) not in actors, actors


def test_own_entries_and_isolation_between_patients(app, client, practice):
    patient = practice["patient"]
    r = client.post("/api/v1/agenda/entries", json={"title": "Kiné (rééducation genou)",
                                                    "starts_at": "2026-03-29T10:00:00",
                                                    "ends_at": "2026-03-29T10:45:00", "place_name": "Cabinet Lumière"},
                    headers=patient.headers)
    assert r.status_code == 201, r.get_json()
    entry = r.get_json()
    # a wall time without offset is Paris time: that Sunday is the first day of summer time
    assert entry["starts_at"] == "2026-03-29T10:00:00+02:00" and entry["kind"] == "personal"
    assert entry["reminders"] == ["2026-03-28T08:00:00+00:00", "2026-03-29T06:00:00+00:00"]
    r = client.patch(f"/api/v1/agenda/entries/{entry['id']}", json={"title": "Kiné", "starts_at": "2026-03-30T18:00:00",
                                                                    "ends_at": "2026-03-30T18:45:00"},
                     headers=patient.headers)
    assert r.status_code == 200 and r.get_json()["title"] == "Kiné" and r.get_json()["local_time"] == "18:00"
    allday = client.post("/api/v1/agenda/entries", json={"title": "Jeûne avant prise de sang", "all_day": True,
                                                         "starts_at": "2026-03-09T00:00:00",
                                                         "ends_at": "2026-03-10T00:00:00"}, headers=patient.headers)
    assert allday.status_code == 201 and allday.get_json()["reminders"] == []
    assert_problem(client.patch(f"/api/v1/agenda/entries/{entry['id']}", json={"ends_at": "2026-03-01T00:00:00"},
                                headers=patient.headers), 422, "agenda_end_before_start")

    other = sign_in(app, client, 1)
    for method, path in [("get", f"/api/v1/agenda/appointments/{entry['id']}"),
                         ("post", f"/api/v1/agenda/appointments/{entry['id']}/cancel"),
                         ("delete", f"/api/v1/agenda/entries/{entry['id']}")]:
        assert_problem(getattr(client, method)(path, headers=other.headers), 404, "agenda_appointment_not_found")

    booked = book(client, patient, slots(client, patient, days=3)[0]["slot_id"]).get_json()
    assert_problem(client.delete(f"/api/v1/agenda/entries/{booked['id']}", headers=patient.headers), 409,
                   "agenda_not_a_personal_entry")
    assert client.delete(f"/api/v1/agenda/entries/{entry['id']}", headers=patient.headers).status_code == 204


def test_the_agenda_list_costs_the_same_queries_whatever_its_length(app, client, practice, count_queries):
    patient = practice["patient"]

    def list_cost():
        before = count_queries.count
        r = client.get("/api/v1/agenda/appointments", query_string={"limit": 50}, headers=patient.headers)
        assert r.status_code == 200
        return count_queries.count - before, len(r.get_json()["items"])

    def add(n, offset):
        for i in range(n):
            start = dt.datetime(2026, 4, 1, 8) + dt.timedelta(days=offset + i)
            assert client.post("/api/v1/agenda/entries", json={
                "title": f"Séance {offset + i}", "starts_at": start.isoformat(),
                "ends_at": (start + dt.timedelta(minutes=30)).isoformat()}, headers=patient.headers).status_code == 201
    book(client, patient, slots(client, patient, days=2)[0]["slot_id"])
    add(1, 0)
    list_cost()  # warm-up: the first use of a token records it once
    small = list_cost()
    add(12, 1)
    large = list_cost()
    assert small[1] == 2 and large[1] == 14
    assert small[0] == large[0], (small, large)

    # pages: 14 items, 5 at a time
    seen, cursor = [], None
    while True:
        body = client.get("/api/v1/agenda/appointments", query_string={"limit": 5, **({"cursor": cursor} if cursor else {})},
                          headers=patient.headers).get_json()
        seen.extend(a["id"] for a in body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 14
    month = client.get("/api/v1/agenda/appointments", query_string={"from": "2026-04-01", "to": "2026-04-05"},
                       headers=patient.headers).get_json()["items"]
    assert [a["title"] for a in month] == ["Séance 0", "Séance 1", "Séance 2", "Séance 3", "Séance 4"]


def test_many_clients_booking_one_slot_at_once_exactly_one_wins(app, client, practice, db):
    """Eight patients, each on its own connection, press "book" on the same slot at the same moment.
    On PostgreSQL the transactions truly overlap: the unique hold decides; SQLite serialises writers."""
    contenders = [practice["patient"]] + [sign_in(app, client, i) for i in range(1, 8)]
    slot_id = slots(client, contenders[0], professional_id=practice["alice"].id, date="2026-03-10", days=1)[3]["slot_id"]
    barrier = threading.Barrier(len(contenders))
    results = [None] * len(contenders)

    def attempt(index, who):
        own_client = app.test_client()
        barrier.wait()
        response = own_client.post("/api/v1/agenda/appointments", json={"slot_id": slot_id}, headers=who.headers)
        results[index] = (response.status_code, response.get_json(), response.mimetype)

    threads = [threading.Thread(target=attempt, args=(i, who)) for i, who in enumerate(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    statuses = sorted(r[0] for r in results)
    assert statuses == [201] + [409] * 7, results
    for status, body, mimetype in results:
        if status == 409:
            assert mimetype == "application/problem+json" and body["code"] == "agenda_slot_taken"
            assert body["detail"].startswith("Ce créneau vient d'être réservé")
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(SlotHold)) == 1
    assert db.scalar(select(func.count()).select_from(Appointment).where(Appointment.status == "booked")) == 1


def test_the_database_itself_refuses_a_second_hold_on_a_slot(app, client, practice, db):
    """Even code that skipped every check could not double-book: the unique constraint refuses."""
    from sqlalchemy.exc import IntegrityError

    patient = practice["patient"]
    booked = book(client, patient, slots(client, patient, days=2)[0]["slot_id"]).get_json()
    hold = db.scalar(select(SlotHold))
    intruder = Appointment(patient_id=patient.patient_id, kind="booking", starts_at=hold.starts_at,
                           ends_at=hold.ends_at, created_by="patient")
    db.add(intruder)
    db.flush()
    db.add(SlotHold(professional_id=hold.professional_id, starts_at=hold.starts_at, ends_at=hold.ends_at,
                    appointment_id=intruder.id))
    with pytest.raises(IntegrityError):
        db.flush()
    db.rollback()
    assert booked["status"] == "booked"


def test_dates_out_of_range_are_refused_or_clamped(app, client, practice):
    patient = practice["patient"]
    body = assert_problem(client.post("/api/v1/agenda/entries", json={
        "title": "Très ancien", "starts_at": "0600-01-01T10:00:00", "ends_at": "0600-01-01T11:00:00"},
        headers=patient.headers), 422, "agenda_date_out_of_range")
    assert "1970" in body["detail"]
    for query in ({"from": "0001-01-01", "to": "9999-12-31"}, {"from": "9999-12-31"}):
        assert client.get("/api/v1/agenda/appointments", query_string=query, headers=patient.headers).status_code == 200
    for day in ("9999-12-31", "0001-01-01"):
        r = client.get("/api/v1/agenda/slots", query_string={"date": day}, headers=patient.headers)
        assert r.status_code == 200
