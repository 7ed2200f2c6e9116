"""Sessions end (idle timeout and absolute lifetime, both configurable), say why, and cost no write per
request; every answer carries the security headers; a document a professional declared active (HTML, SVG,
XML…) can never run in a browser, from the patient API or from ITI-68."""
from __future__ import annotations

import base64
import datetime as dt

import pytest
import requests
import time_machine

from backend import config
from backend.db import get_db
from bench.soak import LiveServer
from tests.conftest import make_app, server_env
from tests.fhir_helpers import Doc, grant, make_pro, post_bundle, provide_bundle
from tests.helpers import NIR_LOUIS, activate, assert_problem, bearer, create_patient

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
REAL = {key: config.DEFAULTS[key] for key in ("SESSION_IDLE_MINUTES", "ACCESS_TOKEN_TTL_HOURS")}


@pytest.fixture
def app(app, database_url):  # the suite's app, emptied, then one with the real session ends
    """The shipped defaults (the suite's app keeps sessions for years: its tests move the clock by days)."""
    assert REAL == {"SESSION_IDLE_MINUTES": 30, "ACCESS_TOKEN_TTL_HOURS": 12}
    real = make_app(database_url, **REAL)
    yield real
    get_db(real).engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


def signed_in_at(app, client, at: dt.datetime = NOW, nir: str | None = None) -> dict[str, str]:
    with time_machine.travel(at, tick=False):
        created = create_patient(app, nir=nir) if nir else create_patient(app)
        return bearer(activate(client, created)["access_token"])


# --- idle and absolute ends ---------------------------------------------------------------------------------

def test_thirty_minutes_without_a_request_end_the_session_and_say_so(app, client):
    headers = signed_in_at(app, client)
    with time_machine.travel(NOW + dt.timedelta(minutes=29), tick=False):
        assert client.get("/api/v1/me", headers=headers).status_code == 200
    with time_machine.travel(NOW + dt.timedelta(minutes=29 + 31), tick=False):
        body = assert_problem(client.get("/api/v1/me", headers=headers), 401, "session_idle")
        assert "30 minutes sans activité" in body["detail"]
        english = client.get("/api/v1/me", headers={**headers, "Accept-Language": "en"}).get_json()
        assert "30 minutes without activity" in english["detail"]
        # and it stays ended: a request after the refusal does not bring it back
        assert_problem(client.get("/api/v1/me", headers=headers), 401, "session_idle")


def test_a_session_in_use_still_ends_after_twelve_hours(app, client):
    headers = signed_in_at(app, client)
    for minutes in range(20, 12 * 60, 20):  # a request every 20 minutes: never idle
        with time_machine.travel(NOW + dt.timedelta(minutes=minutes), tick=False):
            assert client.get("/api/v1/me", headers=headers).status_code == 200, minutes
    with time_machine.travel(NOW + dt.timedelta(hours=12, minutes=1), tick=False):
        body = assert_problem(client.get("/api/v1/me", headers=headers), 401, "session_expired")
        assert "12 heures au plus" in body["detail"]


def test_both_ends_are_settings(app, database_url):  # (app: an emptied database)
    other = make_app(database_url, SESSION_IDLE_MINUTES=5, ACCESS_TOKEN_TTL_HOURS=1)
    try:
        client = other.test_client()
        headers = signed_in_at(other, client)
        with time_machine.travel(NOW + dt.timedelta(minutes=6), tick=False):
            body = assert_problem(client.get("/api/v1/me", headers=headers), 401, "session_idle")
            assert "5 minutes" in body["detail"]
        headers = signed_in_at(other, client, NOW + dt.timedelta(hours=2), nir=NIR_LOUIS)
        for minutes in (4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56):
            with time_machine.travel(NOW + dt.timedelta(hours=2, minutes=minutes), tick=False):
                assert client.get("/api/v1/me", headers=headers).status_code == 200
        with time_machine.travel(NOW + dt.timedelta(hours=3, minutes=1), tick=False):
            assert_problem(client.get("/api/v1/me", headers=headers), 401, "session_expired")
    finally:
        get_db(other).engine.dispose()


def test_the_refusals_name_each_cause(app, client):
    assert_problem(client.get("/api/v1/me"), 401, "unauthorized")
    assert_problem(client.get("/api/v1/me", headers=bearer("forged")), 401, "unauthorized")
    headers = signed_in_at(app, client, dt.datetime.now(dt.timezone.utc))
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    body = assert_problem(client.get("/api/v1/me", headers=headers), 401, "session_revoked")
    assert body["detail"].startswith("Cet appareil a été déconnecté")


def test_activity_is_written_at_most_once_a_minute(app, client, count_queries):
    headers = signed_in_at(app, client)
    with time_machine.travel(NOW + dt.timedelta(minutes=2), tick=False):
        client.get("/api/v1/me", headers=headers)  # the first request after sign-in records the activity
    count_queries.statements.clear()
    for seconds in range(0, 60, 5):  # twelve requests within the next minute
        with time_machine.travel(NOW + dt.timedelta(minutes=2, seconds=seconds), tick=False):
            assert client.get("/api/v1/me", headers=headers).status_code == 200
    writes = [s for s in count_queries.statements if s.lstrip().upper().startswith(("UPDATE", "INSERT"))]
    assert writes == []
    with time_machine.travel(NOW + dt.timedelta(minutes=3, seconds=1), tick=False):
        count_queries.statements.clear()
        assert client.get("/api/v1/me", headers=headers).status_code == 200
        writes = [s for s in count_queries.statements if s.lstrip().upper().startswith("UPDATE")]
        assert len(writes) == 1 and "auth_token" in writes[0]


# --- headers ----------------------------------------------------------------------------------------------------

def _assert_framing_refused(response) -> None:
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_every_answer_refuses_framing_and_sniffing(app, client):
    headers = signed_in_at(app, client, dt.datetime.now(dt.timezone.utc))
    for response in (client.get("/api/v1/me", headers=headers), client.get("/api/v1/me"),
                     client.get("/api/nowhere"), client.get("/api/openapi.json"), client.get("/fhir/R4/metadata"),
                     client.get("/api/v1/agenda/calendar.ics", headers=headers)):
        _assert_framing_refused(response)
        assert "Strict-Transport-Security" not in response.headers  # plain http: HSTS would be ignored anyway
    calendar = client.get("/api/v1/agenda/calendar.ics", headers=headers)
    assert calendar.mimetype == "text/calendar"
    policy = calendar.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy


def test_hsts_over_tls_and_behind_a_proxy_that_says_https(app, database_url):
    secure = app.test_client().get("/api/health", base_url="https://carnet.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=63072000")
    forwarded = {"X-Forwarded-Proto": "https"}
    # a client cannot claim https by itself …
    assert "Strict-Transport-Security" not in app.test_client().get("/api/health", headers=forwarded).headers
    # … a configured proxy can
    behind = make_app(database_url, PROXY_FIX_COUNT=1)
    try:
        response = behind.test_client().get("/api/health", headers=forwarded)
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        get_db(behind).engine.dispose()


def test_the_server_does_not_name_its_software(database_url, tmp_path):
    env = server_env(database_url, CARNET_INSTANCE_PATH=str(tmp_path / "instance"), CARNET_TASK_QUEUE="immediate")
    with LiveServer(env, tmp_path / "server.log") as server:
        response = requests.get(f"{server.url}/api/health", timeout=30)
    assert response.status_code == 200
    assert response.headers.get("Server") == "Carnet"
    _assert_framing_refused(response)


# --- active documents -------------------------------------------------------------------------------------------

ACTIVE = [
    ("text/html", b"<html><body><script>alert(document.cookie)</script></body></html>"),
    ("image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
    ("text/xml", b'<?xml version="1.0"?><?xml-stylesheet type="text/xsl" href="data:,x"?><ClinicalDocument/>'),
    ("application/xhtml+xml", b'<html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>'),
]


@pytest.mark.parametrize("mime, content", ACTIVE, ids=[m for m, _ in ACTIVE])
def test_a_document_declared_active_never_runs_in_a_browser(app, client, mime, content):
    created = create_patient(app)
    patient = bearer(activate(client, created)["access_token"])
    doctor = make_pro(app)
    r = post_bundle(client, doctor, provide_bundle(created.nir, [Doc(content, mime=mime, title="Compte rendu")]))
    assert r.status_code == 200, r.get_json()
    doc_id = next(e["response"]["location"].rsplit("/", 1)[-1] for e in r.get_json()["entry"]
                  if "DocumentReference/" in e["response"].get("location", ""))
    grant(app, created.patient_id, doctor)

    # ITI-68: the bytes and the declared type, as received (the professional's software reads them) …
    iti68 = client.get(f"/fhir/R4/Binary/{doc_id}", headers=doctor.headers())
    assert iti68.status_code == 200 and iti68.data == content and iti68.mimetype == mime
    # … the patient's app: the same bytes
    listed = client.get("/api/v1/record/documents", headers=patient).get_json()["items"]
    own = client.get(f"/api/v1/record/documents/{listed[0]['id']}/content", headers=patient)
    assert own.status_code == 200 and own.data == content
    for response in (iti68, own):
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        policy = response.headers["Content-Security-Policy"]
        assert "sandbox" in policy and "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    # as a FHIR Binary (JSON), the content is base64: inert
    as_json = client.get(f"/fhir/R4/Binary/{doc_id}", headers=doctor.headers(Accept="application/fhir+json"))
    assert base64.b64decode(as_json.get_json()["data"]) == content
