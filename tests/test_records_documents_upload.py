"""Patient uploads: each accepted type, the 10 MB limit (configurable), content sniffed against the
extension, the comment limit; every refusal explains itself in French and changes nothing."""
from __future__ import annotations

import datetime as dt
import hashlib
import io

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from backend.audit.models import AuditEntry
from backend.notifications.models import Notification
from backend.records.documents.models import Document
from tests.helpers import assert_problem, blob_keys
from tests.documents_support import IMG_PDF, RTF, TXT, page_image, read

URL = "/api/v1/record/documents"
def upload(client, patient, content: bytes, filename: str, content_type: str | None = None, **fields):
    # Encoded in memory: the test client would spool a large body to a temporary file it never closes.
    file = FileStorage(io.BytesIO(content), filename=filename, content_type=content_type)
    boundary, body = encode_multipart({"file": file, **fields})
    return client.post(URL, headers=patient.headers, data=body,
                       content_type=f"multipart/form-data; boundary={boundary}")


def state(db):
    """What a refused upload must leave unchanged."""
    db.expire_all()
    return tuple(db.scalar(select(func.count()).select_from(model))
                 for model in (Document, AuditEntry, Notification)) + (len(blob_keys(db)),)


@pytest.mark.parametrize("filename, make, mime", [
    ("compte-rendu.pdf", lambda: read(IMG_PDF), "application/pdf"),
    ("SCAN_ORDONNANCE.PDF", lambda: read(IMG_PDF), "application/pdf"),
    ("photo.jpg", lambda: page_image("JPEG", quality=85), "image/jpeg"),
    ("photo.jpeg", lambda: page_image("JPEG", quality=60), "image/jpeg"),
    ("capture.png", lambda: page_image("PNG"), "image/png"),
    ("scanner.tif", lambda: page_image("TIFF", compression="tiff_deflate"), "image/tiff"),
    ("scanner.tiff", lambda: page_image("TIFF"), "image/tiff"),
    ("kine.rtf", lambda: RTF, "application/rtf"),
    ("tension.txt", lambda: TXT, "text/plain"),
])
def test_each_accepted_type(app, client, db, camille, filename, make, mime):
    content = make()
    r = upload(client, camille, content, filename, category="CPT_REND", title="Mon document",
               comment="Apporté à la consultation du 12 mars", service_date="2024-03-12")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["mime_type"] == mime and body["size"] == len(content)
    assert body["source"] == "patient" and body["own_upload"] is True and body["author"] is None
    assert body["category"] == "CPT_REND" and body["type_code"] == "DOCPAT03" and body["class_code"] == "90"
    assert body["comment"] == "Apporté à la consultation du 12 mars"
    assert body["service_date"].startswith("2024-03-12")
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    download = client.get(f"{URL}/{body['id']}/content", headers=camille.headers)
    assert download.data == content and download.headers["Content-Type"].startswith(mime)
    assert [i["id"] for i in client.get(URL, query_string={"mine": "true"}, headers=camille.headers)
            .get_json()["items"]] == [body["id"]]
    # the patient's own upload: audited, no notification to themselves
    assert db.scalar(select(AuditEntry.actor_type).where(AuditEntry.action == "document.stored")) == "patient"
    assert db.scalar(select(func.count()).select_from(Notification).where(Notification.kind == "document")) == 0


def test_defaults_title_from_the_file_name_and_category(client, camille):
    body = upload(client, camille, TXT, "Tension_mars 2024.txt").get_json()
    assert body["title"] == "Tension mars 2024" and body["category"] == "AUTR_DOC" and body["type_code"] == "EXPPAT_2"
    body = upload(client, camille, RTF, "kine.rtf", comment="x" * 3000).get_json()
    assert len(body["comment"]) == 3000


def refusals():
    pdf, png, jpeg = read(IMG_PDF), page_image("PNG"), page_image("JPEG")
    return [
        # the extension and the content disagree
        (png, "resultat.pdf", None, {}, 422, "upload_type_mismatch", "ne correspond pas à son extension .PDF"),
        (pdf, "photo.png", None, {}, 422, "upload_type_mismatch", ".PNG"),
        (TXT, "photo.jpg", None, {}, 422, "upload_type_mismatch", ".JPG"),
        (jpeg, "scan.tiff", None, {}, 422, "upload_type_mismatch", ".TIFF"),
        (RTF, "note.txt", None, {}, 422, "upload_type_mismatch", ".TXT"),
        (pdf, "note.rtf", None, {}, 422, "upload_type_mismatch", ".RTF"),
        # the declared type disagrees with the extension
        (pdf, "resultat.pdf", "image/png", {}, 422, "upload_type_mismatch", ".PDF"),
        # types not accepted
        (b"<html><script>alert(1)</script></html>", "page.html", None, {}, 415, "upload_type_not_allowed",
         "PDF"),
        (pdf, "resultat", None, {}, 415, "upload_type_not_allowed", "Formats acceptés"),
        (b"MZ\x90\x00" + pdf, "setup.exe", None, {}, 415, "upload_type_not_allowed", "TIFF"),
        # damaged content, empty file
        (pdf[:20000], "coupé.pdf", None, {}, 422, "upload_unreadable", "illisible"),
        (png[:200], "coupée.png", None, {}, 422, "upload_unreadable", "illisible"),
        (b"", "vide.pdf", None, {}, 422, "upload_empty", "vide"),
        # the comment, the category
        (TXT, "tension.txt", None, {"comment": "x" * 3001}, 422, "upload_comment_too_long", "3000 caractères"),
        (TXT, "tension.txt", None, {"category": "DIR_ANT"}, 422, "invalid_request", None),
        (TXT, "tension.txt", None, {"title": "t" * 256}, 422, "invalid_request", None),
        (TXT, "tension.txt", None, {"service_date": "12/03/2024"}, 422, "invalid_request", None),
    ]


def test_refused_uploads_explain_in_french_and_change_nothing(app, client, db, camille):
    before = state(db)
    for content, filename, declared, fields, status, code, words in refusals():
        r = upload(client, camille, content, filename, declared, **fields)
        body = assert_problem(r, status, code)
        if words:
            assert words in body["detail"], (filename, body)
        assert state(db) == before, filename
    assert_problem(client.post(URL, headers=camille.headers, content_type="multipart/form-data",
                               data={"comment": "sans fichier"}), 422, "invalid_request")
    assert client.get(URL, headers=camille.headers).get_json()["total"] == 0


def test_duplicate_upload_is_refused(app, client, db, camille):
    assert upload(client, camille, read(IMG_PDF), "scanner.pdf").status_code == 201
    before = state(db)
    assert_problem(upload(client, camille, read(IMG_PDF), "scanner-bis.pdf"), 409, "upload_duplicate")
    assert state(db) == before


def test_size_limit_default_and_configured(app, client, db, camille, monkeypatch):
    before = state(db)
    line = "Relevé de glycémie capillaire : 1,05 g/l à jeun\n".encode()
    ten_mb = 10 * 1024 * 1024
    big = (line * (ten_mb // len(line) + 1))[: ten_mb + 1]
    body = assert_problem(upload(client, camille, big, "releves.txt"), 413, "upload_too_large")
    assert "taille maximale autorisée (10 Mo)" in body["detail"]
    assert state(db) == before
    assert upload(client, camille, big[:ten_mb], "releves.txt").status_code == 201

    monkeypatch.setitem(app.config, "UPLOAD_MAX_BYTES", 1024 * 1024)
    before = state(db)
    body = assert_problem(upload(client, camille, big[: 1024 * 1024 + 1], "autres.txt"), 413, "upload_too_large")
    assert "(1 Mo)" in body["detail"]
    assert state(db) == before
    assert upload(client, camille, big[2: 1024 * 1024 + 2], "autres.txt").status_code == 201


def test_upload_then_listing_by_service_date(client, camille):
    for day, name in [("2023-01-10", "janvier.txt"), ("2023-06-10", "juin.txt")]:
        assert upload(client, camille, f"Note du {day}\n".encode(), name, service_date=day).status_code == 201
    items = client.get(URL, query_string={"sort": "service", "order": "asc"}, headers=camille.headers).get_json()
    assert [i["title"] for i in items["items"]] == ["janvier", "juin"]
    assert dt.date.fromisoformat(items["items"][0]["service_date"][:10]) == dt.date(2023, 1, 10)
