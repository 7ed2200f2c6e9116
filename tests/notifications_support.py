"""What the notification tests share (their fixtures, a VAPID key, the loopback Web Push service, a real SMTP
server on 127.0.0.1 and push switched on, are in tests/conftest.py and built with these): the SMTP server's
handler, a free port, the app's notification settings for one test, a signed-in patient's device and its push
subscription, a notification made and the delivery run."""
from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass
from typing import Any

import pytest

from backend.db import get_session
from backend.notifications import service as notifications
from backend.notifications.jobs import run_delivery
from backend.notifications.loopback import LoopbackPushService, PushSubscriber
from backend.notifications.settings import NotificationSettings
from tests.helpers import activate, bearer, create_patient


class SmtpHandler:
    """Records what the server accepted; refuses recipients as told (``refuse[address] = "550 …"``)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def configure(app: Any, monkeypatch: pytest.MonkeyPatch, **changes: Any) -> NotificationSettings:
    """Replace the app's notification settings for one test (restored afterwards)."""
    settings = dataclasses.replace(app.extensions["carnet.notifications"], **changes)
    monkeypatch.setitem(app.extensions, "carnet.notifications", settings)
    return settings


@dataclass
class Device:
    patient_id: int
    nir: str
    access: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access)


def signed_in(app: Any, client: Any, *, email: str | None = "camille@example.org", **kw: Any) -> Device:
    created = create_patient(app, email=email, **kw)
    tokens = activate(client, created)
    return Device(created.patient_id, created.nir, tokens["access_token"], tokens["secret"])


def subscribe(client: Any, device: Device, service: LoopbackPushService,
              subscriber: PushSubscriber | None = None) -> tuple[str, PushSubscriber]:
    endpoint, subscriber = service.subscribe(subscriber)
    response = client.put("/api/v1/push/subscription", headers=device.headers,
                          json={"endpoint": endpoint, "keys": {"p256dh": subscriber.p256dh, "auth": subscriber.auth}})
    assert response.status_code == 200, response.get_json()
    return endpoint, subscriber


def notify(app, patient_id, kind, **kw):
    with app.app_context():
        session = get_session()
        row = notifications.notify(session, patient_id, kind, **kw)
        session.commit()
        return row.public_id


def deliver(app, now=None):
    with app.app_context():
        session = get_session()
        report = run_delivery(session, app.extensions["carnet.notifications"], now)
        session.commit()
        return report
