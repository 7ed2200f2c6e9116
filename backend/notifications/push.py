"""Web Push (RFC 8030) with message encryption (RFC 8291, aes128gcm) and VAPID (RFC 8292), through
pywebpush: the VAPID key pair, the devices' subscriptions, the payload, and one send.

A push payload leaves the health-data perimeter: it holds a kind and an opaque identifier, nothing else;
the app fetches the rest over its authenticated API.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from pywebpush import WebPusher
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.accounts.hooks import on_account_event
from backend.accounts.models import AuthToken
from backend.db import utcnow
from backend.errors import DomainError
from backend.notifications.models import PushSubscription

# RFC 8291 leaves 4096 - 86 (header) - 16 (tag) - 1 (delimiter) = 3,993 bytes of plaintext in one record.
MAX_PAYLOAD = 3993
PAYLOAD_VERSION = 1


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    text = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- the VAPID key pair ---------------------------------------------------------------------------

def generate_vapid_private_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def load_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """A PEM private key, or the raw 32-byte scalar in base64url (the form web-push tools print)."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
    else:
        raw = b64url_decode(text)
        if len(raw) != 32:
            raise ValueError("a raw VAPID private key is 32 bytes in base64url")
        key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the VAPID key must be an EC P-256 private key")
    return key


def application_server_key(private_key_text: str) -> str:
    """The public key, uncompressed point in base64url: what a client passes as applicationServerKey."""
    public = load_private_key(private_key_text).public_key()
    return b64url(public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))


def write_key_file(path: Path, pem: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x") as handle:  # never overwrite a key silently
        handle.write(pem)
    path.chmod(0o600)


# --- where the server may push ----------------------------------------------------------------------------
# A subscription names a URL our workers will POST to: it must not be a way into our own network (SSRF).
# Endpoints must resolve to public addresses only (loopback is allowed in dev/tests with PUSH_ALLOW_HTTP).
# The name is resolved once, the addresses checked, and the connection made to the checked address itself
# (``PinnedAdapter``: TLS still verifies the certificate for the name, sent as SNI and Host), so a name that
# resolves elsewhere the second time (DNS rebinding) never reaches inside; redirects are never followed.
# Checked addresses are kept a few minutes (a push per message must not cost a DNS query each).

_RESOLVED: dict[tuple[str, bool], tuple[float, tuple[str, ...]]] = {}
_RESOLVE_TTL = 300.0
_resolved_lock = threading.Lock()


def public_addresses(host: str, *, allow_loopback: bool = False) -> tuple[str, ...]:
    """The addresses ``host`` resolves to when every one of them is acceptable; () otherwise."""
    key = (host, allow_loopback)
    with _resolved_lock:
        cached = _RESOLVED.get(key)
    if cached is not None and time.monotonic() - cached[0] < _RESOLVE_TTL:
        return cached[1]
    try:
        found = tuple(dict.fromkeys(info[4][0] for info in socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)))
    except (OSError, UnicodeError):
        found = ()
    checked = found if found and all(_acceptable(a, allow_loopback) for a in found) else ()
    with _resolved_lock:
        _RESOLVED[key] = (time.monotonic(), checked)
    return checked


def public_host(host: str, *, allow_loopback: bool = False) -> bool:
    return bool(public_addresses(host, allow_loopback=allow_loopback))


def forget_resolutions() -> None:
    with _resolved_lock:
        _RESOLVED.clear()


def _acceptable(address: str, allow_loopback: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.is_global or (allow_loopback and ip.is_loopback)


# --- subscriptions ---------------------------------------------------------------------------------------

def endpoint_hash(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


def validate_subscription(endpoint: str, p256dh: str, auth: str, *, allow_http: bool) -> None:
    def invalid(field: str, reason: str) -> DomainError:
        return DomainError("push_subscription_invalid", 422, reason=reason,
                           errors=[{"field": field, "message": reason}])

    parts = urlsplit(endpoint)
    loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http" and loopback):
        raise invalid("endpoint", "l'adresse du service de notification doit être en https")
    if not parts.hostname or len(endpoint) > 1024:
        raise invalid("endpoint", "adresse du service de notification invalide")
    if not public_host(parts.hostname, allow_loopback=allow_http):
        raise invalid("endpoint", "le service de notification doit être joignable sur internet")
    try:
        point = b64url_decode(p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        if len(point) != 65:
            raise ValueError("not an uncompressed point")
    except (ValueError, binascii.Error):
        raise invalid("keys.p256dh", "clé publique de l'appareil invalide") from None
    try:
        secret = b64url_decode(auth)
    except (ValueError, binascii.Error):
        secret = b""
    if len(secret) != 16:
        raise invalid("keys.auth", "secret d'authentification invalide (16 octets attendus)")


def register_subscription(session: Session, device: AuthToken, endpoint: str, p256dh: str, auth: str, *,
                          allow_http: bool, now: dt.datetime | None = None) -> PushSubscription:
    """One subscription per signed-in device: registering again replaces it (a new endpoint or keys)."""
    from backend.audit import service as audit

    now = now or utcnow()
    validate_subscription(endpoint, p256dh, auth, allow_http=allow_http)
    digest = endpoint_hash(endpoint)
    session.execute(delete(PushSubscription).where(
        (PushSubscription.auth_token_id == device.id) | (PushSubscription.endpoint_hash == digest)))
    row = PushSubscription(patient_id=device.patient_id, auth_token_id=device.id, endpoint=endpoint,
                           endpoint_hash=digest, p256dh=p256dh.strip(), auth=auth.strip(), created_at=now)
    session.add(row)
    session.flush()
    audit.record(session, actor_type="patient", actor_id=device.patient_id, action="notifications.push_enabled",
                 patient_id=device.patient_id, details={"device_id": device.id}, at=now)
    return row


def device_subscription(session: Session, device: AuthToken) -> PushSubscription | None:
    return session.scalar(select(PushSubscription).where(PushSubscription.auth_token_id == device.id))


def remove_subscription(session: Session, device: AuthToken, now: dt.datetime | None = None) -> bool:
    from backend.audit import service as audit

    removed = session.execute(delete(PushSubscription).where(PushSubscription.auth_token_id == device.id)).rowcount
    if removed:
        audit.record(session, actor_type="patient", actor_id=device.patient_id,
                     action="notifications.push_disabled", patient_id=device.patient_id,
                     details={"device_id": device.id}, at=now or utcnow())
    return bool(removed)


@on_account_event("notifications.push_subscriptions", "closed", "opposed", "password_changed", "device_revoked",
                  "signed_out")
def _subscriptions_die_with_their_sessions(session: Session, patient_id: int, event: str, now: dt.datetime) -> None:
    """A device signed out, revoked, or signed out by a password change or the closing of the account loses
    its subscription now (the endpoint and keys themselves, not only the fan-out's attention)."""
    dead = select(AuthToken.id).where(AuthToken.patient_id == patient_id, AuthToken.revoked_at.is_not(None))
    session.execute(delete(PushSubscription).where(PushSubscription.patient_id == patient_id,
                                                   PushSubscription.auth_token_id.in_(dead))
                    .execution_options(synchronize_session=False))


# --- the payload and one send ------------------------------------------------------------------------------

def payload(kind: str, public_id: str) -> bytes:
    """The only thing a push service ever sees in clear after decryption by the device: kind + opaque id."""
    data = json.dumps({"v": PAYLOAD_VERSION, "kind": kind, "id": public_id}, separators=(",", ":")).encode()
    if len(data) > MAX_PAYLOAD:  # pragma: no cover - kind and id are short by construction
        raise ValueError("push payload too large")
    return data


@dataclass(frozen=True)
class PushResult:
    outcome: str                  # sent | gone (404/410: forget the subscription) | retry | failed
    status: int | None            # the push service's HTTP status; None when it could not be reached
    retry_after: float | None = None


URGENT_KINDS = {"emergency_access", "professional_access", "account"}


class PinnedAdapter(HTTPAdapter):
    """Connects to the address that was checked for a name (``pin``), never to what the name resolves to at
    connection time. The request keeps its URL: the Host header and, over TLS, the SNI and the certificate's
    name are the endpoint's name."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)
        self._pins: dict[tuple[str, int], str] = {}

    def pin(self, host: str, port: int, address: str) -> None:
        self._pins[(host.lower(), port)] = address

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None,
                                        cert: Any = None) -> Any:
        parts = urlsplit(request.url)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = self._pins.get((host, port))
        if address is None:  # a URL nobody checked (a redirect would be one): no connection at all
            raise requests.exceptions.InvalidURL("push endpoint not checked before sending")
        _host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        if parts.scheme == "https":
            pool_kwargs = {**pool_kwargs, "server_hostname": host, "assert_hostname": host}
        return self.poolmanager.connection_from_host(host=address, port=port, scheme=parts.scheme,
                                                     pool_kwargs=pool_kwargs)

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        request.headers["Host"] = urlsplit(request.url).netloc.rsplit("@", 1)[-1]
        return super().send(request, *args, **kwargs)


class _PushHttp(requests.Session):
    """A session that never follows a redirect (a 307 to an inside address is an SSRF) and ignores the
    environment's proxies (they would connect elsewhere than the checked address)."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self.pinned = PinnedAdapter()
        self.mount("https://", self.pinned)
        self.mount("http://", self.pinned)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["allow_redirects"] = False
        return super().request(method, url, *args, **kwargs)


class PushSender:
    """Signs and sends. VAPID headers are cached per push service origin (a JWT is valid for hours, so
    the ECDSA signature is not paid per message), and each thread keeps its HTTP connections alive."""

    TOKEN_LIFETIME = 12 * 3600
    RENEW_BEFORE = 3600

    def __init__(self, private_key_text: str, subject: str, *, ttl: int, timeout: float,
                 allow_loopback: bool = False) -> None:
        self.vapid = Vapid02(load_private_key(private_key_text))
        self.allow_loopback = allow_loopback
        self.subject = subject
        self.ttl = ttl
        self.timeout = timeout
        self._headers: dict[str, tuple[int, dict[str, str]]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def _session(self) -> _PushHttp:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = _PushHttp()
        return session

    def vapid_headers(self, endpoint: str) -> dict[str, str]:
        parts = urlsplit(endpoint)
        aud = f"{parts.scheme}://{parts.netloc}"
        now = int(time.time())
        with self._lock:
            cached = self._headers.get(aud)
            # renew before expiry, and when the clock went back (a token must not outlive 24 hours)
            if cached is None or not self.RENEW_BEFORE <= cached[0] - now <= self.TOKEN_LIFETIME:
                exp = now + self.TOKEN_LIFETIME
                cached = (exp, self.vapid.sign({"aud": aud, "exp": exp, "sub": self.subject}))
                self._headers[aud] = cached
            return dict(cached[1])

    def send(self, endpoint: str, p256dh: str, auth: str, data: bytes, *, urgency: str = "normal") -> PushResult:
        parts = urlsplit(endpoint)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return PushResult("failed", None)
        addresses = public_addresses(parts.hostname or "", allow_loopback=self.allow_loopback)
        if not addresses:
            return PushResult("failed", None)
        http = self._session()  # this thread's: the pin holds for this send only
        http.pinned.pin(parts.hostname or "", port, addresses[0])
        info = {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}
        headers = {**self.vapid_headers(endpoint), "Urgency": urgency}
        try:
            response: Any = WebPusher(info, requests_session=http).send(
                data, headers, ttl=self.ttl, content_encoding="aes128gcm", timeout=self.timeout)
        except requests.RequestException:
            return PushResult("retry", None)
        status = response.status_code
        if status in (200, 201, 202):
            return PushResult("sent", status)
        if status in (404, 410):
            return PushResult("gone", status)
        if status == 429 or status >= 500:
            return PushResult("retry", status, _retry_after(response.headers.get("Retry-After")))
        # 400 (bad request), 403 (VAPID refused), 413…, and any redirect: a push service does not move, and
        # following one would be posting where nobody checked
        return PushResult("failed", status)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - utcnow()).total_seconds())


_senders: dict[tuple[str, str, int, float, bool], PushSender] = {}
_senders_lock = threading.Lock()


def sender_for(private_key_text: str, subject: str, ttl: int, timeout: float, allow_loopback: bool = False
               ) -> PushSender:
    key = (private_key_text, subject, ttl, timeout, allow_loopback)
    with _senders_lock:
        if key not in _senders:
            _senders[key] = PushSender(private_key_text, subject, ttl=ttl, timeout=timeout,
                                       allow_loopback=allow_loopback)
        return _senders[key]
