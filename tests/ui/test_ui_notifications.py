"""Notifications in the real app under Xvfb: the centre, the settings per kind, and push on this device,
against a live backend that has VAPID keys, pushing to a loopback Web Push service. The message the
service receives is decrypted with the keys the app made on the device.

The backend here is the app itself served from a thread with push configured (the suite's shared live
backend has no VAPID key); records are written by the backend's own `notify()`, as a feature would.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass

import pytest

from mobile.api import ApiError, CarnetClient
from tests.ui.conftest import SECRET_KEY, TOTP_PERIOD, Patient, fresh_totp_code, valid_nir

pytestmark = pytest.mark.ui


@dataclass
class PushBackend:
    url: str
    app: object
    push_service: object


@pytest.fixture(scope="module")
def push_backend(tmp_path_factory):
    """The backend app with a VAPID key and plain-http endpoints allowed (the loopback push service), served
    from a thread on 127.0.0.1 with inline tasks; the test writes notification records through it too."""
    from werkzeug.serving import make_server

    from backend import create_app
    from backend import migrate as migrations
    from backend.notifications.loopback import LoopbackPushService
    from backend.notifications.push import application_server_key, generate_vapid_private_pem

    workdir = tmp_path_factory.mktemp("push_backend")
    pem = generate_vapid_private_pem()
    url = f"sqlite:///{workdir / 'carnet.db'}"
    migrations.upgrade(url)
    app = create_app({"TESTING": True, "SECRET_KEY": SECRET_KEY, "DATABASE_URL": url, "TASK_QUEUE": "immediate",
                      "VAPID_PRIVATE_KEY": pem, "PUSH_ALLOW_HTTP": True})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="push-backend", daemon=True)
    thread.start()
    service = LoopbackPushService(application_server_key(pem)).start()
    try:
        yield PushBackend(f"http://127.0.0.1:{server.server_port}", app, service)
    finally:
        service.stop()
        server.shutdown()
        thread.join(timeout=10)


def create_patient(backend: PushBackend, serial: int) -> Patient:
    from backend.accounts import service as accounts
    from backend.db import get_session
    from backend.identity import InsTraits

    nir = valid_nir(serial)
    with backend.app.app_context():
        session = get_session()
        traits = InsTraits(nir=nir, birth_family_name="Moreau", given_names="Inès",
                           birth_date=dt.date(1984, 7, 1 + serial % 28), sex="F")
        patient, code = accounts.create_patient(session, backend.app.extensions["carnet.account_settings"], traits)
        session.commit()
        return Patient(nir=nir, birth_date=traits.birth_date.isoformat(), given_name="Inès", family_name="Moreau",
                       activation_code=code, patient_id=patient.id)


def notify(backend, patient_id, kind, **kw) -> str:
    from backend.db import get_session
    from backend.notifications.service import notify as record

    with backend.app.app_context():
        session = get_session()
        public_id = record(session, patient_id, kind, **kw).public_id
        session.commit()
        return public_id


@pytest.fixture
def signed_in(ui, push_backend):
    """An activated patient of the push backend; the app's client holds their access token."""
    import pyotp

    patient = create_patient(push_backend, serial=301)
    with CarnetClient(push_backend.url) as client:
        client.activate(patient.nir, patient.birth_date, patient.activation_code, patient.password)
        patient.totp_secret = client.enrol_totp()["secret"]
        now = time.time()
        try:
            client.confirm_enrolment(pyotp.TOTP(patient.totp_secret).at(now - TOTP_PERIOD))
            patient.last_totp_step = int(now // TOTP_PERIOD) - 1
        except ApiError:
            client.confirm_enrolment(fresh_totp_code(patient))
    original = ui.app.client
    ui.app.client = CarnetClient(push_backend.url, language="fr")
    ui.app.client.login(patient.nir, patient.password)
    ui.app.client.verify_otp(fresh_totp_code(patient))
    ui.app.signed_in = True
    ui.app.given_name = patient.given_name
    yield patient
    ui.app.client.close()
    ui.app.client = original


def screens():
    """The screens' classes, imported once the app (and its window) exist: importing Kivy widgets at
    collection time would set Kivy up before the fixtures configure it."""
    from mobile.screens.notification_common import NotificationRow
    from mobile.screens.notification_push import NO_DISTRIBUTOR
    from mobile.screens.notification_settings import PreferenceRow

    return NotificationRow, PreferenceRow, NO_DISTRIBUTOR


def rows(container, kind):
    return [w for w in reversed(container.children) if isinstance(w, kind)]


def test_centre_settings_and_push_on_this_device(ui, push_backend, signed_in, tmp_path, monkeypatch):
    NotificationRow, PreferenceRow, NO_DISTRIBUTOR = screens()
    service = push_backend.push_service
    pid = signed_in.patient_id
    hour_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    notify(push_backend, pid, "document", ref_type="document", ref_id="doc-1", now=hour_ago)
    notify(push_backend, pid, "message", ref_type="message", ref_id="msg-1", now=hour_ago + dt.timedelta(minutes=5))
    notify(push_backend, pid, "emergency_access", ref_type="access", ref_id="acc-1")

    # the centre: newest first, unread marked; tapping one reads it
    centre = ui.app.show("notifications")
    ui.wait_for_screen("notifications")
    ui.wait_until(lambda: centre.loaded, "the centre is loaded")
    ui.settle()
    listed = rows(centre.ids.entries, NotificationRow)
    assert [r.item["kind"] for r in listed] == ["emergency_access", "message", "document"]
    assert listed[0].item["title"] == "Accès en urgence à votre profil" and all(r.unread for r in listed)
    assert centre.summary == "3 non lue(s)"
    ui.screenshot("notifications-01-centre")
    ui.tap(listed[0])
    ui.wait_for_screen("history")  # an emergency access opens the access history
    ui.app.back("notifications")
    ui.wait_for_screen("notifications")
    ui.wait_until(lambda: centre.loaded, "the centre is loaded again")
    ui.settle()
    listed = rows(centre.ids.entries, NotificationRow)
    assert not listed[0].unread and centre.summary == "2 non lue(s)"
    ui.screenshot("notifications-02-one-read")

    # settings: every kind, access kinds locked on; switch documents off on the phone
    ui.tap(centre.ids.settings)
    settings = ui.wait_for_screen("notification_settings")
    ui.wait_until(lambda: settings.loaded, "the settings are loaded")
    ui.settle()
    by_kind = {r.preference["kind"]: r for r in rows(settings.ids.kinds, PreferenceRow)}
    assert list(by_kind) == ["message", "document", "appointment", "service", "screening", "professional_access",
                             "emergency_access", "account"]
    assert by_kind["emergency_access"].ids.push.locked and by_kind["emergency_access"].note
    assert settings.device_status == "Notifications désactivées sur cet appareil."
    ui.screenshot("notifications-03-settings")
    ui.tap(by_kind["document"].ids.push.ids.switch)
    ui.settle()
    assert by_kind["document"].preference["push"] is False and by_kind["document"].preference["email"] is True
    assert by_kind["document"].ids.push.ids.switch.active is False  # what the patient sees
    assert settings.notice == "Préférence enregistrée."
    ui.screenshot("notifications-04-document-push-off")
    ui.tap(by_kind["emergency_access"].ids.push.ids.switch)  # locked: nothing is sent, it stays on
    ui.settle()
    assert by_kind["emergency_access"].preference["push"] is True and settings.error == ""
    ui.screenshot("notifications-05-always-on")

    # push on this device: without a distributor, the app says what to do; with one, it registers
    ui.tap(settings.ids.manage_push)
    push = ui.wait_for_screen("notification_push")
    ui.wait_until(lambda: push.loaded, "the device's push state is known")
    ui.settle()
    assert push.registered is False
    monkeypatch.delenv("CARNET_PUSH_ENDPOINT", raising=False)
    ui.tap(push.ids.enable)
    ui.settle()
    assert push.error == NO_DISTRIBUTOR and push.registered is False
    ui.screenshot("notifications-06-no-distributor")

    endpoint = service.add_endpoint()  # the device's keys are the app's own, made on the "phone"
    keys_file = tmp_path / "push_keys.json"
    monkeypatch.setenv("CARNET_PUSH_ENDPOINT", endpoint)
    monkeypatch.setenv("CARNET_PUSH_KEYS", str(keys_file))
    ui.tap(push.ids.enable)
    ui.settle()
    assert push.registered is True and push.status == "Activées (service : 127.0.0.1)."
    assert keys_file.stat().st_mode & 0o077 == 0
    ui.screenshot("notifications-07-push-on")

    # a new message is pushed to the device, readable only with its keys, with no health data in it
    from mobile.api.notifications import DeviceKeys

    public_id = notify(push_backend, pid, "message", ref_type="message", ref_id="msg-2-resultats-biopsie")
    notify(push_backend, pid, "document", ref_type="document", ref_id="doc-2")  # documents: not on the phone
    [message] = service.wait_for(1)
    assert message.claims["aud"] == service.origin
    payload = DeviceKeys.load_or_create(keys_file).decrypt(message.body)
    assert payload == {"v": 1, "kind": "message", "id": public_id}
    assert b"biopsie" not in message.body
    time.sleep(0.2)
    assert len(service.messages(endpoint)) == 1

    # back to the centre: the new ones are there; mark everything read
    ui.app.back("notifications")
    ui.wait_for_screen("notifications")
    ui.wait_until(lambda: len(rows(centre.ids.entries, NotificationRow)) == 5, "the new notifications are listed")
    ui.settle()
    assert centre.summary == "4 non lue(s)"
    ui.tap(centre.ids.mark_all)
    ui.settle()
    assert centre.summary == "Tout est lu." and not any(r.unread for r in rows(centre.ids.entries, NotificationRow))
    ui.screenshot("notifications-08-all-read")

    # and push off again on this device
    ui.app.show("notification_push")
    ui.wait_for_screen("notification_push")
    ui.wait_until(lambda: push.loaded and push.registered, "the device's push state is known")
    ui.settle()
    ui.tap(push.ids.disable)
    ui.settle()
    assert push.registered is False and "Vous les retrouvez dans l'application" in push.notice
    ui.screenshot("notifications-09-push-off")
