"""Hostile input on every input path, each refused with a clear error and nothing written (every table's row
count before and after).

- JSON bodies: every operation of the OpenAPI document that takes JSON (read at collection: later routes are
  covered too) gets invalid UTF-8, a 100,000-deep nesting, a number past any float, NUL characters, a body
  that is not an object, a wrong content type, and one past the size limit.
- Uploads: every multipart operation gets a zip bomb named like a document, an XML file with an external
  entity or a billion laughs, invalid UTF-8 text, path traversal and NUL in the file name, a file past the
  limit, and a non-multipart body.
- iCalendar import: not a calendar, invalid UTF-8, an unbounded SECONDLY rule, too many events, too large.
- FHIR (POST /fhir/R4): a CDA with an external entity or a billion laughs as the Binary, a deep JSON, invalid
  UTF-8, XML instead of JSON, a body past the limit: an OperationOutcome with the reason.
- Legacy XDM/CDA: the readers' own hostile tests are tests/test_migration_readers.py; here the end to end
  import of a dossier made of them quarantines every item with a reason and attaches nothing.
"""
from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from backend.db import Base
from tests.conftest import make_app
from tests.fhir_helpers import FHIR_JSON, Doc, assert_outcome, make_pro, provide_bundle
from tests.helpers import NIR_CAMILLE, activate, bearer, create_patient

XXE = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b'<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&x;</title></ClinicalDocument>')
LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"".join(b"&lol%s;" % (str(i - 1).encode() if i > 1 else b"")
                                                              for _ in range(10))) for i in range(1, 10))
          + b']><ClinicalDocument xmlns="urn:hl7-org:v3"><title>&lol9;</title></ClinicalDocument>')
INVALID_UTF8 = b"Compte rendu \xff\xfe\xc3\x28 \xed\xa0\x80 fin\n"


def zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("../../../../etc/cron.d/evil", b"\0" * (30 * 1024 * 1024))  # 30 MB of zeros in ~30 KB
    return out.getvalue()


def row_counts(app: Flask) -> dict[str, int]:
    from backend.db import get_db

    engine = get_db(app).engine
    assert engine is not None
    with engine.connect() as conn:
        return {t.name: conn.scalar(select(func.count()).select_from(t)) or 0 for t in Base.metadata.sorted_tables}


def assert_refused(response: Any, why: str) -> dict[str, Any]:
    """A 4xx problem+json that says something."""
    assert 400 <= response.status_code < 500, (why, response.status_code, response.get_data()[:300])
    assert response.mimetype == "application/problem+json", (why, response.mimetype, response.get_data()[:300])
    body = response.get_json(force=True)
    assert body["status"] == response.status_code and body["detail"] and body["code"], (why, body)
    return body


# --- the operations, from the OpenAPI document ----------------------------------------------------------

def _spec() -> dict[str, Any]:
    return make_app("sqlite://").test_client().get("/api/openapi.json").get_json()


SPEC = _spec()


def _operations(media: str) -> list[str]:
    return [f"{method.upper()} {path}" for path, item in SPEC["paths"].items() for method, op in item.items()
            if isinstance(op, dict) and media in op.get("requestBody", {}).get("content", {})]


JSON_OPERATIONS = _operations("application/json")
MULTIPART_OPERATIONS = _operations("multipart/form-data")

PATH_VALUES = {"kind": "allergy", "mtype": "weight", "context": "end_of_life", "code": "unknown", "rpps": "10000000001"}


def concrete(path: str, known: dict[str, Any]) -> str:
    return re.sub(r"{(\w+)}", lambda m: str(known.get(m.group(1), PATH_VALUES.get(m.group(1), 1))), path)


@pytest.fixture
def patient(app: Flask, client: Any) -> dict[str, Any]:
    created = create_patient(app)
    headers = bearer(activate(client, created)["access_token"])
    r = client.post("/api/v1/record/documents", headers=headers, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(b"note\n"), "note.txt")})
    assert r.status_code == 201
    return {"headers": headers, "known": {"document_id": r.get_json()["id"]}}


def hostile_json_bodies() -> Iterator[tuple[str, bytes, str]]:
    yield "invalid_utf8", b'{"title": "' + b"\xff\xfe\xc3\x28" + b'"}', "application/json"
    yield "deep_nesting", b"[" * 100_000 + b"]" * 100_000, "application/json"
    yield "deep_objects", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "application/json"
    yield "huge_number", b'{"value": 1e999999, "professional_id": 99999999999999999999999999999}', "application/json"
    yield "nul_characters", json.dumps({k: "a\u0000b" for k in ("title", "nir", "password", "label", "endpoint",
                                                                "substance", "reason", "slot_id", "code")}).encode(), \
        "application/json"
    yield "not_an_object", b'"just a string"', "application/json"
    yield "wrong_content_type", b'{"title": "x"}', "text/plain"
    yield "xml_instead", XXE, "application/xml"
    yield "too_large", b'{"title": "' + b"x" * (13 * 1024 * 1024) + b'"}', "application/json"


HOSTILE_JSON = list(hostile_json_bodies())  # made once: the large ones are costly to build


@pytest.mark.parametrize("label", JSON_OPERATIONS)
def test_every_json_body_refuses_hostile_input(app: Flask, client: Any, patient: dict[str, Any], label: str) -> None:
    method, path = label.split(" ", 1)
    url = concrete(path, patient["known"])
    before = row_counts(app)
    for name, body, content_type in HOSTILE_JSON:
        response = client.open(url, method=method, data=body, content_type=content_type,
                               headers=patient["headers"])
        assert_refused(response, f"{label}: {name}")
    assert row_counts(app) == before, f"{label}: a refused request wrote something"


def hostile_files() -> Iterator[tuple[str, bytes, str]]:
    yield "zip_bomb_as_pdf", zip_bomb(), "compte-rendu.pdf"
    yield "zip_bomb_as_zip", zip_bomb(), "archive.zip"
    yield "xxe_xml", XXE, "cda.xml"
    yield "laughs_xml", LAUGHS, "cda.xml"
    yield "xxe_as_txt_with_traversal", XXE, "../../../../etc/passwd"
    yield "invalid_utf8_ics", INVALID_UTF8, "agenda.ics"
    yield "nul_in_name", b"%PDF-1.4 not really\n", "note.txt\x00.exe"
    yield "too_large", b"%PDF-1.4\n" + b"0" * (12 * 1024 * 1024), "enorme.pdf"


HOSTILE_FILES = list(hostile_files())


def multipart(content: bytes, filename: str, **fields: str) -> tuple[bytes, str]:
    """A multipart body built by hand, as bytes (the test client spools large files to a temporary file
    that it does not close when the app refuses before reading)."""
    boundary = "carnet-hostile-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode("utf-8", "surrogateescape") + content
                 + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("label", MULTIPART_OPERATIONS)
def test_every_upload_refuses_hostile_files(app: Flask, client: Any, patient: dict[str, Any], label: str) -> None:
    method, path = label.split(" ", 1)
    url = concrete(path, patient["known"])
    before = row_counts(app)
    for name, content, filename in HOSTILE_FILES:
        body, content_type = multipart(content, filename, subject="x", body="x", professional_id="1")
        response = client.open(url, method=method, headers=patient["headers"], data=body, content_type=content_type)
        assert_refused(response, f"{label}: {name}")
    for name, body, content_type in [("json_instead", b'{"file": "x"}', "application/json"),
                                     ("text_instead", b"file=x", "text/plain")]:
        assert_refused(client.open(url, method=method, headers=patient["headers"], data=body,
                                   content_type=content_type), f"{label}: {name}")
    assert row_counts(app) == before, f"{label}: a refused upload wrote something"


def test_uploads_with_a_traversal_name_keep_no_path(app: Flask, client: Any, patient: dict[str, Any]) -> None:
    """A file name is only a title: a traversal in it is accepted as text, never used as a path."""
    r = client.post("/api/v1/record/documents", headers=patient["headers"], content_type="multipart/form-data",
                    data={"file": (io.BytesIO(b"bonjour\n"), "../../../etc/cron.d/compte-rendu.txt")})
    if r.status_code == 201:
        assert "/" not in r.get_json()["title"] and ".." not in r.get_json()["title"], r.get_json()
    else:
        assert_refused(r, "traversal name")


ICS_HEAD = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//FR\r\n"


def hostile_calendars() -> Iterator[tuple[str, bytes]]:
    yield "not_a_calendar", b"%PDF-1.4 this is a pdf\n"
    yield "invalid_utf8", ICS_HEAD + b"BEGIN:VEVENT\r\nUID:1\r\nDTSTART:20270101T100000Z\r\nSUMMARY:" + INVALID_UTF8 \
        + b"\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    yield "secondly_forever", ICS_HEAD + b"BEGIN:VEVENT\r\nUID:2\r\nDTSTART:20270101T100000Z\r\nDTEND:20270101T100001Z" \
        b"\r\nRRULE:FREQ=SECONDLY\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    yield "too_many_events", ICS_HEAD + b"".join(
        b"BEGIN:VEVENT\r\nUID:%d\r\nDTSTART:20270101T100000Z\r\nDTEND:20270101T110000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\n" % i
        for i in range(20_000)) + b"END:VCALENDAR\r\n"
    yield "nested_forever", ICS_HEAD + b"BEGIN:VEVENT\r\n" * 20_000 + b"END:VCALENDAR\r\n"
    yield "too_large", ICS_HEAD + b"X-PAD:" + b"x" * (2 * 1024 * 1024) + b"\r\nEND:VCALENDAR\r\n"


def test_calendar_import_refuses_hostile_files(app: Flask, client: Any, patient: dict[str, Any]) -> None:
    before = row_counts(app)
    for name, content in hostile_calendars():
        body, content_type = multipart(content, "agenda.ics")
        r = client.post("/api/v1/agenda/import", headers=patient["headers"], data=body, content_type=content_type)
        assert_refused(r, f"ics: {name}")
    assert row_counts(app) == before


def test_fhir_deposits_refuse_hostile_input(app: Flask, client: Any) -> None:
    created = create_patient(app)
    activate(client, created)
    pro = make_pro(app)
    before = row_counts(app)
    raw_bodies = [
        ("deep_nesting", b'{"resourceType":"Bundle","entry":' + b"[" * 100_000 + b"]" * 100_000 + b"}", FHIR_JSON),
        ("invalid_utf8", b'{"resourceType":"Bundle","type":"transaction","id":"\xff\xfe"}', FHIR_JSON),
        ("xml_with_xxe", XXE, "application/fhir+xml"),
        ("not_a_bundle", b'["Bundle"]', FHIR_JSON),
        ("base64_garbage", json.dumps(provide_bundle(NIR_CAMILLE, [Doc(b"x")])).replace(
            base64.b64encode(b"x").decode(), "!!!not base64!!!").encode(), FHIR_JSON),
        ("too_large", b'{"resourceType":"Bundle","id":"' + b"x" * (60 * 1024 * 1024) + b'"}', FHIR_JSON),
    ]
    for name, body, content_type in raw_bodies:
        r = client.post("/fhir/R4", data=body, content_type=content_type, headers=pro.headers())
        assert 400 <= r.status_code < 500, (name, r.status_code, r.get_data()[:300])
        assert_outcome(r, r.status_code)
    assert row_counts(app) == before


@pytest.mark.parametrize("content", [XXE, LAUGHS], ids=["xxe", "billion_laughs"])
@pytest.mark.parametrize("mime", ["text/xml", "application/pdf"])
def test_fhir_deposit_of_a_cda_with_entities_is_refused(app: Flask, client: Any, content: bytes, mime: str) -> None:
    """Refused with the reason (French, English on request) whatever the declared type, nothing written:
    no document, no audit entry, no notification (every table's row count)."""
    created = create_patient(app)
    activate(client, created)
    pro = make_pro(app)
    before = row_counts(app)
    bundle = provide_bundle(NIR_CAMILLE, [Doc(content, mime=mime)])
    r = client.post("/fhir/R4", data=json.dumps(bundle), content_type=FHIR_JSON, headers=pro.headers())
    diagnostics = assert_outcome(r, 422, "fhir_xml_entities")["issue"][0]["diagnostics"]
    assert diagnostics.startswith("Le document ") and "déclare des entités" in diagnostics, diagnostics
    r = client.post("/fhir/R4", data=json.dumps(bundle), content_type=FHIR_JSON,
                    headers={**pro.headers(), "Accept-Language": "en"})
    diagnostics = assert_outcome(r, 422, "fhir_xml_entities")["issue"][0]["diagnostics"]
    assert "its XML declares entities" in diagnostics, diagnostics
    assert row_counts(app) == before


def test_a_legacy_dossier_of_hostile_files_attaches_nothing(app: Flask, runner: Any, tmp_path: Any) -> None:
    """XXE, billion laughs, a zip bomb and traversal names through `carnet migrate import`: every item is
    refused with its reason, no document is attached."""
    from backend.records.documents.models import Document
    from migration.models import ImportItem
    from backend.db import get_db

    created = create_patient(app)
    dossier = tmp_path / "legacy" / created.nir
    dossier.mkdir(parents=True)
    (dossier / "xxe.xml").write_bytes(XXE)
    (dossier / "laughs.xml").write_bytes(LAUGHS)
    (dossier / "bomb.zip").write_bytes(zip_bomb())
    travel = io.BytesIO()
    with zipfile.ZipFile(travel, "w") as z:
        z.writestr("IHE_XDM/SUBSET01/../../../evil.xml", XXE)
    (dossier / "travel.zip").write_bytes(travel.getvalue())
    result = runner.invoke(args=["migrate", "import", str(tmp_path / "legacy")])
    assert result.exit_code == 0, result.output
    factory = get_db(app).session_factory
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 0
        items = session.execute(select(ImportItem.source, ImportItem.status, ImportItem.reason)).all()
    assert items and all(status != "imported" and reason for _, status, reason in items), items
