"""The encrypted offline cache (mobile.offline): no Kivy, no network."""

from __future__ import annotations

import pytest

from mobile.offline import OfflineCache, OfflineCacheError, emergency_card


def test_record_round_trip_and_nothing_in_clear(tmp_path):
    cache = OfflineCache(tmp_path, "patient-1")
    record = {"documents": [{"id": 1, "title": "Compte rendu d'hospitalisation"}],
              "profile": {"allergies": [{"label": "Pénicilline"}], "blood_group": "A+"},
              "directives": {"items": []}, "appointments": [{"start": "2026-12-01T09:00"}]}
    cache.save_record(record)
    cache.put_document(1, b"%PDF-1.7 secret", {"title": "CR"})
    again = OfflineCache(tmp_path, "patient-1").record()
    assert again["documents"] == record["documents"] and again["profile"] == record["profile"]
    assert again["synced_at"] > 0
    assert OfflineCache(tmp_path, "patient-1").document(1) == b"%PDF-1.7 secret"
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "device.secret":
            blob = path.read_bytes()
            assert "Pénicilline".encode() not in blob and b"PDF" not in blob and b"hospital" not in blob
    assert (tmp_path / "device.secret").stat().st_mode & 0o077 == 0


def test_another_patient_or_another_device_cannot_read(tmp_path):
    OfflineCache(tmp_path, "patient-1").put("profile", {"blood_group": "O-"})
    assert OfflineCache(tmp_path, "patient-2").get("profile") is None  # another folder
    original = OfflineCache(tmp_path, "patient-1")
    stolen = OfflineCache(tmp_path / "copy", "patient-1")  # another device: another secret
    stolen.dir.mkdir(parents=True)
    stolen._path("profile").write_bytes(original._path("profile").read_bytes())
    with pytest.raises(OfflineCacheError):
        stolen.get("profile")  # the files alone, without the secret


def test_tampered_or_swapped_file_is_refused(tmp_path):
    cache = OfflineCache(tmp_path, "p")
    cache.put("profile", {"a": 1})
    cache.put("directives", {"b": 2})
    cache._path("profile").write_bytes(cache._path("directives").read_bytes())
    with pytest.raises(OfflineCacheError):
        cache.get("profile")


def test_forget_and_emergency_card(tmp_path):
    cache = OfflineCache(tmp_path, "p")
    cache.put("profile", {})
    cache.forget()
    assert cache.get("profile") is None
    card = emergency_card(
        {"entries": {"allergy": {"total": 1, "items": [{"title": "Arachide"}]},
                     "treatment": {"items": [{"title": "Levothyrox 75 µg"}]},
                     "contact": {"items": [{"title": "Paul Durand"}]}, "blood_group": {"items": [{"title": "B+"}]},
                     "implant": {"items": [{"title": "Stimulateur cardiaque", "fields": {
                         "device": "Stimulateur cardiaque", "site": "pectoral gauche", "brand_model": "Edora 8",
                         "implant_date": "2018-12-03"}}, {"title": "Prothèse de hanche", "fields": {}}]}}},
        {"end_of_life": {"label": "Directives anticipées", "current": {"text": "Pas d'acharnement"}},
         "good_health": {"label": "En bonne santé", "current": None}})
    assert card == {"blood_group": "B+", "allergies": ["Arachide"], "treatments": ["Levothyrox 75 µg"],
                    "implants": ["Stimulateur cardiaque (pectoral gauche) — Edora 8, 03/12/2018", "Prothèse de hanche"],
                    "contacts": ["Paul Durand"], "directives": ["Directives anticipées: Pas d'acharnement"]}
    assert emergency_card(None, None)["allergies"] == []


class FakeClient:
    """Answers like the API; ``down`` paths fail like the network."""

    def __init__(self, down=()):
        self.down = set(down)

    def me(self):
        return {"patient_id": 7}

    def call(self, method, path, params=None):
        from mobile.api import ApiError

        if path in self.down:
            raise ApiError.network("fr")
        return {"/record/profile": {"entries": {"allergy": {"items": [{"title": "Latex"}]}}},
                "/record/directives": {}, "/record/documents": {"items": [{"id": 3, "title": "Ordonnance"}]},
                "/record/profile/kinds": {"kinds": []}, "/home": {"given_name": "Lucie"},
                "/agenda/appointments": {"items": [{"id": 1}]}}[path]


def test_sync_record_then_read_offline(tmp_path):
    from mobile.offline import last_patient, sync_record

    cache, card = sync_record(FakeClient(), tmp_path)
    assert card["allergies"] == ["Latex"] and last_patient(tmp_path) == "7"
    record = OfflineCache(tmp_path, last_patient(tmp_path)).record()
    assert record["documents"]["items"][0]["title"] == "Ordonnance"
    assert record["appointments"]["items"] == [{"id": 1}] and record["emergency_card"] == card
    from mobile.api import ApiError

    with pytest.raises(ApiError):
        sync_record(FakeClient(down={"/record/documents"}), tmp_path)  # offline: the caller falls back
    assert OfflineCache(tmp_path, "7").record()["documents"]["items"][0]["id"] == 3  # the last copy stays


def test_offline_answers_filter_like_the_server_and_keep_opened_documents(tmp_path):
    from mobile.offline import OfflineAnswers

    cache = OfflineCache(tmp_path, "p")
    cache.save_record({
        "documents": {"items": [{"id": 1, "title": "Ordonnance", "category": "ORD_SOIN", "author_name": "Dr Roux"},
                                {"id": 2, "title": "Scanner thoracique", "category": "RADIO_SC"}],
                      "next_cursor": "abc", "total": 2, "categories": [{"category": "ORD_SOIN", "count": 1}]},
        "profile": {"entries": {}}, "directives": {"end_of_life": {}}, "profile_kinds": {"kinds": []},
        "appointments": {"items": [{"id": 7, "starts_at": "2026-12-01T09:00:00+01:00"},
                                   {"id": 8, "starts_at": "2027-02-01T09:00:00+01:00"}], "next_cursor": None},
    })
    answers = OfflineAnswers(cache)
    assert answers.synced_at() > 0
    page = answers.answer("/record/documents", {"limit": 20, "sort": "submitted"})
    assert [d["id"] for d in page["items"]] == [1, 2] and page["next_cursor"] is None and page["categories"]
    assert [d["id"] for d in answers.answer("/record/documents", {"category": ["RADIO_SC"]})["items"]] == [2]
    assert [d["id"] for d in answers.answer("/record/documents", {"q": "scan"})["items"]] == [2]
    assert answers.answer("/record/documents", {"cursor": "abc"})["items"] == []
    assert answers.answer("/record/profile") == {"entries": {}}
    assert answers.answer("/record/directives") == {"end_of_life": {}}
    month = answers.answer("/agenda/appointments", {"from": "2026-12-01", "to": "2026-12-31"})
    assert [a["id"] for a in month["items"]] == [7]
    # a document never opened: what the list knows, nothing to act on; one opened: as the server said
    assert answers.answer("/record/documents/1")["viewer"] == {"kind": "download"}
    answers.keep("/record/documents/2", None, {"id": 2, "viewer": {"kind": "narrative"}})
    answers.keep("/record/documents/2/narrative", None, {"sections": [{"title": "Conclusion"}]})
    answers.keep("/record/documents/2/pages/1", {"width": 900}, b"\x89PNG page")
    again = OfflineAnswers(OfflineCache(tmp_path, "p"))
    assert again.answer("/record/documents/2")["viewer"] == {"kind": "narrative"}
    assert again.answer("/record/documents/2/narrative")["sections"][0]["title"] == "Conclusion"
    assert again.answer("/record/documents/2/pages/1", {"width": 1200}) == b"\x89PNG page"
    assert again.answer("/record/documents/9") is None and again.answer("/inbox/threads") is None
    assert all(b"Conclusion" not in p.read_bytes() for p in cache.dir.iterdir())  # still sealed


def test_client_without_network_answers_from_the_copy_and_says_so(tmp_path):
    """A real connection refused (a port nobody listens on), not a mock: the client switches to the copy."""
    import socket

    from mobile.api import ApiError, CarnetClient
    from mobile.api.records import RecordsApi
    from mobile.offline import OfflineAnswers

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    cache = OfflineCache(tmp_path, "p")
    cache.save_record({"documents": {"items": [{"id": 1, "title": "Ordonnance"}], "categories": []},
                       "profile": {"entries": {"allergy": {"items": [{"title": "Latex"}]}}}})
    reports = []
    with CarnetClient(f"http://127.0.0.1:{closed}") as client:
        client.on_network = reports.append
        with pytest.raises(ApiError) as refused:
            client._get("/record/profile")  # no copy attached yet: the network error, as before
        assert refused.value.is_network and reports == [False] and client.offline
        client.offline_store = OfflineAnswers(cache)
        assert client._get("/record/profile")["entries"]["allergy"]["items"][0]["title"] == "Latex"
        assert RecordsApi(client).documents()["items"][0]["title"] == "Ordonnance"
        with pytest.raises(ApiError) as write:
            client._post("/record/profile/allergy", {"substance": "Pollen"})  # a change needs the server
        assert write.value.is_network
        with pytest.raises(ApiError):
            client.me()  # who is signed in is never answered from the copy
