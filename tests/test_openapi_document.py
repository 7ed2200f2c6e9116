"""The OpenAPI document (/api/openapi.json) is valid OpenAPI 3.0: checked with openapi-spec-validator (the
OAS 3.0 JSON Schema plus its semantic rules), and held to what OpenAPI 3 dropped from Swagger 2 — no
``in: formData`` or ``in: body`` parameter: a multipart body is a ``requestBody`` with multipart/form-data
content, its fields and files in one schema (``location="multipart"``, backend/web.py)."""
from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from openapi_spec_validator import OpenAPIV30SpecValidator

METHODS = ("get", "put", "post", "delete", "patch")
OAS3_PARAMETER_LOCATIONS = {"query", "header", "path", "cookie"}

# Every multipart operation and the fields its body carries (what the mobile app sends).
MULTIPART_FIELDS = {
    "POST /api/v1/record/documents": ({"file", "category", "title", "comment", "service_date"}, {"file"}),
    "POST /api/v1/inbox/threads": ({"professional_id", "subject", "body", "document_id", "file"},
                                   {"professional_id", "subject"}),
    "POST /api/v1/inbox/threads/{thread_id}/messages": ({"body", "reply_all", "in_reply_to", "document_id", "file"},
                                                        set()),
    "POST /api/v1/agenda/import": ({"file"}, {"file"}),
}


@pytest.fixture(scope="module")
def spec(session_app: Flask) -> dict[str, Any]:
    response = session_app.test_client().get("/api/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def operations(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{method.upper()} {path}": op for path, item in spec["paths"].items() for method, op in item.items()
            if method in METHODS}


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_the_document_is_valid_openapi_3(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.0.")
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"[:300]
              for e in OpenAPIV30SpecValidator(spec).iter_errors()]
    assert not errors, errors


def test_no_parameter_is_a_swagger_2_body_or_form_field(spec: dict[str, Any]) -> None:
    misplaced = []
    for path, item in spec["paths"].items():
        for where, params in [(path, item.get("parameters", []))] + [
                (f"{method.upper()} {path}", op.get("parameters", [])) for method, op in item.items()
                if method in METHODS]:
            misplaced += [(where, p.get("name"), p.get("in")) for p in params
                          if p.get("in") not in OAS3_PARAMETER_LOCATIONS]
    assert not misplaced, misplaced


def test_multipart_bodies_are_request_bodies_with_every_field(spec: dict[str, Any]) -> None:
    ops = operations(spec)
    multipart = {label for label, op in ops.items()
                 if "multipart/form-data" in op.get("requestBody", {}).get("content", {})}
    assert multipart == set(MULTIPART_FIELDS), "a multipart operation appeared or vanished: list it here"
    for label, (fields, required) in MULTIPART_FIELDS.items():
        body = ops[label]["requestBody"]
        assert body["required"] is True and set(body["content"]) == {"multipart/form-data"}, label
        schema = resolve(spec, body["content"]["multipart/form-data"]["schema"])
        assert schema["type"] == "object" and set(schema["properties"]) == fields, (label, schema)
        assert set(schema.get("required", [])) == required, (label, schema)
        files = schema["properties"]["file"]
        binary = files.get("items", files)  # one file, or an array of them (repeatable)
        assert (binary["type"], binary["format"]) == ("string", "binary"), (label, files)


def test_the_multipart_location_reads_fields_and_files_together(app: Flask, client: Any) -> None:
    """The same body the document describes, sent as the app sends it: fields and the file are read as one."""
    import io

    from tests.helpers import activate, bearer, create_patient

    headers = bearer(activate(client, create_patient(app))["access_token"])
    r = client.post("/api/v1/record/documents", headers=headers, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(b"Compte rendu\n"), "cr.txt"), "category": "CPT_REND",
                          "title": "Mon compte rendu", "service_date": "2024-03-05"})
    assert r.status_code == 201, r.get_json()
    doc = r.get_json()
    assert (doc["category"], doc["title"]) == ("CPT_REND", "Mon compte rendu")
    assert doc["service_date"].startswith("2024-03-05"), doc["service_date"]
    # an undeclared part is refused like an undeclared field, and nothing is stored
    r = client.post("/api/v1/record/documents", headers=headers, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(b"note\n"), "note.txt"), "colour": "blue"})
    assert r.status_code == 422 and r.mimetype == "application/problem+json", r.get_data(as_text=True)
    # no file, or text under the file's name (not a file part): refused, not taken for a file
    for data in ({"category": "CPT_REND"}, {"file": "pas un fichier"}):
        r = client.post("/api/v1/record/documents", headers=headers, content_type="multipart/form-data", data=data)
        assert r.status_code == 422 and r.mimetype == "application/problem+json", r.get_data(as_text=True)
    listing = client.get("/api/v1/record/documents", headers=headers).get_json()
    assert [d["title"] for d in listing["items"]] == ["Mon compte rendu"]
