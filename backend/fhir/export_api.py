""""Take my data with me" endpoints (patient side): the whole record as a FHIR R4 Bundle, or as a ZIP of
the original documents with a manifest. Both stream; the export is traced in the access history."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, current_app
from flask_smorest import Blueprint
from sqlalchemy.orm import Session

from backend import web
from backend.accounts.models import Patient
from backend.db import get_db, get_session, utcnow
from backend.fhir.layer import public_base_url
from backend.records import export
from backend.records.access.authorize import authorize
from backend.records.crypto import Vault
from backend.records.access.policy import Scope

blp = Blueprint("record_export", __name__, url_prefix="/api/v1/record/export",
                description="Take my data with me: the whole record, to keep or to take elsewhere")

# The FHIR export is JSON (streamed, but one object): described as what it is, a FHIR R4 Bundle of type
# collection, so a client (and the fuzzer) can check it; the resources themselves are FHIR's to define.
FHIR_BUNDLE = {"schema": {
    "type": "object", "required": ["resourceType", "id", "type", "timestamp", "entry"],
    "description": "FHIR R4 Bundle (http://hl7.org/fhir/R4/bundle.html)",
    "properties": {
        "resourceType": {"type": "string", "enum": ["Bundle"]},
        "id": {"type": "string"},
        "type": {"type": "string", "enum": ["collection"]},
        "timestamp": {"type": "string", "format": "date-time"},
        "entry": {"type": "array", "items": {
            "type": "object", "required": ["fullUrl", "resource"],
            "properties": {"fullUrl": {"type": "string"},
                           "resource": {"type": "object", "required": ["resourceType"],
                                        "properties": {"resourceType": {"type": "string"}}}}}},
    }}}


def _start(kind: str) -> tuple[int, Scope]:
    session = get_session()
    patient = web.current_patient()
    scope = authorize(session, web.current_actor(), patient.id, "record.exported", audit_owner=True,
                      details={"format": kind})
    session.commit()  # the trace is kept even if the download is interrupted
    return patient.id, scope


def _stream(patient_id: int, produce: Callable[[Session, Vault, Patient], Iterator[Any]]) -> Iterator[Any]:
    """The body is produced after the view has returned, when the request's session is gone: the stream has
    a session of its own (reads only), closed with the last byte or when the client goes away."""
    factory = get_db().session_factory
    keyring = current_app.extensions["carnet.keyring"]
    assert factory is not None

    def body() -> Iterator[Any]:
        session = factory()
        try:
            patient = session.get(Patient, patient_id)
            assert patient is not None
            yield from produce(session, Vault(session, keyring), patient)
        finally:
            session.close()

    return body()


def _filename(extension: str) -> str:
    return f"carnet-dossier-{utcnow().date().isoformat()}.{extension}"


@blp.route("/fhir")
@blp.doc(security=[{"bearer": []}], responses={"200": {
    "description": "A FHIR R4 Bundle (collection): Patient, DocumentReference + Binary, AllergyIntolerance, "
                   "Condition, FamilyMemberHistory, MedicationStatement, Immunization, Observation, Consent, "
                   "AuditEvent.", "content": {"application/fhir+json": FHIR_BUNDLE}}})
@web.patient_required
def export_fhir() -> Response:
    """The whole record as one FHIR R4 Bundle (a file to download)."""
    patient_id, scope = _start("fhir")
    base = public_base_url()
    body = _stream(patient_id, lambda session, v, patient: export.fhir_bundle(session, v, patient, scope, base))
    response = Response(body, content_type="application/fhir+json; charset=utf-8")
    response.headers["Content-Disposition"] = web.disposition(_filename("fhir.json"))
    return response


@blp.route("/zip")
@blp.doc(security=[{"bearer": []}], responses={"200": web.binary(
    "A ZIP: every original document byte for byte under documents/, and manifest.json.", ["application/zip"])})
@web.patient_required
def export_zip() -> Response:
    """Every original document, byte for byte, in a ZIP with a manifest."""
    patient_id, scope = _start("zip")
    body = _stream(patient_id, lambda session, v, patient: export.zip_archive(session, v, patient, scope))
    response = Response(body, content_type="application/zip")
    response.headers["Content-Disposition"] = web.disposition(_filename("zip"))
    return response
