"""Attachments of the inbox: checked exactly like document uploads (types, size, content sniffed) on both
sides, a refusal writes nothing; the bytes come back unchanged; an attachment saved into the record is a
record document with identical bytes in the category the patient chose; a record document attached to a
reply goes through the patient's own scope."""
from __future__ import annotations

import base64
import hashlib
import io
import json

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from backend.audit.models import AuditEntry
from backend.messaging.models import Attachment, Message, Thread
from backend.notifications.models import Notification
from backend.records.documents import service as docs
from backend.records.crypto import Vault
from backend.records.documents.models import Document
from tests.helpers import assert_problem, blob_keys
from tests.messaging_support import FHIR, INBOX, communication, outcome_code, send, thread_of
from tests.world import make_doc
from tests.documents_support import IMG_PDF, RTF, TXT, page_image, read


def post_reply(client, patient, thread_id: int, files: list[tuple[str, bytes, str | None]], body: str = "Ci-joint.",
               **fields):
    parts: dict = {"body": body, **fields}
    storages = [FileStorage(io.BytesIO(content), filename=name, content_type=ctype) for name, content, ctype in files]
    if storages:
        parts["file"] = storages
    boundary, data = encode_multipart(parts)
    return client.post(f"{INBOX}/threads/{thread_id}/messages", headers=patient.headers, data=data,
                       content_type=f"multipart/form-data; boundary={boundary}")


def state(db):
    """What a refused message must leave unchanged."""
    db.expire_all()
    return tuple(db.scalar(select(func.count()).select_from(model))
                 for model in (Thread, Message, Attachment, AuditEntry, Notification, Document)) + (len(blob_keys(db)),)


def fhir_attachment(content: bytes, content_type: str, title: str) -> dict:
    return {"contentType": content_type, "title": title, "data": base64.b64encode(content).decode()}


@pytest.fixture
def thread(client, db, world):
    first = send(client, world.durand, world.camille.nir)
    world.extra["first"] = first
    return thread_of(db, first["id"])


# --- accepted types, both ways -------------------------------------------------------------------------------

def test_professional_attachments_reach_the_patient_unchanged(app, client, db, world):
    pdf = read(IMG_PDF)
    png = page_image("PNG")
    sent = send(client, world.durand, world.camille.nir, "Compte rendu d'imagerie", "Voici le compte rendu.",
                attachments=[fhir_attachment(pdf, "application/pdf", "Compte rendu IRM.pdf"),
                             fhir_attachment(png, "image/png", "cliché")])  # no extension: from the type
    items = [p["contentAttachment"] for p in sent["payload"] if "contentAttachment" in p]
    assert [(a["title"], a["contentType"], a["size"]) for a in items] == [
        ("Compte rendu IRM.pdf", "application/pdf", len(pdf)), ("cliché.png", "image/png", len(png))]
    detail = client.get(f"{INBOX}/threads/{thread_of(db, sent['id'])}", headers=world.camille.headers).get_json()
    atts = detail["messages"][0]["attachments"]
    assert [a["filename"] for a in atts] == ["Compte rendu IRM.pdf", "cliché.png"]
    assert detail["attachment_count"] == 2
    for att, original, mime in zip(atts, (pdf, png), ("application/pdf", "image/png")):
        r = client.get(att["content_url"], headers=world.camille.headers)
        assert r.status_code == 200 and r.data == original and r.mimetype == mime
        assert r.headers["Content-Disposition"].startswith("attachment;")
        assert r.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("filename, make, mime", [
    ("ordonnance.pdf", lambda: read(IMG_PDF), "application/pdf"),
    ("photo.jpg", lambda: page_image("JPEG", quality=80), "image/jpeg"),
    ("scan.tiff", lambda: page_image("TIFF"), "image/tiff"),
    ("kine.rtf", lambda: RTF, "application/rtf"),
    ("tension.txt", lambda: TXT, "text/plain"),
])
def test_patient_reply_with_each_accepted_type(client, db, world, thread, filename, make, mime):
    content = make()
    r = post_reply(client, world.camille, thread, [(filename, content, None)])
    assert r.status_code == 201, r.get_json()
    [att] = r.get_json()["message"]["attachments"]
    assert (att["filename"], att["mime_type"], att["size"], att["from_record"]) == (filename, mime, len(content), False)
    # the professional reads the reply with the attachment inline, byte for byte
    read_back = client.get(f"{FHIR}/{r.get_json()['message']['id']}", headers=world.durand.headers()).get_json()
    [item] = [p["contentAttachment"] for p in read_back["payload"] if "contentAttachment" in p]
    assert base64.b64decode(item["data"]) == content and item["contentType"] == mime


# --- refusals write nothing ----------------------------------------------------------------------------------

def test_patient_attachment_refusals(app, client, db, world, thread):
    pdf = read(IMG_PDF)
    too_big = b"%PDF-1.4\n" + b"0" * (10 * 1024 * 1024)
    cases = [
        ([("programme.exe", b"MZ\x90\x00", None)], 415, "upload_type_not_allowed"),
        ([("photo.png", pdf, None)], 422, "upload_type_mismatch"),                   # a PDF called .png
        ([("lettre.pdf", TXT, "application/pdf")], 422, "upload_type_mismatch"),     # text called PDF
        ([("lettre.pdf", pdf, "image/png")], 422, "upload_type_mismatch"),           # declared otherwise
        ([("vide.txt", b"", None)], 422, "upload_empty"),
        ([("gros.pdf", too_big, None)], 413, "upload_too_large"),
        ([("ok.txt", TXT, None), ("faux.jpg", TXT, None)], 422, "upload_type_mismatch"),  # one bad, none kept
        ([(f"n{i}.txt", TXT, None) for i in range(6)], 422, "inbox_too_many_attachments"),
    ]
    before = state(db)
    for files, status, code in cases:
        body = assert_problem(post_reply(client, world.camille, thread, files), status, code)
        assert body["detail"] and not body["detail"].startswith("The ")  # French by default
        assert state(db) == before, code
    assert_problem(post_reply(client, world.camille, thread, [], body="   "), 422, "inbox_empty_message")
    assert state(db) == before


def test_professional_attachment_refusals(client, db, world):
    pdf = read(IMG_PDF)
    cases = [
        (fhir_attachment(b"MZ\x90\x00", "application/x-msdownload", "outil.exe"), 415, "upload_type_not_allowed"),
        (fhir_attachment(pdf, "image/png", "radio.png"), 422, "upload_type_mismatch"),
        (fhir_attachment(TXT, "application/pdf", "resultat"), 422, "upload_type_mismatch"),
        (fhir_attachment(b"%PDF-1.4\n" + b"0" * (10 * 1024 * 1024), "application/pdf", "gros.pdf"), 413,
         "upload_too_large"),
        ({"contentType": "application/pdf", "title": "x.pdf", "data": "pas du base64 !"}, 400, "fhir_invalid_resource"),
        ({"contentType": "application/pdf", "url": "https://ailleurs.example/x.pdf"}, 422, "inbox_invalid_communication"),
    ]
    before = state(db)
    for attachment, status, code in cases:
        body = communication(world.camille.nir, "Résultats", "Ci-joint", attachments=[attachment])
        r = client.post(FHIR, headers=world.durand.headers(), data=json.dumps(body), content_type="application/fhir+json")
        assert (r.status_code, outcome_code(r)) == (status, code), r.get_json()
        assert state(db) == before, code


# --- saving into the record ----------------------------------------------------------------------------------

def test_a_saved_attachment_is_a_record_document_with_identical_bytes(app, client, db, world):
    pdf = read(IMG_PDF)
    sent = send(client, world.durand, world.camille.nir, "Compte rendu", "Ci-joint.",
                attachments=[fhir_attachment(pdf, "application/pdf", "CR_IRM_genou.pdf")])
    detail = client.get(f"{INBOX}/threads/{thread_of(db, sent['id'])}", headers=world.camille.headers).get_json()
    att_id = detail["messages"][0]["attachments"][0]["id"]

    r = client.post(f"{INBOX}/attachments/{att_id}/save", headers=world.camille.headers, json={"category": "INVENTED"})
    assert_problem(r, 422)
    r = client.post(f"{INBOX}/attachments/{att_id}/save", headers=world.camille.headers, json={"category": "RADIO_SC"})
    assert r.status_code == 201, r.get_json()
    saved = r.get_json()
    assert saved["created"] is True and saved["category"] == "RADIO_SC" and saved["title"] == "CR IRM genou"
    assert saved["sha256"] == hashlib.sha256(pdf).hexdigest() and saved["size"] == len(pdf)

    db.expire_all()
    doc = db.get(Document, saved["document_id"])
    assert (doc.patient_id, doc.source, doc.category, doc.type_code, doc.class_code) == (
        world.camille.id, "patient", "RADIO_SC", "DOCPAT04", "90")
    assert doc.author_rpps == world.durand.rpps and doc.mime_type == "application/pdf"
    vault = Vault(db, app.extensions["carnet.keyring"])
    assert docs.read_content(db, vault, doc) == pdf
    # the documents API serves those very bytes
    r = client.get(f"/api/v1/record/documents/{doc.id}/content", headers=world.camille.headers)
    assert r.status_code == 200 and r.data == pdf
    actions = list(db.scalars(select(AuditEntry.action).where(AuditEntry.patient_id == world.camille.id)))
    assert "document.stored" in actions and "inbox.attachment_saved" in actions

    # again: the same document; the thread shows where it went
    again = client.post(f"{INBOX}/attachments/{att_id}/save", headers=world.camille.headers,
                        json={"category": "RADIO_SC"}).get_json()
    assert again["created"] is False and again["document_id"] == doc.id
    detail = client.get(f"{INBOX}/threads/{thread_of(db, sent['id'])}", headers=world.camille.headers).get_json()
    assert detail["messages"][0]["attachments"][0]["saved_document_id"] == doc.id
    # deleted from the record, it may be saved anew
    assert client.delete(f"/api/v1/record/documents/{doc.id}", headers=world.camille.headers).status_code == 204
    anew = client.post(f"{INBOX}/attachments/{att_id}/save", headers=world.camille.headers,
                       json={"category": "CPT_REND", "title": "Mon IRM"}).get_json()
    assert anew["created"] is True and anew["document_id"] != doc.id and anew["title"] == "Mon IRM"
    # another patient cannot
    r = client.post(f"{INBOX}/attachments/{att_id}/save", headers=world.louis.headers, json={"category": "RADIO_SC"})
    assert_problem(r, 404, "inbox_attachment_not_found")


# --- a record document attached to a reply ------------------------------------------------------------------

def test_a_record_document_attached_to_a_reply(app, client, db, world, thread):
    own = make_doc(app, db, world.camille.id, "ordonnance", category="ORD_SOIN")
    hidden = make_doc(app, db, world.camille.id, "annonce", author=None, invisible=True)
    others = make_doc(app, db, world.louis.id, "louis")
    db.commit()
    own_bytes = f"CONTENT-ordonnance-{world.camille.id}".encode()

    before = state(db)
    for doc_id in (others.id, hidden.id, 987654):
        r = post_reply(client, world.camille, thread, [], document_id=str(doc_id))
        body = assert_problem(r, 404, "inbox_document_not_found")
        assert "louis" not in json.dumps(body) and "annonce" not in json.dumps(body)
        assert state(db) == before

    r = post_reply(client, world.camille, thread, [("mesures.txt", TXT, None)], body="Mon ordonnance",
                   document_id=str(own.id))
    assert r.status_code == 201, r.get_json()
    atts = r.get_json()["message"]["attachments"]
    assert [(a["filename"], a["from_record"]) for a in atts] == [
        ("mesures.txt", False), (f"TITLE-ordonnance-{world.camille.id}.txt", True)]
    # the professional receives the document's bytes
    read_back = client.get(f"{FHIR}/{r.get_json()['message']['id']}", headers=world.durand.headers()).get_json()
    data = [base64.b64decode(p["contentAttachment"]["data"]) for p in read_back["payload"] if "contentAttachment" in p]
    assert data == [TXT, own_bytes]
    db.expire_all()
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "inbox.document_attached"))
    assert entry.patient_id == world.camille.id and json.loads(entry.details)["document_id"] == own.id
    assert docs.read_content(db, Vault(db, app.extensions["carnet.keyring"]), own) == own_bytes  # unchanged


def test_the_attachment_of_a_deleted_thread_is_gone_for_the_patient(client, db, world):
    sent = send(client, world.durand, world.camille.nir, "Objet", "Texte",
                attachments=[fhir_attachment(TXT, "text/plain", "a.txt")])
    thread_id = thread_of(db, sent["id"])
    att_id = db.scalar(select(Attachment.id))
    assert client.get(f"{INBOX}/attachments/{att_id}/content", headers=world.camille.headers).status_code == 200
    client.delete(f"{INBOX}/threads/{thread_id}", headers=world.camille.headers)
    r = client.get(f"{INBOX}/attachments/{att_id}/content", headers=world.camille.headers)
    assert_problem(r, 404, "inbox_attachment_not_found")
