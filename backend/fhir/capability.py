"""The CapabilityStatement served at ``GET /fhir/R4/metadata``.

Other packages serving resources under ``/fhir/R4`` (the agenda's Schedule/Slot/Appointment) add theirs
with :func:`register_resource` in their ``init_app``, so one statement describes the whole base.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from backend.fhir.resources import BASE

EXTENSION = "carnet.fhir_capability_resources"
RELEASE_OPERATION = f"{BASE}/OperationDefinition/DocumentReference-release"

SECURITY = (
    "Every interaction except /metadata needs 'Authorization: Bearer <token>' of a health professional "
    "(the token printed by 'carnet pro create'; Pro Santé Connect plugs into the same authenticator). "
    "Reads follow the patient's choices: consent, médecin traitant or administrator, the profession matrix, "
    "blocking, masking. An emergency read declares 'X-Purpose-Of-Use: ETREAT' (SAMU regulator) or 'BTG' "
    "(break-the-glass) with 'X-Purpose-Reason: <text>'; it is allowed only when the patient's switch is on, "
    "lasts two hours, and notifies the patient. Every search and read is written to the patient's access "
    "history. Depositing (ITI-65) needs no consent. Errors are OperationOutcome with French diagnostics "
    "(English with Accept-Language: en).")

DOCUMENT_REFERENCE: dict[str, Any] = {
    "type": "DocumentReference",
    "supportedProfile": [
        "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.DocumentReference"],
    "documentation": "IHE MHD ITI-67 Find Document References. DocumentReference.date is when the record "
                     "received the document; context.period.start is the date of care (search 'period'). "
                     "content.attachment.url is the Binary to retrieve (ITI-68).",
    "interaction": [{"code": "read"}, {"code": "search-type"}],
    "searchParam": [
        {"name": "patient.identifier", "type": "token",
         "documentation": "Required. urn:oid:1.2.250.1.213.1.4.8|<NIR> (INS), or …4.10 for a test identity."},
        {"name": "status", "type": "token", "documentation": "current | superseded (comma-separated)."},
        {"name": "type", "type": "token", "documentation": "XDS typeCode: http://loinc.org|11502-2, "
                                                           "urn:oid:1.2.250.1.213.1.1.4.12|REMB or a bare code."},
        {"name": "category", "type": "token", "documentation": "XDS classCode "
                                                               "(urn:oid:1.2.250.1.213.1.1.4.1|10…)."},
        {"name": "date", "type": "date", "documentation": "When the record received the document; "
                                                          "prefixes eq, ge, gt, le, lt; repeatable."},
        {"name": "period", "type": "date", "documentation": "Date of care (context.period.start); "
                                                            "prefixes eq, ge, gt, le, lt; repeatable."},
        {"name": "_count", "type": "number", "documentation": "Page size, 1 to 100 (default 20); the 'next' "
                                                              "link carries an opaque _cursor."},
    ],
    "operation": [{
        "name": "release", "definition": RELEASE_OPERATION,
        "documentation": "POST /fhir/R4/DocumentReference/{id}/$release (no body): the author of an "
                         "INVISIBLE_PATIENT document makes it visible to the patient after the announcement "
                         "consultation. Returns the updated DocumentReference."}],
}

BINARY: dict[str, Any] = {
    "type": "Binary",
    "documentation": "IHE MHD ITI-68 Retrieve Document: the original bytes with their Content-Type, or a FHIR "
                     "Binary (base64) with 'Accept: application/fhir+json'. An unknown document and a "
                     "document the reader may not see are both 404.",
    "interaction": [{"code": "read"}],
}


def init_app(app: Flask) -> None:
    app.extensions.setdefault(EXTENSION, [])


def register_resource(app: Flask, resource: dict[str, Any]) -> None:
    """Add a CapabilityStatement.rest.resource entry (another package serving a type under /fhir/R4)."""
    app.extensions.setdefault(EXTENSION, []).append(resource)


def capability_statement(base_url: str, date: str) -> dict[str, Any]:
    extra = list(current_app.extensions.get(EXTENSION, []))
    return {
        "resourceType": "CapabilityStatement",
        "url": f"{base_url}metadata",
        "name": "CarnetProfessionalApi",
        "title": "Carnet — API des professionnels de santé (IHE MHD sur FHIR R4)",
        "status": "active",
        "date": date,
        "publisher": "Carnet",
        "kind": "instance",
        "instantiates": [
            "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentRecipient",
            "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder"],
        "software": {"name": "Carnet"},
        "implementation": {"description": "Dossier médical partagé du patient", "url": base_url.rstrip("/")},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "implementationGuide": ["https://profiles.ihe.net/ITI/MHD/ImplementationGuide/ihe.iti.mhd"],
        "rest": [{
            "mode": "server",
            "documentation": "IHE MHD: ITI-65 Provide Document Bundle (POST [base] with a transaction Bundle: "
                             "one List SubmissionSet, DocumentReferences, Binaries; the patient identified by "
                             "subject.identifier INS; atomic), ITI-67, ITI-68.",
            "security": {"service": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "OAuth"}]}],
                "description": SECURITY},
            "resource": [DOCUMENT_REFERENCE, BINARY, *extra],
            "interaction": [{"code": "transaction",
                             "documentation": "ITI-65 Provide Document Bundle; the answer is a "
                                              "transaction-response Bundle."}],
        }],
    }
