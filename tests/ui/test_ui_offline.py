"""Offline mode in the real app under Xvfb, against the live backend: the network really fails (the app's
client is pointed at a port nobody listens on: connection refused), the record stays readable from the
encrypted copy under a banner, actions that need the server say so, and when the server answers again
the banner goes and a sync brings what changed meanwhile."""

from __future__ import annotations

import datetime as dt
import socket
import time

import pytest

from mobile.api import CarnetClient
from mobile.api.agenda import AgendaApi
from mobile.api.records import RecordsApi

from tests.ui.journey_support import shot

pytestmark = pytest.mark.ui


def texts(widget) -> str:
    from kivy.uix.label import Label

    return "\n".join(w.text for w in widget.walk(restrict=True) if isinstance(w, Label) and w.text)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # released on close: nothing listens there


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CARNET_DATA_DIR", str(tmp_path))
    return tmp_path


def test_record_readable_offline_then_synced_on_reconnect(ui, enrolled_patient, totp_code, data_dir,
                                                          live_backend, capsys):
    app = ui.app
    client = app.client
    client.login(enrolled_patient.nir, enrolled_patient.password)
    client.verify_otp(totp_code(enrolled_patient))
    app.signed_in = True
    app.given_name = enrolled_patient.given_name
    # Another device of the patient's, on the real network all along.
    other = CarnetClient(live_backend.url)
    other.token = client.token
    records = RecordsApi(other)
    other._post("/record/profile/allergy", {"substance": "Pénicilline"})
    records.add_directive("end_of_life", text="Pas d'acharnement thérapeutique.")
    note = data_dir / "consultation.txt"
    note.write_text("Consultation du 2 mars : tension normale.", encoding="utf-8")
    records.upload(note, category="CPT_REND", title="Compte rendu de consultation")
    day = dt.date.today() + dt.timedelta(days=3)
    AgendaApi(other).add_entry("Kinésithérapeute", f"{day}T09:00:00", f"{day}T09:30:00")

    connectivity = app.connectivity
    synced_before = connectivity.syncs  # the app lives through the session: earlier tests synced too
    home = app.show("home")
    ui.wait_until(lambda: home.loaded, "home loaded")
    ui.wait_until(lambda: connectivity.syncs > synced_before, "the record copied to the device", timeout=30)
    assert connectivity.online and not connectivity.banner_text and app.offline_banner.height == 0
    cached = list((data_dir / "offline").rglob("*.bin"))
    assert cached and all(b"Compte rendu" not in p.read_bytes() and b"Kin" not in p.read_bytes()
                          for p in cached)  # encrypted at rest
    syncs = connectivity.syncs
    # A document the patient opens with network is kept to be opened again without.
    opened = records.documents()["items"][0]
    viewer = app.screen("document_viewer")
    viewer.document_id = opened["id"]
    app.show("document_viewer")
    ui.wait_until(lambda: viewer.loaded, "the document opened online")
    ui.settle()
    online_view = (viewer.kind, viewer.title, viewer.page_count, texts(viewer.ids.narrative))
    app.show("home")
    ui.settle()

    # -- the network goes away ------------------------------------------------------------------
    real_url = client.base_url
    client.base_url = f"http://127.0.0.1:{closed_port()}"
    try:
        documents = app.show("documents")
        ui.wait_until(lambda: not connectivity.online, "offline mode", timeout=15)
        ui.wait_until(lambda: documents.loaded, "documents from the copy")
        ui.settle()
        banner = app.offline_banner
        assert banner.text.startswith("Hors connexion — vous consultez les données du "), banner.text
        assert banner.height >= 48 and banner.opacity == 1
        assert app.manager.top <= banner.y + 1  # the screens sit under the banner, nothing hidden behind it
        assert [r.document["title"] for r in documents.rows()] == ["Compte rendu de consultation"]
        assert not documents.error
        shot(ui, "offline-documents")

        profile = app.show("profile")
        ui.wait_until(lambda: profile.loaded and profile.kind_rows(), "profile from the copy")
        ui.settle()
        allergy = next(r for r in profile.kind_rows() if r.kind == "allergy")
        assert "Pénicilline" in allergy.detail and not profile.error
        shot(ui, "offline-profile")

        directives = app.show("directives")
        ui.wait_until(lambda: directives.loaded, "directives from the copy")
        ui.settle()
        assert "Pas d'acharnement thérapeutique." in texts(directives) and not directives.error
        shot(ui, "offline-directives")

        agenda = app.show("agenda")
        ui.wait_until(lambda: agenda.loaded, "upcoming appointments from the copy")
        ui.settle()
        assert "Kinésithérapeute" in texts(agenda.ids.upcoming) and not agenda.error
        shot(ui, "offline-agenda")

        card = app.show("emergency_card")
        ui.wait_until(lambda: card.card, "emergency card from the copy")
        ui.settle()
        assert card.offline and "Pénicilline" in card.ids.allergies.body
        shot(ui, "offline-emergency-card")

        viewer.loaded = False
        app.show("document_viewer")
        ui.wait_until(lambda: viewer.loaded, "the opened document, from the copy")
        ui.settle()
        assert (viewer.kind, viewer.title, viewer.page_count, texts(viewer.ids.narrative)) == online_view
        assert not viewer.error
        shot(ui, "offline-document-viewer")

        # An action that needs the server says so in a sentence.
        settings = app.show("settings")
        ui.wait_until(lambda: settings.error, "the devices cannot be listed")
        assert settings.error.startswith("Vous êtes hors connexion : cette action a besoin d'internet"), settings.error
        shot(ui, "offline-settings-action")

        # Meanwhile, on the server: a new document.
        results = data_dir / "biologie.txt"
        results.write_text("Glycémie à jeun : 0,92 g/L.", encoding="utf-8")
        records.upload(results, category="BIOLOGIE", title="Résultats de biologie")
        documents = app.show("documents")
        ui.settle()
        assert "Résultats de biologie" not in [r.document["title"] for r in documents.rows()]
        assert not connectivity.online
    finally:
        client.base_url = real_url
        restored = time.monotonic()

    # -- the network is back: the probe notices, the banner goes, a sync runs, the screen reloads --------
    ui.wait_until(lambda: connectivity.online, "the probe finds the server again", timeout=30)
    ui.wait_until(lambda: connectivity.syncs > syncs, "sync on reconnect", timeout=30)
    ui.wait_until(lambda: documents.loaded and "Résultats de biologie" in [r.document["title"]
                                                                           for r in documents.rows()],
                  "the new document shown", timeout=20)
    shown = time.monotonic() - restored
    from mobile.connectivity import PROBE_SECONDS
    ui.settle()
    with capsys.disabled():
        print(f"\n[offline] network back → new document on screen in {shown:.1f} s (probe every "
              f"{PROBE_SECONDS:.0f} s); the sync itself took {connectivity.last_sync_seconds:.2f} s")
    assert app.offline_banner.text == "" and app.offline_banner.height == 0 and not client.offline
    assert app.manager.height == app.root.height
    shot(ui, "offline-back-online")
    other.close()


def test_signing_out_forgets_the_offline_state(ui, enrolled_patient, totp_code, data_dir):
    app = ui.app
    client = app.client
    client.login(enrolled_patient.nir, enrolled_patient.password)
    client.verify_otp(totp_code(enrolled_patient))
    app.signed_in = True
    home = app.show("home")
    ui.wait_until(lambda: home.loaded, "home loaded")
    ui.wait_until(lambda: client.offline_store is not None, "the copy attached", timeout=30)
    real_url = client.base_url
    client.base_url = f"http://127.0.0.1:{closed_port()}"
    try:
        home.refresh()
        ui.wait_until(lambda: not app.connectivity.online, "offline mode")
        ui.settle()
        shot(ui, "offline-home")
        app.signed_out("")
        ui.settle()
        # Nothing of the patient stays attached to the app, and no banner over the welcome screen.
        assert client.offline_store is None and not client.offline and app.connectivity.online
        assert app.offline_banner.height == 0
    finally:
        client.base_url = real_url


def test_banner_sentence_in_both_languages(ui):
    from mobile import i18n
    from mobile.connectivity import synced_sentence

    from zoneinfo import ZoneInfo

    # 18:37 in the patient's zone (Paris), whatever the zone of the machine running the test
    moment = dt.datetime(2026, 11, 22, 18, 37, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    assert synced_sentence(moment) == "Hors connexion — vous consultez les données du 22/11/2026 à 18:37"
    ui.app.apply_preferences({"language": "en", "text_size": "normal"})
    try:
        assert synced_sentence(moment) == "Offline — you are viewing your data as of 22 Nov 2026 at 18:37"
        assert synced_sentence(None) == "Offline — no data saved on this device yet."
    finally:
        ui.app.apply_preferences({"language": "fr", "text_size": "normal"})
    assert i18n.get_language() == "fr"
