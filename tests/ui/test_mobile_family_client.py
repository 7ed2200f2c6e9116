"""The app's client and the family space: the open record rides on every authenticated request, never on a
sign-in, and the device's offline copy is the patient's own record only."""
from __future__ import annotations

from mobile.api import CarnetClient
from mobile.api.client import RECORD_HEADER


class Store:
    def __init__(self) -> None:
        self.kept: list[str] = []

    def answer(self, path, params):
        return {"from": "copy", "path": path}

    def keep(self, path, params, value) -> None:
        self.kept.append(path)


def test_the_open_record_is_named_on_authenticated_requests_only():
    client = CarnetClient("http://127.0.0.1:9")
    assert client.auth_headers() == {}
    client.record_id = "42"
    assert client.auth_headers() == {}          # no session: nothing to name
    client.token = "tok"
    assert client.auth_headers() == {"Authorization": "Bearer tok", RECORD_HEADER: "42"}
    client.record_id = None
    assert client.auth_headers() == {"Authorization": "Bearer tok"}
    client.record_id = "42"
    client.forget_token()
    assert client.record_id is None and client.auth_headers() == {}


def test_the_offline_copy_is_the_patients_own_record_only():
    client = CarnetClient("http://127.0.0.1:9")
    client.offline_store = store = Store()
    assert client.offline_answer("GET", "/record/documents") == {"from": "copy", "path": "/record/documents"}
    client.record_id = "42"
    assert client.offline_answer("GET", "/record/documents") is None
    client.offline_keep("GET", "/record/documents", None, {"items": []})
    assert store.kept == []
    client.record_id = None
    client.offline_keep("GET", "/record/documents", None, {"items": []})
    assert store.kept == ["/record/documents"]
