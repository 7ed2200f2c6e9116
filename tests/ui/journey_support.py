"""Helpers of the whole-app journey (``test_ui_full_journey.py``): the world the patient meets — a legacy
dossier in the backend's ``CARNET_LEGACY_DIR``, professionals with their software's token, a practice's
opening hours, a doctor's message — set up through the ``carnet`` CLI and the professional FHIR API, as
the other UI tests do; and pictures of the app as drawn.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import requests

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
                {"url": "start", "valueDateTime": f"{first_day}T09:00:00"},
                {"url": "end", "valueDateTime": f"{first_day}T12:00:00"},
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
