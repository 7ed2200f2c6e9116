"""Helpers for the professional FHIR API tests: professionals and their tokens, consents, ITI-65 bundles
built around real documents, and FHIR R4 validation with fhir.resources."""
from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from lxml import etree
from sqlalchemy import func, select

from backend.identity import OID_INS_NIR
from tests.helpers import SHARED

EXTERNAL = SHARED / "fixtures" / "external"
SUBMISSIONSET = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
HL7 = "{urn:hl7-org:v3}"


def r4(resource: dict[str, Any]) -> Any:
    """Validate with the FHIR R4 (4.0.1) models of fhir.resources; returns the model."""
    from fhir.resources import construct_fhir_element

    return construct_fhir_element(resource["resourceType"], resource)


@dataclass
class Pro:
    id: int
    rpps: str
    token: str

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}


def make_pro(app: Flask, rpps: str = "10000000001", profession: str = "10", *, samu: bool = False,
             family: str = "Durand", given: str = "Alice") -> Pro:
    from backend.db import get_session
    from backend.professionals.service import create_professional

    with app.app_context():
        session = get_session()
        pro, token = create_professional(session, rpps=rpps, family_name=family, given_name=given,
                                         profession=profession, organisation="Cabinet du Parc",
                                         samu_regulator=samu)
        session.commit()
        return Pro(pro.id, pro.rpps, token)


def grant(app: Flask, patient_id: int, pro: Pro) -> None:
    from backend.db import get_session
    from backend.records.access.models import Consent

    with app.app_context():
        session = get_session()
        session.add(Consent(patient_id=patient_id, professional_id=pro.id, granted_by="patient"))
        session.commit()


def set_record(app: Flask, patient_id: int, **values: Any) -> None:
    from sqlalchemy import update

    from backend.db import get_session
    from backend.records.models import Record

    with app.app_context():
        session = get_session()
        session.execute(update(Record).where(Record.patient_id == patient_id).values(**values))
        session.commit()


def create_test_identity(app: Flask, nir: str, oid: str, *, birth_date: str, sex: str, family: str = "Test",
                         given: str = "Dominique") -> int:
    """A pre-created patient whose INS has the given OID (…4.10 for a test identity)."""
    from backend.accounts import service as accounts
    from backend.db import get_session
    from backend.identity import InsTraits

    with app.app_context():
        session = get_session()
        traits = InsTraits(nir=nir, birth_family_name=family, given_names=given,
                           birth_date=dt.date.fromisoformat(birth_date), sex=sex, oid=oid)
        patient, _ = accounts.create_patient(session, app.extensions["carnet.account_settings"], traits)
        session.commit()
        return patient.id


def count(db: Any, model: Any, *where: Any) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def audit_actions(db: Any, patient_id: int) -> list[str]:
    from backend.audit.models import AuditEntry

    db.expire_all()
    return list(db.scalars(select(AuditEntry.action).where(AuditEntry.patient_id == patient_id)
                           .order_by(AuditEntry.seq)))


# --- real documents ------------------------------------------------------------------------------------------

def cda_type(data: bytes) -> tuple[str | None, str | None]:
    """The ClinicalDocument/code (typeCode) of a CDA, found even inside an XSLT wrapper."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    root = etree.fromstring(data, parser)
    document = root if root.tag == f"{HL7}ClinicalDocument" else next(root.iter(f"{HL7}ClinicalDocument"), None)
    if document is None:
        return None, None
    code = document.find(f"{HL7}code")
    if code is None:
        return None, None
    return code.get("code"), code.get("codeSystem")


def real_cda_documents() -> list[Path]:
    paths = sorted((EXTERNAL / "ans-testcontenucda-3.0").glob("*.xml"))
    paths += sorted((EXTERNAL / "ans-testcontenucda-2.41").glob("*.xml"))
    paths += sorted((EXTERNAL / "ans-testcontenucda-2.22-legacy" / "xdm" / "XDM_2-CR-BIO" / "IHE_XDM" / "IHE_XDM"
                     / "SUBSET01").glob("DOC*.XML"))
    return paths


# --- ITI-65 bundles ------------------------------------------------------------------------------------------

@dataclass
class Doc:
    content: bytes
    mime: str = "text/xml"
    unique_id: str | None = None
    type_code: str | None = "11488-4"
    type_system: str = "http://loinc.org"
    class_code: str | None = "10"
    title: str | None = "Compte rendu de consultation"
    service_date: str | None = "2024-03-05T10:00:00+01:00"
    labels: list[str] = field(default_factory=list)          # INVISIBLE_PATIENT, MASQUE_PS…
    confidentiality: str = "N"
    author_rpps: str | None = None
    author_name: str | None = None
    author_structure: tuple[str, str] | None = None    # the author's Organization.identifier (system, value)
    hash: str | None = "sha1"          # sha1 | sha256 | None | a forged base64
    size: int | None | str = "auto"
    inline: bool = False
    replaces: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _digest(doc: Doc) -> str | None:
    if doc.hash is None:
        return None
    if doc.hash == "sha1":
        return base64.b64encode(hashlib.sha1(doc.content).digest()).decode()
    if doc.hash == "sha256":
        return base64.b64encode(hashlib.sha256(doc.content).digest()).decode()
    return doc.hash


def document_reference(doc: Doc, subject: dict[str, Any], binary_url: str) -> dict[str, Any]:
    attachment: dict[str, Any] = {"contentType": doc.mime}
    if doc.title:
        attachment["title"] = doc.title
    if doc.inline:
        attachment["data"] = base64.b64encode(doc.content).decode()
    else:
        attachment["url"] = binary_url
    digest = _digest(doc)
    if digest:
        attachment["hash"] = digest
    if doc.size == "auto":
        attachment["size"] = len(doc.content)
    elif doc.size is not None:
        attachment["size"] = doc.size
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986",
                             "value": doc.unique_id or f"urn:oid:1.2.250.1.999.1.{uuid.uuid4().int % 10**12}"},
        "subject": subject, "date": "2024-03-05T10:30:00+01:00",
        "securityLabel": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                                       "code": doc.confidentiality}]}]
        + [{"coding": [{"system": "urn:oid:1.2.250.1.213.1.1.4.13", "code": label}]} for label in doc.labels],
        "content": [{"attachment": attachment,
                     "format": {"system": "urn:oid:1.3.6.1.4.1.19376.1.2.3", "code": "urn:ihe:iti:xds-sd:pdf:2008"}}],
    }
    if doc.type_code:
        resource["type"] = {"coding": [{"system": doc.type_system, "code": doc.type_code}]}
    if doc.class_code:
        resource["category"] = [{"coding": [{"system": "urn:oid:1.2.250.1.213.1.1.4.1", "code": doc.class_code}]}]
    if doc.service_date:
        resource["context"] = {"period": {"start": doc.service_date}}
    if doc.author_rpps or doc.author_name or doc.author_structure:
        practitioner: dict[str, Any] = {"resourceType": "Practitioner", "id": "p1"}
        if doc.author_rpps:
            practitioner["identifier"] = [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "8" + doc.author_rpps}]
        if doc.author_name:
            practitioner["name"] = [{"family": doc.author_name.split()[-1], "given": doc.author_name.split()[:-1]}]
        resource["contained"] = [practitioner, {
            "resourceType": "PractitionerRole", "id": "r1", "practitioner": {"reference": "#p1"},
            "code": [{"coding": [{"system": "urn:oid:1.2.250.1.213.1.1.4.5", "code": "G15_10"}]}],
            "specialty": [{"coding": [{"system": "urn:oid:1.2.250.1.213.1.1.4.5", "code": "G15_10/SM54"}]}],
            "organization": {"display": "Hôpital de test"}}]
        if doc.author_structure:
            system, value = doc.author_structure
            resource["contained"].append({"resourceType": "Organization", "id": "o1", "name": "Hôpital de test",
                                          "identifier": [{"system": system, "value": value}]})
            resource["contained"][1]["organization"] = {"reference": "#o1"}
        resource["author"] = [{"reference": "#r1"}]
    if doc.replaces:
        resource["relatesTo"] = [{"code": "replaces", "target": {"reference": f"DocumentReference/{doc.replaces}"}}]
    resource.update(doc.extra)
    return resource


def provide_bundle(nir: str, docs: list[Doc], *, oid: str = OID_INS_NIR) -> dict[str, Any]:
    subject = {"identifier": {"system": f"urn:oid:{oid}", "value": nir}}
    entries: list[dict[str, Any]] = []
    references = []
    for doc in docs:
        ref_url, bin_url = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
        references.append(ref_url)
        entries.append({"fullUrl": ref_url, "resource": document_reference(doc, copy.deepcopy(subject), bin_url),
                        "request": {"method": "POST", "url": "DocumentReference"}})
        if not doc.inline:
            entries.append({"fullUrl": bin_url,
                            "resource": {"resourceType": "Binary", "contentType": doc.mime,
                                         "data": base64.b64encode(doc.content).decode()},
                            "request": {"method": "POST", "url": "Binary"}})
    submission = {
        "resourceType": "List", "status": "current", "mode": "working",
        "code": {"coding": [{"system": SUBMISSIONSET, "code": "submissionset"}]},
        "subject": copy.deepcopy(subject), "date": "2024-03-05T10:30:00+01:00",
        "identifier": [{"use": "official", "system": "urn:ietf:rfc:3986",
                        "value": f"urn:oid:1.2.250.1.999.2.{uuid.uuid4().int % 10**12}"}],
        "entry": [{"item": {"reference": url}} for url in references]}
    entries.insert(0, {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": submission,
                       "request": {"method": "POST", "url": "List"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


FHIR_JSON = "application/fhir+json"


def post_bundle(client: Any, pro: Pro, bundle: Any, **headers: str) -> Any:
    return client.post("/fhir/R4", json=bundle, headers=pro.headers(**headers),
                       content_type=FHIR_JSON)


def assert_outcome(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == FHIR_JSON
    body = response.get_json(force=True)
    r4(body)
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["severity"] == "error" and issue["diagnostics"]
    if code:
        assert issue["details"]["coding"][0]["code"] == code, issue
    return body


def search(client: Any, pro: Pro, nir: str, *, oid: str = OID_INS_NIR, headers: dict[str, str] | None = None,
           **params: Any) -> Any:
    query: list[tuple[str, str]] = [("patient.identifier", f"urn:oid:{oid}|{nir}")]
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            query.append((key.replace("__", "."), str(item)))
    return client.get("/fhir/R4/DocumentReference", query_string=query, headers=pro.headers(**(headers or {})))


# --- a pharmacy's dispensation (ANS eDISP-MED) -------------------------------------------------------------------

EDISP = (EXTERNAL / "ans-testcontenucda-3.0" / "eDISP-MED_2024.01.xml").read_bytes()
NS = {"h": "urn:hl7-org:v3", "pharm": "urn:ihe:pharm:medication"}


def vaccine_dispensation(day: dt.date, *, atc: str | None = "J07BB02",
                         name: str = "VAXIGRIPTETRA, suspension injectable en seringue préremplie") -> bytes:
    """The ANS eDISP-MED example whose first dispensed product is made a flu vaccine (same structure)."""
    root = etree.fromstring(EDISP)
    stamp = day.strftime("%Y%m%d") + "100000+0100"
    root.find("h:effectiveTime", NS).set("value", stamp)
    for low in root.iterfind(".//h:documentationOf/h:serviceEvent/h:effectiveTime/h:low", NS):
        low.set("value", stamp)
    supply = next(root.iterfind(".//h:structuredBody//h:entry/h:supply", NS))
    material = supply.find("h:product/h:manufacturedProduct/h:manufacturedMaterial", NS)
    material.find("h:name", NS).text = name
    for translation in material.iterfind("h:code/h:translation", NS):
        translation.set("code", "3400930070086")
        translation.set("displayName", name)
    material.find("h:lotNumberText", NS).text = "W3B52"
    generic = material.find("pharm:asSpecializedKind/pharm:generalizedMedicineClass", NS)
    if atc is None:
        generic.getparent().remove(generic)
    else:
        generic.find("pharm:code", NS).set("code", atc)
        generic.find("pharm:code", NS).set("displayName", "influenza, inactivated, split virus")
        generic.find("pharm:name", NS).text = "vaccin grippal inactivé"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
