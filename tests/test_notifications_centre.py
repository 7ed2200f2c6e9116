"""The in-app notification centre and the preferences per kind, through the API."""
from __future__ import annotations

import datetime as dt

import time_machine
from sqlalchemy import select

from backend.audit.models import AuditEntry
from backend.db import get_session
from backend.notifications import service as notifications
from backend.notifications.models import Notification
from tests.helpers import NIR_LOUIS, assert_problem
from tests.notifications_support import signed_in


def notify_many(app, patient_id, kinds, start=None):
    start = start or dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    ids = []
    with app.app_context():
        session = get_session()
        for i, kind in enumerate(kinds):
            ids.append(notifications.notify(session, patient_id, kind, ref_type=kind, ref_id=f"r{i}",
                                            now=start + dt.timedelta(minutes=i)).public_id)
        session.commit()
    return ids


def test_centre_lists_newest_first_paginates_and_counts_unread(app, client):
    device = signed_in(app, client)
    ids = notify_many(app, device.patient_id, ["message", "document", "appointment", "screening", "service"])

    r = client.get("/api/v1/notifications?limit=2", headers=device.headers)
    assert r.status_code == 200
    page = r.get_json()
    assert [i["id"] for i in page["items"]] == [ids[4], ids[3]]
    assert page["unread_count"] == 5
    seen = [i["id"] for i in page["items"]]
    while page["next_cursor"]:
        page = client.get(f"/api/v1/notifications?limit=2&cursor={page['next_cursor']}",
                          headers=device.headers).get_json()
        seen += [i["id"] for i in page["items"]]
    assert seen == ids[::-1]

    first = client.get("/api/v1/notifications?limit=5", headers=device.headers).get_json()["items"][-1]
    assert first["kind"] == "message" and first["title"] == "Nouveau message"
    assert first["body"] == "Vous avez reçu un nouveau message dans votre messagerie de santé."
    assert first["read"] is False and first["read_at"] is None


def test_mark_read_one_and_all(app, client):
    device = signed_in(app, client)
    ids = notify_many(app, device.patient_id, ["message", "document", "document"])
    r = client.post(f"/api/v1/notifications/{ids[0]}/read", headers=device.headers)
    assert r.status_code == 200 and r.get_json()["read"] is True
    read_at = r.get_json()["read_at"]
    assert client.post(f"/api/v1/notifications/{ids[0]}/read", headers=device.headers).get_json()["read_at"] == read_at
    assert client.get("/api/v1/notifications/unread-count", headers=device.headers).get_json() == {"unread_count": 2}
    unread = client.get("/api/v1/notifications?unread=true", headers=device.headers).get_json()["items"]
    assert [i["id"] for i in unread] == [ids[2], ids[1]]

    r = client.post("/api/v1/notifications/read-all", headers=device.headers)
    assert r.get_json() == {"marked": 2, "unread_count": 0}
    assert client.get("/api/v1/notifications/unread-count", headers=device.headers).get_json() == {"unread_count": 0}


def test_another_patients_notification_does_not_exist_for_me(app, client):
    camille = signed_in(app, client)
    louis = signed_in(app, client, nir=NIR_LOUIS, birth_date="1990-02-15", email="louis@example.org",
                      given="Louis", family="Durand", sex="M")
    [theirs] = notify_many(app, louis.patient_id, ["document"])
    body = assert_problem(client.get(f"/api/v1/notifications/{theirs}", headers=camille.headers), 404,
                          "notification_not_found")
    assert body["detail"] == "Cette notification n'existe pas."
    assert_problem(client.post(f"/api/v1/notifications/{theirs}/read", headers=camille.headers), 404)
    assert client.post("/api/v1/notifications/read-all", headers=camille.headers).get_json()["marked"] == 0
    assert client.get(f"/api/v1/notifications/{theirs}", headers=louis.headers).status_code == 200


def test_texts_in_english_on_request_and_generic(app, client):
    device = signed_in(app, client)
    notify_many(app, device.patient_id, ["emergency_access"])
    item = client.get("/api/v1/notifications", headers={**device.headers, "Accept-Language": "en"}
                      ).get_json()["items"][0]
    assert item["title"] == "Emergency access to your profile"
    assert "access history" in item["body"]


def test_every_kind_has_french_and_english_texts():
    from backend.i18n import MESSAGES

    for kind in notifications.KINDS:
        for code in (f"notif_title_{kind}", f"notif_body_{kind}", f"notif_kind_{kind}"):
            assert MESSAGES[code]["fr"] and MESSAGES[code]["en"], code


def test_the_centre_needs_both_factors(app, client):
    assert_problem(client.get("/api/v1/notifications"), 401, "unauthorized")
    assert_problem(client.get("/api/v1/notifications/preferences"), 401)


def test_listing_costs_the_same_queries_whatever_the_number(app, client, count_queries):
    device = signed_in(app, client)
    notify_many(app, device.patient_id, ["document"] * 2)
    client.get("/api/v1/notifications", headers=device.headers)  # the device's last use is recorded once
    count_queries.statements.clear()
    client.get("/api/v1/notifications", headers=device.headers)
    few = count_queries.count
    notify_many(app, device.patient_id, ["message"] * 30)
    count_queries.statements.clear()
    client.get("/api/v1/notifications?limit=50", headers=device.headers)
    assert count_queries.count == few


def test_a_forged_cursor_is_refused(app, client):
    device = signed_in(app, client)
    assert_problem(client.get("/api/v1/notifications?cursor=bm9wZQ", headers=device.headers), 422)


# --- preferences ------------------------------------------------------------------------------------

def test_preferences_list_every_kind_and_which_are_mandatory(app, client):
    device = signed_in(app, client)
    items = client.get("/api/v1/notifications/preferences", headers=device.headers).get_json()["items"]
    by_kind = {i["kind"]: i for i in items}
    assert list(by_kind) == list(notifications.KINDS)
    assert all(i["push"] and i["email"] for i in items)
    assert {k for k, i in by_kind.items() if not i["switchable"]} == {"professional_access", "emergency_access",
                                                                      "account"}
    assert by_kind["screening"]["label"] == "Prévention et dépistage"


def test_switching_a_kind_off_and_on_is_kept_and_audited(app, client, db):
    device = signed_in(app, client)
    r = client.put("/api/v1/notifications/preferences/message", json={"email": False}, headers=device.headers)
    assert r.status_code == 200
    assert r.get_json() == {"kind": "message", "label": "Messages", "push": True, "email": False, "switchable": True}
    r = client.put("/api/v1/notifications/preferences/message", json={"push": False}, headers=device.headers)
    assert (r.get_json()["push"], r.get_json()["email"]) == (False, False)
    items = client.get("/api/v1/notifications/preferences", headers=device.headers).get_json()["items"]
    assert {i["kind"]: (i["push"], i["email"]) for i in items}["message"] == (False, False)
    details = db.scalars(select(AuditEntry.details).where(AuditEntry.action == "notifications.preferences_changed")
                         ).all()
    assert len(details) == 2


def test_professional_and_emergency_access_cannot_be_switched_off(app, client, db):
    device = signed_in(app, client)
    for kind in ("professional_access", "emergency_access"):
        body = assert_problem(client.put(f"/api/v1/notifications/preferences/{kind}", json={"push": False},
                                         headers=device.headers), 422, "notification_kind_mandatory")
        assert "ne peuvent pas être désactivées" in body["detail"]
        assert body["errors"][0]["field"] == "push"
    body = assert_problem(client.put("/api/v1/notifications/preferences/emergency_access", json={"email": False},
                                     headers={**device.headers, "Accept-Language": "en"}), 422)
    assert body["detail"].startswith("“Emergency access” notifications cannot be switched off")
    assert client.put("/api/v1/notifications/preferences/emergency_access", json={"push": True},
                      headers=device.headers).status_code == 200
    items = client.get("/api/v1/notifications/preferences", headers=device.headers).get_json()["items"]
    assert all(i["push"] and i["email"] for i in items if not i["switchable"])


def test_unknown_kind_and_bad_body(app, client):
    device = signed_in(app, client)
    assert_problem(client.put("/api/v1/notifications/preferences/weather", json={"push": False},
                              headers=device.headers), 404, "notification_kind_unknown")
    assert_problem(client.put("/api/v1/notifications/preferences/message", json={"push": "maybe"},
                              headers=device.headers), 422, "invalid_request")
    assert_problem(client.put("/api/v1/notifications/preferences/message", json={"sms": True},
                              headers=device.headers), 422, "invalid_request")


def test_a_reminder_written_ahead_appears_when_due(app, client, db):
    device = signed_in(app, client)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)
    notify_many(app, device.patient_id, ["appointment"], start=later)
    assert client.get("/api/v1/notifications/unread-count", headers=device.headers).get_json()["unread_count"] == 0
    with time_machine.travel(later + dt.timedelta(minutes=1)):
        # tokens are valid for 30 days: the same device reads it two days later
        assert client.get("/api/v1/notifications/unread-count",
                          headers=device.headers).get_json()["unread_count"] == 1


def test_notify_is_idempotent_with_a_dedupe_key_and_rejects_unknown_kinds(app, db):
    import pytest

    from tests.helpers import create_patient

    created = create_patient(app)
    with app.app_context():
        session = get_session()
        a = notifications.notify(session, created.patient_id, "appointment", dedupe_key="rdv:1:24h")
        b = notifications.notify(session, created.patient_id, "appointment", dedupe_key="rdv:1:24h")
        assert a.id == b.id
        with pytest.raises(ValueError):
            notifications.notify(session, created.patient_id, "weather")
        session.commit()
    assert len(db.scalars(select(Notification)).all()) == 1


def test_texts_follow_the_kind_of_reference_and_fall_back_to_the_kind():
    from backend.notifications.messages import texts

    assert texts("service", "consent_renewal", "fr")[1].startswith("L'autorisation donnée à un service connecté")
    assert texts("service", "service_dereferenced", "en")[1].startswith("A service connected to your profile is no")
    assert texts("service", "something_new", "fr") == texts("service", None, "fr")
