"""Web Push end to end, through a loopback push service that checks the VAPID signature and decrypts
each message with the device's private key, as a real device would."""
from __future__ import annotations

import datetime as dt
import json

import time_machine
from sqlalchemy import select

from backend.notifications.models import PushDelivery, PushSubscription
from backend.notifications.push import MAX_PAYLOAD, application_server_key
from tests.helpers import assert_problem, login
from tests.notifications_support import Device, configure, deliver, notify, signed_in, subscribe

STEP = dt.timedelta(seconds=30)


def test_a_document_notification_reaches_the_device_encrypted_signed_and_without_health_data(
        app, client, db, push_enabled, push_service, vapid_pem):
    device = signed_in(app, client, given="Camille", family="Martin")
    endpoint, subscriber = subscribe(client, device, push_service)

    public_id = notify(app, device.patient_id, "document", ref_type="document", ref_id="doc-4242-compte-rendu-IRM")

    [message] = push_service.wait_for(1)
    # the service verified the VAPID JWT (ES256, our public key, its own origin as audience)
    assert message.claims["aud"] == push_service.origin
    assert message.claims["sub"].startswith("mailto:")
    assert message.headers["content-encoding"] == "aes128gcm"
    assert int(message.headers["ttl"]) > 0
    # the device decrypts it: a kind and an opaque id, nothing else
    assert message.json() == {"v": 1, "kind": "document", "id": public_id}
    assert len(message.plaintext) <= MAX_PAYLOAD
    text = message.plaintext.decode()
    for secret in ("4242", "IRM", "compte", "Camille", "MARTIN", device.nir, "camille@example.org"):
        assert secret not in text
    # the ciphertext carries none of it either (the push service sees only this)
    assert b"document" not in message.body and public_id.encode() not in message.body
    # the app fetches the rest over its authenticated API
    r = client.get(f"/api/v1/notifications/{public_id}", headers=device.headers)
    assert r.status_code == 200 and r.get_json()["ref_id"] == "doc-4242-compte-rendu-IRM"
    delivery = db.scalar(select(PushDelivery))
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("sent", 1, 201)


def test_410_removes_the_subscription_and_the_centre_still_has_the_notification(
        app, client, db, push_enabled, push_service):
    device = signed_in(app, client)
    endpoint, _ = subscribe(client, device, push_service)
    push_service.answer(endpoint, 410)

    public_id = notify(app, device.patient_id, "message", ref_type="message", ref_id="m1")

    push_service.wait_for(1, status=410)
    assert db.scalar(select(PushSubscription.id)) is None
    assert db.scalar(select(PushDelivery.status)) == "gone"
    assert client.get("/api/v1/push/subscription", headers=device.headers).get_json()["registered"] is False
    # later notifications are not pushed to the dead endpoint
    notify(app, device.patient_id, "message", ref_type="message", ref_id="m2")
    assert len(push_service.messages(endpoint, status=None)) == 1
    items = client.get("/api/v1/notifications", headers=device.headers).get_json()["items"]
    assert [i["id"] for i in items][-1] == public_id


def test_404_also_removes_the_subscription(app, client, db, push_enabled, push_service):
    device = signed_in(app, client)
    endpoint, _ = subscribe(client, device, push_service)
    push_service.answer(endpoint, 404)
    notify(app, device.patient_id, "document")
    push_service.wait_for(1, status=404)
    assert db.scalar(select(PushSubscription.id)) is None


def test_a_failing_push_service_is_retried_with_backoff_then_delivered_once(app, client, db, push_enabled,
                                                                           push_service):
    device = signed_in(app, client)
    endpoint, _ = subscribe(client, device, push_service)
    push_service.answer(endpoint, 503)
    push_service.answer(endpoint, 429, retry_after=600)
    start = dt.datetime.now(dt.timezone.utc)

    notify(app, device.patient_id, "appointment")           # first attempt right after the commit: 503
    delivery = db.scalar(select(PushDelivery))
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("pending", 1, 503)
    first_delay = delivery.next_attempt_at - start
    assert dt.timedelta(seconds=55) <= first_delay <= dt.timedelta(seconds=70)

    assert deliver(app)["push_sent"] == 0                  # not due yet: nothing sent
    with time_machine.travel(start + dt.timedelta(seconds=61)):
        deliver(app)                                        # second attempt: 429 with Retry-After: 600
    db.expire_all()
    delivery = db.scalar(select(PushDelivery))
    assert (delivery.attempts, delivery.last_status) == (2, 429)
    assert delivery.next_attempt_at - (start + dt.timedelta(seconds=61)) >= dt.timedelta(seconds=600)

    with time_machine.travel(start + dt.timedelta(seconds=61 + 601)):
        report = deliver(app)
        assert report["push_sent"] == 1
        assert deliver(app)["push_sent"] == 0               # and never again
    db.expire_all()
    assert db.scalar(select(PushDelivery.status)) == "sent"
    assert len(push_service.messages(endpoint)) == 1


def test_gives_up_after_the_last_attempt(app, client, db, monkeypatch, push_enabled, push_service):
    configure(app, monkeypatch, push_max_attempts=2)
    device = signed_in(app, client)
    endpoint, _ = subscribe(client, device, push_service)
    push_service.answer(endpoint, 500, 500, 500)
    notify(app, device.patient_id, "document")
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)):
        deliver(app)
    db.expire_all()
    delivery = db.scalar(select(PushDelivery))
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert db.scalar(select(PushSubscription.id)) is not None  # a server error says nothing about the device


def test_a_push_signed_with_another_key_is_refused_by_the_service(app, client, db, monkeypatch, push_enabled,
                                                                  push_service):
    """The loopback service really checks the signature: another application server key fails (403-like)."""
    from backend.notifications.push import generate_vapid_private_pem
    device = signed_in(app, client)
    endpoint, _ = subscribe(client, device, push_service)
    configure(app, monkeypatch, vapid_private_key=generate_vapid_private_pem())
    notify(app, device.patient_id, "document")
    [refused] = push_service.wait_for(1, status=401)
    assert "another application server key" in refused.error
    assert db.scalar(select(PushDelivery.status)) == "failed"


def test_each_signed_in_device_gets_its_own_encrypted_copy(app, client, db, push_enabled, push_service):
    device = signed_in(app, client)
    phone_endpoint, phone = subscribe(client, device, push_service)
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + 2 * STEP):
        tablet = Device(device.patient_id, device.nir, login(client, device.nir, device.secret, device="Tablette"),
                        device.secret)
    tablet_endpoint, tablet_keys = subscribe(client, tablet, push_service)

    public_id = notify(app, device.patient_id, "emergency_access", ref_type="access", ref_id="a1")
    messages = push_service.wait_for(2)
    assert {m.token for m in messages} == {phone_endpoint.rsplit("/", 1)[1], tablet_endpoint.rsplit("/", 1)[1]}
    assert all(m.json() == {"v": 1, "kind": "emergency_access", "id": public_id} for m in messages)
    assert all(m.headers["urgency"] == "high" for m in messages)
    assert messages[0].body != messages[1].body


def test_a_signed_out_device_is_not_pushed_and_loses_its_subscription(app, client, db, push_enabled, push_service):
    device = signed_in(app, client)
    endpoint, _ = subscribe(client, device, push_service)
    assert client.post("/api/v1/auth/logout", headers=device.headers).status_code == 204
    assert db.scalar(select(PushSubscription.id)) is None  # gone with the session, at once
    notify(app, device.patient_id, "document")
    assert push_service.messages(status=None) == []
    report = deliver(app)
    assert report["subscriptions_forgotten"] == 0  # nothing left for the clean-up to find
    assert push_service.messages(status=None) == []


def test_preferences_switch_push_off_per_kind(app, client, db, push_enabled, push_service):
    device = signed_in(app, client)
    endpoint, _ = subscribe(client, device, push_service)
    r = client.put("/api/v1/notifications/preferences/document", json={"push": False}, headers=device.headers)
    assert r.status_code == 200 and r.get_json()["push"] is False
    notify(app, device.patient_id, "document")
    notify(app, device.patient_id, "professional_access")
    [message] = push_service.wait_for(1)
    assert message.json()["kind"] == "professional_access"
    assert len(push_service.messages(status=None)) == 1
    assert client.get("/api/v1/notifications/unread-count", headers=device.headers).get_json()["unread_count"] == 2


def test_subscription_lifecycle_and_validation(app, client, db, push_enabled, push_service, vapid_pem):
    device = signed_in(app, client)
    r = client.get("/api/v1/push/vapid-public-key")
    assert r.get_json() == {"public_key": application_server_key(vapid_pem)}
    assert client.get("/api/v1/push/subscription", headers=device.headers).get_json()["registered"] is False

    endpoint, subscriber = subscribe(client, device, push_service)
    body = client.get("/api/v1/push/subscription", headers=device.headers).get_json()
    assert body["registered"] is True and body["push_service"] == "127.0.0.1"
    # registering again (new endpoint from the push service) replaces this device's subscription
    subscribe(client, device, push_service)
    assert len(db.scalars(select(PushSubscription)).all()) == 1

    bad = [({"endpoint": "ftp://127.0.0.1/x", "keys": {"p256dh": subscriber.p256dh, "auth": subscriber.auth}},
            "endpoint"),
           ({"endpoint": endpoint, "keys": {"p256dh": "AAAA", "auth": subscriber.auth}}, "keys.p256dh"),
           ({"endpoint": endpoint, "keys": {"p256dh": subscriber.p256dh, "auth": "c2hvcnQ"}}, "keys.auth")]
    for payload, field in bad:
        body = assert_problem(client.put("/api/v1/push/subscription", json=payload, headers=device.headers), 422,
                              "push_subscription_invalid")
        assert body["errors"][0]["field"] == field
        assert "invalide" in body["detail"] or "https" in body["detail"]

    assert client.delete("/api/v1/push/subscription", headers=device.headers).status_code == 204
    assert_problem(client.delete("/api/v1/push/subscription", headers=device.headers), 404,
                   "push_subscription_not_found")
    valid = {"endpoint": endpoint, "keys": {"p256dh": subscriber.p256dh, "auth": subscriber.auth}}
    assert client.put("/api/v1/push/subscription", json=valid).status_code == 401


def test_plain_http_endpoints_are_refused_unless_configured(app, client, monkeypatch, vapid_pem):
    configure(app, monkeypatch, vapid_private_key=vapid_pem, push_allow_http=False)
    device = signed_in(app, client)
    from backend.notifications.loopback import PushSubscriber

    s = PushSubscriber()
    body = assert_problem(client.put("/api/v1/push/subscription", headers=device.headers, json={
        "endpoint": "http://127.0.0.1:9/push/x", "keys": {"p256dh": s.p256dh, "auth": s.auth}}), 422)
    assert "https" in body["detail"]


def test_without_vapid_keys_push_is_unavailable_and_says_so(app, client):
    device = signed_in(app, client)
    body = assert_problem(client.get("/api/v1/push/vapid-public-key"), 503, "push_unavailable")
    assert "application" in body["detail"]
    assert_problem(client.put("/api/v1/push/subscription", headers=device.headers,
                              json={"endpoint": "https://push.example/x", "keys": {"p256dh": "a", "auth": "b"}}), 503)


def test_a_future_reminder_is_pushed_only_when_due(app, client, db, push_enabled, push_service):
    device = signed_in(app, client)
    subscribe(client, device, push_service)
    tomorrow = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    notify(app, device.patient_id, "appointment", ref_type="appointment", ref_id="rdv-1", dedupe_key="rdv-1:24h",
           now=tomorrow)
    assert deliver(app)["dispatched"] == 0
    assert client.get("/api/v1/notifications", headers=device.headers).get_json()["items"] == []
    with time_machine.travel(tomorrow + dt.timedelta(seconds=1)):
        assert deliver(app)["push_sent"] == 1
    [message] = push_service.messages()
    assert message.json()["kind"] == "appointment"
    assert json.loads(message.plaintext).keys() == {"v", "kind", "id"}


def test_endpoints_inside_our_network_are_refused(app, client, monkeypatch, vapid_pem):
    """A subscription is a URL our workers POST to: it must not reach internal addresses (SSRF)."""
    from backend.notifications.loopback import PushSubscriber
    device = signed_in(app, client)
    s = PushSubscriber()
    for allow_http in (False, True):
        configure(app, monkeypatch, vapid_private_key=vapid_pem, push_allow_http=allow_http)
        for endpoint in ("https://10.0.0.7/push/x", "https://169.254.169.254/latest/meta-data",
                         "https://192.168.1.1/p", "https://[fd00::1]/p", "https://0.0.0.0/p"):
            body = assert_problem(client.put("/api/v1/push/subscription", headers=device.headers, json={
                "endpoint": endpoint, "keys": {"p256dh": s.p256dh, "auth": s.auth}}), 422,
                "push_subscription_invalid")
            assert "internet" in body["detail"], endpoint
    configure(app, monkeypatch, vapid_private_key=vapid_pem, push_allow_http=False)
    body = assert_problem(client.put("/api/v1/push/subscription", headers=device.headers, json={
        "endpoint": "https://127.0.0.1:8443/p", "keys": {"p256dh": s.p256dh, "auth": s.auth}}), 422)
    assert "internet" in body["detail"]


def test_a_subscription_that_now_points_inside_is_not_pushed(app, client, db, monkeypatch, push_enabled,
                                                            push_service):
    device = signed_in(app, client)
    endpoint, _ = subscribe(client, device, push_service)
    configure(app, monkeypatch, push_allow_http=False)  # as if its address had turned internal since
    notify(app, device.patient_id, "document")
    assert push_service.messages(status=None) == []
    assert db.scalar(select(PushDelivery.status)) == "failed"
