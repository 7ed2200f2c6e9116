"""Shared fixtures of the notification tests (imported by tests/test_notifications_*.py): a VAPID key, the
loopback Web Push service, a real SMTP server on 127.0.0.1 (aiosmtpd), a signed-in patient's device."""
from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from backend.notifications.loopback import LoopbackPushService, PushSubscriber
from backend.notifications.push import application_server_key, generate_vapid_private_pem
from backend.notifications.settings import NotificationSettings
from tests.helpers import activate, bearer, create_patient


@pytest.fixture(scope="session")
def vapid_pem() -> str:
    return generate_vapid_private_pem()


@pytest.fixture
def push_service(vapid_pem: str) -> Any:
    with LoopbackPushService(application_server_key(vapid_pem)) as service:
        yield service


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


@pytest.fixture
def smtp_server() -> Any:
    handler = SmtpHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def configure(app: Any, monkeypatch: pytest.MonkeyPatch, **changes: Any) -> NotificationSettings:
    """Replace the app's notification settings for one test (restored afterwards)."""
    settings = dataclasses.replace(app.extensions["carnet.notifications"], **changes)
    monkeypatch.setitem(app.extensions, "carnet.notifications", settings)
    return settings


@pytest.fixture
def push_enabled(app: Any, monkeypatch: pytest.MonkeyPatch, vapid_pem: str) -> NotificationSettings:
    return configure(app, monkeypatch, vapid_private_key=vapid_pem, push_allow_http=True)


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
