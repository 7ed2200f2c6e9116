"""The app's HTTP session: a kept-alive connection the server closed unanswered is tried again once, on a
new connection; a timeout is not (the server may have done the work). A real socket server, no mock."""
from __future__ import annotations

import socket
import threading

import pytest
import requests

from mobile.api.client import CarnetClient, KeepAliveSession
from mobile.api.errors import ApiError


class Server:
    """Answers each connection by the next behaviour: "close" (read the request, close unanswered),
    "slow" (read it, answer nothing for a while), "ok" (a JSON answer)."""

    def __init__(self, behaviours: list[str]) -> None:
        self.behaviours = list(behaviours)
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        for behaviour in self.behaviours:
            conn, _ = self.sock.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(head.split(b"\r\n")[0] + b" " + body)
                if behaviour == "ok":
                    payload = b'{"status": "ok"}'
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
                elif behaviour == "slow":
                    self.done.wait(5)
        self.sock.close()


def test_a_connection_closed_unanswered_is_sent_again_once():
    server = Server(["close", "ok"])
    with KeepAliveSession() as session:
        answer = session.post(f"{server.url}/api/v1/auth/login", json={"nir": "x"}, timeout=5)
    assert answer.json() == {"status": "ok"}
    assert len(server.requests) == 2 and server.requests[0] == server.requests[1]  # the same request, twice


def test_closed_twice_is_a_network_error_for_the_client():
    server = Server(["close", "close"])
    client = CarnetClient(server.url)
    with pytest.raises(ApiError) as raised:
        client.login("160020100100287", "secret")
    assert raised.value.code == "network" and raised.value.status == 0
    assert len(server.requests) == 2   # one try again, not more


def test_a_timeout_is_not_sent_again():
    server = Server(["slow", "ok"])
    with KeepAliveSession() as session, pytest.raises(requests.ReadTimeout):
        session.post(f"{server.url}/api/v1/agenda/appointments", json={"slot": "x"}, timeout=(2, 0.5))
    server.done.set()
    assert len(server.requests) == 1
