"""The app's notifications client (mobile/api/notifications.py, no Kivy) against the real backend served on
127.0.0.1: the centre, preferences, and push registration with keys made on the device, whose push the
device decrypts."""
from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from backend.db import get_session
from backend.notifications import service as notifications
from mobile.api import ApiError, CarnetClient
from mobile.api.notifications import DeviceKeys, NotificationsApi
from tests.notifications_support import signed_in


@pytest.fixture
def served(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def test_the_app_reads_marks_switches_and_registers_its_device(app, client, served, push_enabled, push_service,
                                                              tmp_path):
    device = signed_in(app, client)
    with app.app_context():
        session = get_session()
        first = notifications.notify(session, device.patient_id, "document", ref_type="document", ref_id="d1")
        session.commit()
    carnet = CarnetClient(served, language="en")
    carnet.token = device.access
    api = NotificationsApi(carnet)

    page = api.page(limit=10)
    assert [i["id"] for i in page["items"]] == [first.public_id] and page["unread_count"] == 1
    assert page["items"][0]["title"] == "New document"
    assert api.mark_read(first.public_id)["read"] is True and api.unread_count() == 0
    assert api.set_preference("message", email=False)["email"] is False
    with pytest.raises(ApiError) as refused:
        api.set_preference("emergency_access", push=False)
    assert refused.value.status == 422 and "cannot be switched off" in refused.value.detail

    keys = DeviceKeys.load_or_create(tmp_path / "keys.json")
    assert DeviceKeys.load_or_create(tmp_path / "keys.json").p256dh == keys.p256dh  # kept on the device
    endpoint = push_service.add_endpoint()  # the service knows no key: only the device can read
    assert api.vapid_public_key()
    assert api.subscribe(endpoint, keys)["registered"] is True
    with app.app_context():
        session = get_session()
        second = notifications.notify(session, device.patient_id, "message")
        session.commit()
    [message] = push_service.wait_for(1)
    assert keys.decrypt(message.body) == {"v": 1, "kind": "message", "id": second.public_id}
    assert api.get(second.public_id)["kind"] == "message"

    api.unsubscribe()
    assert api.subscription()["registered"] is False
    carnet.close()
