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
                     "contact": {"items": [{"title": "Paul Durand"}]}, "blood_group": {"items": [{"title": "B+"}]}}},
        {"end_of_life": {"label": "Directives anticipées", "current": {"text": "Pas d'acharnement"}},
         "good_health": {"label": "En bonne santé", "current": None}})
    assert card == {"blood_group": "B+", "allergies": ["Arachide"], "treatments": ["Levothyrox 75 µg"],
                    "contacts": ["Paul Durand"], "directives": ["Directives anticipées: Pas d'acharnement"]}
    assert emergency_card(None, None)["allergies"] == []


class FakeClient:
    """Answers like the API; ``down`` paths fail like the network."""

    def __init__(self, down=()):
        self.down = set(down)

    def me(self):
        return {"patient_id": 7}

    def _request(self, method, path, params=None):
        from mobile.api import ApiError

        if path in self.down:
            raise ApiError.network("fr")
        return {"/record/profile": {"entries": {"allergy": {"items": [{"title": "Latex"}]}}},
                "/record/directives": {}, "/record/documents": {"items": [{"id": 3, "title": "Ordonnance"}]},
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
