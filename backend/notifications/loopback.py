"""A loopback Web Push service (RFC 8030) for tests, benchmarks and local demos, on 127.0.0.1 only.

It plays both ends a real push service stands between: it checks every request's VAPID signature
(RFC 8292: ES256 JWT against the application server's public key, audience, expiry, subject) and, as the
subscribed device would, decrypts the message (RFC 8291, aes128gcm) with the subscriber's private key.
Each endpoint can be told what to answer (201, 410, 503 with Retry-After…), to drive retries and
unsubscriptions.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PushSubscriber:
    """A device's side of a subscription: its P-256 key pair and 16-byte auth secret (what a browser's
    PushManager or a UnifiedPush app makes); only it can read the messages."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | None = None, auth: bytes | None = None) -> None:
        self.private_key = private_key or ec.generate_private_key(ec.SECP256R1())
        self.auth_secret = auth or os.urandom(16)

    @property
    def p256dh(self) -> str:
        return _b64(self.private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                               serialization.PublicFormat.UncompressedPoint))

    @property
    def auth(self) -> str:
        return _b64(self.auth_secret)

    def decrypt(self, body: bytes) -> bytes:
        return http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth_secret,
                                version="aes128gcm")


def verify_vapid(authorization: str, expected_key: str | None, audience: str, now: float | None = None
                 ) -> dict[str, Any]:
    """Check an ``Authorization: vapid t=…, k=…`` header; return the JWT claims or raise ValueError."""
    now = time.time() if now is None else now
    scheme, _, params = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise ValueError("not a vapid authorization")
    parts = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
    token, key = parts.get("t"), parts.get("k")
    if not token or not key:
        raise ValueError("vapid t= and k= are required")
    if expected_key is not None and key != expected_key:
        raise ValueError("signed with another application server key")
    header_b64, claims_b64, signature_b64 = token.split(".")
    header = json.loads(_unb64(header_b64))
    if header.get("alg") != "ES256":
        raise ValueError("the JWT must be ES256")
    signature = _unb64(signature_b64)
    if len(signature) != 64:
        raise ValueError("an ES256 signature is 64 bytes")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(key))
    try:
        public.verify(encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")),
                      f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("bad VAPID signature") from None
    claims = json.loads(_unb64(claims_b64))
    if claims.get("aud") != audience:
        raise ValueError(f"audience {claims.get('aud')!r} is not this push service")
    exp = int(claims.get("exp", 0))
    if not now < exp <= now + 24 * 3600:  # RFC 8292 §2: no more than 24 hours ahead
        raise ValueError("expired, or expiring more than 24 hours ahead")
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        raise ValueError("the subject must be a mailto: or https: URI")
    return claims


@dataclass
class Received:
    token: str
    status: int                          # what the service answered
    headers: dict[str, str]
    size: int
    body: bytes = b""                    # as received (encrypted)
    plaintext: bytes | None = None
    claims: dict[str, Any] | None = None
    error: str | None = None

    def json(self) -> Any:
        assert self.plaintext is not None
        return json.loads(self.plaintext)


@dataclass
class _Endpoint:
    subscriber: PushSubscriber | None
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # next answers, then 201


class LoopbackPushService:
    """``with LoopbackPushService(vapid_public_key) as service: endpoint, device = service.subscribe()``."""

    def __init__(self, vapid_public_key: str | None = None, *, verify: bool = True, decrypt: bool = True) -> None:
        self.vapid_public_key = vapid_public_key
        self.verify = verify
        self.decrypt = decrypt
        self.received: list[Received] = []
        self._endpoints: dict[str, _Endpoint] = {}
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> LoopbackPushService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, headers = service._handle(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-push", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LoopbackPushService:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # subscriptions
    def subscribe(self, subscriber: PushSubscriber | None = None) -> tuple[str, PushSubscriber]:
        """A new endpoint for a device (a new one by default)."""
        subscriber = subscriber or PushSubscriber()
        return self.add_endpoint(subscriber), subscriber

    def add_endpoint(self, subscriber: PushSubscriber | None = None) -> str:
        token = secrets.token_urlsafe(12)
        with self._cond:
            self._endpoints[token] = _Endpoint(subscriber)
        return f"{self.origin}/push/{token}"

    def answer(self, endpoint: str, *statuses: int, retry_after: int | None = None) -> None:
        """The next answers of this endpoint (afterwards: 201)."""
        token = endpoint.rsplit("/", 1)[1]
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self._cond:
            self._endpoints[token].answers.extend((s, dict(headers)) for s in statuses)

    def messages(self, endpoint: str | None = None, status: int | None = 201) -> list[Received]:
        token = endpoint.rsplit("/", 1)[1] if endpoint else None
        with self._cond:
            return [r for r in self.received if (token is None or r.token == token)
                    and (status is None or r.status == status)]

    def wait_for(self, count: int, timeout: float = 20.0, status: int | None = 201) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self.received if status is None or r.status == status]
                if len(got) >= count or time.monotonic() >= deadline:
                    return got
                self._cond.wait(timeout=max(0.01, deadline - time.monotonic()))

    # one request
    def _handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        kind, _, token = path.strip("/").partition("/")
        if kind == "plain":  # the benchmark's baseline: accept the bytes, nothing else
            self._record(Received(token, 201, headers, len(body)))
            return 201, {}
        with self._cond:
            endpoint = self._endpoints.get(token) if kind == "push" else None
            planned = endpoint.answers.pop(0) if endpoint and endpoint.answers else (201, {})
        if endpoint is None:
            self._record(Received(token, 404, headers, len(body), error="no such subscription"))
            return 404, {}
        received = Received(token, planned[0], headers, len(body), body)
        if self.verify:
            try:
                received.claims = verify_vapid(headers.get("authorization", ""), self.vapid_public_key, self.origin)
            except (ValueError, KeyError, json.JSONDecodeError) as exc:
                received.status, received.error = 401, f"vapid: {exc}"
                self._record(received)
                return 401, {}
            if headers.get("content-encoding") != "aes128gcm" or "ttl" not in headers:
                received.status, received.error = 400, "aes128gcm and TTL are required"
                self._record(received)
                return 400, {}
        if self.decrypt and endpoint.subscriber is not None and received.status == 201:
            try:
                received.plaintext = endpoint.subscriber.decrypt(body)
            except Exception as exc:  # noqa: BLE001 - any failure to decrypt is the sender's fault
                received.status, received.error = 400, f"decrypt: {type(exc).__name__}"
        self._record(received)
        extra = {"Location": f"{self.origin}/message/{secrets.token_urlsafe(8)}"} if received.status == 201 else {}
        return received.status, {**planned[1], **extra}

    def _record(self, received: Received) -> None:
        with self._cond:
            self.received.append(received)
            self._cond.notify_all()
