"""Publishing availability over the professional FHIR API, and the slots it gives, across DST changes."""
import datetime as dt

import pytest
import time_machine

from backend.agenda import availability
from tests.agenda.support import FHIR_JSON, make_pro, publish, schedule_body, utc


def fhir_slots(client, pro, schedule_id, start, end):
    r = client.get("/fhir/R4/Slot", query_string=[("schedule", f"Schedule/{schedule_id}"), ("start", f"ge{start}"),
                                                  ("start", f"lt{end}")], headers=pro.headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.mimetype == FHIR_JSON
    bundle = r.get_json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    return [e["resource"] for e in bundle["entry"]]


def instants(resources):
    return [dt.datetime.fromisoformat(r["start"]).astimezone(dt.timezone.utc) for r in resources]


def assert_outcome(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["severity"] == "error" and issue["diagnostics"]
    if code:
        assert issue["details"]["coding"][0]["code"] == code
    return issue


@time_machine.travel(utc(2026, 3, 1, 8), tick=False)
def test_publish_read_update_and_withdraw_a_schedule(app, client):
    pro = make_pro(app)
    created = publish(client, pro, schedule_body(closed_days=["2026-04-06"]))
    assert created["resourceType"] == "Schedule" and created["active"] is True
    ext = {e["url"]: e for e in created["extension"]}
    opening = {p["url"]: p for p in ext["https://carnet.example/fhir/StructureDefinition/schedule-opening-hours"][
        "extension"]}
    # the wall time comes back with the offset of the day (CET in early March)
    assert opening["start"]["valueDateTime"] == "2026-03-02T09:00:00+01:00"
    assert opening["rrule"]["valueString"] == "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
    # the closed day is a whole local day (Easter Monday: CEST)
    assert ext["https://carnet.example/fhir/StructureDefinition/schedule-unavailable"]["valuePeriod"] == {
        "start": "2026-04-06T00:00:00+02:00", "end": "2026-04-07T00:00:00+02:00"}
    assert created["contained"][0]["address"]["city"] == "Lyon"

    r = client.get(f"/fhir/R4/Schedule/{created['id']}", headers=pro.headers)
    assert r.status_code == 200 and r.get_json() == created

    # RFC 5545: the first occurrence is DTSTART itself, so it is a Wednesday here
    body = schedule_body(start="2026-03-04T09:00:00", end="2026-03-04T12:00:00", rrule="FREQ=WEEKLY;BYDAY=WE",
                         slot_minutes=20, visit="teleconsultation")
    r = client.put(f"/fhir/R4/Schedule/{created['id']}", json=body, headers=pro.headers)
    assert r.status_code == 200
    assert r.get_json()["serviceType"][0]["coding"][0]["code"] == "teleconsultation"
    slots = fhir_slots(client, pro, created["id"], "2026-03-02", "2026-03-09")
    assert {s["start"][:10] for s in slots} == {"2026-03-04"} and len(slots) == 9  # 09:00–12:00 by 20 min

    listed = client.get("/fhir/R4/Schedule", headers=pro.headers).get_json()
    assert listed["total"] == 1
    assert client.delete(f"/fhir/R4/Schedule/{created['id']}", headers=pro.headers).status_code == 204
    assert client.get(f"/fhir/R4/Schedule/{created['id']}", headers=pro.headers).get_json()["active"] is False


def test_schedule_resource_is_valid_fhir_r4(app, client):
    from fhir.resources import construct_fhir_element

    pro = make_pro(app)
    with time_machine.travel(utc(2026, 3, 1, 8), tick=False):
        created = publish(client, pro, schedule_body())
        slot = fhir_slots(client, pro, created["id"], "2026-03-02", "2026-03-03")[0]
    construct_fhir_element("Schedule", created)
    construct_fhir_element("Slot", slot)


@pytest.mark.parametrize("day, first_utc", [
    ("2026-03-27", utc(2026, 3, 27, 8)),   # Friday before the spring change: CET, UTC+1
    ("2026-03-30", utc(2026, 3, 30, 7)),   # Monday after: CEST, UTC+2
    ("2026-10-23", utc(2026, 10, 23, 7)),  # Friday before the autumn change: CEST
    ("2026-10-26", utc(2026, 10, 26, 8)),  # Monday after: CET
])
def test_opening_hours_keep_their_wall_time_across_dst(app, client, day, first_utc):
    pro = make_pro(app)
    with time_machine.travel(utc(2026, 3, 1, 8), tick=False):
        created = publish(client, pro, schedule_body())
        next_day = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
        slots = fhir_slots(client, pro, created["id"], day, next_day)
    assert [s["start"][11:16] for s in slots] == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
    assert instants(slots)[0] == first_utc
    assert all(s["status"] == "free" for s in slots)


def test_a_night_opening_lasts_two_hours_in_spring_and_four_in_autumn(app, client):
    """Opening 01:00–04:00 local: the hour 02:00–03:00 does not exist on 29 March, and exists twice on
    25 October. Slots are cut in elapsed time, so both days are right, and the two '02:00' slots of
    October are distinct instants."""
    pro = make_pro(app)
    with time_machine.travel(utc(2026, 3, 1, 8), tick=False):
        created = publish(client, pro, schedule_body(start="2026-03-01T01:00:00", end="2026-03-01T04:00:00",
                                                     rrule="FREQ=DAILY", slot_minutes=60, visit="teleconsultation"))
        spring = fhir_slots(client, pro, created["id"], "2026-03-29", "2026-03-30")
        autumn = fhir_slots(client, pro, created["id"], "2026-10-25", "2026-10-26")
    assert [s["start"] for s in spring] == ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"]
    assert instants(spring) == [utc(2026, 3, 29, 0), utc(2026, 3, 29, 1)]
    assert [s["start"] for s in autumn] == ["2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00",
                                            "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]
    assert instants(autumn) == [utc(2026, 10, 24, 23), utc(2026, 10, 25, 0), utc(2026, 10, 25, 1),
                                utc(2026, 10, 25, 2)]
    assert len({s["id"] for s in autumn}) == 4


def test_exceptions_and_planning_horizon_remove_slots(app, client):
    pro = make_pro(app)
    with time_machine.travel(utc(2026, 3, 1, 8), tick=False):
        created = publish(client, pro, schedule_body(
            closed_days=["2026-03-10"], unavailable=[("2026-03-11T10:00:00", "2026-03-11T11:00:00")],
            horizon={"start": "2026-03-09", "end": "2026-03-12"}))
        slots = fhir_slots(client, pro, created["id"], "2026-03-02", "2026-03-16")
    by_day = {}
    for s in slots:
        by_day.setdefault(s["start"][:10], []).append(s["start"][11:16])
    assert sorted(by_day) == ["2026-03-09", "2026-03-11", "2026-03-12"]
    assert by_day["2026-03-11"] == ["09:00", "09:30", "11:00", "11:30"]


def test_several_openings_in_one_schedule(app, client):
    pro = make_pro(app)
    with time_machine.travel(utc(2026, 3, 1, 8), tick=False):
        created = publish(client, pro, schedule_body(slot_minutes=60, openings=[
            ("2026-03-02T09:00:00+01:00", "2026-03-02T11:00:00+01:00", "FREQ=WEEKLY;BYDAY=MO"),
            ("2026-03-04T14:00:00", "2026-03-04T16:00:00", "FREQ=WEEKLY;INTERVAL=2;BYDAY=WE"),
            ("2026-03-07T10:00:00", "2026-03-07T11:00:00", None),  # a one-off Saturday morning
        ]))
        slots = fhir_slots(client, pro, created["id"], "2026-03-02", "2026-03-21")
    assert [s["start"][:16] for s in slots] == [
        "2026-03-02T09:00", "2026-03-02T10:00", "2026-03-04T14:00", "2026-03-04T15:00", "2026-03-07T10:00",
        "2026-03-09T09:00", "2026-03-09T10:00", "2026-03-16T09:00", "2026-03-16T10:00", "2026-03-18T14:00",
        "2026-03-18T15:00"]


def test_the_professional_api_needs_a_professional_token(app, client):
    from tests.helpers import bearer

    issue = assert_outcome(client.post("/fhir/R4/Schedule", json=schedule_body()), 401, "fhir_unauthorized")
    assert "professionnel de santé" in issue["diagnostics"]
    r = client.get("/fhir/R4/Schedule", headers=bearer("forged"))
    assert_outcome(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("mutate, fragment", [
    (lambda b: b["extension"][2]["extension"].__setitem__(2, {"url": "rrule", "valueString": "FREQ=SECONDLY"}),
     "FREQ doit être DAILY"),
    (lambda b: b["extension"][2]["extension"].__setitem__(2, {"url": "rrule", "valueString": "NOT A RULE"}),
     "RRULE"),
    (lambda b: b["extension"].__setitem__(1, {"url": "https://carnet.example/fhir/StructureDefinition/"
                                                     "schedule-timezone", "valueCode": "Mars/Olympus"}),
     "Fuseau horaire inconnu"),
    (lambda b: b["extension"].pop(0), "schedule-slot-minutes"),
    (lambda b: b.__setitem__("resourceType", "Patient"), "Schedule attendu"),
    (lambda b: b["extension"][2]["extension"].__setitem__(1, {"url": "end",
                                                              "valueDateTime": "2026-03-02T08:00:00+01:00"}),
     "plage d'ouverture"),
    # a FHIR dateTime with a time carries its offset: a wall time without one is not FHIR (refused, not guessed)
    (lambda b: b["extension"][2]["extension"].__setitem__(0, {"url": "start", "valueDateTime": "2026-03-02T09:00:00"}),
     "décalage horaire est obligatoire"),
    (lambda b: b["extension"].append({"url": "https://carnet.example/fhir/StructureDefinition/schedule-unavailable",
                                      "valuePeriod": {"start": "2026-03-03T09:00:00", "end": "2026-03-03T12:00:00"}}),
     "décalage horaire est obligatoire"),
])
def test_invalid_schedules_are_refused_in_french(app, client, mutate, fragment):
    pro = make_pro(app)
    body = schedule_body()
    mutate(body)
    issue = assert_outcome(client.post("/fhir/R4/Schedule", json=body, headers=pro.headers), 422)
    assert fragment in issue["diagnostics"]


def test_broken_json_and_other_professionals_schedules(app, client):
    pro = make_pro(app)
    other = make_pro(app, rpps="10109876543", family="Petit", given="Luc")
    assert_outcome(client.post("/fhir/R4/Schedule", data="{nope", headers=pro.headers), 400, "fhir_invalid_json")
    created = publish(client, pro, schedule_body())
    assert_outcome(client.get(f"/fhir/R4/Schedule/{created['id']}", headers=other.headers), 404)
    assert_outcome(client.put(f"/fhir/R4/Schedule/{created['id']}", json=schedule_body(), headers=other.headers), 404)


def test_slot_ids_round_trip():
    start = utc(2026, 10, 25, 1, 30)  # 02:30 local, second time (CET)
    sid = availability.slot_id(7, start)
    assert sid == "7-20261025T0130Z"
    assert availability.parse_slot_id(sid) == (7, start)
