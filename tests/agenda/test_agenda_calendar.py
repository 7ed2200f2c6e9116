"""iCalendar: exports read the same by two independent parsers, the subscription feed (secret, discreet,
audited, revocable), and a hardened import tried on the shared corpus of tricky files."""
import dataclasses
import datetime as dt
import hashlib
import io

import icalendar
import pytest
import time_machine
import vobject
from sqlalchemy import func, select

from backend.agenda.models import Appointment, CalendarFeed
from backend.audit.models import AuditEntry
from tests.agenda.support import UTC, book, make_pro, publish, schedule_body, sign_in, slots, utc
from tests.helpers import SHARED, assert_problem

CORPUS = SHARED / "fixtures" / "external" / "icalendar"


@pytest.fixture
def agenda(app, client):
    """A patient with appointments on both sides of both DST changes, and an all-day entry of their own."""
    with time_machine.travel(utc(2026, 3, 20, 9), tick=False):
        pro = make_pro(app)
        publish(client, pro, schedule_body())
        patient = sign_in(app, client)
        for day in ("2026-03-27", "2026-03-30"):
            assert book(client, patient, slots(client, patient, date=day, days=1)[1]["slot_id"]).status_code == 201
        for day in ("2026-10-23", "2026-10-26"):  # beyond the booking horizon: the patient's own entries
            r = client.post("/api/v1/agenda/entries", json={"title": "Ophtalmologiste", "starts_at": f"{day}T09:30:00",
                                                            "ends_at": f"{day}T10:00:00"}, headers=patient.headers)
            assert r.status_code == 201
        r = client.post("/api/v1/agenda/entries", json={"title": "Prise de sang à jeun", "all_day": True,
                                                        "starts_at": "2026-04-02T00:00:00",
                                                        "ends_at": "2026-04-03T00:00:00"}, headers=patient.headers)
        assert r.status_code == 201
        yield patient


def read_with_icalendar(data):
    cal = icalendar.Calendar.from_ical(data)
    out = {}
    for ev in cal.walk("VEVENT"):
        start = ev["DTSTART"].dt
        out[str(ev["UID"])] = (start.astimezone(UTC) if isinstance(start, dt.datetime) else start,
                               str(ev["SUMMARY"]), str(ev.get("LOCATION", "")) or None)
    return out


def read_with_vobject(data):
    cal = vobject.readOne(data.decode())
    out = {}
    for ev in cal.vevent_list:
        start = ev.dtstart.value
        location = ev.location.value if hasattr(ev, "location") else None
        out[ev.uid.value] = (start.astimezone(UTC) if isinstance(start, dt.datetime) else start,
                             ev.summary.value, location)
    return out


def test_exports_are_read_the_same_by_icalendar_and_vobject(client, agenda):
    with time_machine.travel(utc(2026, 3, 20, 10), tick=False):
        r = client.get("/api/v1/agenda/calendar.ics", headers=agenda.headers)
    assert r.status_code == 200 and r.mimetype == "text/calendar"
    assert r.headers["Content-Disposition"].startswith("attachment")
    data = r.get_data()
    assert b"DTSTART:20260330T073000Z" in data  # 09:30 in Paris, summer time
    first, second = read_with_icalendar(data), read_with_vobject(data)
    assert first == second
    starts = sorted(v[0] for v in first.values() if isinstance(v[0], dt.datetime))
    # 09:30 Paris each time: UTC+1, UTC+2, UTC+2, UTC+1
    assert starts == [utc(2026, 3, 27, 8, 30), utc(2026, 3, 30, 7, 30), utc(2026, 10, 23, 7, 30),
                      utc(2026, 10, 26, 8, 30)]
    assert dt.date(2026, 4, 2) in {v[0] for v in first.values()}
    assert {v[1] for v in first.values()} == {"Consultation — Alice DURAND", "Prise de sang à jeun", "Ophtalmologiste"}
    assert "Cabinet médical du Parc, 12 rue Garibaldi, 69006 Lyon" in {v[2] for v in first.values()}

    one_id = client.get("/api/v1/agenda/appointments", headers=agenda.headers).get_json()["items"][0]["id"]
    one = client.get(f"/api/v1/agenda/appointments/{one_id}/calendar.ics", headers=agenda.headers).get_data()
    assert read_with_icalendar(one) == read_with_vobject(one) and len(read_with_icalendar(one)) == 1
    discreet = client.get("/api/v1/agenda/calendar.ics", query_string={"discreet": "true"},
                          headers=agenda.headers).get_data()
    assert {v[1] for v in read_with_vobject(discreet).values()} == {"Rendez-vous médical"}
    assert_problem(client.get("/api/v1/agenda/calendar.ics"), 401)


def test_the_subscription_feed_is_secret_discreet_audited_and_revocable(app, client, agenda, db):
    r = client.post("/api/v1/agenda/feed", json={}, headers=agenda.headers)
    assert r.status_code == 201
    created = r.get_json()
    url = created["url"]
    token = url.rsplit("/", 1)[1].removesuffix(".ics")
    assert len(token) >= 43  # 256 random bits, URL-safe base64 (at least 128 bits required)
    assert created["webcal_url"].startswith("webcal://") and created["show_details"] is False
    feed = db.scalar(select(CalendarFeed))
    assert feed.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str([getattr(feed, c.key) for c in CalendarFeed.__table__.columns])
    status = client.get("/api/v1/agenda/feed", headers=agenda.headers).get_json()
    assert status["active"] is True and status["url"] is None  # the secret is shown once

    path = url.split("://", 1)[1].split("/", 1)[1]
    with time_machine.travel(utc(2026, 3, 21, 9), tick=False):
        fetched = client.get("/" + path)  # a calendar app: no bearer token
        client.get("/" + path)
    assert fetched.status_code == 200 and fetched.mimetype == "text/calendar"
    body = fetched.get_data()
    events = read_with_vobject(body)
    assert len(events) == 5 and {v[1] for v in events.values()} == {"Rendez-vous médical"}
    for secret in (b"DURAND", b"Lyon", b"LOCATION", b"jeun", b"Ophtalmo", b"DESCRIPTION"):
        assert secret not in body
    assert read_with_icalendar(body) == events
    fetches = db.scalars(select(AuditEntry).where(AuditEntry.action == "agenda.feed_fetched")).all()
    assert len(fetches) == 2 and {e.patient_id for e in fetches} == {agenda.patient_id}
    assert client.get("/api/v1/agenda/feed", headers=agenda.headers).get_json()["fetch_count"] == 2

    assert client.patch("/api/v1/agenda/feed", json={"show_details": True}, headers=agenda.headers).status_code == 200
    detailed = client.get("/" + path).get_data()
    assert "Consultation — Alice DURAND" in {v[1] for v in read_with_vobject(detailed).values()}

    assert client.delete("/api/v1/agenda/feed", headers=agenda.headers).status_code == 204
    assert_problem(client.get("/" + path), 404, "agenda_feed_not_found")
    again = client.post("/api/v1/agenda/feed", json={"show_details": False}, headers=agenda.headers).get_json()
    assert again["url"] != url
    assert client.get("/" + again["url"].split("://", 1)[1].split("/", 1)[1]).status_code == 200
    assert_problem(client.get("/api/v1/agenda/feed/forged-token.ics"), 404)


def make_ics(*events, tz="Europe/Paris"):
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Other calendar//EN")
    cal.add("version", "2.0")
    for uid, summary, start, end, rrule in events:
        ev = icalendar.Event()
        ev.add("uid", uid)
        ev.add("summary", summary)
        ev.add("dtstart", start)
        ev.add("dtend", end)
        if rrule:
            ev.add("rrule", icalendar.vRecur.from_ical(rrule))
        cal.add_component(ev)
    cal.add_missing_timezones()
    return cal.to_ical()


def upload(client, who, data, name="agenda.ics"):
    return client.post("/api/v1/agenda/import", data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data", headers=who.headers)


@time_machine.travel(utc(2026, 3, 10, 9), tick=False)
def test_import_a_calendar_once(app, client, db):
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")
    patient = sign_in(app, client)
    data = make_ics(("weekly-kine@other", "Kiné", dt.datetime(2026, 3, 19, 18, tzinfo=paris),
                     dt.datetime(2026, 3, 19, 18, 45, tzinfo=paris), "FREQ=WEEKLY;COUNT=3"),
                    ("dentist@other", "Dentiste", dt.datetime(2026, 4, 2, 14, 0, tzinfo=dt.timezone.utc),
                     dt.datetime(2026, 4, 2, 14, 30, tzinfo=dt.timezone.utc), None))
    r = upload(client, patient, data)
    assert r.status_code == 201, r.get_json()
    assert r.get_json() == {"imported": 4, "skipped": 0}
    items = client.get("/api/v1/agenda/appointments", headers=patient.headers).get_json()["items"]
    # the weekly session stays at 18:00 local on both sides of 29 March
    assert [(a["title"], a["local_date"], a["local_time"], a["kind"]) for a in items] == [
        ("Kiné", "2026-03-19", "18:00", "imported"), ("Kiné", "2026-03-26", "18:00", "imported"),
        ("Dentiste", "2026-04-02", "16:00", "imported"), ("Kiné", "2026-04-02", "18:00", "imported")]
    assert upload(client, patient, data).get_json() == {"imported": 0, "skipped": 4}


@time_machine.travel(utc(2026, 3, 10, 9), tick=False)
def test_bad_imports_are_refused_clearly_and_write_nothing(app, client, db, monkeypatch):
    patient = sign_in(app, client)
    good = make_ics(("ok@other", "Bon", utc(2026, 4, 1, 8), utc(2026, 4, 1, 9), None))
    broken = good.replace(b"END:VCALENDAR", b"BEGIN:VEVENT\r\nUID:bad@other\r\nSUMMARY:Mauvais\r\n"
                                            b"DTSTART:20260402T100000Z\r\nDTEND:demain\r\nEND:VEVENT\r\nEND:VCALENDAR")
    body = assert_problem(upload(client, patient, broken), 422, "agenda_ics_invalid")
    assert body["detail"] == ("Ce fichier n'est pas un calendrier iCalendar (.ics) lisible : la date de fin du "
                              "rendez-vous « Mauvais » est illisible.")
    assert db.scalar(select(func.count()).select_from(Appointment)) == 0  # the good event was not written

    body = assert_problem(upload(client, patient, b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "photo.png"), 422)
    assert "UTF-8" in body["detail"]
    assert "BEGIN:VCALENDAR" in assert_problem(upload(client, patient, b"hello"), 422)["detail"]
    # the size limit is a setting (CARNET_AGENDA_IMPORT_MAX_BYTES, 1 MiB by default): 4 KiB here
    settings = app.extensions["carnet.agenda_settings"]
    monkeypatch.setitem(app.extensions, "carnet.agenda_settings", dataclasses.replace(settings, import_max_bytes=4096))
    huge = b"BEGIN:VCALENDAR\r\n" + b"X-PAD:" + b"a" * 5000 + b"\r\nEND:VCALENDAR\r\n"
    body = assert_problem(upload(client, patient, huge), 413, "agenda_ics_too_large")
    assert body["detail"] == "Ce fichier de calendrier est trop volumineux (4 Kio au plus)."
    monkeypatch.setitem(app.extensions, "carnet.agenda_settings", settings)
    every_second = make_ics(("storm@other", "Tempête", utc(2026, 3, 11, 8), utc(2026, 3, 11, 8, 0, 1),
                             "FREQ=SECONDLY"))
    assert "trop fréquente" in assert_problem(upload(client, patient, every_second), 422)["detail"]
    many = make_ics(*[(f"d{i}@other", "Quotidien", utc(2026, 3, 11, 8), utc(2026, 3, 11, 9), "FREQ=DAILY;BYHOUR=8,9,10")
                      for i in range(10)])
    assert_problem(upload(client, patient, many), 422, "agenda_ics_too_many")
    assert_problem(client.post("/api/v1/agenda/import", data={}, content_type="multipart/form-data",
                               headers=patient.headers), 422)
    assert db.scalar(select(func.count()).select_from(Appointment)) == 0


def test_the_shared_corpus_of_tricky_files_imports_or_is_refused_clearly(app, client, db):
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    assert len(files) > 150
    with time_machine.travel(utc(2022, 6, 1, 9), tick=False):
        patient = sign_in(app, client)
        imported = 0
        outcomes = {}
        for path in files:
            r = upload(client, patient, path.read_bytes(), path.name)
            assert r.status_code in (201, 413, 422), (path, r.status_code, r.get_data(as_text=True)[:300])
            if r.status_code == 201:
                imported += r.get_json()["imported"]
            else:
                body = assert_problem(r, r.status_code)
                assert body["detail"].startswith("Ce "), (path, body["detail"])
            outcomes[str(path.relative_to(CORPUS))] = r.status_code
    assert db.scalar(select(func.count()).select_from(Appointment)) == imported > 0
    # some files of the corpus that must import, and some that must be refused
    assert outcomes["collective-icalendar/calendars/example.ics"] == 201
    assert outcomes["collective-icalendar/calendars/issue_722_timezone_transition_ambiguity.ics"] == 201
    assert outcomes["collective-icalendar/calendars/x_location.ics"] == 201
    for refused in ["collective-icalendar/calendars/broken_ical.ics", "collective-icalendar/calendars/invalid_duration.ics",
                    "collective-icalendar/calendars/fuzz_testcase_invalid_month.ics", "libical/test-data/2445.ics",
                    "collective-icalendar/calendars/parsing_error_in_UTC_offset.ics"]:
        assert outcomes[refused] == 422, refused
