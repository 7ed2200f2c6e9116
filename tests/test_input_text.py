"""One input layer (``backend.text`` through ``backend.web.CarnetRequest``) refuses what no text may hold: a
lone UTF-16 surrogate (valid JSON: ``"x\\ud800y"``), a NUL, a control character (tab and new lines are free
text's, never a name's, a query's or a path's). Each is a 422 problem+json naming the field, French first
(under /fhir/R4, an OperationOutcome); nothing is written; never a 500.

And the calendar import: an event that ends before it starts is refused with a sentence (RFC 5545 §3.6.1).
"""
from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, select

from backend.agenda.models import Appointment
from backend.audit.models import AuditEntry
from backend.records.documents.models import Document
from tests.fhir_helpers import Doc, assert_outcome, make_pro, post_bundle, provide_bundle
from tests.helpers import NIR_CAMILLE, STRONG_PASSWORD, activate, assert_problem, bearer, create_patient

SURROGATE, NUL, ESCAPE = "\ud800", "\x00", "\x1b"


def raw_json(client: Any, method: str, path: str, body: dict[str, Any], **kw: Any) -> Any:
    """The body exactly as a client may send it: json.dumps writes a lone surrogate as the escape \\ud800."""
    return client.open(path, method=method, data=json.dumps(body), content_type="application/json", **kw)


def assert_refused(response: Any, field: str, *, lang: str = "fr") -> dict[str, Any]:
    body = assert_problem(response, 422, "invalid_characters")
    assert body["errors"][0]["field"] == field, body
    assert f"« {field} »" in body["detail"] if lang == "fr" else f"“{field}”" in body["detail"], body
    return body


@pytest.fixture
def patient(app, client) -> dict[str, str]:
    return bearer(activate(client, create_patient(app))["access_token"])


# --- the cases that were a 500, or a NUL stored ------------------------------------------------------------------

def test_a_lone_surrogate_in_a_password_is_a_422_not_a_500(app, client, db, patient):
    before = db.scalar(select(func.count()).select_from(AuditEntry))
    r = raw_json(client, "POST", "/api/v1/auth/login", {"nir": NIR_CAMILLE, "password": f"x{SURROGATE}y"})
    body = assert_refused(r, "password")
    assert body["detail"].startswith("Le champ « password » contient un caractère non autorisé")
    assert "U+D800" in body["detail"]
    english = raw_json(client, "POST", "/api/v1/auth/login", {"nir": NIR_CAMILLE, "password": f"x{SURROGATE}"},
                       headers={"Accept-Language": "en"})
    assert "lone UTF-16 surrogate" in assert_refused(english, "password", lang="en")["detail"]
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(AuditEntry)) == before  # refused before anything ran


@pytest.mark.parametrize("method, path, body, field", [
    ("POST", "/api/v1/record/profile/allergy", {"label": f"Pollen{SURROGATE}"}, "label"),
    ("POST", "/api/v1/record/profile/measures", {"type": "weight", "value": 62.5, "note": f"a{SURROGATE}"}, "note"),
    ("POST", "/api/v1/record/directives/good_health", {"text": f"Mes volontés {SURROGATE}"}, "text"),
    ("POST", "/api/v1/agenda/entries", {"title": f"RDV{SURROGATE}", "starts_at": "2026-05-01T10:00:00+02:00"},
     "title"),
    ("POST", "/api/v1/catalog/services/1/reports", {"reason": "other", "comment": f"x{SURROGATE}"}, "comment"),
    ("PUT", "/api/v1/push/subscription", {"endpoint": f"https://push.example/{NUL}", "keys": {"p256dh": "a", "auth": "b"}},
     "endpoint"),
    ("POST", "/api/v1/record/access/blocks", {"rpps": f"1000000000{NUL}"}, "rpps"),
    ("POST", "/api/v1/agenda/entries", {"title": f"RDV{ESCAPE}[31m", "starts_at": "2026-05-01T10:00:00+02:00"},
     "title"),
    ("POST", "/api/v1/record/profile/allergy", {"label": "ok", "details": {"nested": [f"é{NUL}"]}},
     "details.nested[0]"),
    ("POST", "/api/v1/record/profile/allergy", {f"la{NUL}bel": "ok"}, "la\\u0000bel"),
])
def test_every_kind_of_hostile_text_is_refused_naming_the_field(client, db, patient, method, path, body, field):
    r = raw_json(client, method, path, body, headers=patient)
    assert_refused(r, field)


def test_free_text_keeps_its_new_lines_and_tabs(client, patient):
    r = raw_json(client, "POST", "/api/v1/agenda/entries", headers=patient, body={
        "title": "Kiné", "notes": "Apporter :\n\t- l'ordonnance\r\n\t- la carte Vitale",
        "starts_at": "2026-05-01T10:00:00+02:00", "ends_at": "2026-05-01T10:45:00+02:00"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["notes"] == "Apporter :\n\t- l'ordonnance\r\n\t- la carte Vitale"


def test_a_nul_never_reaches_an_identifier_of_a_deposit(app, client, db):
    """ITI-65: a NUL in a document's identifier (SQLite stored it; PostgreSQL refused it with a 500 before the
    DataError handler) is an OperationOutcome naming the field; nothing is stored."""
    created = create_patient(app)
    doctor = make_pro(app)
    bundle = provide_bundle(created.nir, [Doc(b"<ClinicalDocument/>", unique_id=f"urn:oid:1.2.250.1.999{NUL}.1")])
    r = client.post("/fhir/R4", data=json.dumps(bundle), content_type="application/fhir+json",
                    headers=doctor.headers())
    body = assert_outcome(r, 422, "invalid_characters")
    diagnostics = body["issue"][0]["diagnostics"]
    assert "entry[1].resource.masterIdentifier.value" in diagnostics and "U+0000" in diagnostics
    assert db.scalar(select(func.count()).select_from(Document)) == 0
    # the same bundle without the NUL is stored
    bundle = provide_bundle(created.nir, [Doc(b"<ClinicalDocument/>")])
    assert post_bundle(client, doctor, bundle).status_code == 200


def test_query_strings_paths_forms_and_multipart_are_checked_too(app, client, db, patient):
    assert_refused(client.get("/api/v1/record/documents?cursor=a%00b", headers=patient), "cursor")
    assert_refused(client.get("/api/v1/catalog/services?q=kin%C3%A9%09", headers=patient), "q")  # a tab: one line
    assert_refused(client.get("/api/v1/agenda/feed/abc%1Bdef.ics"), "token")
    # a form (the OAuth token endpoint)
    r = client.post("/oauth/token", data={"grant_type": "authorization_code", "code": f"abc{NUL}"})
    assert_refused(r, "code")
    # multipart: a field, and a file name
    upload = {"file": (io.BytesIO(b"Compte rendu\n"), "cr.txt"), "category": "CPT_REND", "title": f"CR{NUL}"}
    assert_refused(client.post("/api/v1/record/documents", data=upload, content_type="multipart/form-data",
                               headers=patient), "title")
    upload = {"file": (io.BytesIO(b"Compte rendu\n"), f"cr{ESCAPE}.txt"), "category": "CPT_REND"}
    assert_refused(client.post("/api/v1/record/documents", data=upload, content_type="multipart/form-data",
                               headers=patient), "file")
    assert db.scalar(select(func.count()).select_from(Document)) == 0


def test_the_login_of_a_real_account_survives_a_surrogate_anywhere(app, client):
    created = create_patient(app)
    activate(client, created)
    for body in ({"nir": f"{created.nir}{SURROGATE}", "password": STRONG_PASSWORD},
                 {"nir": created.nir, "password": STRONG_PASSWORD, f"x{SURROGATE}": 1}):
        r = raw_json(client, "POST", "/api/v1/auth/login", body)
        assert r.status_code == 422 and r.get_json()["code"] == "invalid_characters"
    assert raw_json(client, "POST", "/api/v1/auth/login", {"nir": created.nir, "password": STRONG_PASSWORD}
                    ).status_code == 200


# --- the calendar import ---------------------------------------------------------------------------------------

def _ics(*events: str) -> bytes:
    body = "".join(f"BEGIN:VEVENT\r\nUID:{i}@other\r\nDTSTAMP:20260301T000000Z\r\n{e}\r\nEND:VEVENT\r\n"
                   for i, e in enumerate(events))
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//FR\r\n{body}END:VCALENDAR\r\n".encode()


@time_machine.travel(dt.datetime(2026, 3, 10, 9, tzinfo=dt.timezone.utc), tick=False)
@pytest.mark.parametrize("event, says", [
    ("SUMMARY:Kiné\r\nDTSTART:20260401T100000Z\r\nDTEND:20260401T090000Z", "« Kiné » finit avant de commencer"),
    ("SUMMARY:Kiné\r\nDTSTART:20260401T100000Z\r\nDTEND:20260401T090000Z\r\nRRULE:FREQ=WEEKLY;COUNT=3",
     "« Kiné » finit avant de commencer"),
    ("SUMMARY:Kiné\r\nDTSTART;VALUE=DATE:20260402\r\nDTEND;VALUE=DATE:20260401", "« Kiné » finit avant de commencer"),
    ("SUMMARY:Kiné\r\nDTSTART:20260401T100000Z\r\nDURATION:-PT1H", "« Kiné » a une durée négative"),
])
def test_an_imported_event_that_ends_before_it_starts_is_refused(client, db, patient, event, says):
    good = "SUMMARY:Dentiste\r\nDTSTART:20260402T140000Z\r\nDTEND:20260402T143000Z"
    r = client.post("/api/v1/agenda/import", data={"file": (io.BytesIO(_ics(good, event)), "agenda.ics")},
                    content_type="multipart/form-data", headers=patient)
    body = assert_problem(r, 422, "agenda_ics_invalid")
    assert says in body["detail"] and body["detail"].startswith("Ce fichier")
    assert db.scalar(select(func.count()).select_from(Appointment)) == 0  # nor the good one: all or nothing


@time_machine.travel(dt.datetime(2026, 3, 10, 9, tzinfo=dt.timezone.utc), tick=False)
def test_control_characters_in_an_imported_calendar_are_dropped(client, patient):
    event = "SUMMARY:Kin\x1bé\x07\r\nDTSTART:20260401T100000Z\r\nDTEND:20260401T110000Z"
    r = client.post("/api/v1/agenda/import", data={"file": (io.BytesIO(_ics(event)), "agenda.ics")},
                    content_type="multipart/form-data", headers=patient)
    assert r.status_code == 201, r.get_json()
    items = client.get("/api/v1/agenda/appointments", headers=patient).get_json()["items"]
    assert [a["title"] for a in items] == ["Kiné"]
