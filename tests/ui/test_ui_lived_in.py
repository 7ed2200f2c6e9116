"""The app as a patient lives with it (issue #19), in the real app under Xvfb against a live backend: the demo
patient of ``carnet demo`` (a lived-in record) signs in and goes about — the agenda's month and list, a PDF
zoomed and left, the emergency card, home as a hub with the bottom navigation, notifications that open what
they point to, an inbox attachment opened, no blank above a form after a refusal, files handed to the
platform instead of a path, the QR code of the authenticator, the patient's time zone, and the forgotten
password.

Screenshots: ``screenshots/lived-*.png``.
"""

from __future__ import annotations

import pytest

from tests.ui.conftest import Patient, fresh_totp_code
from tests.ui.journey_support import REPO, clipped_labels, open_home, rows, shot, swipe_up, texts

pytestmark = pytest.mark.ui


# -- 1. the agenda: month, then list again ------------------------------------------------------


def test_agenda_month_then_list_again(ui, signed_in):
    from mobile.screens.agenda_common import AppointmentRow

    open_home(ui)
    agenda = ui.app.show("agenda")
    ui.wait_for_screen("agenda")
    ui.wait_until(lambda: agenda.loaded and rows(agenda.ids.upcoming, AppointmentRow), "the upcoming list")
    for _round in range(3):
        ui.tap(agenda.ids.show_month)
        ui.wait_until(lambda: agenda.mode == "month" and agenda.ids.month_grid.children, "the month is drawn")
        ui.settle()
        shot(ui, "lived-01-agenda-month")
        ui.tap(agenda.ids.show_list)
        ui.wait_until(lambda: agenda.mode == "list", "back to the list")
        ui.wait_until(lambda: rows(agenda.ids.upcoming, AppointmentRow), "the upcoming list is shown again")
        ui.settle()
    assert agenda.ids.list_view.height > 0 and agenda.ids.month_view.height == 0
    shot(ui, "lived-02-agenda-list-again")


# -- 2. a PDF zoomed in, scrolled, and left --------------------------------------------------------


def _double_tap(ui, widget) -> None:
    """Two taps in quick succession at the middle of ``widget``, through Kivy's input post-processing as a
    real input provider's events go (the driver's taps skip it; it is what marks a double tap). Its time
    window is made lenient for this loaded machine: what is tested is the app's answer to a double tap."""
    from kivy.base import EventLoop
    from kivy.input.postproc.doubletap import InputPostprocDoubleTap

    from tests.ui.conftest import _touch_event_class

    for proc in EventLoop.postproc_modules:
        if isinstance(proc, InputPostprocDoubleTap):
            proc.double_tap_time = 2.0
    ui.settle()
    window = EventLoop.window
    x, y = widget.to_window(*widget.center)
    for tap in range(2):
        event = _touch_event_class()("carnet-ui-double-tap", 9000 + tap,
                                     (x / (window.width - 1.0), y / (window.height - 1.0)))
        for etype in ("begin", "end"):
            events = [(etype, event)]
            for proc in EventLoop.postproc_modules:
                events = proc.process(events=events)
            for kind, me in events:
                EventLoop.post_dispatch_input(kind, me)
            ui.frames(1)
    ui.frames(3)


def test_pdf_zoomed_scrolled_and_left(ui, signed_in):
    home = open_home(ui)
    ui.tap(home.ids.records.ids.documents)
    documents = ui.wait_for_screen("documents")
    ui.wait_until(lambda: any(r.title == "Consultation de cardiologie" for r in documents.rows()), "the documents")
    ui.tap(next(r for r in documents.rows() if r.title == "Consultation de cardiologie"))
    viewer = ui.wait_for_screen("document_viewer")
    ui.wait_until(lambda: viewer.loaded and viewer.ids.page_image.texture is not None, "the page is shown")
    ui.settle()
    # rendered for the screen's density and the largest zoom
    assert viewer.ids.page_image.texture.width >= 3 * ui.app.root.width * 0.99 or \
        viewer.ids.page_image.texture.width >= 1990
    shot(ui, "lived-03-viewer-page")

    _double_tap(ui, viewer.ids.page_image)
    ui.wait_until(lambda: viewer.zoom == 2, "a double tap zooms in")
    _double_tap(ui, viewer.ids.page_scroller)
    ui.wait_until(lambda: viewer.zoom == 3, "a second double tap zooms in further")
    assert viewer.ids.page_image.width == pytest.approx(3 * viewer.ids.page_scroller.width)
    ui.settle()
    # read down the page: the screen scrolls, the page image goes up under the top bar
    page = viewer.ids.page
    for _ in range(3):
        swipe_up(ui, page, 0.5)
    ui.wait_until(lambda: page.scroll_y < 0.9, "the screen is scrolled down")
    top_bar_bottom = page.to_window(page.x, page.top)[1]
    assert viewer.ids.page_scroller.to_window(0, viewer.ids.page_scroller.top)[1] > top_bar_bottom
    shot(ui, "lived-04-viewer-zoomed-scrolled")
    back = next(w for w in viewer.walk() if getattr(w, "text", "") == "‹ Retour")
    ui.tap(back)
    ui.wait_for_screen("documents")


# -- 3. the emergency card says whose it is ---------------------------------------------------------


def test_emergency_card_says_whose_it_is(ui, signed_in):
    home = open_home(ui)
    ui.tap(home.ids.hub.ids.hub_emergency_card)
    card = ui.wait_for_screen("emergency_card")
    ui.wait_until(lambda: card.card, "the card is shown")
    ui.settle()
    assert card.holder == "Camille MARTIN" and card.born == "Née le 14/07/1984"
    allergies = card.ids.allergies.body
    assert "Pénicilline — allergie sévère" in allergies and "Urticaire géante" in allergies
    assert "Arachide — allergie modérée" in allergies and "Démangeaisons" in allergies
    assert card.ids.blood_group.body == "A+"
    assert "Lévothyroxine 75 µg" in card.ids.treatments.body
    assert "Julien Martin (Conjoint) : 06 12 34 56 78" in card.ids.contacts.body
    shot(ui, "lived-05-emergency-card")


# -- 4. home is a hub; the bottom navigation ----------------------------------------------------------


def test_home_is_a_hub_with_a_bottom_navigation(ui, signed_in, demo_patient):
    from backend.tools.demo import DEMO_NIR
    import requests

    # a failed sign-in from somewhere else, then this session: home says both, in their own words
    requests.post(f"{ui.app.client.base_url}/api/v1/auth/login", json={"nir": DEMO_NIR, "password": "Pas-Le-Bon-1!"},
                  timeout=10)
    ui.app.client.login(demo_patient.nir, demo_patient.password)
    ui.app.client.verify_otp(fresh_totp_code(demo_patient))
    home = open_home(ui)
    assert home.last_login.startswith("Dernière connexion : le ")
    # the previous sign-in (the fixture's), not this one
    previous = ui.app.client.home()["previous_login_at"]
    assert previous and previous != ui.app.client.home()["last_login_at"]
    card = home.ids.next_appointment
    assert card.appointment and card.line.startswith("17:30 – 18:00") and "DURAND" in card.line
    assert ui.app.unread_messages == 3 and home.unread_messages == "3 conversation(s) non lue(s)"
    assert home.ids.hub.ids.hub_inbox.badge == "3"
    activity = [w for w in home.ids.activity.children if getattr(w, "alert", False)]
    assert len(activity) == 1 and activity[0].text == "Échec de connexion : mot de passe erroné"
    shot(ui, "lived-06-home-hub")
    home.ids.activity.parent.parent.scroll_y = 0
    ui.settle()
    shot(ui, "lived-07-home-activity")

    nav = next(w for w in home.walk() if type(w).__name__ == "BottomNav")
    assert nav.ids.nav_inbox.badge == "3"
    for target in ("documents", "inbox", "agenda", "more", "home"):
        screen = ui.app.manager.current_screen
        bar = next(w for w in screen.walk() if type(w).__name__ == "BottomNav")
        ui.tap(bar.ids[f"nav_{target}"])
        ui.wait_for_screen(target)
        ui.settle()
        if target == "more":
            shot(ui, "lived-08-more")
    # the next appointment opens from home
    ui.tap(home.ids.next_appointment)
    detail = ui.wait_for_screen("agenda_detail")
    assert "DURAND" in detail.ids.heading.text


# -- 8. one time rule, with a phone set to another zone --------------------------------------------------


@pytest.fixture
def phone_in_tokyo(monkeypatch):
    """The app process's own zone (TZ) is Tokyo's: what a phone set to another zone does to Python."""
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_one_time_rule_whatever_the_phones_zone(ui, signed_in, phone_in_tokyo):
    import datetime as dt
    import io
    from zoneinfo import ZoneInfo

    import pypdfium2

    from mobile.api.records import RecordsApi

    paris = ZoneInfo("Europe/Paris")
    assert dt.datetime.now().astimezone().utcoffset() != dt.datetime.now(paris).utcoffset()
    home = open_home(ui)
    ui.tap(home.ids.records.ids.profile)
    profile = ui.wait_for_screen("profile")
    ui.wait_until(lambda: profile.loaded, "the profile is shown")
    ui.settle()
    ui.tap(next(c for c in profile.measure_cards() if c.title == "Poids"))
    measure = ui.wait_for_screen("profile_measure")
    ui.wait_until(lambda: measure.loaded and measure.mtype == "weight", "the weight history")
    ui.settle()
    # the form starts at the patient's now (Paris), and says so
    now_paris = dt.datetime.now(paris)
    typed = dt.datetime.strptime(f"{measure.ids.day.text} {measure.ids.time.text}", "%d/%m/%Y %H:%M")
    assert abs(typed.replace(tzinfo=paris) - now_paris) < dt.timedelta(minutes=5)
    assert "heure de Paris" in texts(measure)
    yesterday = (now_paris - dt.timedelta(days=1)).strftime("%d/%m/%Y")
    ui.type(measure.ids.day, yesterday)
    ui.type(measure.ids.time, "19:02")
    ui.type(measure.ids.value, "66,5")
    ui.tap(measure.ids.save)
    ui.wait_until(lambda: measure.notice.startswith("Mesure enregistrée"), "the measure is saved")
    ui.settle()
    assert any(f"{yesterday} 19:02" in row.detail for row in measure.rows())
    api = RecordsApi(ui.app.client)
    stored = next(m for m in api.measure_series("weight")["items"] if m["value"] == 66.5)
    assert dt.datetime.fromisoformat(stored["measured_at"]).astimezone(paris).strftime("%H:%M") == "19:02"
    shot(ui, "lived-09-measure-paris-time")

    # the access history: the same time on screen, in its CSV and in its PDF
    history = ui.app.show("history")
    ui.wait_for_screen("history")
    ui.wait_until(lambda: history.loaded and history.rows(), "the history is listed")
    ui.settle()
    assert "heure de Paris" in history.ids.zone_note.text
    on_screen = history.rows()[0].when  # 'dd/mm/yyyy HH:MM'
    csv = api.export_history("csv").content.decode("utf-8-sig")
    first_row = csv.splitlines()[1]
    assert first_row.startswith(on_screen), (on_screen, first_row)
    document = pypdfium2.PdfDocument(io.BytesIO(api.export_history("pdf").content))
    pdf_text = "".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
    assert on_screen in pdf_text
    # downloaded from the screen: kept, offered to open or share, no path shown
    ui.tap(history.ids.export_pdf)
    ui.wait_until(lambda: history.ready is not None, "the PDF is kept")
    ui.settle()
    assert history.last_export.endswith(".pdf") and history.ids.ready.title.startswith("« ")
    assert ui.app.user_data_dir not in texts(history)
    shot(ui, "lived-10-history-paris-time")


# -- 5 and 7. no dead ends, no raw output: notifications open what they point to, files are handed over ----


@pytest.fixture
def default_application(tmp_path):
    """The desktop's "default application" the app hands files to (Python's webbrowser registry, as
    xdg-open would be): a small program that writes down what it was asked to open."""
    import stat
    import sys
    import webbrowser

    record = tmp_path / "opened.txt"
    program = tmp_path / "open-with"
    program.write_text(f"#!{sys.executable}\nimport sys\nopen({str(record)!r}, 'a').write(sys.argv[1] + '\\n')\n")
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    webbrowser.register("carnet-ui-test", None, webbrowser.GenericBrowser([str(program), "%s"]), preferred=True)
    yield record
    webbrowser._tryorder = [name for name in (webbrowser._tryorder or []) if name != "carnet-ui-test"]


def _opened(record) -> list[str]:
    return record.read_text().splitlines() if record.exists() else []


def test_notifications_open_what_they_point_to_and_files_are_handed_over(ui, signed_in, default_application):
    from mobile.screens.notification_common import NotificationRow

    open_home(ui)
    centre = ui.app.show("notifications")
    ui.wait_for_screen("notifications")
    ui.wait_until(lambda: centre.loaded and rows(centre.ids.entries, NotificationRow), "the notifications")
    ui.settle()
    shot(ui, "lived-11-notifications")
    by_kind = {}
    for row in rows(centre.ids.entries, NotificationRow):
        by_kind.setdefault(row.item["kind"], row)
    # a new document opens in the viewer
    ui.tap(by_kind["document"])
    viewer = ui.wait_for_screen("document_viewer")
    ui.wait_until(lambda: viewer.loaded, "the document is shown")
    assert viewer.title == "Compte rendu de biologie - bilan sanguin" and viewer.kind == "narrative"
    ui.settle()
    shot(ui, "lived-12-notification-opened-document")
    # its original, downloaded: a name and two buttons, never a path
    ui.tap(viewer.ids.download)
    ui.wait_until(lambda: viewer.ready is not None, "the original is kept")
    ui.settle()
    card = viewer.ids.ready
    assert "est enregistré dans Carnet" in card.title and ui.app.user_data_dir not in texts(viewer)
    ui.tap(card.ids.open_file)
    ui.wait_until(lambda: _opened(default_application), "the file is handed to the default application")
    assert _opened(default_application)[-1].startswith("file://") and \
        _opened(default_application)[-1].endswith(".xml")
    shot(ui, "lived-13-download-ready")
    back = next(w for w in viewer.walk() if getattr(w, "text", "") == "‹ Retour")
    ui.tap(back)
    ui.wait_for_screen("notifications")
    # an appointment opens the appointment; an access, the access history
    ui.wait_until(lambda: centre.loaded and rows(centre.ids.entries, NotificationRow), "the notifications again")
    by_kind = {}
    for row in rows(centre.ids.entries, NotificationRow):
        by_kind.setdefault(row.item["kind"], row)
    ui.tap(by_kind["appointment"])
    detail = ui.wait_for_screen("agenda_detail")
    assert "DURAND" in detail.ids.heading.text
    ui.app.back("notifications")
    ui.wait_for_screen("notifications")
    ui.wait_until(lambda: centre.loaded and rows(centre.ids.entries, NotificationRow), "the notifications again")
    emergency = next(r for r in rows(centre.ids.entries, NotificationRow) if r.item["kind"] == "emergency_access")
    ui.tap(emergency)
    ui.wait_for_screen("history")

    # an inbox attachment opens (and can be shared), not only saved into the record
    inbox = ui.app.show("inbox")
    ui.wait_for_screen("inbox")
    ui.wait_until(lambda: inbox.rows() if hasattr(inbox, "rows") else True, "the inbox")
    thread = ui.app.screen("inbox_thread")
    ui.app.screen("inbox").open(next(t["id"] for t in ui.app.client._get("/inbox/threads")["items"]
                                     if t["subject"] == "Résultats de votre bilan sanguin"))
    ui.wait_for_screen("inbox_thread")
    ui.wait_until(lambda: thread.loaded, "the conversation")
    ui.settle()
    from mobile.widgets import LinkButton

    opener = next(w for w in thread.walk() if isinstance(w, LinkButton) and w.text == "Ouvrir")
    before = len(_opened(default_application))
    ui.tap(opener)
    ui.wait_until(lambda: len(_opened(default_application)) > before, "the attachment is opened")
    assert _opened(default_application)[-1].endswith(".pdf")
    ui.wait_until(lambda: thread.ready is not None, "the attachment is kept")
    ui.settle()
    shot(ui, "lived-14-attachment-opened")


# -- 7 and 10. the calendar link copied, one switch style, the QR code of the authenticator -------------------


def test_calendar_link_is_copied_and_switches_say_no_english(ui, signed_in):
    from kivy.core.clipboard import Clipboard
    from kivy.uix.switch import Switch

    open_home(ui)
    ui.app.show("agenda")
    ui.wait_for_screen("agenda")
    export = ui.app.show("agenda_export")
    ui.wait_for_screen("agenda_export")
    assert not [w for w in export.walk() if isinstance(w, Switch)]  # Kivy's own says "OFF" in English
    assert "OFF" not in texts(export) and "ON" not in texts(export).split()
    ui.tap(export.ids.details_switch)
    ui.wait_until(lambda: export.show_details, "the choice is taken")
    ui.tap(export.ids.create_link)
    ui.wait_until(lambda: export.link, "the link is shown")
    ui.settle()
    ui.tap(export.ids.copy_link)
    ui.wait_until(lambda: export.notice.startswith("Lien copié"), "copied")
    assert Clipboard.paste() == export.link
    shot(ui, "lived-15-calendar-link-copied")
    ui.tap(export.ids.revoke)
    ui.wait_until(lambda: not export.active, "the link is revoked")


# -- 6 and 10. a sign-in error keeps the form at the top; show the password; forgot it ----------------------


def _content_at_top(screen_form_page) -> bool:
    """The page's content starts right under its top edge (no blank above it)."""
    page = screen_form_page
    content = page.children[0]
    return page.scroll_y == 1 and abs(page.to_window(0, page.top)[1] - content.to_window(0, content.top)[1]) < 2


@pytest.fixture
def patient_with_email(live_backend):
    """A patient whose account has an address on file (the Assurance Maladie's), activated with TOTP."""
    import json

    import pyotp

    from mobile.api import CarnetClient
    from tests.ui.conftest import TOTP_PERIOD, valid_nir

    nir = valid_nir(901)
    created = live_backend.carnet("patient", "create", "--nir", nir, "--birth-date", "1984-07-12",
                                  "--family-name", "Petit", "--given-name", "Jeanne", "--sex", "F",
                                  "--email", "jeanne.petit@example.org")
    code = json.loads([line for line in created.stdout.splitlines() if line.startswith("{")][-1])["activation_code"]
    patient = Patient(nir=nir, birth_date="1984-07-12", given_name="Jeanne", family_name="Petit",
                      activation_code=code)
    import time

    with CarnetClient(live_backend.url) as client:
        client.activate(nir, patient.birth_date, code, patient.password)
        patient.totp_secret = client.enrol_totp()["secret"]
        now = time.time()
        client.confirm_enrolment(pyotp.TOTP(patient.totp_secret).at(now - TOTP_PERIOD))
        patient.last_totp_step = int(now // TOTP_PERIOD) - 1
        patient.token = client.token
    return patient


def _reset_code(live_backend, nir: str) -> str:
    """The code in the last reset email of the outbox (the backend's database: what the mailbox receives)."""
    import re
    import sqlite3

    path = live_backend.env["CARNET_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        body = db.execute("SELECT e.body FROM outbox_email e JOIN patient p ON p.id = e.patient_id "
                          "WHERE p.nir = ? AND e.kind = 'password_reset' ORDER BY e.id DESC LIMIT 1", (nir,)).fetchone()
    return re.search(r"\b(\d{6})\b", body[0]).group(1)


def test_sign_in_error_at_the_top_show_password_and_forgotten_password(ui, live_backend, patient_with_email):
    from mobile.api import CarnetClient

    patient = patient_with_email
    welcome = ui.wait_for_screen("welcome")
    ui.tap(welcome.ids.login)
    login = ui.wait_for_screen("login")
    ui.type(login.ids.nir, patient.nir)
    ui.type(login.ids.password, "Pas-Le-Bon-1!")
    ui.tap(login.ids.toggle_password)
    assert login.ids.password.password is False  # shown as typed
    ui.tap(login.ids.sign_in)
    ui.wait_until(lambda: login.ids.credentials_error.text, "the refusal is shown")
    ui.settle()
    page = login.ids.credentials_error.parent.parent
    assert _content_at_top(page), "a blank above the form after a sign-in error"
    shot(ui, "lived-16-sign-in-error-at-top")

    # forgotten: the code by email, a new password, every session ends
    ui.tap(login.ids.forgot_password)
    reset = ui.wait_for_screen("password_reset")
    assert reset.ids.nir.text == patient.nir
    ui.type(reset.ids.birth_date, "12/07/1984")
    ui.tap(reset.ids.send_code)
    ui.wait_until(lambda: reset.step == "new_password", "the code step")
    ui.settle()
    shot(ui, "lived-17-reset-code-sent")
    ui.type(reset.ids.code, _reset_code(live_backend, patient.nir))
    ui.type(reset.ids.new_password, "Nouveau-Carnet-2027!")
    ui.wait_until(lambda: reset.password_ok, "the rules are met")
    ui.tap(reset.ids.change_password)
    ui.wait_until(lambda: reset.step == "done", "the password is changed")
    ui.settle()
    shot(ui, "lived-18-reset-done")
    old = CarnetClient(live_backend.url)
    old.token = patient.token
    with pytest.raises(Exception):
        old.home()  # the session of before is over
    ui.tap(reset.ids.to_sign_in)
    login = ui.wait_for_screen("login")
    assert login.ids.nir.text == patient.nir
    ui.type(login.ids.password, "Nouveau-Carnet-2027!")
    ui.tap(login.ids.sign_in)
    ui.wait_until(lambda: login.step == "otp", "the second factor is still asked")
    ui.type(login.ids.code, fresh_totp_code(patient))
    ui.tap(login.ids.verify)
    home = ui.wait_for_screen("home")
    ui.wait_until(lambda: home.loaded, "home")


# -- 9. words are whole at the largest text size ----------------------------------------------------------


def test_labels_are_whole_at_the_largest_text_size(ui, signed_in, live_backend):
    from mobile import theme

    app = ui.app
    live_backend.carnet("catalog", "seed")
    largest = max(theme.TEXT_SCALES, key=theme.TEXT_SCALES.get)
    found = {}
    try:
        ui.settle()
        app.apply_preferences({"language": "fr", "text_size": largest}, rebuild_from="home")
        for name in ("home", "catalog", "inbox", "documents", "access", "more"):
            screen = app.show(name)
            ui.wait_for_screen(name)
            ui.wait_until(lambda: not app.busy, "idle")
            ui.pump(0.5)  # a wrapped label takes a frame or two to get its final height
            if name == "catalog":
                # the longest theme and region names, chosen
                screen.ids.theme_filter.text = next(v for v in screen.ids.theme_filter.values
                                                    if v.startswith("Pharmacie"))
                ui.wait_until(lambda: not app.busy, "idle")
                screen.ids.region_filter.text = next(v for v in screen.ids.region_filter.values
                                                     if v.startswith("Auvergne"))
                ui.wait_until(lambda: not app.busy, "idle")
                ui.pump(0.5)
                screen.ids.query.parent.parent.parent.scroll_y = 1
                shot(ui, "lived-19-catalog-extra-large")
            found[name] = clipped_labels(screen)
            if name == "access":  # a sentence about Camille agrees with her
                assert "l'accès est tracé et vous êtes prévenue." in texts(screen)
    finally:
        app.apply_preferences({"language": "fr", "text_size": "normal"}, rebuild_from=app.manager.current)
        ui.settle()
    assert found == {name: [] for name in found}


# -- 10. a warning before a slot that can no longer be cancelled; the day a prevention item was done ------------


def test_booking_warns_within_the_cancellation_cut_off(ui, signed_in, live_backend):
    import datetime as dt
    import json
    from zoneinfo import ZoneInfo

    from mobile.screens.agenda_booking import SlotRow
    from tests.ui.journey_support import FHIR_EXT, professional

    pro = professional(live_backend, "10108889001", "Fabre", "Inès", specialty="SM26")
    today = dt.datetime.now(ZoneInfo("Europe/Paris")).date()
    schedule = {
        "resourceType": "Schedule", "active": True,
        "extension": [{"url": FHIR_EXT + "schedule-slot-minutes", "valueInteger": 60},
                      {"url": FHIR_EXT + "schedule-opening-hours", "extension": [
                          {"url": "start", "valueDateTime": dt.datetime.combine(
                              today, dt.time(0), ZoneInfo("Europe/Paris")).isoformat()},
                          {"url": "end", "valueDateTime": dt.datetime.combine(
                              today, dt.time(23), ZoneInfo("Europe/Paris")).isoformat()},
                          {"url": "rrule", "valueString": "FREQ=DAILY"}]}],
        "specialty": [{"coding": [{"code": "SM26", "display": "Médecine générale"}]}],
        "actor": [{"reference": "#place"}],
        "contained": [{"resourceType": "Location", "id": "place", "name": "Cabinet de la Dore",
                       "address": {"line": ["1 rue de la Dore"], "postalCode": "63300", "city": "Thiers"}}],
    }
    r = pro.post(f"{live_backend.url}/fhir/R4/Schedule", data=json.dumps(schedule), timeout=10)
    assert r.status_code == 201, r.text
    open_home(ui)
    agenda = ui.app.show("agenda")
    ui.wait_for_screen("agenda")
    ui.tap(agenda.ids.book)
    booking = ui.wait_for_screen("agenda_booking")
    ui.type(booking.ids.specialty, "générale")
    ui.type(booking.ids.place, "Thiers")
    ui.tap(booking.ids.search)
    ui.wait_until(lambda: rows(booking.ids.results, SlotRow), "slots are listed")
    ui.settle()
    soon = rows(booking.ids.results, SlotRow)[0]  # within the next hours: past the 24-hour cut-off
    ui.tap(soon)
    ui.wait_until(lambda: booking.ids.no_cancel_warning.text, "the warning is shown")
    ui.settle()
    assert "ne pourra plus être annulé" in booking.ids.no_cancel_warning.text
    assert "24 heures" in booking.ids.no_cancel_warning.text and booking.ids.confirm.text == "Réserver quand même"
    shot(ui, "lived-20-booking-warning")
    later = next(r for r in rows(booking.ids.results, SlotRow)
                 if dt.datetime.fromisoformat(r.slot["starts_at"]) > dt.datetime.now(dt.timezone.utc)
                 + dt.timedelta(hours=30))
    ui.tap(later)
    ui.settle()
    assert booking.ids.no_cancel_warning.text == "" and booking.ids.confirm.text == "Confirmer le rendez-vous"


def test_a_prevention_item_done_on_the_day_said(ui, signed_in):
    import datetime as dt

    from mobile.screens.agenda_prevention import PreventionRow

    open_home(ui)
    ui.app.show("agenda")
    ui.wait_for_screen("agenda")
    prevention = ui.app.show("agenda_prevention")
    ui.wait_for_screen("agenda_prevention")
    ui.wait_until(lambda: rows(prevention.ids.item_list, PreventionRow), "the checklist is shown")
    ui.settle()
    row = next(r for r in rows(prevention.ids.item_list, PreventionRow) if r.item.get("status") == "to_plan")
    ui.tap(row.ids.done)
    ui.wait_until(lambda: row.asking_date, "the day is asked")
    ui.type(row.ids.done_on, "31/12/2099")
    ui.tap(row.ids.save_done)
    ui.wait_until(lambda: row.date_error, "a day in the future is refused")
    day = dt.date.today() - dt.timedelta(days=200)
    ui.type(row.ids.done_on, day.strftime("%d/%m/%Y"))
    ui.tap(row.ids.save_done)
    ui.wait_until(lambda: row.item.get("status") == "done" and not row.asking_date, "marked done")
    ui.settle()
    assert row.item["done_on"] == day.isoformat() and f"Fait le {day.strftime('%d/%m/%Y')}" in row.detail
    shot(ui, "lived-21-prevention-done-on")


# -- 11. `make run`'s app console: no line per request, no clipboard tracebacks -----------------------------

QUIET_CHILD = r"""
import sys, time
import pyotp
from mobile import startup
startup.configure_kivy()
from kivy.base import EventLoop, _runTouchApp_prepare
from mobile.main import CarnetApp

url, nir, password, secret = sys.argv[1:5]
app = CarnetApp(api_url=url, language="fr")
app._run_prepare()
_runTouchApp_prepare()
app.client.login(nir, password)
app.client.verify_otp(pyotp.TOTP(secret).at(time.time() + 30))  # the next step: the tests' own is spent
app.signed_in_as("Camille")
for name in ("home", "agenda", "inbox", "login"):  # requests, and text fields (the clipboard)
    app.show(name)
    deadline = time.time() + 4
    while time.time() < deadline:
        EventLoop.idle()
print("QUIET-DONE", flush=True)
app.stop()
EventLoop.exit()
"""


def test_the_apps_console_stays_quiet(display, live_backend, demo_patient, tmp_path):
    """What `make run` prints for the app (Kivy's own console logging, as on a desktop)."""
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if not key.startswith("KIVY_")}
    env.update({"DISPLAY": display, "PYTHONPATH": str(REPO), "KIVY_NO_ARGS": "1", "KIVY_HOME": str(tmp_path / "k"),
                "CARNET_DATA_DIR": str(tmp_path / "data")})
    done = subprocess.run([sys.executable, "-c", QUIET_CHILD, live_backend.url, demo_patient.nir, demo_patient.password,
                           demo_patient.totp_secret], env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
    output = done.stdout + done.stderr
    assert "QUIET-DONE" in output, output[-3000:]
    per_request = [line for line in output.splitlines() if "DEBUG" in line and ("http" in line.lower()
                                                                               or "/api/" in line)]
    assert per_request == []
    assert "xclip" not in output and "xsel" not in output and "Traceback" not in output, output[-3000:]
