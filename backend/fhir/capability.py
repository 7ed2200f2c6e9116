"""The CapabilityStatement served at ``GET /fhir/R4/metadata``: built from what the FHIR blueprints declared
(``backend.fhir.layer``), so it says exactly what the server does, resource by resource — the agenda's
Schedule/Slot/Appointment and the inbox's Communication included."""
from __future__ import annotations

from typing import Any

from flask import Flask

from backend.fhir.layer import CARNET, FHIR_MIME, R4_BASE, base_capability

RELEASE_OPERATION = f"{CARNET}/OperationDefinition/DocumentReference-release"
MHD = "https://profiles.ihe.net/ITI/MHD"

SECURITY = (
    "Every interaction except /metadata needs 'Authorization: Bearer <token>' of a health professional "
    "(the token printed by 'carnet pro create'; Pro Santé Connect plugs into the same authenticator). "
    "Reads follow the patient's choices: consent, médecin traitant or administrator, the profession matrix, "
    "blocking, masking. An emergency read declares 'X-Purpose-Of-Use: ETREAT' (SAMU regulator) or 'BTG' "
    "(break-the-glass) with 'X-Purpose-Reason: <text>'; it is allowed only when the patient's switch is on, "
    "lasts two hours, and notifies the patient. Every search and read is written to the patient's access "
    "history. Depositing (ITI-65) needs no consent. Errors are OperationOutcome with French diagnostics "
    "(English with Accept-Language: en). Only JSON is served: _format=xml or an Accept the server cannot "
    "produce is a 406, an XML body a 415.")


def statement(app: Flask, prefix: str, base_url: str, date: str, *, name: str, title: str, documentation: str,
              security: dict[str, Any], instantiates: tuple[str, ...] = (),
              implementation_guides: tuple[str, ...] = ()) -> dict[str, Any]:
    """The CapabilityStatement of one FHIR base: what its blueprints declared, nothing else."""
    base = base_capability(app, prefix)
    rest: dict[str, Any] = {"mode": "server", "documentation": documentation, "security": security,
                            "resource": [base.resources[t].statement() for t in sorted(base.resources)]}
    if base.system:
        rest["interaction"] = [dict(i) for i in base.system]
    out: dict[str, Any] = {
        "resourceType": "CapabilityStatement", "url": f"{base_url}metadata", "name": name, "title": title,
        "status": "active", "date": date, "publisher": "Carnet", "kind": "instance"}
    if instantiates:
        out["instantiates"] = list(instantiates)
    out.update({"software": {"name": "Carnet"},
                "implementation": {"description": title, "url": base_url.rstrip("/")},
                "fhirVersion": "4.0.1", "format": [FHIR_MIME, "json"]})
    if implementation_guides:
        out["implementationGuide"] = list(implementation_guides)
    out["rest"] = [rest]
    return out


def capability_statement(app: Flask, base_url: str, date: str) -> dict[str, Any]:
    """``/fhir/R4``: IHE MHD Document Recipient and Responder, the agenda and the inbox."""
    return statement(
        app, R4_BASE, base_url, date, name="CarnetProfessionalApi",
        title="Carnet — API des professionnels de santé (IHE MHD sur FHIR R4)",
        documentation="IHE MHD 4.2 Document Recipient (ITI-65, Comprehensive Metadata) and Document Responder "
                      "(ITI-66, ITI-67, ITI-68) on FHIR R4, JSON only; the agenda (Schedule, Slot, Appointment) "
                      "and the secure inbox (Communication) share the base.",
        security={"service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                           "code": "OAuth"}]}], "description": SECURITY},
        instantiates=(f"{MHD}/CapabilityStatement/IHE.MHD.DocumentRecipient",
                      f"{MHD}/CapabilityStatement/IHE.MHD.DocumentRecipient.Comprehensive",
                      f"{MHD}/CapabilityStatement/IHE.MHD.DocumentResponder"),
        implementation_guides=(f"{MHD}/ImplementationGuide/ihe.iti.mhd|4.2.3",))
