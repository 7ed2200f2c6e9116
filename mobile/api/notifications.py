"""Notifications in the API client (``/api/v1/notifications``, ``/api/v1/push``), without Kivy.

Two parts:

- :class:`NotificationsApi`: the notification centre, the preferences per kind and this device's Web
  Push subscription, riding on a :class:`CarnetClient` (base URL, language, timeout, access token).
- :class:`DeviceKeys`: the device's side of Web Push (RFC 8291). The P-256 key pair and the 16-byte auth
  secret are made here and never leave the phone; the server gets only the public key and the secret it
  needs to encrypt, so the push service in between reads nothing. A message that arrives is decrypted
  with :meth:`DeviceKeys.decrypt`: it holds a kind and an opaque id, and the app fetches the rest.

Where the push *endpoint* comes from depends on the platform: on Android a UnifiedPush distributor
(ntfy, NextPush…) gives it to the app; elsewhere :func:`push_endpoint` reads ``CARNET_PUSH_ENDPOINT``.
Every call is blocking: screens run them off the UI thread.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .client import CarnetClient


PUSH_ENDPOINT_ENV = "CARNET_PUSH_ENDPOINT"


def push_endpoint() -> str | None:
    """The endpoint this device's push distributor handed out, or None when there is none."""
    return os.environ.get(PUSH_ENDPOINT_ENV) or None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class DeviceKeys:
    """This device's Web Push keys, kept in a file only the app reads (mode 600)."""

    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes

    @classmethod
    def generate(cls) -> DeviceKeys:
        return cls(ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    @classmethod
    def load_or_create(cls, path: Path) -> DeviceKeys:
        if path.is_file():
            stored = json.loads(path.read_text())
            key = serialization.load_pem_private_key(stored["private_key"].encode(), password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return cls(key, _unb64(stored["auth"]))
        keys = cls.generate()
        keys.save(path)
        return keys

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = self.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"private_key": pem, "auth": _b64(self.auth_secret)}, handle)

    @property
    def p256dh(self) -> str:
        point = self.private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                           serialization.PublicFormat.UncompressedPoint)
        return _b64(point)

    @property
    def auth(self) -> str:
        return _b64(self.auth_secret)

    def decrypt(self, body: bytes) -> dict:
        """An aes128gcm message from the push service → ``{"v", "kind", "id"}``."""
        import http_ece

        plaintext = http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth_secret,
                                     version="aes128gcm")
        return json.loads(plaintext)


class NotificationsApi:
    def __init__(self, client: CarnetClient) -> None:
        self.client = client

    # -- the centre ---------------------------------------------------------------------

    def page(self, *, limit: int = 20, cursor: str | None = None, unread: bool = False) -> dict:
        """Newest first → ``{items, next_cursor, unread_count}``; texts in the client's language."""
        return self._call("GET", "/notifications",
                          params={"limit": limit, "cursor": cursor, "unread": "true" if unread else None})

    def unread_count(self) -> int:
        return int(self._call("GET", "/notifications/unread-count")["unread_count"])

    def get(self, notification_id: str) -> dict:
        return self._call("GET", f"/notifications/{notification_id}")

    def mark_read(self, notification_id: str) -> dict:
        return self._call("POST", f"/notifications/{notification_id}/read")

    def mark_all_read(self) -> dict:
        return self._call("POST", "/notifications/read-all")

    # -- preferences ----------------------------------------------------------------------

    def preferences(self) -> list[dict]:
        """Every kind: ``{kind, label, push, email, switchable}``."""
        return self._call("GET", "/notifications/preferences")["items"]

    def set_preference(self, kind: str, *, push: bool | None = None, email: bool | None = None) -> dict:
        body = {k: v for k, v in (("push", push), ("email", email)) if v is not None}
        return self._call("PUT", f"/notifications/preferences/{kind}", json=body)

    # -- this device's push subscription ------------------------------------------------

    def vapid_public_key(self) -> str:
        return self._call("GET", "/push/vapid-public-key")["public_key"]

    def subscription(self) -> dict:
        return self._call("GET", "/push/subscription")

    def subscribe(self, endpoint: str, keys: DeviceKeys) -> dict:
        return self._call("PUT", "/push/subscription",
                          json={"endpoint": endpoint, "keys": {"p256dh": keys.p256dh, "auth": keys.auth}})

    def unsubscribe(self) -> None:
        self._call("DELETE", "/push/subscription")

    # -- plumbing -------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, params: dict | None = None, json: dict | None = None) -> Any:
        return self.client.call(method, path, params=params, json=json)

