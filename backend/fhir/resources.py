"""FHIR R4 JSON in and out of the record: pure functions, no database, no Flask.

Reading: :func:`parse_provide_bundle` turns an IHE MHD ITI-65 transaction Bundle into a
:class:`Submission` (validated with fhir.resources R4 first, then the MHD rules: one SubmissionSet List,
DocumentReferences whose attachment points at a Binary of the bundle or carries the data inline, one
patient for the whole bundle, declared hash and size equal to the bytes, no XML document declaring
entities or an external DTD). Nothing here touches the database, so a refused bundle cannot have written
anything.

Writing: :func:`document_reference`, :func:`submission_set`, :func:`binary`, :func:`patient`,
:func:`practitioner` and :func:`searchset` build the JSON the API emits; the tests check each of them
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

from backend import cda
from backend.errors import DomainError
import backend.fhir.messages  # noqa: F401  (the diagnostics texts)
from backend.identity import INS_OIDS
from backend.professionals.service import structure_id_from
from backend.records.documents.service import Coding

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
SNOMED_OID = "2.16.840.1.113883.6.96"
SNOMED_URL = "http://snomed.info/sct"
# code systems FHIR names by a URL: stored as XDS does (the OID), spoken as FHIR says (the URL)
FHIR_URLS = {LOINC_OID: LOINC_URL, SNOMED_OID: SNOMED_URL, CONFIDENTIALITY_OID: CONFIDENTIALITY_URL}
IHE_FORMAT_URL = "https://mos.esante.gouv.fr/NOS/TRE_A11-IheFormatCode/FHIR/TRE-A11-IheFormatCode"
IDENTIFIER_TYPE_SYSTEM = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDIdentifierType"
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
    IHE_FORMAT_URL: "1.3.6.1.4.1.19376.1.2.3",
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument":
        VISIBILITY_OID,
}
OID_SYSTEMS = {url: oid for oid, url in FHIR_URLS.items()}

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
    if system in OID_SYSTEMS:
        return OID_SYSTEMS[system]
    if system.startswith("urn:oid:"):
        return system[len("urn:oid:"):]
    return ANS_SYSTEMS.get(system, system)


def oid_to_system(oid: str | None) -> str | None:
    if not oid:
        return None
    if oid in FHIR_URLS:
        return FHIR_URLS[oid]
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
    family: str | None = None
    given: str | None = None
    structure_id: str | None = None      # idNat_Struct of the author's organization (FINESS, SIRET…)
    named_rpps: set[str] = field(default_factory=set)   # every RPPS the document names as an author


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
    # the rest of the DocumentEntry, kept as received
    type_display: str | None = None
    class_system: str | None = None
    class_display: str | None = None
    format_system: str | None = None
    format_display: str | None = None
    facility_type: Coding | None = None
    practice_setting: Coding | None = None
    events: tuple[Coding, ...] = ()
    security_labels: tuple[Coding, ...] = ()
    language: str | None = None
    creation_time: dt.datetime | None = None
    service_end: dt.datetime | None = None
    description: str | None = None
    entry_uuid: str | None = None
    source_patient_info: dict[str, Any] | None = None


@dataclass
class SubmissionSetData:
    """The List (SubmissionSet) of an ITI-65 bundle."""

    unique_id: str | None
    entry_uuid: str | None
    source_id: str | None
    submitted_at: dt.datetime | None
    title: str | None = None
    comments: str | None = None
    designation: Coding | None = None
    author: Author | None = None


@dataclass
class Submission:
    patient_oid: str
    patient_nir: str
    submission_set_id: str | None
    documents: list[DocumentDeposit]
    # per request entry, in order: ("List", None) | ("DocumentReference", i) | ("Binary", i) | ("Patient", None),
    # i = index in ``documents``; the transaction-response answers entry by entry.
    entries: list[tuple[str, int | None]] = field(default_factory=list)
    submission_set: SubmissionSetData | None = None
    patient: dict[str, Any] | None = None    # the Patient entry MHD allows, checked against the INS


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
    found = _first_coding(concepts)
    return (found.system, found.code) if found else (None, None)


def _coding(raw: dict[str, Any]) -> Coding | None:
    """A FHIR Coding as XDS keeps it (the system as an OID when there is one); None without a code."""
    if not raw.get("code"):
        return None
    display = raw.get("display")
    return Coding(system_to_oid(str(raw["system"])) if raw.get("system") else None, str(raw["code"]),
                  str(display)[:300] if display else None)


def _first_coding(concepts: Iterable[Any]) -> Coding | None:
    for concept in concepts:
        for raw in _codings(concept):
            found = _coding(raw)
            if found is not None:
                return found
    return None


def _all_codings(concepts: Iterable[Any]) -> tuple[Coding, ...]:
    return tuple(c for concept in concepts for raw in _codings(concept) if (c := _coding(raw)) is not None)


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


def _name_parts(names: Any) -> tuple[str | None, str | None]:
    for name in names or []:
        if isinstance(name, dict) and (name.get("family") or name.get("given")):
            given = " ".join(str(g) for g in name.get("given") or [] if g)
            return (str(name["family"])[:150] if name.get("family") else None), (given[:150] or None)
    return None, None
def _structure(organization: dict[str, Any]) -> str | None:
    identifiers = organization.get("identifier")
    for identifier in identifiers if isinstance(identifiers, list) else [identifiers]:
        if isinstance(identifier, dict):
            found = structure_id_from(str(identifier.get("system") or ""), str(identifier.get("value") or ""))
            if found:
                return found
    return None


def _author(resource: dict[str, Any]) -> Author | None:
    authors = [a for a in resource.get("author") or [] if isinstance(a, dict)]
    if not authors:
        return None
    author = Author()

    def rpps_of(identifiers: Any) -> str | None:
        rpps = _identifier_rpps(identifiers)
        if rpps:
            author.named_rpps.add(rpps)
        return rpps

    for reference in authors:
        target = _resolve_local(resource, reference)
        if target is None:
            named = rpps_of(reference.get("identifier"))
            author.rpps = author.rpps or named
            author.name = author.name or (str(reference["display"])[:300] if reference.get("display") else None)
            continue
        kind = target.get("resourceType")
        if kind == "PractitionerRole":
            practitioner = _resolve_local(resource, target.get("practitioner")) or {}
            named = rpps_of(practitioner.get("identifier")) \
                or rpps_of((target.get("practitioner") or {}).get("identifier"))
            author.rpps = author.rpps or named
            author.name = author.name or _human_name(practitioner.get("name")) \
                or (target.get("practitioner") or {}).get("display")
            if not author.family and not author.given:
                author.family, author.given = _name_parts(practitioner.get("name"))
            _, code = _first_code(target.get("code") or [])
            if code:
                author.profession = code.removeprefix("G15_").split("/")[0][:16]
            _, specialty = _first_code(target.get("specialty") or [])
            if specialty:
                author.specialty = specialty.split("/")[-1][:32]
            organisation = target.get("organization") or {}
            org = _resolve_local(resource, organisation)
            author.organisation = (org or {}).get("name") or organisation.get("display") or author.organisation
            author.structure_id = author.structure_id or _structure(org or {}) or _structure(organisation)
        elif kind == "Practitioner":
            named = rpps_of(target.get("identifier"))
            author.rpps = author.rpps or named
            author.name = author.name or _human_name(target.get("name"))
            if not author.family and not author.given:
                author.family, author.given = _name_parts(target.get("name"))
            for qualification in target.get("qualification") or []:
                _, code = _first_code([qualification.get("code")] if isinstance(qualification, dict) else [])
                if code and not author.profession:
                    author.profession = code.removeprefix("G15_").split("/")[0][:16]
        elif kind == "Organization":
            author.organisation = author.organisation or target.get("name")
            author.structure_id = author.structure_id or _structure(target)
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
    through ``backend.cda``, the one hardened parser; only its entity and DTD refusals apply here."""
    if not cda.strip_bom(data).lstrip().startswith(b"<"):
        return  # PDF, images, plain text: not XML
    try:
        cda.parse(data, max_bytes=len(data))  # the size was checked against the document limit
    except cda.XmlRefused as refused:
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
    patients: list[dict[str, Any]] = []
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
        elif kind == "Patient":
            order.append((kind, len(patients)))
            patients.append(resource)
        else:
            raise mhd_rule(f"ressource {kind} non acceptée dans un lot ITI-65 (List, DocumentReference, Binary, "
                           "Patient)")
    if len(lists) != 1:
        raise mhd_rule("le lot doit contenir exactement une List (SubmissionSet)")
    submission_set = lists[0]
    if not any(c.get("code") == "submissionset" for c in _codings(submission_set.get("code"))):
        raise mhd_rule("la List doit porter le code « submissionset »")
    if not references:
        raise mhd_rule("le lot ne contient aucun DocumentReference")
    patient_oid, patient_nir = _subject(submission_set, "List (SubmissionSet)")
    if len(patients) > 1:
        raise mhd_rule("le lot contient plusieurs Patient : un seul patient par lot")
    for patient_resource in patients:
        _check_patient_entry(patient_resource, patient_oid, patient_nir)

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
        category = _first_coding(resource.get("category") or [])
        type_coding = _first_coding([resource.get("type")])
        type_system, type_code = (type_coding.system, type_coding.code) if type_coding else (None, None)
        fmt = contents[0].get("format")
        format_coding = _coding(fmt) if isinstance(fmt, dict) else None
        if type_system is not None and len(type_system) > 64:
            raise mhd_rule(f"{name} : système de codage du type non reconnu ({type_system[:60]})")
        for coding, what in ((category, "category"), (format_coding, "content.format")):
            if coding is not None and len(coding.system or "") > (64 if what == "category" else 128):
                raise mhd_rule(f"{name} : système de codage de {what} non reconnu ({(coding.system or '')[:60]})")
        confidentiality, invisible_patient, invisible_legal, masked = _security(resource)
        context = resource.get("context") or {}
        period = context.get("period") or {}
        creation = parse_fhir_datetime(attachment.get("creation"))
        service_date = parse_fhir_datetime(period.get("start")) or creation
        replaces = []
        for relation in resource.get("relatesTo") or []:
            if relation.get("code") == "replaces":
                target = relation.get("target") or {}
                if target.get("reference"):
                    replaces.append(str(target["reference"]).rsplit("/", 1)[-1])
                elif (target.get("identifier") or {}).get("value"):
                    replaces.append(unique_id_in(str(target["identifier"]["value"])))
        description = resource.get("description")
        title = attachment.get("title") or description or (resource.get("type") or {}).get("text") \
            or (type_coding.display if type_coding else None)
        documents.append(DocumentDeposit(
            entry=name, unique_id=unique_id, title=str(title)[:500] if title else None,
            mime_type=mime.split(";")[0].strip()[:100],
            content=data, class_code=(category.code[:16] if category else None),
            type_code=(type_code or None) and type_code[:32], type_system=type_system,
            format_code=format_coding.code[:128] if format_coding else None, author=_author(resource),
            service_date=service_date, confidentiality=confidentiality, invisible_patient=invisible_patient,
            invisible_legal_representatives=invisible_legal, masked=masked, replaces=replaces,
            type_display=type_coding.display if type_coding else None,
            class_system=category.system if category else None, class_display=category.display if category else None,
            format_system=format_coding.system if format_coding else None,
            format_display=format_coding.display if format_coding else None,
            facility_type=_short(_first_coding([context.get("facilityType")]), name, "context.facilityType"),
            practice_setting=_short(_first_coding([context.get("practiceSetting")]), name, "context.practiceSetting"),
            events=_all_codings(context.get("event") or []),
            security_labels=_all_codings(resource.get("securityLabel") or []),
            language=_language(attachment.get("language"), name), creation_time=creation,
            service_end=parse_fhir_datetime(period.get("end")),
            description=str(description)[:10_000] if description else None,
            entry_uuid=_entry_uuid(resource.get("identifier")),
            source_patient_info=_source_patient(resource, context.get("sourcePatientInfo"))))
    unused = [binaries[i][0] or f"Binary {i}" for i in range(len(binaries)) if i not in used_binaries]
    if unused:
        raise mhd_rule(f"Binary non référencé par un DocumentReference ({str(unused[0])[:80]})")
    entries = [(kind, position if kind == "DocumentReference" else used_binaries[position] if kind == "Binary"
                else None) for kind, position in order]
    data = _submission_set(submission_set)
    return Submission(patient_oid, patient_nir, data.unique_id, documents, entries, data,
                      patients[0] if patients else None)


SOURCE_ID_EXTENSION = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId"
DESIGNATION_EXTENSION = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType"
AUTHOR_ORG_EXTENSION = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-authorOrg"


def _extension(resource: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in resource.get("extension") or [] if isinstance(e, dict) and e.get("url") == url), None)


def _submission_set(resource: dict[str, Any]) -> SubmissionSetData:
    """The SubmissionSet's uniqueId (identifier use=usual, or the only identifier not an entryUUID), entryUUID
    (use=official, urn:uuid:), sourceId, designationType, date, title, note and author (List.source)."""
    identifiers = [i for i in resource.get("identifier") or [] if isinstance(i, dict) and i.get("value")]
    entry_uuid = _entry_uuid(identifiers)
    unique = next((i for i in identifiers if i.get("use") == "usual"), None) or next(
        (i for i in identifiers if str(i.get("value")) != entry_uuid), None)
    unique_id = unique_id_in(str(unique["value"]))[:128] if unique else None
    source = _extension(resource, SOURCE_ID_EXTENSION)
    source_id = ((source or {}).get("valueIdentifier") or {}).get("value")
    designation = _extension(resource, DESIGNATION_EXTENSION)
    notes = [n.get("text") for n in resource.get("note") or [] if isinstance(n, dict) and n.get("text")]
    author = None
    if isinstance(resource.get("source"), dict):
        author = _author({"author": [resource["source"]], "contained": resource.get("contained") or []})
        organisation = _extension(resource["source"], AUTHOR_ORG_EXTENSION)
        org_ref = (organisation or {}).get("valueReference")
        if org_ref:
            org = _resolve_local(resource, org_ref) or {}
            author = author or Author()
            author.organisation = author.organisation or (org.get("name") or org_ref.get("display"))
    title = resource.get("title")
    return SubmissionSetData(
        unique_id=unique_id, entry_uuid=entry_uuid,
        source_id=unique_id_in(str(source_id))[:128] if source_id else None,
        submitted_at=parse_fhir_datetime(resource.get("date")), title=str(title)[:500] if title else None,
        comments=" ".join(notes)[:10_000] if notes else None,
        designation=_short(_first_coding([(designation or {}).get("valueCodeableConcept")]), "List",
                           "designationType"),
        author=author)


def _short(coding: Coding | None, entry: str, what: str) -> Coding | None:
    if coding is not None and (len(coding.code) > 64 or len(coding.system or "") > 128):
        raise mhd_rule(f"{entry} : {what} trop long (code ≤ 64, système ≤ 128 caractères)")
    return coding


def _language(value: Any, entry: str) -> str | None:
    if value is None:
        return None
    text = str(value)
    if not re.fullmatch(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*", text) or len(text) > 35:
        raise invalid_resource(f"{entry} attachment.language : code de langue BCP 47 attendu ({text[:20]})")
    return text


def _entry_uuid(identifiers: Any) -> str | None:
    """The entryUUID: the identifier with use=official whose value is a urn:uuid."""
    for identifier in identifiers if isinstance(identifiers, list) else []:
        value = str((identifier or {}).get("value") or "") if isinstance(identifier, dict) else ""
        if re.fullmatch(r"urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", value) \
                and identifier.get("use") in (None, "official"):
            return value.lower()
    return None


def _source_patient(resource: dict[str, Any], reference: Any) -> dict[str, Any] | None:
    """sourcePatientInfo: the contained Patient (how the source knew the patient), or the reference as sent."""
    if not isinstance(reference, dict):
        return None
    contained = _resolve_local(resource, reference)
    if contained is not None and contained.get("resourceType") == "Patient":
        return contained
    kept = {k: reference[k] for k in ("identifier", "display") if reference.get(k)}
    return kept or None


def _check_patient_entry(patient_resource: dict[str, Any], ins_oid: str, nir: str) -> None:
    """The Patient entry MHD allows: it must name the subject's INS (nothing of it is stored)."""
    for identifier in patient_resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") in INS_SYSTEMS:
            value = re.sub(r"\s", "", str(identifier.get("value") or "")).upper()
            if INS_SYSTEMS[identifier["system"]] == ins_oid and value == nir:
                return
            raise mhd_rule("le Patient du lot porte un autre INS que le sujet du SubmissionSet")
    raise mhd_rule("le Patient du lot doit porter l'INS du sujet (identifier urn:oid:1.2.250.1.213.1.4.8)")


# --- writing -------------------------------------------------------------------------------------------------

def patient_identifier(ins_oid: str, nir: str) -> dict[str, Any]:
    return {"use": "official", "system": ins_system(ins_oid), "value": nir,
            "type": {"coding": [{"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203",
                                 "code": "INS-NIR-TEST" if ins_oid.endswith(".10") else "INS-NIR"}]}}


def patient(p: Any, *, contact: bool = True) -> dict[str, Any]:
    """The record holder (accounts.models.Patient) with their INS; ``contact=False``: without the telecoms
    (what a professional reads)."""
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
    if contact and p.email:
        telecom.append({"system": "email", "value": p.email})
    if contact and p.phone:
        telecom.append({"system": "phone", "value": p.phone})
    if telecom:
        resource["telecom"] = telecom
    if getattr(p, "birth_place_cog", None):
        resource["extension"] = [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                                  "valueAddress": {"district": p.birth_place_cog}}]
    return resource


CONFIDENTIALITY_DISPLAY = {"N": "normal", "R": "restricted", "V": "very restricted"}
VISIBILITY_DISPLAY = {INVISIBLE_PATIENT: "Non visible par le patient",
                      INVISIBLE_LEGAL_REPRESENTATIVES: "Non visible par les représentants légaux du patient",
                      MASKED: "Masqué aux professionnels de santé"}


@dataclass
class DocumentExtras:
    """What a DocumentReference shows beyond the document's row: its multi-valued codes and what it replaced."""

    events: list[Coding] = field(default_factory=list)
    security_labels: list[Coding] = field(default_factory=list)
    replaces: list[int] = field(default_factory=list)    # ids of the documents it replaced


def coding_out(system: str | None, code: str, display: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if system:
        out["system"] = oid_to_system(system)
    out["code"] = code
    if display:
        out["display"] = display
    return out


def concept(system: str | None, code: str | None, display: str | None = None) -> dict[str, Any] | None:
    return {"coding": [coding_out(system, code, display)]} if code else None


def _security_labels(doc: Any, received: list[Coding]) -> list[dict[str, Any]]:
    """The labels as received, brought up to date with the flags as they are now (a released document is no
    longer INVISIBLE_PATIENT; a document the patient masked since is MASQUE_PS)."""
    flags = {INVISIBLE_PATIENT: bool(doc.invisible_patient and doc.released_at is None),
             INVISIBLE_LEGAL_REPRESENTATIVES: bool(doc.invisible_legal_representatives), MASKED: bool(doc.masked)}
    level = doc.confidentiality or "N"
    labels: list[dict[str, Any]] = []
    seen: set[str] = set()
    for coding in received:
        if coding.code in flags and system_to_oid(coding.system) in (VISIBILITY_OID, None):
            if not flags[coding.code]:
                continue
        elif coding.code in CONFIDENTIALITY_DISPLAY and coding.system in (CONFIDENTIALITY_OID, None):
            if coding.code != level:
                continue
        seen.add(coding.code)
        labels.append({"coding": [coding_out(coding.system, coding.code, coding.display)]})
    if level not in seen:
        labels.insert(0, {"coding": [coding_out(CONFIDENTIALITY_OID, level, CONFIDENTIALITY_DISPLAY.get(level))]})
    for code, on in flags.items():
        if on and code not in seen:
            labels.append({"coding": [coding_out(VISIBILITY_OID, code, VISIBILITY_DISPLAY[code])]})
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


def hash_out(sha1_hex: str | None) -> str | None:
    """attachment.hash: base64 of the SHA-1 (FHIR R4)."""
    return base64.b64encode(bytes.fromhex(sha1_hex)).decode("ascii") if sha1_hex else None


def _source_patient_out(doc: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the contained Patient, the reference to it) of sourcePatientInfo."""
    raw = getattr(doc, "source_patient_info", None)
    if not raw:
        return None, None
    import json

    stored = json.loads(raw)
    if stored.get("resourceType") == "Patient":
        return {**stored, "id": "source-patient"}, {"reference": "#source-patient"}
    return None, stored


def document_reference(doc: Any, holder: Any, base_url: str, extras: DocumentExtras | None = None) -> dict[str, Any]:
    """records.models.Document (+ its Patient) → an IHE MHD Comprehensive DocumentReference; the bytes are at
    Binary/{id}. Every XDS metadata the document came with is returned with its code system and display."""
    from backend.records.documents.service import CLASS_SYSTEM, type_label

    extras = extras or DocumentExtras()
    contained, authors = _author_out(doc)
    attachment: dict[str, Any] = {"contentType": doc.mime_type}
    if getattr(doc, "language", None):
        attachment["language"] = doc.language
    attachment["url"] = f"{base_url}Binary/{doc.id}"
    attachment["size"] = doc.size
    if hash_out(getattr(doc, "sha1", None)):
        attachment["hash"] = hash_out(doc.sha1)
    attachment["title"] = doc.title
    if getattr(doc, "creation_time", None):
        attachment["creation"] = instant(doc.creation_time)
    content: dict[str, Any] = {"attachment": attachment}
    if doc.format_code:
        content["format"] = coding_out(getattr(doc, "format_system", None), doc.format_code,
                                       getattr(doc, "format_display", None))
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference", "id": str(doc.id),
        "masterIdentifier": {"use": "usual", "system": URI_SYSTEM, "value": unique_id_out(doc.unique_id)},
    }
    if getattr(doc, "entry_uuid", None):
        resource["identifier"] = [{"use": "official", "system": URI_SYSTEM, "value": doc.entry_uuid}]
    resource["status"] = "superseded" if doc.replaced_by_id else "current"
    if doc.type_code:
        resource["type"] = concept(doc.type_system or LOINC_OID, doc.type_code,
                                   getattr(doc, "type_display", None) or type_label(doc.type_code))
    if doc.class_code:
        resource["category"] = [concept(getattr(doc, "class_system", None) or CLASS_SYSTEM, doc.class_code,
                                        getattr(doc, "class_display", None))]
    resource["subject"] = {"reference": f"Patient/{holder.id}",
                           "identifier": patient_identifier(holder.ins_oid, holder.nir)}
    resource["date"] = instant(doc.submitted_at)
    if contained:
        resource["author"] = authors
    if getattr(doc, "description", None):
        resource["description"] = doc.description
    resource["securityLabel"] = _security_labels(doc, extras.security_labels)
    resource["content"] = [content]
    context: dict[str, Any] = {}
    if extras.events:
        context["event"] = [concept(c.system, c.code, c.display) for c in extras.events]
    if doc.service_date or getattr(doc, "service_end", None):
        context["period"] = {k: instant(v) for k, v in (("start", doc.service_date),
                                                         ("end", getattr(doc, "service_end", None))) if v}
    if getattr(doc, "facility_type_code", None):
        context["facilityType"] = concept(doc.facility_type_system, doc.facility_type_code, doc.facility_type_display)
    if getattr(doc, "practice_setting_code", None):
        context["practiceSetting"] = concept(doc.practice_setting_system, doc.practice_setting_code,
                                             doc.practice_setting_display)
    source_patient, source_reference = _source_patient_out(doc)
    if source_patient is not None:
        contained.append(source_patient)
    if source_reference is not None:
        context["sourcePatientInfo"] = source_reference
    if context:
        resource["context"] = context
    if extras.replaces:
        resource["relatesTo"] = [{"code": "replaces", "target": {"reference": f"DocumentReference/{old}"}}
                                 for old in extras.replaces]
    if contained:
        resource = {"resourceType": resource.pop("resourceType"), "id": resource.pop("id"), "contained": contained,
                    **resource}
    return resource


def practitioner(pro: Any) -> dict[str, Any]:
    """A professional (professionals.models.Professional): IDNPS identifier, name, profession (TRE_G15)."""
    resource: dict[str, Any] = {
        "resourceType": "Practitioner", "id": str(pro.id),
        "identifier": [{"system": f"urn:oid:{IDNPS_OID}", "value": "8" + pro.rpps}], "active": True,
        "name": [{"family": pro.family_name, "given": pro.given_name.split()}]}
    if pro.profession_code:
        resource["qualification"] = [{"code": concept(PROFESSION_OID, f"G15_{pro.profession_code}")}]
    return resource


SUBMISSION_SET_PROFILE = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.SubmissionSet"


def _set_author_out(row: Any, holder: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """List.source, contained (MHD Comprehensive): the author professional, or the patient for their own."""
    if not (row.author_rpps or row.author_name or row.author_family or row.author_organisation):
        return ([{"resourceType": "Patient", "id": "author",
                  "identifier": [patient_identifier(holder.ins_oid, holder.nir)]}], {"reference": "#author"})
    practitioner: dict[str, Any] = {"resourceType": "Practitioner", "id": "author-practitioner"}
    if row.author_rpps:
        practitioner["identifier"] = [{"system": f"urn:oid:{IDNPS_OID}", "value": "8" + row.author_rpps}]
    name: dict[str, Any] = {}
    if row.author_family:
        name["family"] = row.author_family
    if row.author_given:
        name["given"] = row.author_given.split()
    if row.author_name:
        name["text"] = row.author_name
    if name:
        practitioner["name"] = [name]
    role: dict[str, Any] = {"resourceType": "PractitionerRole", "id": "author",
                            "practitioner": {"reference": "#author-practitioner"}}
    if row.author_organisation:
        role["organization"] = {"display": row.author_organisation}
    return [role, practitioner], {"reference": "#author"}


def submission_set(row: Any, holder: Any, document_ids: list[int]) -> dict[str, Any]:
    """records.models.SubmissionSet → an MHD SubmissionSet List; ``document_ids``: the entries the reader
    may see (the caller filters them)."""
    contained, source = _set_author_out(row, holder)
    extension: list[dict[str, Any]] = [{"url": SOURCE_ID_EXTENSION,
                                        "valueIdentifier": {"value": unique_id_out(row.source_id)}}]
    if row.designation_code:
        extension.append({"url": DESIGNATION_EXTENSION,
                          "valueCodeableConcept": concept(row.designation_system, row.designation_code,
                                                          row.designation_display)})
    resource: dict[str, Any] = {
        "resourceType": "List", "id": str(row.id), "contained": contained, "extension": extension,
        "identifier": [{"use": "usual", "system": URI_SYSTEM, "value": unique_id_out(row.unique_id)},
                       {"use": "official", "system": URI_SYSTEM, "value": row.entry_uuid}],
        "status": "current", "mode": "working"}
    if row.title:
        resource["title"] = row.title
    resource["code"] = {"coding": [{"system": SUBMISSIONSET_SYSTEM, "code": "submissionset",
                                    "display": "SubmissionSet as a FHIR List"}]}
    resource["subject"] = {"reference": f"Patient/{holder.id}",
                           "identifier": patient_identifier(holder.ins_oid, holder.nir)}
    resource["date"] = instant(row.submitted_at)
    resource["source"] = source
    if row.comments:
        resource["note"] = [{"text": row.comments}]
    resource["entry"] = [{"item": {"reference": f"DocumentReference/{doc_id}"}} for doc_id in document_ids]
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
    if entries:  # FHIR JSON never holds an empty array
        bundle["entry"] = [{"fullUrl": f"{base_url}{r['resourceType']}/{r['id']}", "resource": r,
                            "search": {"mode": "match"}} for r in entries]
    return bundle
