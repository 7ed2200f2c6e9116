"""Helpers of the UI tests (the whole-app journey ``test_ui_full_journey.py`` and the others): the world the
patient meets — a legacy dossier in the backend's ``CARNET_LEGACY_DIR``, professionals with their software's
token, a practice's opening hours, a doctor's message — set up through the ``carnet`` CLI and the professional
FHIR API; driving the app (signed in, a finger's swipe, scrolling to a widget); and looking at it (pictures as
drawn, the texts shown, targets too small for a finger, labels whose text does not fit).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import requests

from mobile.api import CarnetClient
from mobile.api.records import RecordsApi
from tests.ui.conftest import _touch_event_class, fresh_totp_code

REPO = Path(__file__).resolve().parents[2]
EXTERNAL = REPO.parent / "shared" / "fixtures" / "external"
V3 = EXTERNAL / "ans-testcontenucda-3.0"
# The holder of the ANS CDA 3.0 examples (INS-NIR of test, OID .10): replaced by the journey's patient.
NIR_PAT_TROIS = b"279035121518989"
# A CDA level 1 (nonXMLBody) carrying a real PDF: the imaging report the patient opens after the import.
PDF_IN_CDA = "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml"
PDF_IN_CDA_TITLE = "CR d’imagerie médicale - Scanner Tête + Cou + Thorax avec injection"
# Structured documents beside it: a vaccination note and a patient summary (profile entries).
STRUCTURED = ("VAC-NOTE_2023.01.xml", "IPS-FR_2024.01.xml")
PARIS = ZoneInfo("Europe/Paris")
FHIR_EXT = "https://carnet.example/fhir/StructureDefinition/"


# -- the world -------------------------------------------------------------------------------------


def lay_out_legacy_dossier(legacy_dir: Path, nir: str, authorised_rpps: list[str]) -> Path:
    """``<legacy_dir>/<nir>/``: real ANS CDA examples made the patient's (their INS-NIR written in), and
    the old DMP's settings naming the professionals the patient had authorised."""
    dossier = legacy_dir / nir
    dossier.mkdir(parents=True)
    for name in (PDF_IN_CDA, *STRUCTURED):
        content = (V3 / name).read_bytes()
        assert content.count(NIR_PAT_TROIS) >= 1, name
        (dossier / name).write_bytes(content.replace(NIR_PAT_TROIS, nir.encode()))
    settings = {"version": 1, "authorised_professionals": [{"rpps": rpps} for rpps in authorised_rpps]}
    (dossier / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    return dossier


def professional(live_backend, rpps: str, family_name: str, given_name: str, profession: str = "10",
                 specialty: str | None = None) -> requests.Session:
    """A professional in the directory (``carnet pro create``) and their software's FHIR session."""
    args = ["pro", "create", "--rpps", rpps, "--family-name", family_name, "--given-name", given_name,
            "--profession", profession]
    if specialty:
        args += ["--specialty", specialty]
    result = live_backend.carnet(*args)
    token = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])["token"]
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"})
    return session


def publish_opening_hours(live_backend, pro: requests.Session, practice: str, city: str, postal_code: str,
                          street: str) -> dt.date:
    """The practice opens every day 09:00–12:00 (30-minute slots) from three days on, beyond the
    24-hour booking cut-off; returns the first open day."""
    first_day = dt.datetime.now(PARIS).date() + dt.timedelta(days=3)
    schedule = {
        "resourceType": "Schedule", "active": True,
        "extension": [
            {"url": FHIR_EXT + "schedule-slot-minutes", "valueInteger": 30},
            {"url": FHIR_EXT + "schedule-opening-hours", "extension": [
                # FHIR dateTimes with a time carry their offset (Paris's on that day; the rule keeps the wall time)
                {"url": "start", "valueDateTime": dt.datetime.combine(first_day, dt.time(9), PARIS).isoformat()},
                {"url": "end", "valueDateTime": dt.datetime.combine(first_day, dt.time(12), PARIS).isoformat()},
                {"url": "rrule", "valueString": "FREQ=DAILY"}]}],
        "specialty": [{"coding": [{"code": "SM26", "display": "Médecine générale"}]}],
        "actor": [{"reference": "#place"}],
        "contained": [{"resourceType": "Location", "id": "place", "name": practice,
                       "address": {"line": [street], "postalCode": postal_code, "city": city}}],
    }
    r = pro.post(f"{live_backend.url}/fhir/R4/Schedule", data=json.dumps(schedule), timeout=10)
    assert r.status_code == 201, r.text
    return first_day


def send_message(live_backend, pro: requests.Session, nir: str, subject: str, text: str) -> dict:
    """A message to the patient from the professional's software (FHIR Communication)."""
    body = {"resourceType": "Communication", "status": "completed",
            "subject": {"identifier": {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": nir}},
            "topic": {"text": subject}, "payload": [{"contentString": text}]}
    r = pro.post(f"{live_backend.url}/fhir/R4/Communication", data=json.dumps(body), timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def find_documents(live_backend, pro: requests.Session, nir: str) -> requests.Response:
    """ITI-67, as the professional's software asks: the patient's documents it may see."""
    return pro.get(f"{live_backend.url}/fhir/R4/DocumentReference", timeout=10,
                   params={"patient.identifier": f"urn:oid:1.2.250.1.213.1.4.8|{nir}"})


# -- driving the app ------------------------------------------------------------------------------

def sign_in(ui, patient) -> RecordsApi:
    """The app holds the patient's access token, as after the sign-in screens (they have their own
    journeys); returns a RecordsApi on a separate client, for setting things up like another device."""
    client = ui.app.client
    client.login(patient.nir, patient.password)
    client.verify_otp(fresh_totp_code(patient))
    ui.app.signed_in = True
    ui.app.given_name = patient.given_name
    other = CarnetClient(ui.app.client.base_url)
    other.token = client.token
    return RecordsApi(other)


def swipe_up(ui, view, fraction: float = 0.6) -> None:
    """A finger drags the content of ``view`` up (towards the end of a list)."""
    from kivy.base import EventLoop

    window = EventLoop.window
    x, y = view.to_window(view.center_x, view.y + view.height * 0.2)
    end = y + view.height * fraction
    event = _touch_event_class()("carnet-ui-swipe", id(view), (x / (window.width - 1.0), y / (window.height - 1.0)))
    EventLoop.post_dispatch_input("begin", event)
    # The first move at once, not a frame later: a ScrollView that sees a finger still after its
    # scroll_timeout (0.2 s, a frame or two on a loaded machine) hands the touch to its children as a tap.
    for step in range(1, 9):
        event.move((x / (window.width - 1.0), (y + (end - y) * step / 8) / (window.height - 1.0)))
        EventLoop.post_dispatch_input("update", event)
        ui.frames(1)
    EventLoop.post_dispatch_input("end", event)
    # Let the fling come to rest, as a person waits for the list to stop: a few seconds at most. (Once, in a
    # whole-suite run, the effect kept a velocity for good after the release — a still list, but a number
    # that never fell; the test goes on, and what it checks next is what the swipe brought.)
    deadline = time.monotonic() + 5
    while abs(view.effect_y.velocity) >= 1 and time.monotonic() < deadline:
        ui.frames()
    ui.frames(3)


def scroll_to(ui, widget) -> None:
    ui._scroll_into_view(widget)
    ui.frames(3)


# -- looking at the app ----------------------------------------------------------------------------

def shot(ui, name: str, widget=None) -> Path:
    """Once the app is idle, a picture of it (or of ``widget``) as drawn (``Driver.screenshot``)."""
    ui.settle()
    return ui.screenshot(name, widget)


def texts(widget) -> str:
    """Every text shown inside ``widget`` (labels and buttons), to assert on what the patient reads."""
    from kivy.uix.label import Label

    return "\n".join(w.text for w in widget.walk() if isinstance(w, Label) and w.text)


def rows(container, kind) -> list:
    return [w for w in reversed(container.children) if isinstance(w, kind)]


def small_targets(root) -> list[str]:
    """What a finger could tap on ``root`` (shown, enabled) that is under 48 dp either way."""
    from kivy.metrics import dp
    from kivy.uix.behaviors import ButtonBehavior
    from kivy.uix.textinput import TextInput

    found = []

    def walk(widget, shown: bool) -> None:
        shown = shown and widget.opacity > 0 and not widget.disabled
        if shown and isinstance(widget, ButtonBehavior | TextInput) and min(widget.size) < dp(48) - 0.5:
            found.append(f"{type(widget).__name__} {getattr(widget, 'text', '')[:30]!r} {widget.size}")
        for child in widget.children:
            walk(child, shown)

    walk(root, True)
    return found


def shot_with_big_targets(ui, name: str) -> None:
    """A screenshot to look at, once every target on the screen is big enough for a finger."""
    assert small_targets(ui.screen) == [], name
    ui.screenshot(name)


def clipped_labels(root) -> list[str]:
    """Labels shown (not hidden) whose laid-out text is taller or wider than the label itself, or that
    stick out of the box holding them (a fixed-height tile whose text grew past its edge)."""
    from kivy.uix.label import Label
    from kivy.uix.scrollview import ScrollView

    found = []

    def box(widget) -> tuple[float, float, float, float]:
        x, y = widget.to_window(*widget.pos)
        return x, y, x + widget.width, y + widget.height

    def walk(widget, visible: bool) -> None:
        visible = visible and widget.opacity > 0
        if visible and isinstance(widget, Label) and widget.text.strip():
            width, height = widget.texture_size
            name = f"{type(widget).__name__} {widget.text[:40]!r}"
            if height > widget.height + 1 or width > widget.width + 1:
                found.append(f"{name}: text {width:.0f}×{height:.0f} in {widget.width:.0f}×{widget.height:.0f}")
            parent = widget.parent
            if parent is not None and parent is not widget.get_root_window() and not isinstance(parent, ScrollView):
                (x0, y0, x1, y1), (px0, py0, px1, py1) = box(widget), box(parent)
                if x0 < px0 - 1 or y0 < py0 - 1 or x1 > px1 + 1 or y1 > py1 + 1:
                    found.append(f"{name}: sticks out of its {type(parent).__name__}")
        for child in widget.children:
            walk(child, visible)

    walk(root, True)
    return found


def open_home(ui):
    home = ui.app.show("home")
    ui.wait_for_screen("home")
    ui.wait_until(lambda: home.loaded, "the home page is loaded")
    ui.settle()
    return home
