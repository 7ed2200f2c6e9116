"""The professional API at ``/fhir/R4`` (IHE MHD 4.2 Document Recipient and Document Responder on FHIR R4):
CapabilityStatement, ITI-65 provide, ITI-66 find lists, ITI-67 find references, ITI-68 retrieve, ``$release``,
and the read-only Patient and Practitioner the results reference.

Each route parses, calls ``records.access.authorize`` (reads) or the service (deposit), commits, shapes.
Errors, content negotiation, the professional's authentication and the CapabilityStatement entries come
from the one FHIR layer (``backend.fhir.layer``).
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flask import Response, current_app, request

from backend import web
from backend.accounts.models import Patient
from backend.audit import service as audit
from backend.db import get_session, utcnow
from backend.errors import DomainError
import backend.fhir.auth as auth
import backend.fhir.capability as capability
import backend.fhir.layer as layer
import backend.fhir.resources as resources
import backend.fhir.service as service
from backend.fhir.layer import SearchParam, base_url, fhir_response, invalid_search, params
from backend.i18n import message
from backend.professionals.models import Professional
from backend.records.documents import service as documents
from backend.records import vault
from backend.records.access.authorize import AccessRefused, authorize, authorize_document
from backend.records.documents.models import Document, SubmissionSet
from backend.records.access.policy import EMERGENCY_PURPOSES, Purpose, Scope

bp = layer.FhirBlueprint("fhir_mhd", __name__)

PAGE_DEFAULT = 20
PAGE_MAX = 100
MHD = "https://profiles.ihe.net/ITI/MHD"
INS_DOC = ("urn:oid:1.2.250.1.213.1.4.8|<NIR> (INS), or …4.10 for a test identity; or 'patient' = "
           "Patient/{id}. One of them is required.")

bp.resource("DocumentReference", supported_profiles=(
    f"{MHD}/StructureDefinition/IHE.MHD.Comprehensive.DocumentReference",
    f"{MHD}/StructureDefinition/IHE.MHD.Minimal.DocumentReference"),
    documentation="IHE MHD DocumentEntry: every XDS metadata received is returned with its code system and "
                  "display (type, category, content.format, context.facilityType/practiceSetting/event, "
                  "securityLabel, attachment.language/creation/hash, description, sourcePatientInfo, the "
                  "entryUUID identifier, relatesTo on a replacing document). DocumentReference.date is when the "
                  "record received the document; content.attachment.url is the Binary to retrieve (ITI-68).")
bp.resource("List", supported_profiles=(
    f"{MHD}/StructureDefinition/IHE.MHD.Comprehensive.SubmissionSet",
    f"{MHD}/StructureDefinition/IHE.MHD.Minimal.SubmissionSet"),
    documentation="IHE MHD SubmissionSets (code submissionset): what one sender deposited together — an ITI-65 "
                  "bundle, a patient's upload, a document saved from the inbox or imported from the legacy "
                  "record. A List shows only the entries the reader may see, and a set with none is not shown. "
                  "No Folders are kept: code=folder finds nothing.")
bp.resource("Binary", documentation="IHE MHD ITI-68 Retrieve Document: the original bytes with their "
                                    "Content-Type, or a FHIR Binary (base64) with 'Accept: application/fhir+json' "
                                    "or _format=json. An unknown document and a document the reader may not see "
                                    "are both 404.")
bp.resource("Patient", documentation="The record holders the results reference (Patient/{id}): INS, names, "
                                     "sex, birth date; only to a professional the patient's choices let read the "
                                     "record, and every read is in the patient's access history.")
bp.resource("Practitioner", documentation="The professionals the results reference (Practitioner/{id}): "
                                          "IDNPS identifier, name, profession.")


# --- metadata --------------------------------------------------------------------------------------------

@bp.capabilities
def metadata() -> Response:
    """CapabilityStatement: what this server does and how to authenticate (public)."""
    return fhir_response(capability.capability_statement(current_app, base_url(), utcnow().date().isoformat()))


# --- ITI-65 Provide Document Bundle --------------------------------------------------------------------------

def _bundle_limit() -> int:
    return int(current_app.config["FHIR_MAX_BUNDLE_BYTES"])


ITI65 = ("ITI-65 Provide Document Bundle: a transaction Bundle with one List (SubmissionSet), its "
         "DocumentReferences, the Binaries they point at (or inline attachment.data) and optionally the Patient "
         "(it must carry the subject's INS). Atomic. The transaction-response answers each entry in order with "
         "response.status and response.location: 201 Created, or 200 OK for what was already there — a bundle "
         "sent again changes nothing and says so.")


@bp.transaction(documentation=ITI65, authenticate=auth.depositor_required)
def provide_document_bundle() -> Response:
    """ITI-65: store every document of a transaction bundle, or none. No consent needed to deposit
    (a professional, or the insurer's feed of reimbursement histories: backend/insurer)."""
    submission = resources.parse_provide_bundle(
        layer.json_body(_bundle_limit()), max_document_bytes=int(current_app.config["FHIR_MAX_DOCUMENT_BYTES"]))
    session = get_session()
    provided = service.provide(session, vault(session), auth.current_depositor(), submission)
    session.commit()
    base = base_url()
    entries = []
    for kind, index in submission.entries:
        if kind == "List":
            created, location = provided.set_created, f"{base}List/{provided.submission_set.id}"
            modified = provided.submission_set.submitted_at
        elif kind == "Patient":
            created, location, modified = False, f"{base}Patient/{provided.holder.id}", None
        else:
            assert index is not None
            doc = provided.documents[index]
            created, location, modified = provided.created[index], f"{base}{kind}/{doc.id}", doc.submitted_at
        answer: dict[str, Any] = {"status": "201 Created" if created else "200 OK", "location": location}
        if modified is not None:
            answer["lastModified"] = resources.instant(modified)
        if kind == "List" and provided.replayed:
            answer["outcome"] = layer.operation_outcome(200, "fhir_bundle_replayed",
                                                        message("fhir_bundle_replayed"), "information")
        entries.append({"response": answer})
    return fhir_response({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})


# --- search parameters -------------------------------------------------------------------------------------

def _date_bounds(raw: str, name: str) -> list[tuple[str, dt.datetime]]:
    """A FHIR date search value → conditions on the instant, honouring the value's precision."""
    match = re.fullmatch(r"(eq|ge|gt|le|lt)?(\d{4}(-\d{2}(-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:\d{2})?)?)?)?)", raw.strip())
    if not match:
        raise invalid_search(f"{name}={raw[:40]}")
    prefix, text = match.group(1) or "eq", match.group(2)
    try:
        start = resources.parse_fhir_datetime(text)
    except DomainError:
        raise invalid_search(f"{name}={raw[:40]}") from None
    assert start is not None
    if len(text) == 4:
        end = start.replace(year=start.year + 1)
    elif len(text) == 7:
        end = start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    elif len(text) == 10:
        end = start + dt.timedelta(days=1)
    else:
        end = start + dt.timedelta(seconds=1)
    return {"eq": [("ge", start), ("lt", end)], "ge": [("ge", start)], "gt": [("ge", end)],
            "le": [("lt", end)], "lt": [("lt", start)]}[prefix]


def _dates(name: str) -> list[tuple[str, dt.datetime]]:
    return [c for raw in params().getlist(name) for c in _date_bounds(raw, name)]


def _tokens(name: str) -> list[service.Token]:
    out = []
    for raw in params().getlist(name):
        for part in raw.split(","):
            if part.strip():
                system, code = resources.parse_token(part.strip())
                out.append((resources.system_to_oid(system), code))
    return out


def _codes(name: str) -> list[str]:
    return [code for _, code in _tokens(name)]


def _identifiers(name: str) -> list[str]:
    return [resources.unique_id_in(code) for code in _codes(name)]


def _strings(name: str) -> list[str]:
    return [value.strip()[:100] for value in params().getlist(name) if value.strip()]


def _page_size() -> int:
    return layer.page_size(PAGE_DEFAULT, PAGE_MAX)


def _holder() -> Patient:
    """The patient a search is about: ``patient.identifier`` (INS) or ``patient`` (Patient/{id}), once."""
    identifiers, references = params().getlist("patient.identifier"), params().getlist("patient")
    session = get_session()
    if len(identifiers) + len(references) != 1:
        raise invalid_search("patient.identifier=urn:oid:1.2.250.1.213.1.4.8|NIR (ou patient=Patient/{id}) "
                             "est obligatoire (une fois)")
    if references:
        raw = references[0].rsplit("/", 1)[-1] if references[0].startswith(("Patient/", base_url())) \
            else references[0]
        holder = session.get(Patient, int(raw)) if service.is_row_id(raw) else None
    else:
        system, value = resources.parse_token(identifiers[0])
        if system not in resources.INS_SYSTEMS or not value:
            raise invalid_search("patient.identifier : système INS attendu (urn:oid:1.2.250.1.213.1.4.8 ou .10)")
        holder = service.find_patient(session, resources.INS_SYSTEMS[system], re.sub(r"\s", "", value).upper())
    if holder is None:
        raise DomainError("fhir_unknown_patient", 404)
    return holder


def _search_scope(holder: Patient, interaction: str) -> Scope:
    purpose, reason = auth.declared_purpose()
    return authorize(get_session(), auth.current_actor(), holder.id, "document.search", purpose=purpose,
                     reason=reason, details={"interaction": interaction})


# --- ITI-67 Find Document References -----------------------------------------------------------------------

PATIENT_PARAMS = (
    SearchParam("patient.identifier", "token", INS_DOC),
    SearchParam("patient", "reference", "Patient/{id} (the id a result's subject.reference gives).",
                "http://hl7.org/fhir/SearchParameter/clinical-patient"),
)
DOCUMENT_PARAMS = (
    *PATIENT_PARAMS,
    SearchParam("status", "token", "current | superseded | entered-in-error (comma-separated; nothing is ever "
                                   "entered-in-error here).",
                "http://hl7.org/fhir/SearchParameter/DocumentReference-status"),
    SearchParam("type", "token", "XDS typeCode: http://loinc.org|11502-2, urn:oid:1.2.250.1.213.1.1.4.12|REMB "
                                 "or a bare code.", "http://hl7.org/fhir/SearchParameter/clinical-type"),
    SearchParam("category", "token", "XDS classCode (urn:oid:1.2.250.1.213.1.1.4.1|10…).",
                "http://hl7.org/fhir/SearchParameter/DocumentReference-category"),
    SearchParam("date", "date", "When the record received the document; prefixes eq, ge, gt, le, lt; "
                                "repeatable.", "http://hl7.org/fhir/SearchParameter/DocumentReference-date"),
    SearchParam("period", "date", "Date of care (context.period.start); prefixes eq, ge, gt, le, lt.",
                "http://hl7.org/fhir/SearchParameter/DocumentReference-period"),
    SearchParam("creation", "date", "attachment.creation (XDS creationTime); prefixes eq, ge, gt, le, lt.",
                f"{MHD}/SearchParameter/DocumentReference-Creation"),
    SearchParam("format", "token", "content.format (XDS formatCode), e.g. "
                                   "urn:oid:1.3.6.1.4.1.19376.1.2.3|urn:ihe:iti:xds-sd:pdf:2008.",
                "http://hl7.org/fhir/SearchParameter/DocumentReference-format"),
    SearchParam("facility", "token", "context.facilityType (XDS healthcareFacilityTypeCode).",
                "http://hl7.org/fhir/SearchParameter/DocumentReference-facility"),
    SearchParam("setting", "token", "context.practiceSetting (XDS practiceSettingCode).",
                "http://hl7.org/fhir/SearchParameter/DocumentReference-setting"),
    SearchParam("event", "token", "context.event (XDS eventCodeList).",
                "http://hl7.org/fhir/SearchParameter/DocumentReference-event"),
    SearchParam("security-label", "token", "N, R, V, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX, MASQUE_PS "
                                           "(as the document is now), or another label received.",
                "http://hl7.org/fhir/SearchParameter/DocumentReference-security-label"),
    SearchParam("identifier", "token", "masterIdentifier (uniqueId: urn:oid:…) or the entryUUID identifier "
                                       "(urn:uuid:…).", "http://hl7.org/fhir/SearchParameter/clinical-identifier"),
    SearchParam("author.given", "string", "A word of the author's name starting with this (any case)."),
    SearchParam("author.family", "string", "A word of the author's name starting with this (any case)."),
    SearchParam("_count", "number", "Page size, 1 to 100 (default 20); the 'next' link carries an opaque "
                                    "_cursor."),
)


def _document_filters() -> service.SearchFilters:
    statuses = _codes("status")
    for status in statuses:
        if status not in ("current", "superseded", "entered-in-error"):
            raise invalid_search(f"status={status[:20]}")
    return service.SearchFilters(
        types=_tokens("type"), classes=_tokens("category"), statuses=statuses, date=_dates("date"),
        period=_dates("period"), creation=_dates("creation"), formats=_tokens("format"),
        facilities=_tokens("facility"), settings=_tokens("setting"), events=_tokens("event"),
        security_labels=_tokens("security-label"), identifiers=_identifiers("identifier"),
        author_given=_strings("author.given"), author_family=_strings("author.family"))


@bp.interaction("search-type", "/DocumentReference", search=DOCUMENT_PARAMS,
                documentation="ITI-67 Find Document References (GET, or POST _search): newest first, paged; "
                              "only what the patient's choices let the reader see; every search is in the "
                              "patient's access history.")
def find_document_references() -> Response:
    """ITI-67: the patient's documents this professional may see, newest first, paged."""
    holder = _holder()
    filters = _document_filters()
    count, before = _page_size(), layer.cursor()
    session = get_session()
    scope = _search_scope(holder, "ITI-67")
    docs, total, page = service.search(session, scope, filters, count=count, before_id=before)
    extras = service.extras(session, [d.id for d in docs], page=page)
    session.commit()
    base = base_url()
    self_link, next_link = layer.page_links("DocumentReference", docs[-1].id if len(docs) == count and docs else None)
    body = resources.searchset([resources.document_reference(d, holder, base, extras[d.id]) for d in docs], base,
                               total=total, self_link=self_link, next_link=next_link)
    return fhir_response(body)


# --- ITI-66 Find Document Lists -----------------------------------------------------------------------------

LIST_PARAMS = (
    *PATIENT_PARAMS,
    SearchParam("code", "token", "submissionset (the SubmissionSets); folder finds nothing (no Folders are "
                                 "kept). Required.", "http://hl7.org/fhir/SearchParameter/clinical-code"),
    SearchParam("status", "token", "current (every SubmissionSet is current).",
                "http://hl7.org/fhir/SearchParameter/List-status"),
    SearchParam("date", "date", "When the set was submitted (List.date); prefixes eq, ge, gt, le, lt.",
                "http://hl7.org/fhir/SearchParameter/clinical-date"),
    SearchParam("designationType", "token", "The set's clinical code (contentTypeCode).",
                f"{MHD}/SearchParameter/List-DesignationType"),
    SearchParam("sourceId", "token", "The sender's OID (ihe-sourceId).", f"{MHD}/SearchParameter/List-SourceId"),
    SearchParam("identifier", "token", "The set's uniqueId (urn:oid:…) or entryUUID (urn:uuid:…).",
                "http://hl7.org/fhir/SearchParameter/clinical-identifier"),
    SearchParam("source.given", "string", "The author's given name starts with this (any case)."),
    SearchParam("source.family", "string", "The author's family name starts with this (any case)."),
    SearchParam("_count", "number", "Page size, 1 to 100 (default 20); the 'next' link carries an opaque "
                                    "_cursor."),
)


def _list_filters() -> tuple[bool, service.ListFilters]:
    """(whether SubmissionSets are asked for, the filters)."""
    codes = _tokens("code")
    if not codes:
        raise invalid_search("code=submissionset est obligatoire")
    for system, code in codes:
        if code not in ("submissionset", "folder") or system not in (None, resources.SUBMISSIONSET_SYSTEM):
            raise invalid_search(f"code={code[:30]} (submissionset ou folder)")
    statuses = _codes("status")
    for status in statuses:
        if status not in ("current", "superseded", "entered-in-error", "retired"):
            raise invalid_search(f"status={status[:20]}")
    return any(code == "submissionset" for _, code in codes), service.ListFilters(
        statuses=statuses, date=_dates("date"), designations=_tokens("designationType"),
        identifiers=_identifiers("identifier"), source_ids=_identifiers("sourceId"),
        source_given=_strings("source.given"), source_family=_strings("source.family"))


@bp.interaction("search-type", "/List", search=LIST_PARAMS,
                documentation="ITI-66 Find Document Lists (GET, or POST _search), under the same rule as ITI-67: "
                              "a reader the patient's choices refuse gets the same answer, and every search is in "
                              "the patient's access history.")
def find_document_lists() -> Response:
    """ITI-66: the patient's SubmissionSets, with the entries this professional may see, newest first, paged."""
    holder = _holder()
    wanted, filters = _list_filters()
    count, before = _page_size(), layer.cursor()
    session = get_session()
    scope = _search_scope(holder, "ITI-66")
    rows, total, entries = (service.search_lists(session, scope, filters, count=count, before_id=before)
                            if wanted else ([], 0, {}))
    session.commit()
    base = base_url()
    self_link, next_link = layer.page_links("List", rows[-1].id if len(rows) == count and rows else None)
    body = resources.searchset([resources.submission_set(r, holder, entries[r.id]) for r in rows], base,
                               total=total, self_link=self_link, next_link=next_link)
    return fhir_response(body)


# --- reads by id (DocumentReference, List, ITI-68 Binary, Patient, Practitioner) ------------------------------

def _document(raw_id: str) -> Document:
    doc = get_session().get(Document, int(raw_id)) if service.is_row_id(raw_id) else None
    if doc is None:
        raise DomainError("fhir_not_found", 404)
    return doc


def _read_purpose() -> tuple[Purpose, str | None]:
    """The declared purpose of a read by id; an emergency without its reason is refused before the resource is
    even looked up (the answer must not depend on whether it exists)."""
    purpose, reason = auth.declared_purpose()
    if purpose in EMERGENCY_PURPOSES and not reason:
        raise DomainError("access_reason_required", 403)
    return purpose, reason


def _readable_document(raw_id: str, interaction: str, purpose: Purpose, reason: str | None) -> Document:
    """The document under the record's decision: a refusal, or a document outside the scope, answers the same
    404 as a missing one (a professional learns nothing about documents they may not see); the patient's
    access history keeps the refusal."""
    return authorize_document(get_session(), auth.current_actor(), int(raw_id) if service.is_row_id(raw_id) else None,
                              "document.read", purpose=purpose, reason=reason, details={"interaction": interaction},
                              missing=DomainError("fhir_not_found", 404), conceal_refusal=True)


def _reference(doc: Document) -> dict[str, Any]:
    session = get_session()
    holder = session.get(Patient, doc.patient_id)
    return resources.document_reference(doc, holder, base_url(), service.extras(session, [doc.id])[doc.id])


@bp.interaction("read", "/DocumentReference/<doc_id>")
def read_document_reference(doc_id: str) -> Response:
    """The metadata of one document, under the same rule as its content."""
    purpose, reason = _read_purpose()
    doc = _readable_document(doc_id, "DocumentReference.read", purpose, reason)
    body = _reference(doc)
    get_session().commit()
    return fhir_response(body)


@bp.interaction("read", "/List/<list_id>")
def read_document_list(list_id: str) -> Response:
    """One SubmissionSet with the entries the reader may see; a refusal, or a set with none of them, is the
    same 404 as a missing one (traced)."""
    purpose, reason = _read_purpose()
    session = get_session()
    row = session.get(SubmissionSet, int(list_id)) if service.is_row_id(list_id) else None
    if row is None:
        raise DomainError("fhir_not_found", 404)
    actor = auth.current_actor()
    details = {"interaction": "List.read", "submission_set_id": row.id}
    try:
        scope = authorize(session, actor, row.patient_id, "document.search", purpose=purpose, reason=reason,
                          details=details)
    except AccessRefused:
        raise DomainError("fhir_not_found", 404, persist=True) from None
    entries = service.list_entries(session, scope, [row.id])[row.id]
    if not entries:
        audit.record(session, actor_type="professional", actor_id=auth.current_professional().rpps,
                     action="document.search.refused", patient_id=row.patient_id, purpose=purpose.value,
                     details={"decision": "out_of_scope", **details})
        raise DomainError("fhir_not_found", 404, persist=True)
    holder = session.get(Patient, row.patient_id)
    body = resources.submission_set(row, holder, entries)
    session.commit()
    return fhir_response(body)


def _wants_fhir_binary(doc: Document) -> bool:
    if layer.wants_json():
        return True
    accept = request.accept_mimetypes
    return accept.quality(resources.FHIR_MIME) > 0 and accept.best_match(
        [doc.mime_type, resources.FHIR_MIME]) == resources.FHIR_MIME and doc.mime_type != resources.FHIR_MIME


@bp.interaction("read", "/Binary/<doc_id>", raw=True)
def retrieve_document(doc_id: str) -> Response:
    """ITI-68: the original bytes, byte for byte, with their type (or a FHIR Binary on request)."""
    purpose, reason = _read_purpose()
    doc = _readable_document(doc_id, "ITI-68", purpose, reason)
    session = get_session()
    data = documents.read_content(session, vault(session), doc)
    session.commit()
    if _wants_fhir_binary(doc):
        return fhir_response(resources.binary(doc, data))
    if request.headers.get("Accept") and request.accept_mimetypes.quality(doc.mime_type) <= 0:
        raise DomainError("fhir_not_acceptable", 406)
    response = Response(data, status=200, content_type=doc.mime_type)
    response.headers["Content-Disposition"] = web.disposition()
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@bp.interaction("read", "/Patient/<patient_id>")
def read_patient(patient_id: str) -> Response:
    """The record holder a result references, to a professional the patient's choices let read the record;
    anyone else gets the same 404 as for a patient that does not exist (the refusal is traced)."""
    purpose, reason = _read_purpose()
    session = get_session()
    holder = session.get(Patient, int(patient_id)) if service.is_row_id(patient_id) else None
    if holder is None:
        raise DomainError("fhir_not_found", 404)
    try:
        authorize(session, auth.current_actor(), holder.id, "patient.read", purpose=purpose, reason=reason,
                  details={"interaction": "Patient.read"})
    except AccessRefused:
        raise DomainError("fhir_not_found", 404, persist=True) from None
    body = resources.patient(holder, contact=False)
    session.commit()
    return fhir_response(body)


@bp.interaction("read", "/Practitioner/<professional_id>")
def read_practitioner(professional_id: str) -> Response:
    """A professional a result references (Schedule.actor, Appointment.participant, an author)."""
    pro = get_session().get(Professional, int(professional_id)) if service.is_row_id(professional_id) else None
    if pro is None:
        raise DomainError("fhir_not_found", 404)
    return fhir_response(resources.practitioner(pro))


# --- $release ----------------------------------------------------------------------------------------------

@bp.operation("/DocumentReference/<doc_id>/$release", definition=capability.RELEASE_OPERATION,
              documentation="POST /fhir/R4/DocumentReference/{id}/$release (no body): the author of an "
                            "INVISIBLE_PATIENT document makes it visible to the patient after the announcement "
                            "consultation. Returns the updated DocumentReference.")
def release_document(doc_id: str) -> Response:
    """The author of an INVISIBLE_PATIENT document makes it visible to the patient."""
    doc = _document(doc_id)
    session = get_session()
    try:
        documents.release_document(session, auth.current_actor(), doc.id, vault=vault(session))
    except DomainError as refused:
        if refused.code not in ("document_release_not_author", "document_not_found"):
            raise
        raise DomainError("fhir_not_found", 404, persist=True) from None  # others learn nothing of the document
    body = _reference(doc)
    session.commit()
    return fhir_response(body)
