"""The secure inbox in the real app, against a live backend, under Xvfb: the inbox (unread first,
search), a thread (read receipt seen by the professional), saving an attachment into the record,
a reply with a file (a refused file first), a conversation that takes no replies.

A doctor writes over the professional FHIR API, as their software would; the patient signs in
through the API (the sign-in screens have their own journeys).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import requests

from mobile.screens.inbox_common import ChoiceButton, ThreadRow
from tests.ui.journey_support import shot

pytestmark = pytest.mark.ui

SHARED = Path(__file__).resolve().parents[3] / "shared"
LAB_PDF = SHARED / "fixtures" / "external" / "ans-drimbox" / "cda" / "IMG_CR_IMG_2023.11_Doc_metier.pdf"
EXT = "https://carnet.example/fhir/StructureDefinition/"


@pytest.fixture
def doctor(live_backend):
    result = live_backend.carnet("pro", "create", "--rpps", "10101239999", "--family-name", "Girard",
                                 "--given-name", "Sophie", "--profession", "10")
    token = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])["token"]
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"})
    return session


def write(live_backend, doctor, nir: str, subject: str, text: str, **extra) -> dict:
    body = {"resourceType": "Communication", "status": "completed",
            "subject": {"identifier": {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": nir}},
            "topic": {"text": subject}, "payload": [{"contentString": text}], **extra}
    r = doctor.post(f"{live_backend.url}/fhir/R4/Communication", data=json.dumps(body), timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def signed_in(ui, enrolled_patient, totp_code):
    client = ui.app.client
    client.login(enrolled_patient.nir, enrolled_patient.password)
    client.verify_otp(totp_code(enrolled_patient))
    ui.app.signed_in = True
    ui.app.given_name = enrolled_patient.given_name
    return enrolled_patient


def test_read_save_reply_and_a_conversation_without_replies(ui, live_backend, doctor, signed_in, tmp_path):
    pdf = LAB_PDF.read_bytes()
    results = write(live_backend, doctor, signed_in.nir, "Résultats de votre bilan sanguin",
                    "Bonjour Madame Martin,\n\nVos résultats sont dans les normes ; le compte rendu est joint.\n\n"
                    "Dr Sophie Girard",
                    payload=[{"contentString": "Bonjour Madame Martin,\n\nVos résultats sont dans les normes ; le "
                                               "compte rendu est joint.\n\nDr Sophie Girard"},
                             {"contentAttachment": {"contentType": "application/pdf", "title": "Compte rendu.pdf",
                                                    "data": base64.b64encode(pdf).decode()}}])
    write(live_backend, doctor, signed_in.nir, "Préparation de votre examen",
          "Venez à jeun. Ce message ne reçoit pas de réponse.",
          extension=[{"url": EXT + "communication-replies-allowed", "valueBoolean": False}])

    # the inbox: both unread
    ui.app.show("home")
    ui.wait_for_screen("home")
    inbox = ui.app.show("inbox")
    ui.wait_for_screen("inbox")
    ui.wait_until(lambda: inbox.loaded, "the inbox is loaded")
    rows = inbox.rows()
    assert [r.subject for r in rows] == ["Préparation de votre examen", "Résultats de votre bilan sanguin"]
    assert all(r.unread for r in rows) and inbox.summary == "2 conversations non lues."
    shot(ui, "inbox-01-list")

    # search by subject
    ui.type(inbox.ids.search, "bilan")
    ui.tap(inbox.ids.search_button)
    ui.wait_until(lambda: len(inbox.rows()) == 1, "the search keeps one conversation")
    shot(ui, "inbox-02-search")

    # open it: the doctor sees it was read
    ui.tap(inbox.rows()[0])
    thread = ui.wait_for_screen("inbox_thread")
    ui.wait_until(lambda: thread.loaded, "the thread is shown")
    [card] = thread.cards()
    assert "dans les normes" in card.body and card.author == "Sophie GIRARD"
    assert thread.can_reply and not thread.notice
    shot(ui, "inbox-03-thread")
    read = doctor.get(f"{live_backend.url}/fhir/R4/Communication/{results['id']}", timeout=10).json()
    assert any(e["url"] == EXT + "communication-read" for e in read["extension"])

    # save the attachment into the record, under Biologie
    save_link = next(w for w in card.ids.attachments.walk() if getattr(w, "text", "") == "Enregistrer dans mon dossier")
    ui.tap(save_link)
    save = ui.wait_for_screen("inbox_save")
    assert save.ids.title.text == "Compte rendu"
    biology = next(c for c in save.ids.categories.children if isinstance(c, ChoiceButton) and c.value == "BIOLOGIE")
    ui.tap(biology)
    ui.tap(save.ids.save)
    ui.wait_until(lambda: save.saved, "the attachment is saved")
    assert save.done == "« Compte rendu » est enregistré dans votre dossier, rubrique Biologie."
    shot(ui, "inbox-04-saved")
    documents = ui.app.client._session.get(f"{live_backend.url}/api/v1/record/documents", timeout=10,
                                           headers={"Authorization": f"Bearer {ui.app.client.token}"}).json()
    [saved] = [d for d in documents["items"] if d["title"] == "Compte rendu"]
    assert saved["category"] == "BIOLOGIE" and saved["size"] == len(pdf)

    # reply with a file: a refused one first (a PDF named .png), then a good one
    ui.tap(save.ids.save)  # back to the conversation
    ui.wait_for_screen("inbox_thread")
    ui.wait_until(lambda: thread.loaded, "the thread is shown again")
    ui.tap(thread.ids.reply)
    compose = ui.wait_for_screen("inbox_compose")
    assert compose.heading == "Répondre à Sophie GIRARD"
    ui.type(compose.ids.body, "Merci, voici ma tension.")
    fake = tmp_path / "photo.png"
    fake.write_bytes(pdf)
    compose.attach_file(str(fake))
    ui.tap(compose.ids.send)
    ui.wait_until(lambda: compose.error, "the refusal is shown")
    assert compose.error.startswith("Le contenu du fichier ne correspond pas à son extension .PNG")
    shot(ui, "inbox-05-refused-file")
    compose.remove("file", 0)
    good = tmp_path / "tension.txt"
    good.write_text("12/03 : 13/8\n13/03 : 12/7\n", encoding="utf-8")
    picker = compose.pick_file(start=str(tmp_path))
    entry = ui.wait_until(lambda: next((w for w in picker.chooser.walk() if getattr(w, "path", None) == str(good)),
                                       None), "the file is listed")
    ui.tap(entry)
    ui.wait_until(lambda: picker.chosen == "tension.txt", "the file is chosen")
    shot(ui, "inbox-06-file-picker", widget=picker)
    ui.tap(picker.attach_button)
    ui.wait_until(lambda: compose.files and compose.files[0].name == "tension.txt", "the file is attached")
    shot(ui, "inbox-07-compose")
    ui.tap(compose.ids.send)
    ui.wait_for_screen("inbox_thread")
    ui.wait_until(lambda: thread.loaded and len(thread.cards()) == 2, "the reply is in the thread")
    mine = thread.cards()[1]
    assert mine.from_you and mine.receipt == "Envoyé, pas encore lu"
    shot(ui, "inbox-08-replied")
    replies = doctor.get(f"{live_backend.url}/fhir/R4/Communication", params={"sender-kind": "patient"},
                         timeout=10).json()
    [entry] = replies["entry"]
    attachment = next(p["contentAttachment"] for p in entry["resource"]["payload"] if "contentAttachment" in p)
    data = requests.get(attachment["url"], headers={"Authorization": doctor.headers["Authorization"]}, timeout=10)
    assert hashlib.sha256(data.content).digest() == hashlib.sha256(good.read_bytes()).digest()

    # the other conversation takes no replies: the screen says so and offers none
    ui.app.back("inbox")
    ui.wait_for_screen("inbox")
    ui.tap(inbox.ids.search)
    inbox.clear_search()
    ui.wait_until(lambda: len(inbox.rows()) == 2, "both conversations are listed")
    first = inbox.rows()[0]
    assert first.subject == "Préparation de votre examen" and first.unread
    assert isinstance(first, ThreadRow) and first.status == "Réponses désactivées"
    ui.tap(first)
    ui.wait_for_screen("inbox_thread")
    ui.wait_until(lambda: thread.loaded and thread.subject == "Préparation de votre examen", "the thread is shown")
    assert not thread.can_reply and thread.notice.startswith("Le professionnel a désactivé les réponses")
    shot(ui, "inbox-09-no-replies")

    # a new conversation, with the professional who already wrote (the only one: chosen for the patient)
    ui.app.back("inbox")
    ui.wait_for_screen("inbox")
    ui.tap(inbox.ids.write)
    compose = ui.wait_for_screen("inbox_compose")
    ui.wait_until(lambda: compose.recipient_id, "the professional is chosen")
    ui.type(compose.ids.subject, "Mon traitement")
    ui.type(compose.ids.body, "Le prendre à jeun ?")
    shot(ui, "inbox-10-new-thread")
    ui.tap(compose.ids.send)
    ui.wait_for_screen("inbox_thread")
    ui.wait_until(lambda: thread.loaded and thread.subject == "Mon traitement", "the new thread is shown")
    assert thread.cards()[0].from_you and thread.can_reply
