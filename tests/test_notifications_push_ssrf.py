"""A push endpoint is a URL our workers POST to: they must never be turned towards our own network.

- An endpoint that answers a redirect (301, 302, 303, 307, 308) to an address the registration check refuses
  is not followed: the delivery fails, and no connection is ever opened towards the redirect's target.
- DNS rebinding: a name that resolved to a public address when it was checked and resolves inside the next
  time is never reached inside: the worker connects to the address it checked (or, when it resolves again,
  checks again and refuses).
- Connecting to the checked address keeps TLS whole: the certificate is verified for the endpoint's name,
  sent as SNI, and the Host header is the name.

Connections are watched at the socket: every address the worker connects to is recorded, and anything outside
loopback is refused as a closed port would be (tests never reach the network).
"""
from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from backend.notifications import push
from backend.notifications.loopback import PushSubscriber
from backend.notifications.models import PushDelivery
from tests.notifications_support import configure, deliver, notify, signed_in

METADATA = "169.254.169.254"   # the cloud metadata service: what an SSRF goes for
PUBLIC = "93.184.216.34"       # a public address (refused at the socket by these tests)


@pytest.fixture(autouse=True)
def _fresh_resolutions() -> Iterator[None]:
    push.forget_resolutions()
    yield
    push.forget_resolutions()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    guarded = socket.socket.connect  # the suite's guard (loopback only) stays underneath

    def watch(sock: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple):
            seen.append((str(address[0]), int(address[1])))
            if not str(address[0]).startswith("127."):
                raise ConnectionRefusedError(111, "refused by the test: outside this machine")
        return guarded(sock, address)

    monkeypatch.setattr(socket.socket, "connect", watch)
    return seen


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answer: tuple[int, dict[str, str]] = (201, {})
    seen: list[dict[str, str]]

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append({"path": self.path, "host": self.headers.get("Host", ""),
                          "sni": getattr(self.connection, "carnet_sni", None) or ""})
        status, headers = self.answer
        self.send_response(status)
        for key, value in {**headers, "Content-Length": "0"}.items():
            self.send_header(key, value)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def serve(answer: tuple[int, dict[str, str]], tls: ssl.SSLContext | None = None) -> tuple[ThreadingHTTPServer, list]:
    seen: list[dict[str, str]] = []
    handler = type("Handler", (Recorder,), {"answer": answer, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def register(client: Any, device: Any, endpoint: str) -> None:
    s = PushSubscriber()
    r = client.put("/api/v1/push/subscription", headers=device.headers,
                   json={"endpoint": endpoint, "keys": {"p256dh": s.p256dh, "auth": s.auth}})
    assert r.status_code == 200, r.get_json()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed(app, client, db, push_enabled, connections, status):
    server, seen = serve((status, {"Location": f"http://{METADATA}/latest/meta-data/iam"}))
    try:
        device = signed_in(app, client)
        port = server.server_address[1]
        register(client, device, f"http://127.0.0.1:{port}/push/device-1")
        notify(app, device.patient_id, "document")  # delivered right after the commit (inline queue)
        deliver(app)
    finally:
        server.shutdown()
        server.server_close()
    assert len(seen) == 1 and seen[0]["path"] == "/push/device-1"
    assert [c for c in connections if c[0] == METADATA] == []
    row = db.scalar(select(PushDelivery))
    assert (row.status, row.last_status, row.attempts) == ("failed", status, 1)


def rebinding_resolver(monkeypatch: pytest.MonkeyPatch, name: str, answers: list[str]) -> list[str]:
    """``name`` resolves to answers[0], then answers[1] for every later query; others as usual."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != name:
            return real(host, port, *args, **kwargs)
        address = answers[min(len(asked), len(answers) - 1)]
        asked.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 443)))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return asked


def test_a_name_that_rebinds_inside_is_not_reached_the_checked_address_is(app, client, db, monkeypatch,
                                                                          vapid_pem, connections):
    inside, seen = serve((201, {}))  # a service inside our network, on the port the endpoint names
    port = inside.server_address[1]
    try:
        configure(app, monkeypatch, vapid_private_key=vapid_pem, push_allow_http=False)
        asked = rebinding_resolver(monkeypatch, "push.rebind.example", [PUBLIC, "127.0.0.1"])
        device = signed_in(app, client)
        register(client, device, f"https://push.rebind.example:{port}/push/x")  # checked: public
        notify(app, device.patient_id, "document")
    finally:
        inside.shutdown()
        inside.server_close()
    assert seen == []                                       # nothing inside was reached …
    pushed = [c for c in connections if c[1] == port]
    assert pushed == [(PUBLIC, port)]                       # … the address that was checked was
    assert asked == [PUBLIC]                                # and the name was not resolved a second time
    row = db.scalar(select(PushDelivery))                   # (refused at the socket here: tried again later)
    assert (row.status, row.attempts, row.last_status) == ("pending", 1, None)


def test_a_name_resolved_again_is_checked_again(app, client, db, monkeypatch, vapid_pem,
                                                connections):
    inside, seen = serve((201, {}))
    port = inside.server_address[1]
    try:
        configure(app, monkeypatch, vapid_private_key=vapid_pem, push_allow_http=False)
        asked = rebinding_resolver(monkeypatch, "push.rebind.example", [PUBLIC, "127.0.0.1"])
        device = signed_in(app, client)
        register(client, device, f"https://push.rebind.example:{port}/push/x")
        push.forget_resolutions()  # the checked answer has aged out: the sender resolves the name again
        notify(app, device.patient_id, "document")
    finally:
        inside.shutdown()
        inside.server_close()
    assert asked == [PUBLIC, "127.0.0.1"]
    assert seen == [] and [c for c in connections if c[1] == port] == []
    assert db.scalar(select(PushDelivery.status)) == "failed"


# --- TLS stays whole -----------------------------------------------------------------------------------------

def _certificates(folder: Path, name: str) -> tuple[Path, ssl.SSLContext]:
    """A test CA and a server certificate for ``name``; returns (the CA file, the server's TLS context)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Carnet test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = folder / "server.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)

    def remember_sni(sock: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
        sock.carnet_sni = server_name  # type: ignore[attr-defined]

    context.sni_callback = remember_sni  # type: ignore[assignment]
    return ca_file, context


def test_the_pinned_connection_verifies_tls_for_the_name(app, client, db, monkeypatch, vapid_pem, tmp_path,
                                                         connections):
    name = "push.pinned.example"
    ca_file, context = _certificates(tmp_path, name)
    server, seen = serve((201, {}), tls=context)
    port = server.server_address[1]
    try:
        settings = configure(app, monkeypatch, vapid_private_key=vapid_pem, push_allow_http=True)
        rebinding_resolver(monkeypatch, name, ["127.0.0.1"])
        device = signed_in(app, client)
        register(client, device, f"https://{name}:{port}/push/tls")
        sender = push.sender_for(settings.vapid_private_key or "", settings.vapid_subject, settings.push_ttl,
                                 settings.push_timeout, settings.push_allow_http)
        sender._session().verify = str(ca_file)  # this thread's session: trust the test CA
        notify(app, device.patient_id, "document")
    finally:
        server.shutdown()
        server.server_close()
    assert db.scalar(select(PushDelivery.status)) == "sent"
    assert seen == [{"path": "/push/tls", "host": f"{name}:{port}", "sni": name}]
    assert [c for c in connections if c[1] == port] == [("127.0.0.1", port)]
