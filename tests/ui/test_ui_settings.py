"""The app as a whole, in the real app under Xvfb: the home hub reaches every registered feature, the
back key has a target on every screen, and an expired session leads to sign-in and back where the
patient was."""

from __future__ import annotations

import pytest

from mobile.main import BACK_TO, SCREENS
from tests.ui.journey_support import shot

pytestmark = pytest.mark.ui

HUB = ("agenda", "inbox", "notifications", "catalog", "emergency_card", "settings")


def test_every_registered_screen_has_a_back_target():
    # home and welcome close the app (Android convention); every other screen leads somewhere registered.
    missing = [name for name in SCREENS if name not in ("welcome", "home") and name not in BACK_TO]
    assert missing == []
    assert all(target in SCREENS for name, target in BACK_TO.items() if name in SCREENS)


@pytest.fixture
def signed_in(ui, enrolled_patient, totp_code, data_dir):
    client = ui.app.client
    client.login(enrolled_patient.nir, enrolled_patient.password)
    client.verify_otp(totp_code(enrolled_patient))
    ui.app.signed_in = True
    ui.app.given_name = enrolled_patient.given_name
    return enrolled_patient


def test_home_hub_reaches_every_feature_and_back(ui, signed_in, live_backend):
    home = ui.app.show("home")
    ui.wait_until(lambda: home.loaded, "home loaded")
    ui.settle()
    shot(ui, "home_hub")
    hub = home.ids.hub
    for name in HUB:
        if name not in SCREENS:
            assert name not in hub.entries, f"{name} is not registered: no entry on the hub"
            continue
        assert name in hub.entries
        button = hub.ids[f"hub_{name}"]
        assert button.height >= 48
        ui.tap(button)
        ui.wait_for_screen(name)
        ui.settle()
        ui.app._on_keyboard(None, 27)  # the Android back key
        ui.wait_for_screen("home")
        ui.settle()


def test_expired_session_signs_in_again_and_resumes(ui, signed_in, live_backend, totp_code):
    home = ui.app.show("home")
    ui.wait_until(lambda: home.loaded, "home loaded")
    ui.tap(home.ids.hub.ids.hub_agenda)
    ui.wait_for_screen("agenda")
    ui.settle()
    ui.app.client.token = "revoked-" + "x" * 40  # as if revoked from another device
    agenda = ui.app.screen("agenda")
    agenda.on_pre_enter()
    login = ui.wait_for_screen("login")  # to sign-in, saying why
    ui.settle()
    assert ui.app.resume_screen == "agenda" and login.notice
    shot(ui, "session_expired_notice")
    ui.app.client.login(signed_in.nir, signed_in.password)
    ui.app.client.verify_otp(totp_code(signed_in))
    ui.app.signed_in_as(signed_in.given_name)
    ui.wait_for_screen("agenda")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CARNET_DATA_DIR", str(tmp_path))
    return tmp_path


def test_settings_language_text_size_devices_password_close(ui, signed_in, data_dir, live_backend):
    import json

    from mobile import i18n, theme

    app = ui.app
    settings = app.show("settings")
    ui.wait_until(lambda: settings.ids.devices.children, "devices listed")
    ui.settle()
    shot(ui, "settings_fr")
    try:
        ui.tap(settings.ids.lang_en)
        ui.wait_until(lambda: i18n.get_language() == "en", "English")
        settings = app.screen("settings")
        ui.settle()
        assert app.manager.current == "settings" and app.signed_in
        ui.wait_until(lambda: settings.ids.devices.children, "devices listed")
        assert settings.ids.change_password.text == "Change my password"
        shot(ui, "settings_en")
        ui.tap(settings.ids.size_extra_large)
        ui.wait_until(lambda: theme.text_size_name() == "extra_large", "extra large")
        settings = app.screen("settings")
        ui.wait_until(lambda: settings.ids.devices.children, "devices listed")
        ui.settle()
        shot(ui, "settings_en_extra_large")
        assert json.loads((data_dir / "preferences.json").read_text()) == {"language": "en",
                                                                           "text_size": "extra_large"}
        home = app.back("home")
        ui.wait_until(lambda: home.loaded, "home loaded")
        ui.settle()
        shot(ui, "home_en_extra_large")
        assert home.ids.hub.ids.hub_settings.children[-1].text == "Settings"
    finally:
        settings = app.screen("settings")
        app.show("settings")
        settings.choose(language="fr", text_size="normal")
        ui.settle()
    assert i18n.get_language() == "fr" and theme.text_size_name() == "normal"

    # password: a wrong current password is a sentence, not JSON
    settings = app.screen("settings")
    ui.wait_until(lambda: not app.busy, "devices listed")
    ui.type(settings.ids.current_password, "wrong-password")
    ui.type(settings.ids.new_password, "Un-Nouveau-Mot-2026!")
    ui.tap(settings.ids.change_password)
    ui.wait_until(lambda: settings.error, "error shown")
    assert "{" not in settings.error
    ui.type(settings.ids.current_password, signed_in.password)
    ui.tap(settings.ids.change_password)
    ui.wait_until(lambda: settings.notice, "password changed")
    ui.settle()
    shot(ui, "settings_password_changed")

    # closing the account: password again, then back to the welcome screen
    ui.type(settings.ids.close_password, "Un-Nouveau-Mot-2026!")
    ui.tap(settings.ids.close_account)
    ui.wait_for_screen("welcome")
    ui.settle()
    assert not app.signed_in
    shot(ui, "settings_account_closed")


def test_emergency_card_online_then_offline(ui, signed_in, data_dir, live_backend):
    app = ui.app
    app.client._post("/record/profile/allergy", {"substance": "Pénicilline"})
    app.client._post("/record/profile/treatment", {"name": "Levothyrox 75 µg"})
    home = app.show("home")
    ui.wait_until(lambda: home.loaded, "home loaded")
    ui.tap(home.ids.hub.ids.hub_emergency_card)
    card = ui.wait_for_screen("emergency_card")
    ui.wait_until(lambda: card.card, "card shown")
    profile = app.client._get("/record/profile")
    assert "Pénicilline" in card.ids.allergies.body and not card.offline, (card.card, profile["entries"]["allergy"])
    shot(ui, "emergency_card_online")
    cached = [p for p in (data_dir / "offline").rglob("*.bin")]
    assert cached and all(b"Levothyrox" not in p.read_bytes() for p in cached)  # encrypted at rest

    # the network goes away: the last copy, under an offline banner
    real_url = app.client.base_url
    app.client.base_url = "http://127.0.0.1:9"
    try:
        app.back("home")
        ui.settle()
        app.show("emergency_card")
        ui.wait_until(lambda: card.offline, "offline copy shown")
        ui.settle()
        assert "Pénicilline" in card.ids.allergies.body and card.synced and not card.error
        shot(ui, "emergency_card_offline")
    finally:
        app.client.base_url = real_url


def test_export_my_data_fhir_and_zip(ui, signed_in, data_dir, live_backend):
    import json
    import zipfile

    from mobile.api.records import RecordsApi

    app = ui.app
    note = data_dir / "tension.txt"
    note.write_text("Tension 12/8 le 3 mars, prise à la pharmacie.", encoding="utf-8")
    uploaded = RecordsApi(app.client).upload(note, category="AUTR_DOC", title="Relevé de tension")
    settings = app.show("settings")
    ui.wait_until(lambda: settings.ids.devices.children, "devices listed")
    ui.settle()

    seen = []  # the busy state as the patient saw it: a small export is over within a few frames
    settings.bind(export_status=lambda _w, text: seen.append(text),
                  exporting=lambda _w, busy: seen.append(("buttons disabled", settings.ids.export_zip.disabled)))
    ui.tap(settings.ids.export_fhir)
    ui.wait_until(lambda: not settings.exporting and not app.busy, "FHIR export written", timeout=60)
    assert "Préparation de l'export…" in seen and ("buttons disabled", True) in seen, seen
    assert not settings.error, settings.error
    fhir = settings.exported
    assert fhir.parent == data_dir / "exports" and fhir.name.endswith(".fhir.json")
    assert str(fhir.parent) in settings.notice and fhir.name in settings.notice
    assert not list(fhir.parent.glob("*.part"))
    bundle = json.loads(fhir.read_text(encoding="utf-8"))
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    kinds = [entry["resource"]["resourceType"] for entry in bundle["entry"]]
    assert "Patient" in kinds
    references = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    assert any("Relevé de tension" in json.dumps(r, ensure_ascii=False) for r in references), references
    shot(ui, "settings_export_fhir")

    ui.tap(settings.ids.export_zip)
    ui.wait_until(lambda: not settings.exporting, "ZIP export written", timeout=60)
    archive = settings.exported
    assert archive.suffix == ".zip" and archive.parent == data_dir / "exports"
    with zipfile.ZipFile(archive) as zipped:
        assert zipped.testzip() is None
        manifest = json.loads(zipped.read("manifest.json"))
        titles = [d.get("title") for d in manifest["documents"]]
        assert "Relevé de tension" in titles, manifest
        originals = [n for n in zipped.namelist() if n.startswith("documents/")]
        assert any(zipped.read(n) == note.read_bytes() for n in originals)  # byte for byte
    assert uploaded["id"]
    shot(ui, "settings_export_zip")
