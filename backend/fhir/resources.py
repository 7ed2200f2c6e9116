"""FHIR R4 JSON in and out of the record: pure functions, no database, no Flask.

Reading: :func:`parse_provide_bundle` turns an IHE MHD ITI-65 transaction Bundle into a
:class:`Submission` (validated with fhir.resources R4 first, then the MHD rules: one SubmissionSet List,
DocumentReferences whose attachment points at a Binary of the bundle or carries the data inline, one
patient for the whole bundle, declared hash and size equal to the bytes, no XML document declaring
entities or an external DTD). Nothing here touches the database, so a refused bundle cannot have written
anything.

Writing: :func:`document_reference`, :func:`binary`, :func:`patient`, :func:`consent`, :func:`audit_event`,
:func:`searchset` and :func:`operation_outcome` build the JSON the API emits; the tests check each of them
with fhir.resources.

Code systems are stored as XDS stores them (OIDs: LOINC ``2.16.840.1.113883.6.1``, TRE_A05
``1.2.250.1.213.1.1.4.12``…) and spoken in FHIR as ``http://loinc.org`` or ``urn:oid:…``; the ANS FHIR
URLs (``https://mos.esante.gouv.fr/NOS/TRE_…``) are accepted on input.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from backend.errors import DomainError
from backend.fhir import messages  # noqa: F401  (the diagnostics texts)
from backend.identity import INS_OIDS
from migration import xmlsafe

FHIR_MIME = "application/fhir+json"
BASE = "https://carnet.example/fhir"

LOINC_OID = "2.16.840.1.113883.6.1"
LOINC_URL = "http://loinc.org"
CLASS_OID = "1.2.250.1.213.1.1.4.1"          # TRE_A03 ClasseDocument (XDS classCode)
TYPE_FR_OID = "1.2.250.1.213.1.1.4.12"       # TRE_A05 TypeDocComplementaire
FORMAT_OID = "1.2.250.1.213.1.1.4.2.282"     # TRE_A06 FormatCodeComplementaire
VISIBILITY_OID = "1.2.250.1.213.1.1.4.13"    # TRE_A07: INVISIBLE_PATIENT, MASQUE_PS…
PROFESSION_OID = "1.2.250.1.213.1.1.4.5"     # TRE_G15 as XDS authorSpecialty (G15_10, G15_10/SM54)
IDNPS_OID = "1.2.250.1.71.4.2.1"             # national identifier of health professionals ("8" + RPPS)
CONFIDENTIALITY_URL = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
CONFIDENTIALITY_OID = "2.16.840.1.113883.5.25"
SUBMISSIONSET_SYSTEM = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
URI_SYSTEM = "urn:ietf:rfc:3986"

INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
INVISIBLE_LEGAL_REPRESENTATIVES = "INVISIBLE_REPRESENTANTS_LEGAUX"
MASKED = "MASQUE_PS"

# ANS FHIR terminology URLs for the OIDs XDS uses
ANS_SYSTEMS = {
    "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument": CLASS_OID,
    "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire": TYPE_FR_OID,
    "https://mos.esante.gouv.fr/NOS/TRE_A06-FormatCodeComplementaire/FHIR/TRE-A06-FormatCodeComplementaire":
        FORMAT_OID,
    "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante": PROFESSION_OID,
}

# --- errors ------------------------------------------------------------------------------------------------

def invalid_resource(reason: str) -> DomainError:
    return DomainError("fhir_invalid_resource", 400, reason=reason)


def mhd_rule(reason: str) -> DomainError:
    return DomainError("fhir_mhd_rule", 422, reason=reason)


# --- systems and identifiers -------------------------------------------------------------------------------

def system_to_oid(system: str | None) -> str | None:
    """A FHIR code system as XDS stores it (an OID when there is one)."""
    if not system:
        return None
    if system == LOINC_URL:
        return LOINC_OID
    if system.startswith("urn:oid:"):
        return system[len("urn:oid:"):]
    return ANS_SYSTEMS.get(system, system)


def oid_to_system(oid: str | None) -> str | None:
    if not oid:
        return None
    if oid == LOINC_OID:
        return LOINC_URL
    if re.fullmatch(r"[0-2](\.(0|[1-9]\d*))+", oid):
        return f"urn:oid:{oid}"
    return oid


def ins_system(oid: str) -> str:
    return f"urn:oid:{oid}"


INS_SYSTEMS = {ins_system(oid): oid for oid in INS_OIDS}


def parse_token(raw: str) -> tuple[str | None, str]:
    """A FHIR search token ``system|code`` (or ``code``)."""
    if "|" in raw:
        system, _, code = raw.partition("|")
        return (system or None), code
    return None, raw


def unique_id_in(value: str) -> str:
    """masterIdentifier.value → the XDS uniqueId (``urn:oid:1.2^x`` → ``1.2^x``)."""
    value = value.strip()
    for prefix in ("urn:oid:", "urn:uuid:"):
        if value.lower().startswith(prefix):
            return value[len(prefix):] if prefix == "urn:oid:" else value
    return value


def unique_id_out(unique_id: str) -> str:
    if unique_id.startswith("urn:"):
        return unique_id
    if re.fullmatch(r"[0-2](\.(0|[1-9]\d*))+(\^.*)?", unique_id):
        return f"urn:oid:{unique_id}"
    return unique_id


def rpps_from_idnps(value: str) -> str | None:
    """IDNPS is "8" + RPPS (11 digits); a bare RPPS is accepted too."""
    digits = re.sub(r"\s", "", value or "")
    if len(digits) == 12 and digits.startswith("8") and digits.isdigit():
        return digits[1:]
    if len(digits) == 11 and digits.isdigit():
        return digits
    return None


# --- dates -------------------------------------------------------------------------------------------------

def parse_fhir_datetime(value: Any) -> dt.datetime | None:
    """FHIR date/dateTime/instant (possibly partial: 2024, 2024-05) → UTC datetime. None if absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_resource(f"date illisible ({str(value)[:40]})")
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}", text):
            return dt.datetime(int(text), 1, 1, tzinfo=dt.timezone.utc)
        if re.fullmatch(r"\d{4}-\d{2}", text):
            return dt.datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=dt.timezone.utc)
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise invalid_resource(f"date illisible ({text[:40]})") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def instant(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


# --- ITI-65: reading a Provide Document Bundle -------------------------------------------------------------

@dataclass
class Author:
    rpps: str | None = None
    name: str | None = None
    profession: str | None = None
    specialty: str | None = None
    organisation: str | None = None


@dataclass
class DocumentDeposit:
    """One DocumentReference + its bytes, mapped to the record's document metadata."""

    entry: str                   # fullUrl (or position) for error messages
    unique_id: str
    title: str | None            # None: the type's label is used
    mime_type: str
    content: bytes
    class_code: str | None = None
    type_code: str | None = None
    type_system: str | None = None
    format_code: str | None = None
    author: Author | None = None
    service_date: dt.datetime | None = None
    confidentiality: str = "N"
    invisible_patient: bool = False
    invisible_legal_representatives: bool = False
    masked: bool = False
    replaces: list[str] = field(default_factory=list)   # DocumentReference ids or uniqueIds it replaces


@dataclass
class Submission:
    patient_oid: str
    patient_nir: str
    submission_set_id: str | None
    documents: list[DocumentDeposit]
    # per request entry, in order: ("List", None) | ("DocumentReference", i) | ("Binary", i), i = index in
    # ``documents``; the transaction-response answers entry by entry.
    entries: list[tuple[str, int | None]] = field(default_factory=list)


def validate_r4(resource: dict[str, Any]) -> Any:
    """Structural validation with the FHIR R4 models of fhir.resources; 400 with the first errors."""
    import pydantic
    from fhir.resources import construct_fhir_element

    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise invalid_resource("resourceType manquant")
    try:
        return construct_fhir_element(resource_type, resource)
    except LookupError:
        raise invalid_resource(f"type de ressource inconnu ({resource_type[:40]})") from None
    except pydantic.ValidationError as exc:
        raise invalid_resource(_summarise(exc.errors())) from None
    except (TypeError, ValueError) as exc:
        raise invalid_resource(str(exc)[:200]) from None


def _validation_view(bundle: dict[str, Any]) -> dict[str, Any]:
    """The bundle as fhir.resources should see it.

    FHIR R4's ``url`` type is any non-blank string, and MHD clients point ``attachment.url`` at the Binary
    entry's ``fullUrl`` (a ``urn:uuid:``) or at ``Binary/{id}``; fhir.resources 6 wrongly requires a scheme
    with a host there. The view gives such values a host (sharing everything else: no copy of the
    documents); the bundle itself is read unchanged."""
    entries = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not (isinstance(resource, dict) and resource.get("resourceType") == "DocumentReference"
                and isinstance(resource.get("content"), list)):
            entries.append(entry)
            continue
        contents = []
        for content in resource["content"]:
            attachment = content.get("attachment") if isinstance(content, dict) else None
            url = attachment.get("url") if isinstance(attachment, dict) else None
            if isinstance(url, str) and re.fullmatch(r"(urn:[A-Za-z0-9-]+:|[A-Za-z]+/)\S+", url):
                content = {**content, "attachment": {**attachment, "url": "https://urn.invalid/" + url}}
            contents.append(content)
        entries.append({**entry, "resource": {**resource, "content": contents}})
    return {**bundle, "entry": entries} if "entry" in bundle else bundle


def _summarise(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "__root__")
        parts.append(f"{where or 'ressource'} : {error.get('msg', 'invalide')}")
    more = len(errors) - 3
    return "; ".join(parts) + (f" (et {more} autre(s))" if more > 0 else "")


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def _first_code(concepts: Iterable[Any]) -> tuple[str | None, str | None]:
    for concept in concepts:
        for coding in _codings(concept):
            if coding.get("code"):
                return system_to_oid(coding.get("system")), str(coding["code"])
    return None, None


def _subject(resource: dict[str, Any], what: str) -> tuple[str, str]:
    subject = resource.get("subject")
    identifier = subject.get("identifier") if isinstance(subject, dict) else None
    if not isinstance(identifier, dict) or not identifier.get("value") or not identifier.get("system"):
        raise mhd_rule(f"{what} : le patient doit être identifié par subject.identifier "
                       "(urn:oid:1.2.250.1.213.1.4.8|NIR)")
    system = str(identifier["system"])
    if system not in INS_SYSTEMS:
        raise mhd_rule(f"{what} : identifiant patient non reconnu ({system[:60]}), INS attendu "
                       "(urn:oid:1.2.250.1.213.1.4.8 ou .10 pour une identité de test)")
    return INS_SYSTEMS[system], re.sub(r"\s", "", str(identifier["value"])).upper()


def _resolve_local(resource: dict[str, Any], reference: Any) -> dict[str, Any] | None:
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if isinstance(ref, str) and ref.startswith("#"):
        for contained in resource.get("contained") or []:
            if isinstance(contained, dict) and contained.get("id") == ref[1:]:
                return contained
    return None


def _identifier_rpps(identifiers: Any) -> str | None:
    for identifier in identifiers if isinstance(identifiers, list) else [identifiers]:
        if isinstance(identifier, dict) and identifier.get("value"):
            system = str(identifier.get("system") or "")
            if system.endswith(IDNPS_OID) or "rpps" in system.lower() or not system:
                rpps = rpps_from_idnps(str(identifier["value"]))
                if rpps:
                    return rpps
    return None


def _human_name(names: Any) -> str | None:
    for name in names or []:
        if isinstance(name, dict):
            if name.get("text"):
                return str(name["text"])[:300]
            parts = [*(name.get("given") or []), name.get("family") or ""]
            text = " ".join(str(p) for p in parts if p).strip()
            if text:
                return text[:300]
    return None


def _author(resource: dict[str, Any]) -> Author | None:
    authors = [a for a in resource.get("author") or [] if isinstance(a, dict)]
    if not authors:
        return None
    author = Author()
    for reference in authors:
        target = _resolve_local(resource, reference)
        if target is None:
            author.rpps = author.rpps or _identifier_rpps(reference.get("identifier"))
            author.name = author.name or (str(reference["display"])[:300] if reference.get("display") else None)
            continue
        kind = target.get("resourceType")
        if kind == "PractitionerRole":
            practitioner = _resolve_local(resource, target.get("practitioner")) or {}
            author.rpps = author.rpps or _identifier_rpps(practitioner.get("identifier")) \
                or _identifier_rpps((target.get("practitioner") or {}).get("identifier"))
            author.name = author.name or _human_name(practitioner.get("name")) \
                or (target.get("practitioner") or {}).get("display")
            _, code = _first_code(target.get("code") or [])
            if code:
                author.profession = code.removeprefix("G15_").split("/")[0][:16]
            _, specialty = _first_code(target.get("specialty") or [])
            if specialty:
                author.specialty = specialty.split("/")[-1][:32]
            organisation = target.get("organization") or {}
            org = _resolve_local(resource, organisation)
            author.organisation = (org or {}).get("name") or organisation.get("display") or author.organisation
        elif kind == "Practitioner":
            author.rpps = author.rpps or _identifier_rpps(target.get("identifier"))
            author.name = author.name or _human_name(target.get("name"))
            for qualification in target.get("qualification") or []:
                _, code = _first_code([qualification.get("code")] if isinstance(qualification, dict) else [])
                if code and not author.profession:
                    author.profession = code.removeprefix("G15_").split("/")[0][:16]
        elif kind == "Organization":
            author.organisation = author.organisation or target.get("name")
    if author.organisation:
        author.organisation = str(author.organisation)[:300]
    return author


def _security(resource: dict[str, Any]) -> tuple[str, bool, bool, bool]:
    confidentiality = "N"
    invisible_patient = invisible_legal = masked = False
    for label in resource.get("securityLabel") or []:
        for coding in _codings(label):
            system, code = system_to_oid(coding.get("system")), coding.get("code")
            if system in (CONFIDENTIALITY_OID, CONFIDENTIALITY_URL) and code in ("N", "R", "V"):
                confidentiality = code
            elif system == VISIBILITY_OID or code in (INVISIBLE_PATIENT, INVISIBLE_LEGAL_REPRESENTATIVES, MASKED):
                if code == INVISIBLE_PATIENT:
                    invisible_patient = True
                elif code == INVISIBLE_LEGAL_REPRESENTATIVES:
                    invisible_legal = True
                elif code == MASKED:
                    masked = True
                else:
                    raise mhd_rule(f"securityLabel inconnu ({str(code)[:40]})")
    return confidentiality, invisible_patient, invisible_legal, masked


def decode_base64(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise invalid_resource(f"{where} : données base64 attendues")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_resource(f"{where} : base64 invalide") from None


def _check_hash(attachment: dict[str, Any], data: bytes, entry: str) -> None:
    declared = attachment.get("hash")
    if declared is None:
        return
    digest = decode_base64(declared, f"{entry} attachment.hash")
    # R4 says SHA-1; SHA-256 (R5, XDS French profiles) is accepted too.
    algorithm = {20: hashlib.sha1, 32: hashlib.sha256}.get(len(digest))
    if algorithm is None or algorithm(data).digest() != digest:
        raise DomainError("fhir_hash_mismatch", 422, entry=entry)


# What the legacy import's hardened parser refuses and a deposit refuses too: an XML document declaring
# entities (XXE, "billion laughs") or pointing at an external DTD. Nothing would ever expand them (the
# viewer parses with entities off), but filing such a document would put an unreadable, hostile file in the
# patient's record: the sender is told instead. Other XML faults are not a deposit's business.
UNSAFE_XML_REASONS = {"xml_entities": "fhir_xml_entities", "xml_external_dtd": "fhir_xml_external_dtd"}
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)


def _refuse_unsafe_xml(data: bytes, entry: str) -> None:
    """Any content that is XML (whatever its declared type: the viewer sniffs bytes, not labels) goes
    through ``migration.xmlsafe``, the one hardened parser; only its entity and DTD refusals apply here."""
    if not xmlsafe.strip_bom(data).lstrip().startswith(b"<"):
        return  # PDF, images, plain text: not XML
    try:
        xmlsafe.parse(data, max_bytes=len(data))  # the size was checked against the document limit
    except xmlsafe.XmlRefused as refused:
        code = UNSAFE_XML_REASONS.get(refused.reason)
        if code is None and _ENTITY_DECLARATION.search(data):
            # the parser stops at the first fault (a text node past libxml2's cap…): a declaration it never
            # reached still makes the document one that declares entities
            code = "fhir_xml_entities"
        if code is not None:
            raise DomainError(code, 422, entry=entry) from None


def _same_reference(url: str, full_url: str | None, resource: dict[str, Any]) -> bool:
    """attachment.url names a Binary of the bundle by its fullUrl, or as Binary/{id}."""
    if full_url and (url == full_url or full_url.endswith("/" + url)):
        return True
    return bool(resource.get("id")) and url.endswith(f"Binary/{resource['id']}")


def parse_provide_bundle(body: Any, *, max_document_bytes: int) -> Submission:
    """ITI-65 → :class:`Submission`, or a DomainError (400 structure, 413 size, 422 MHD rule)."""
    if not isinstance(body, dict):
        raise invalid_resource("un objet JSON (Bundle) est attendu")
    if body.get("resourceType") != "Bundle":
        raise invalid_resource(f"un Bundle est attendu, pas « {str(body.get('resourceType'))[:40]} »")
    validate_r4(_validation_view(body))
    if body.get("type") != "transaction":
        raise DomainError("fhir_not_a_transaction", 400, received=str(body.get("type"))[:40])

    lists: list[dict[str, Any]] = []
    references: list[tuple[str, dict[str, Any]]] = []
    binaries: list[tuple[str | None, dict[str, Any]]] = []
    order: list[tuple[str, int]] = []
    for index, entry in enumerate(body.get("entry") or []):
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            raise mhd_rule(f"entrée {index} sans ressource")
        request = entry.get("request") or {}
        if request.get("method") not in ("POST", "PUT"):
            raise mhd_rule(f"entrée {index} : request.method POST attendu")
        kind = resource.get("resourceType")
        name = entry.get("fullUrl") or f"entry[{index}]"
        if kind == "List":
            order.append((kind, len(lists)))
            lists.append(resource)
        elif kind == "DocumentReference":
            order.append((kind, len(references)))
            references.append((name, resource))
        elif kind == "Binary":
            order.append((kind, len(binaries)))
            binaries.append((entry.get("fullUrl"), resource))
        else:
            raise mhd_rule(f"ressource {kind} non acceptée dans un lot ITI-65 (List, DocumentReference, Binary)")
    if len(lists) != 1:
        raise mhd_rule("le lot doit contenir exactement une List (SubmissionSet)")
    submission_set = lists[0]
    if not any(c.get("code") == "submissionset" for c in _codings(submission_set.get("code"))):
        raise mhd_rule("la List doit porter le code « submissionset »")
    if not references:
        raise mhd_rule("le lot ne contient aucun DocumentReference")
    patient_oid, patient_nir = _subject(submission_set, "List (SubmissionSet)")

    used_binaries: dict[int, int] = {}
    documents: list[DocumentDeposit] = []
    seen_ids: set[str] = set()
    for name, resource in references:
        if _subject(resource, name) != (patient_oid, patient_nir):
            raise mhd_rule(f"{name} : le patient diffère de celui du SubmissionSet")
        if resource.get("status") != "current":
            raise mhd_rule(f"{name} : status « current » attendu")
        master = resource.get("masterIdentifier") or {}
        if not master.get("value"):
            raise mhd_rule(f"{name} : masterIdentifier (identifiant unique du document) manquant")
        unique_id = unique_id_in(str(master["value"]))
        if len(unique_id) > 128:
            raise mhd_rule(f"{name} : masterIdentifier trop long (128 caractères au plus)")
        if unique_id in seen_ids:
            raise mhd_rule(f"{name} : masterIdentifier en double dans le lot")
        seen_ids.add(unique_id)
        contents = resource.get("content") or []
        if len(contents) != 1:
            raise mhd_rule(f"{name} : un seul content par DocumentReference")
        attachment = contents[0].get("attachment") or {}
        data: bytes | None = None
        binary_type: str | None = None
        if attachment.get("data") is not None:
            data = decode_base64(attachment["data"], f"{name} attachment.data")
        elif attachment.get("url"):
            url = str(attachment["url"])
            for position, (full_url, binary_resource) in enumerate(binaries):
                if _same_reference(url, full_url, binary_resource):
                    data = decode_base64(binary_resource.get("data"), f"{full_url or 'Binary'} data")
                    binary_type = binary_resource.get("contentType")
                    used_binaries[position] = len(documents)
                    break
            if data is None:
                raise mhd_rule(f"{name} : attachment.url ne désigne aucun Binary du lot ({url[:80]})")
        else:
            raise mhd_rule(f"{name} : attachment.url (vers un Binary) ou attachment.data attendu")
        if len(data) > max_document_bytes:
            raise DomainError("fhir_document_too_large", 413, entry=name, limit=max_document_bytes)
        if attachment.get("size") is not None and int(attachment["size"]) != len(data):
            raise DomainError("fhir_size_mismatch", 422, entry=name)
        _check_hash(attachment, data, name)
        _refuse_unsafe_xml(data, name)
        mime = str(attachment.get("contentType") or binary_type or "")
        if not mime:
            raise mhd_rule(f"{name} : attachment.contentType manquant")
        _, class_code = _first_code(resource.get("category") or [])
        type_system, type_code = _first_code([resource.get("type")])
        format_code = None
        for content in contents:
            fmt = content.get("format")
            if isinstance(fmt, dict) and fmt.get("code"):
                format_code = str(fmt["code"])[:128]
        if type_system is not None and len(type_system) > 64:
            raise mhd_rule(f"{name} : système de codage du type non reconnu ({type_system[:60]})")
        confidentiality, invisible_patient, invisible_legal, masked = _security(resource)
        context = resource.get("context") or {}
        service_date = parse_fhir_datetime((context.get("period") or {}).get("start")) \
            or parse_fhir_datetime(attachment.get("creation"))
        replaces = []
        for relation in resource.get("relatesTo") or []:
            if relation.get("code") == "replaces":
                target = relation.get("target") or {}
                if target.get("reference"):
                    replaces.append(str(target["reference"]).rsplit("/", 1)[-1])
                elif (target.get("identifier") or {}).get("value"):
                    replaces.append(unique_id_in(str(target["identifier"]["value"])))
        title = attachment.get("title") or resource.get("description") or (resource.get("type") or {}).get("text") \
            or next((c.get("display") for c in _codings(resource.get("type")) if c.get("display")), None)
        documents.append(DocumentDeposit(
            entry=name, unique_id=unique_id, title=str(title)[:500] if title else None,
            mime_type=mime.split(";")[0].strip()[:100],
            content=data, class_code=(class_code or None) and class_code[:16],
            type_code=(type_code or None) and type_code[:32], type_system=type_system,
            format_code=format_code, author=_author(resource), service_date=service_date,
            confidentiality=confidentiality, invisible_patient=invisible_patient,
            invisible_legal_representatives=invisible_legal, masked=masked, replaces=replaces))
    unused = [binaries[i][0] or f"Binary {i}" for i in range(len(binaries)) if i not in used_binaries]
    if unused:
        raise mhd_rule(f"Binary non référencé par un DocumentReference ({str(unused[0])[:80]})")
    master = submission_set.get("identifier") or []
    submission_id = next((str(i.get("value")) for i in master if isinstance(i, dict) and i.get("value")), None)
    entries = [(kind, None if kind == "List" else position if kind == "DocumentReference"
                else used_binaries[position]) for kind, position in order]
    return Submission(patient_oid, patient_nir, submission_id and submission_id[:128], documents, entries)


# --- writing -------------------------------------------------------------------------------------------------

def operation_outcome(status: int, code: str, detail: str, severity: str = "error") -> dict[str, Any]:
    issue_code = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
                  409: "conflict", 413: "too-costly", 415: "not-supported", 422: "processing",
                  429: "throttled"}.get(status, "exception")
    if code == "document_unique_id_conflict":
        issue_code = "duplicate"
    elif code in ("fhir_unknown_patient", "access_no_record"):
        issue_code = "not-found"
    elif code in ("fhir_hash_mismatch", "fhir_size_mismatch", "fhir_mhd_rule"):
        issue_code = "business-rule" if code == "fhir_mhd_rule" else "value"
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": issue_code, "diagnostics": detail,
                       "details": {"coding": [{"system": f"{BASE}/CodeSystem/carnet-error", "code": code}],
                                   "text": detail}}]}


def patient_identifier(ins_oid: str, nir: str) -> dict[str, Any]:
    return {"use": "official", "system": ins_system(ins_oid), "value": nir,
            "type": {"coding": [{"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203",
                                 "code": "INS-NIR-TEST" if ins_oid.endswith(".10") else "INS-NIR"}]}}


def patient(p: Any) -> dict[str, Any]:
    """The record holder (accounts.models.Patient) with their INS."""
    name: dict[str, Any] = {"use": "official", "family": p.birth_family_name,
                            "given": p.given_names.split()}
    names = [name]
    if getattr(p, "used_family_name", None):
        names.append({"use": "usual", "family": p.used_family_name, "given": p.given_names.split()[:1]})
    resource: dict[str, Any] = {
        "resourceType": "Patient", "id": str(p.id), "identifier": [patient_identifier(p.ins_oid, p.nir)],
        "name": names, "gender": {"F": "female", "M": "male"}.get(p.sex, "unknown"),
        "birthDate": p.birth_date.isoformat()}
    telecom = []
    if p.email:
        telecom.append({"system": "email", "value": p.email})
    if p.phone:
        telecom.append({"system": "phone", "value": p.phone})
    if telecom:
        resource["telecom"] = telecom
    if getattr(p, "birth_place_cog", None):
        resource["extension"] = [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                                  "valueAddress": {"district": p.birth_place_cog}}]
    return resource


def _security_labels(doc: Any) -> list[dict[str, Any]]:
    labels = [{"coding": [{"system": CONFIDENTIALITY_URL, "code": doc.confidentiality or "N"}]}]
    for flag, code, display in ((doc.invisible_patient and doc.released_at is None, INVISIBLE_PATIENT,
                                 "Non visible par le patient"),
                                (doc.invisible_legal_representatives, INVISIBLE_LEGAL_REPRESENTATIVES,
                                 "Non visible par les représentants légaux du patient"),
                                (doc.masked, MASKED, "Masqué aux professionnels de santé")):
        if flag:
            labels.append({"coding": [{"system": f"urn:oid:{VISIBILITY_OID}", "code": code, "display": display}]})
    return labels


def _author_out(doc: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Contained PractitionerRole (+ Practitioner) for the document's author."""
    if not (doc.author_rpps or doc.author_name or doc.author_organisation):
        return [], []
    practitioner: dict[str, Any] = {"resourceType": "Practitioner", "id": "author-practitioner"}
    if doc.author_rpps:
        practitioner["identifier"] = [{"system": f"urn:oid:{IDNPS_OID}", "value": "8" + doc.author_rpps}]
    if doc.author_name:
        practitioner["name"] = [{"text": doc.author_name}]
    role: dict[str, Any] = {"resourceType": "PractitionerRole", "id": "author",
                            "practitioner": {"reference": "#author-practitioner"}}
    if doc.author_profession:
        role["code"] = [{"coding": [{"system": f"urn:oid:{PROFESSION_OID}",
                                     "code": f"G15_{doc.author_profession}"}]}]
        if doc.author_specialty:
            role["specialty"] = [{"coding": [{"system": f"urn:oid:{PROFESSION_OID}",
                                              "code": f"G15_{doc.author_profession}/{doc.author_specialty}"}]}]
    if doc.author_organisation:
        role["organization"] = {"display": doc.author_organisation}
    return [role, practitioner], [{"reference": "#author"}]


def document_reference(doc: Any, holder: Any, base_url: str) -> dict[str, Any]:
    """records.models.Document (+ its Patient) → MHD DocumentReference; the bytes are at Binary/{id}."""
    contained, authors = _author_out(doc)
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference", "id": str(doc.id),
        "masterIdentifier": {"system": URI_SYSTEM, "value": unique_id_out(doc.unique_id)},
        "status": "superseded" if doc.replaced_by_id else "current",
        "subject": {"identifier": patient_identifier(holder.ins_oid, holder.nir)},
        "date": instant(doc.submitted_at),
        "description": doc.title,
        "securityLabel": _security_labels(doc),
        "content": [{"attachment": {"contentType": doc.mime_type, "size": doc.size, "title": doc.title,
                                    "url": f"{base_url}Binary/{doc.id}"}}],
    }
    if contained:
        resource["contained"] = contained
        resource["author"] = authors
    if doc.type_code:
        resource["type"] = {"coding": [{"system": oid_to_system(doc.type_system) or LOINC_URL,
                                        "code": doc.type_code}]}
    if doc.class_code:
        resource["category"] = [{"coding": [{"system": f"urn:oid:{CLASS_OID}", "code": doc.class_code}]}]
    if doc.format_code:
        resource["content"][0]["format"] = {"system": f"urn:oid:{FORMAT_OID}", "code": doc.format_code}
    if doc.service_date:
        resource["context"] = {"period": {"start": instant(doc.service_date)}}
    return resource


def binary(doc: Any, data: bytes) -> dict[str, Any]:
    return {"resourceType": "Binary", "id": str(doc.id), "contentType": doc.mime_type,
            "data": base64.b64encode(data).decode("ascii")}


def searchset(entries: list[dict[str, Any]], base_url: str, *, total: int | None = None,
              self_link: str | None = None, next_link: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    links = []
    if self_link:
        links.append({"relation": "self", "url": self_link})
    if next_link:
        links.append({"relation": "next", "url": next_link})
    if links:
        bundle["link"] = links
    bundle["entry"] = [{"fullUrl": f"{base_url}{r['resourceType']}/{r['id']}", "resource": r,
                        "search": {"mode": "match"}} for r in entries]
    return bundle
