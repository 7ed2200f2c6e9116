"""The app as a whole (issue #9), in French and in English: one patient's journey through the real app,
against the live backend, under Xvfb — activation with a legacy dossier waiting, the import report, a
migrated PDF in the viewer, revoking a professional, booking an appointment, replying to a message,
connecting a catalogue service, closing the account and reopening it from the login screen. Every step
is taps and typing on the screens; the world around the patient (the old DMP's dossier, the professionals,
the practice's opening hours, the catalogue) is set up beforehand through the ``carnet`` CLI and the
professional FHIR API.

Screenshots: ``screenshots/journey-<lang>-NN-<step>.png``.
"""

from __future__ import annotations

import itertools
import time

import pytest

from mobile.screens.agenda_booking import SlotRow
from mobile.screens.agenda_common import AppointmentRow
from mobile.screens.catalog_common import PermissionRow, ServiceRow
from mobile.screens.home import IMPORT_POLL_SECONDS
from tests.ui.journey_support import (PDF_IN_CDA, PDF_IN_CDA_TITLE, find_documents, lay_out_legacy_dossier,
                                      professional, publish_opening_hours, rows, send_message, shot, texts)

pytestmark = pytest.mark.ui

FRENCH_DAYS = ("Lundi", "Mardi", "Mercredi", "Jeudi", "Vendredi", "Samedi", "Dimanche")
FRENCH_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
                 "novembre", "décembre")
ENGLISH_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ENGLISH_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                  "October", "November", "December")
# What the patient reads, in each language (the texts the screens take from mobile/locale).
LABELS = {
    "fr": {
        "activate": "Activer mon profil",
        "greeting": "Bonjour {name}",
        "review_title": "Mon ancien dossier",
        "imported": "Importé",
        "revoked": "{name} ne peut plus consulter votre dossier.",
        "booked": "Votre rendez-vous est confirmé.",
        "reply": "Répondre",
        "not_connected": "Non connecté",
        "connected": "{name} est connecté avec les autorisations que vous avez choisies.",
        "close": "Fermer mon compte",
        "closed": "Votre compte est fermé.",
        "reactivate": "Réactiver mon compte",
        "day": lambda day: f"{FRENCH_DAYS[day.weekday()]} {day.day} {FRENCH_MONTHS[day.month - 1]} {day.year}",
    },
    "en": {
        "activate": "Activate my profile",
        "greeting": "Hello {name}",
        "review_title": "My former record",
        "imported": "Imported",
        "revoked": "{name} can no longer read your record.",
        "booked": "Your appointment is confirmed.",
        "reply": "Reply",
        "not_connected": "Not connected",
        "connected": "{name} is connected with the authorisations you chose.",
        "close": "Close my account",
        "closed": "Your account is closed.",
        "reactivate": "Reactivate my account",
        "day": lambda day: f"{ENGLISH_DAYS[day.weekday()]} {day.day} {ENGLISH_MONTHS[day.month - 1]} {day.year}",
    },
}
# Per language, so that the two runs of one session do not meet in the directory or the slot search.
WORLD = {
    "fr": {"rpps_revoked": "10108880001", "rpps_gp": "10108880002", "city": "Riom",
           "postal_code": "63200", "practice": "Cabinet du Marthuret", "street": "2 place du Marthuret"},
    "en": {"rpps_revoked": "10108880011", "rpps_gp": "10108880012", "city": "Vichy",
           "postal_code": "03200", "practice": "Cabinet des Sources", "street": "5 rue du Parc"},
}
SERVICE = "Glycémie Facile"
ATTEMPTS = itertools.count()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """The app's preferences (language, text size) in a folder of this test."""
    monkeypatch.setenv("CARNET_DATA_DIR", str(tmp_path / "app-data"))
    return tmp_path / "app-data"


def back(ui) -> None:
    """The Android back key."""
    ui.settle()
    ui.app._on_keyboard(None, 27)


def home_tile(ui, home, tile):
    ui.wait_until(lambda: home.loaded, "the home page is loaded")
    ui.settle()
    ui.tap(tile)


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_whole_journey(lang, ui, live_backend, new_patient, totp_code, data_dir, capsys):
    labels, place = LABELS[lang], WORLD[lang]
    patient = new_patient
    app = ui.app

    # -- the world: the old DMP's dossier, a doctor the patient had authorised there, a GP who writes
    # and publishes opening hours, the service catalogue
    # professionals of this attempt's own (a rerun after a failed attempt finds the first one's in the directory)
    attempt = str(next(ATTEMPTS))
    rpps_revoked, rpps_gp = (place[k][:-3] + attempt + place[k][-2:] for k in ("rpps_revoked", "rpps_gp"))
    revoked_pro = professional(live_backend, rpps_revoked, "Moreau", "Julien")
    gp = professional(live_backend, rpps_gp, "Chevalier", "Anne", specialty="SM26")
    lay_out_legacy_dossier(live_backend.legacy_dir, patient.nir, [rpps_revoked])
    first_day = publish_opening_hours(live_backend, gp, place["practice"], place["city"], place["postal_code"],
                                      place["street"])
    subject = "Résultats de votre scanner" if lang == "fr" else "Your CT scan results"
    body = ("Bonjour Madame Durand, le compte rendu de votre scanner est normal. Dr Anne Chevalier"
            if lang == "fr" else "Dear Mrs Durand, the report of your CT scan is normal. Dr Anne Chevalier")
    send_message(live_backend, gp, patient.nir, subject, body)
    live_backend.carnet("catalog", "seed")

    try:
        # -- 0. the language, from the welcome screen's toggle (signed out: no settings yet)
        welcome = ui.wait_for_screen("welcome")
        if lang != "fr":
            assert welcome.ids.language.text == "English"
            ui.tap(welcome.ids.language)
            ui.wait_until(lambda: app.language == lang, f"the app speaks {lang}")
            welcome = ui.wait_for_screen("welcome")
            assert welcome.ids.language.text == "Français"
        assert welcome.ids.activate.text == labels["activate"]
        shot(ui, f"journey-{lang}-01-welcome")

        # -- 1. activation: the letter's code, a password, the authenticator
        ui.tap(welcome.ids.activate)
        activation = ui.wait_for_screen("activation")
        ids = activation.ids
        ui.type(ids.nir, patient.nir)
        ui.type(ids.birth_date, patient.birth_date_fr)
        ui.type(ids.activation_code, patient.activation_code)
        ui.tap(ids.check)
        ui.wait_until(lambda: activation.step == "password", "the password step is shown")
        ui.type(ids.password, patient.password)
        ui.type(ids.confirmation, patient.password)
        ui.tap(ids.create_password)
        ui.wait_until(lambda: activation.step == "second_factor" and ids.secret.text, "the TOTP key is shown")
        ui.settle()
        shot(ui, f"journey-{lang}-02-activation-totp")
        patient.totp_secret = "".join(ids.secret.text.split())
        ui.type(ids.code, totp_code(patient))
        ui.tap(ids.confirm)
        home = ui.wait_for_screen("home")
        records = home.ids.records
        seen = []  # the import tile's lines as home shows them, with when

        def tile_line(_section, line):
            seen.append((time.monotonic(), line))

        records.bind(migration=tile_line)
        if records.migration:  # on a slow machine the import may be over before the binding: no event then
            seen.append((time.monotonic(), records.migration))
        ui.wait_until(lambda: home.loaded, "the home page is loaded")
        loaded_at = time.monotonic()
        assert home.ids.greeting.text == labels["greeting"].format(name=patient.given_name)

        # -- 2. the import report: the activation started the import of the legacy dossier
        # The run is recorded by a task the activation queues (then the import runs on the queue): the home
        # page, loaded at once, may predate it; it keeps asking, and the tile appears by itself.
        ui.wait_until(lambda: records.migration and not app.busy, "the home page mentions the import", timeout=60)
        ui.wait_until(lambda: not home._import_poll, "home stops asking once the import is over", timeout=90)
        records.unbind(migration=tile_line)
        shown = [(at, line) for at, line in seen if line] or [(loaded_at, records.migration)]
        with capsys.disabled():
            print(f"\n[journey-{lang}] import tile shown {max(shown[0][0] - loaded_at, 0):.1f} s after home loaded, "
                  f"without reloading it (asked every {IMPORT_POLL_SECONDS:.0f} s); lines: "
                  f"{[line for _at, line in shown]}")
        shot(ui, f"journey-{lang}-03-home")
        ui.tap(records.ids.migration)
        review = ui.wait_for_screen("migration_review")
        ui.wait_until(lambda: review.state == "done" and review.shown == 4 and not app.busy,
                      "the import is done and reported", timeout=90)
        ui.settle()
        assert labels["review_title"] in texts(review)
        imported = {r.item["source"]: r for r in review.item_rows()}
        # the three documents, and the old DMP's settings (applied: the authorised doctor below)
        assert set(imported) == {PDF_IN_CDA, "VAC-NOTE_2023.01.xml", "IPS-FR_2024.01.xml", "settings.json"}
        assert all(r.item["status"] == "imported" for r in imported.values())
        assert imported[PDF_IN_CDA].title == PDF_IN_CDA_TITLE
        assert labels["imported"] in texts(imported[PDF_IN_CDA])
        pdf_document_id = imported[PDF_IN_CDA].item["document_id"]
        shot(ui, f"journey-{lang}-04-import-report")

        # -- 3. the migrated PDF, from the patient's documents
        back(ui)
        home = ui.wait_for_screen("home")
        home_tile(ui, home, home.ids.records.ids.documents)
        documents = ui.wait_for_screen("documents")
        row = ui.wait_until(lambda: next((r for r in documents.rows() if r.document["id"] == pdf_document_id),
                                         None), "the migrated PDF is listed")
        ui.tap(row)
        viewer = ui.wait_for_screen("document_viewer")
        ui.wait_until(lambda: viewer.loaded and viewer.document.get("id") == pdf_document_id,
                      "the document is shown", timeout=30)
        ui.settle()
        assert viewer.kind == "pages" and viewer.page_count >= 1
        assert viewer.ids.page_image.texture is not None and viewer.ids.page_image.texture.width >= 800
        shot(ui, f"journey-{lang}-05-migrated-pdf")

        # -- 4. who can see my record: the doctor authorised in the old DMP loses his access
        assert find_documents(live_backend, revoked_pro, patient.nir).status_code == 200
        back(ui)
        ui.wait_for_screen("documents")
        back(ui)
        home = ui.wait_for_screen("home")
        home_tile(ui, home, home.ids.records.ids.access)
        access = ui.wait_for_screen("access")
        ui.wait_until(lambda: access.loaded and access.authorised_rows(), "the authorised professionals")
        [authorised] = access.authorised_rows()
        assert authorised.name == "Julien MOREAU"
        shot(ui, f"journey-{lang}-06-access")
        ui.tap(authorised)
        pro = ui.wait_for_screen("access_professional")
        ui.wait_until(lambda: pro.loaded and pro.authorised, "the professional's page")
        ui.tap(pro.ids.authorise)
        ui.wait_until(lambda: not pro.authorised and pro.notice, "the authorisation is withdrawn")
        ui.settle()
        assert pro.notice == labels["revoked"].format(name="Julien MOREAU")
        shot(ui, f"journey-{lang}-07-access-revoked")
        refused = find_documents(live_backend, revoked_pro, patient.nir)
        assert refused.status_code == 403, refused.text

        # -- 5. the agenda: a consultation in a free slot
        back(ui)
        ui.wait_for_screen("access")
        back(ui)
        home = ui.wait_for_screen("home")
        home_tile(ui, home, home.ids.hub.ids.hub_agenda)
        agenda = ui.wait_for_screen("agenda")
        ui.wait_until(lambda: agenda.loaded, "the agenda is loaded")
        assert rows(agenda.ids.upcoming, AppointmentRow) == []
        ui.tap(agenda.ids.book)
        booking = ui.wait_for_screen("agenda_booking")
        ui.type(booking.ids.specialty, "générale")
        ui.type(booking.ids.place, place["city"])
        ui.tap(booking.ids.search)
        ui.wait_until(lambda: rows(booking.ids.results, SlotRow), "free slots are listed")
        ui.settle()
        slot = rows(booking.ids.results, SlotRow)[0]
        assert slot.slot["local_date"] == first_day.isoformat() and slot.slot["local_time"] == "09:00"
        assert f"{labels['day'](first_day)}  ·  09:00" in texts(slot)
        ui.tap(slot)
        page = booking.ids.page
        ui.wait_until(lambda: page.to_window(*page.pos)[1] - 1 <= slot.to_window(*slot.pos)[1]
                      and slot.to_window(slot.x, slot.top)[1] <= page.to_window(page.x, page.top)[1] + 1,
                      "the chosen slot is in sight above the confirmation")
        shot(ui, f"journey-{lang}-08-agenda-slot")
        ui.tap(booking.ids.confirm)
        detail = ui.wait_for_screen("agenda_detail")
        assert detail.appointment["status"] == "booked"
        assert detail.ids.detail_notice.text == labels["booked"]
        back(ui)
        ui.wait_for_screen("agenda")
        ui.wait_until(lambda: rows(agenda.ids.upcoming, AppointmentRow), "the appointment is listed")
        ui.settle()
        [upcoming] = rows(agenda.ids.upcoming, AppointmentRow)
        assert upcoming.appointment["id"] == detail.appointment["id"]
        assert "Anne CHEVALIER" in texts(upcoming)
        assert upcoming.day_text == labels["day"](first_day)
        shot(ui, f"journey-{lang}-09-agenda-upcoming")

        # -- 6. the inbox: the GP's message, and a reply
        back(ui)
        home = ui.wait_for_screen("home")
        home_tile(ui, home, home.ids.hub.ids.hub_inbox)
        inbox = ui.wait_for_screen("inbox")
        ui.wait_until(lambda: inbox.loaded and inbox.rows(), "the inbox is loaded")
        [message] = inbox.rows()
        assert message.subject == subject and message.unread
        ui.tap(message)
        thread = ui.wait_for_screen("inbox_thread")
        ui.wait_until(lambda: thread.loaded, "the conversation is shown")
        assert thread.can_reply and thread.ids.reply.text == labels["reply"]
        ui.tap(thread.ids.reply)
        compose = ui.wait_for_screen("inbox_compose")
        answer = "Merci docteur, à bientôt." if lang == "fr" else "Thank you, doctor. See you soon."
        ui.type(compose.ids.body, answer)
        ui.tap(compose.ids.send)
        ui.wait_for_screen("inbox_thread")
        ui.wait_until(lambda: thread.loaded and len(thread.cards()) == 2, "the reply is in the conversation")
        ui.settle()
        assert thread.cards()[1].from_you
        shot(ui, f"journey-{lang}-10-inbox-replied")
        replies = gp.get(f"{live_backend.url}/fhir/R4/Communication", params={"sender-kind": "patient"},
                         timeout=10).json()
        [reply] = replies["entry"]
        assert [p["contentString"] for p in reply["resource"]["payload"] if "contentString" in p] == [answer]

        # -- 7. the catalogue: a service connected by consent, one permission ticked at a time
        back(ui)
        ui.wait_for_screen("inbox")
        back(ui)
        home = ui.wait_for_screen("home")
        home_tile(ui, home, home.ids.hub.ids.hub_catalog)
        catalog = ui.wait_for_screen("catalog")
        ui.wait_until(lambda: catalog.loaded and rows(catalog.ids.results, ServiceRow), "the catalogue is listed")
        target = next(r for r in rows(catalog.ids.results, ServiceRow) if r.name == SERVICE)
        ui.tap(target)
        service = ui.wait_for_screen("catalog_service")
        ui.wait_until(lambda: service.loaded and service.service.get("name") == SERVICE, "the service's page")
        assert service.ids.status.text == labels["not_connected"]
        ui.tap(service.ids.connect)
        sheet = ui.wait_for_screen("catalog_consent")
        permissions = rows(sheet.ids.sheet, PermissionRow)
        assert permissions and not any(p.ticked for p in permissions) and sheet.ids.accept.disabled
        ui.tap(permissions[0])
        ui.tap(permissions[1])
        shot(ui, f"journey-{lang}-11-catalog-consent")
        ui.tap(sheet.ids.accept)
        ui.wait_for_screen("catalog_service")
        ui.wait_until(lambda: service.state == "active", "the service is connected")
        ui.settle()
        assert labels["connected"].format(name=SERVICE) in service.notice
        shot(ui, f"journey-{lang}-12-catalog-connected")

        # -- 8. settings: the account is closed, then the password opens nothing
        back(ui)
        ui.wait_for_screen("catalog")
        back(ui)
        home = ui.wait_for_screen("home")
        home_tile(ui, home, home.ids.hub.ids.hub_settings)
        settings = ui.wait_for_screen("settings")
        assert settings.ids.close_account.text == labels["close"]
        ui.type(settings.ids.close_password, patient.password)
        ui._scroll_into_view(settings.ids.close_account)  # the password and the button, in one picture
        shot(ui, f"journey-{lang}-13-settings-close")
        ui.tap(settings.ids.close_account)
        welcome = ui.wait_for_screen("welcome")
        assert not app.signed_in and welcome.ids.notice.text == labels["closed"]
        shot(ui, f"journey-{lang}-14-account-closed")
        ui.tap(welcome.ids.login)
        login = ui.wait_for_screen("login")
        ui.type(login.ids.nir, patient.nir)
        ui.type(login.ids.password, patient.password)
        ui.tap(login.ids.sign_in)
        # The password still opens the way to reactivation (domain: a closed record may be reactivated
        # during its retention); the code step then says the profile is closed, and offers to reopen it.
        ui.wait_until(lambda: login.step == "otp", "the code step is shown")
        ui.type(login.ids.code, totp_code(patient))
        ui.tap(login.ids.verify)
        ui.wait_until(lambda: login.ids.otp_error.text, "the sign-in is refused")
        ui.settle()
        refusal = login.last_error
        assert (refusal.status, refusal.code) == (403, "account_closed")
        assert login.ids.otp_error.text == refusal.detail and not app.signed_in
        assert login.closed and login.ids.reactivate.text == labels["reactivate"]
        shot(ui, f"journey-{lang}-15-login-refused")

        # -- 9. the account reopened from the login screen, with the same code
        ui.tap(login.ids.reactivate)
        home = ui.wait_for_screen("home")
        ui.wait_until(lambda: home.loaded, "the home page is loaded")
        assert app.signed_in and home.ids.greeting.text == labels["greeting"].format(name=patient.given_name)
        shot(ui, f"journey-{lang}-16-reactivated-home")
    finally:
        # The app is shared by the session's UI tests: back to French, normal text.
        if app.language != "fr":
            app.apply_preferences({"language": "fr", "text_size": "normal"}, rebuild_from="welcome")
