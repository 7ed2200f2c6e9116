"""Everything derived from an account dies where it must (README "Security choices", the table of events):
the device sessions, the calendar feed's secret link, the push subscriptions, the connected services' OAuth
consents and tokens. And OAuth's own rules: a replayed code revokes every token it led to, refreshed ones
included (RFC 6749 §4.1.2, §10.5); a rotated refresh token presented again does too (RFC 9700 §4.14.2); of
concurrent exchanges of one code or refreshes of one token, one wins.
"""
from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, select

from backend.accounts.hooks import ACCOUNT_EVENTS, event_handlers
from backend.catalog.models import AccessToken, CatalogConnection
from backend.notifications.models import PushSubscription
from tests.catalog_support import authorize, exchange, load, service_spec
from tests.helpers import STRONG_PASSWORD, assert_problem, bearer, login
from tests.notifications_support import signed_in, subscribe

FHIR = "/api/service/v1/fhir"
URI = "https://journal.example.fr/cb"
SCOPES = ["measures.glucose.read"]
STEP = dt.timedelta(seconds=30)

# The table of README "Security choices": which derived credential ends with which event.
EXPECTED = {
    "closed": {"agenda.calendar_feed", "catalog.connections", "notifications.push_subscriptions"},
    "opposed": {"agenda.calendar_feed", "catalog.connections", "notifications.push_subscriptions"},
    "password_changed": {"agenda.calendar_feed", "notifications.push_subscriptions"},
    "device_revoked": {"notifications.push_subscriptions"},
    "signed_out": {"notifications.push_subscriptions"},
}


def test_the_table_of_what_dies_with_what_is_the_code(app):
    assert set(ACCOUNT_EVENTS) == set(EXPECTED)
    assert {event: set(event_handlers(event)) for event in ACCOUNT_EVENTS} == EXPECTED


# --- a patient with everything an account can derive ------------------------------------------------------

class Everything:
    def __init__(self, app: Any, client: Any, push_service: Any) -> None:
        load(app, [service_spec("journal", "Journal", permissions=SCOPES, redirect=URI)])
        self.client = client
        self.device = signed_in(app, client)
        self.phone = self.device.headers
        with time_machine.travel(dt.datetime.now(dt.timezone.utc) + 2 * STEP):
            self.tablet = bearer(login(client, self.device.nir, self.device.secret, device="Tablette"))
        subscribe(client, self.device, push_service)
        tablet_device = type(self.device)(self.device.patient_id, self.device.nir,
                                          self.tablet["Authorization"].split()[1], self.device.secret)
        subscribe(client, tablet_device, push_service)
        r = client.post("/api/v1/agenda/feed", json={}, headers=self.phone)
        assert r.status_code == 201, r.get_json()
        self.feed = "/" + r.get_json()["url"].split("/", 3)[3]
        code, verifier = authorize(client, self.phone, "journal-client", SCOPES)
        r = exchange(client, "journal-client", code, verifier, redirect_uri=URI)
        assert r.status_code == 200, r.get_json()
        self.service_token = r.get_json()

    def feed_works(self) -> bool:
        return self.client.get(self.feed).status_code == 200

    def service_works(self) -> bool:
        headers = {"Authorization": f"Bearer {self.service_token['access_token']}", "Accept": "application/fhir+json"}
        return self.client.get(f"{FHIR}/Observation", headers=headers).status_code == 200

    def refresh_works(self) -> bool:
        r = self.client.post("/oauth/token", data={"grant_type": "refresh_token", "client_id": "journal-client",
                                                   "refresh_token": self.service_token["refresh_token"]})
        if r.status_code == 200:
            self.service_token = r.get_json()
        return r.status_code == 200

    def session_refusal(self, headers: dict[str, str]) -> str | None:
        r = self.client.get("/api/v1/me", headers=headers)
        return None if r.status_code == 200 else r.get_json()["code"]


def push_subscriptions(db: Any) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(PushSubscription))


@pytest.fixture
def everything(app, client, push_enabled, push_service) -> Everything:
    world = Everything(app, client, push_service)
    assert world.feed_works() and world.service_works()
    return world


def test_closing_the_account_ends_every_derived_credential(client, db, everything):
    r = client.post("/api/v1/account/close", json={"password": STRONG_PASSWORD, "request_deletion": False},
                    headers=everything.phone)
    assert r.status_code == 200, r.get_json()
    assert everything.session_refusal(everything.phone) == "session_revoked"
    assert everything.session_refusal(everything.tablet) == "session_revoked"
    assert_problem(client.get(everything.feed), 404, "agenda_feed_not_found")
    assert not everything.service_works()
    assert not everything.refresh_works()
    assert push_subscriptions(db) == 0
    assert db.scalar(select(CatalogConnection.revoked_by)) == "account"
    assert db.scalar(select(func.count()).select_from(AccessToken).where(AccessToken.revoked_at.is_(None))) == 0


def test_a_reactivated_account_gets_none_of_them_back(client, db, everything):
    client.post("/api/v1/account/close", json={"password": STRONG_PASSWORD, "request_deletion": True},
                headers=everything.phone)
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + 4 * STEP):
        mfa = client.post("/api/v1/auth/login", json={"nir": everything.device.nir, "password": STRONG_PASSWORD})
        from tests.helpers import next_totp

        r = client.post("/api/v1/account/reactivate", json={"code": next_totp(everything.device.secret)},
                        headers=bearer(mfa.get_json()["token"]))
        assert r.status_code == 200, r.get_json()
        assert everything.session_refusal(bearer(r.get_json()["access_token"])) is None
        assert not everything.feed_works() and not everything.service_works() and not everything.refresh_works()
        assert everything.session_refusal(everything.tablet) == "session_revoked"


def test_the_feed_of_a_closed_account_serves_nothing_even_if_its_link_survived(app, client, db, everything):
    """Defence in depth: the feed answers only for an active account, whatever became of the link."""
    from backend.accounts.models import AccountState, Patient

    db.execute(Patient.__table__.update().values(state=AccountState.CLOSED.value))
    db.commit()
    assert_problem(client.get(everything.feed), 404, "agenda_feed_not_found")
    assert not everything.service_works()  # nor does the service API


def test_a_password_change_ends_the_other_sessions_their_pushes_and_the_feed(client, db, everything):
    r = client.post("/api/v1/account/password", json={"current_password": STRONG_PASSWORD,
                                                      "new_password": "Autre-Chemin-77?"}, headers=everything.phone)
    assert r.status_code == 200 and r.get_json()["sessions_revoked"] == 1
    assert everything.session_refusal(everything.phone) is None
    assert everything.session_refusal(everything.tablet) == "session_revoked"
    assert push_subscriptions(db) == 1  # the phone's; the tablet's went with its session
    assert_problem(client.get(everything.feed), 404, "agenda_feed_not_found")
    # a service the patient connected is a consent of its own, revocable in the app: it goes on
    assert everything.service_works() and everything.refresh_works()


def test_signing_a_device_out_ends_its_session_and_its_pushes_only(client, db, everything):
    devices = client.get("/api/v1/account/devices", headers=everything.phone).get_json()["items"]
    tablet_id = next(d["id"] for d in devices if d["device_name"] == "Tablette")
    assert client.delete(f"/api/v1/account/devices/{tablet_id}", headers=everything.phone).status_code == 204
    assert everything.session_refusal(everything.tablet) == "session_revoked"
    assert push_subscriptions(db) == 1
    assert everything.feed_works() and everything.service_works()
    assert client.post("/api/v1/auth/logout", headers=everything.phone).status_code == 204
    assert push_subscriptions(db) == 0
    assert everything.feed_works()  # the link is not a device's: it ends with the account or a password change


def test_opposing_ends_whatever_a_precreated_account_holds(app, client, db):
    """An account being opposed has no session yet; the same revocation runs, and its record is deleted."""
    from backend.accounts.models import AuthToken
    from tests.helpers import create_patient

    created = create_patient(app)
    r = client.post("/api/v1/opposition", json={"nir": created.nir, "birth_date": created.birth_date,
                                                "activation_code": created.code})
    assert r.status_code == 200 and r.get_json()["state"] == "opposed"
    assert db.scalar(select(func.count()).select_from(AuthToken).where(AuthToken.revoked_at.is_(None))) == 0


# --- OAuth: a code's whole line ------------------------------------------------------------------------------

def _refresh(client: Any, refresh_token: str) -> Any:
    return client.post("/oauth/token", data={"grant_type": "refresh_token", "client_id": "journal-client",
                                             "refresh_token": refresh_token})


def _reads(client: Any, access_token: str) -> int:
    return client.get(f"{FHIR}/Observation", headers={"Authorization": f"Bearer {access_token}",
                                                      "Accept": "application/fhir+json"}).status_code


@pytest.fixture
def connected(app, client) -> dict[str, Any]:
    from tests.catalog_support import patient_session

    load(app, [service_spec("journal", "Journal", permissions=SCOPES, redirect=URI)])
    _, headers = patient_session(app, client)
    return {"headers": headers}


def test_a_replayed_code_revokes_the_tokens_refreshed_from_it(client, connected):
    code, verifier = authorize(client, connected["headers"], "journal-client", SCOPES)
    first = exchange(client, "journal-client", code, verifier, redirect_uri=URI).get_json()
    second = _refresh(client, first["refresh_token"]).get_json()
    third = _refresh(client, second["refresh_token"]).get_json()
    assert _reads(client, third["access_token"]) == 200
    replay = exchange(client, "journal-client", code, verifier, redirect_uri=URI)
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    assert _reads(client, third["access_token"]) == 401
    assert _refresh(client, third["refresh_token"]).status_code == 400


def test_a_rotated_refresh_token_presented_again_revokes_its_line(client, connected):
    code, verifier = authorize(client, connected["headers"], "journal-client", SCOPES)
    first = exchange(client, "journal-client", code, verifier, redirect_uri=URI).get_json()
    second = _refresh(client, first["refresh_token"]).get_json()
    assert _reads(client, second["access_token"]) == 200
    assert _refresh(client, first["refresh_token"]).status_code == 400  # copied, then replayed
    assert _reads(client, second["access_token"]) == 401
    assert _refresh(client, second["refresh_token"]).status_code == 400
    # another authorization is another line: not touched
    code, verifier = authorize(client, connected["headers"], "journal-client", SCOPES)
    other = exchange(client, "journal-client", code, verifier, redirect_uri=URI).get_json()
    assert _reads(client, other["access_token"]) == 200


def _at_once(app: Any, calls: list[Any]) -> list[Any]:
    gate = threading.Barrier(len(calls))

    def run(call: Any) -> Any:
        client = app.test_client()
        gate.wait(timeout=30)
        return call(client)

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


ROUNDS = 10


def test_concurrent_exchanges_of_one_code_and_refreshes_of_one_token_give_one_each(app, client, connected):
    """Six at once: one answer with tokens, five refusals. (A refusal that comes after the winner's commit sees
    a code, or a refresh token, already used: a replay, which also revokes the winner's line.)"""
    won_codes = won_refreshes = 0
    for _ in range(ROUNDS):
        code, verifier = authorize(client, connected["headers"], "journal-client", SCOPES)
        answers = _at_once(app, [lambda c: exchange(c, "journal-client", code, verifier, redirect_uri=URI)] * 6)
        assert [r.status_code for r in answers].count(200) == 1, [r.status_code for r in answers]
        won_codes += 1
        code, verifier = authorize(client, connected["headers"], "journal-client", SCOPES)
        token = exchange(client, "journal-client", code, verifier, redirect_uri=URI).get_json()
        refreshed = _at_once(app, [lambda c: _refresh(c, token["refresh_token"])] * 6)
        assert [r.status_code for r in refreshed].count(200) == 1, [(r.status_code, r.get_json()) for r in refreshed]
        won_refreshes += 1
    print(f"\nOAuth: {ROUNDS} rounds of 6 concurrent exchanges of one code and 6 concurrent refreshes of one token: "
          f"{won_codes} exchanges and {won_refreshes} refreshes succeeded, one per round")
