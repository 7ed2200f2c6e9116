"""The professional API at ``/fhir/R4`` (IHE MHD on FHIR R4): CapabilityStatement, ITI-65 provide,
ITI-67 find, ITI-68 retrieve, and ``$release``. A plain Flask blueprint: FHIR clients read the
CapabilityStatement, not OpenAPI, and every error of these routes is an ``OperationOutcome``.

Each route parses, calls ``records.access.authorize`` (reads) or the service (deposit), commits, shapes.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from backend import web
from backend.accounts.models import Patient
from backend.audit import service as audit
from backend.db import get_session, utcnow
from backend.errors import DomainError
from backend.fhir import auth, capability, resources, service
from backend.i18n import message
from backend.records import documents, vault
from backend.records.access import AccessRefused, authorize
from backend.records.models import Document
from backend.records.policy import EMERGENCY_PURPOSES, Purpose, decide

log = logging.getLogger(__name__)

bp = Blueprint("fhir_mhd", __name__, url_prefix="/fhir/R4")

FHIR_CONTENT_TYPE = f"{resources.FHIR_MIME}; charset=utf-8"
ACCEPTED_BODY_TYPES = {"application/fhir+json", "application/json", "application/json+fhir"}
PAGE_DEFAULT = 20
PAGE_MAX = 100


# --- responses and errors ------------------------------------------------------------------------------------

def fhir_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status,
                        content_type=FHIR_CONTENT_TYPE)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def outcome(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return fhir_response(resources.operation_outcome(status, code, detail), status, headers)


@bp.errorhandler(DomainError)
def _domain_error(error: DomainError) -> Response:
    session = get_session()
    if error.persist:
        session.commit()  # the refusal's trace in the access history
    else:
        session.rollback()
    status = error.status
    if isinstance(error, AccessRefused) and error.decision.reason == "no_record":
        status = 404
    return outcome(status, error.code, error.detail(), error.headers)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    get_session().rollback()
    status = error.code or 500
    if isinstance(error, RequestEntityTooLarge):
        return outcome(413, "fhir_too_large", message("fhir_too_large", limit=_bundle_limit()))
    codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}
    code = codes.get(status, "bad_request")
    return outcome(status, code, message(code))


@bp.errorhandler(RecursionError)
def _too_deep(error: RecursionError) -> Response:
    # A body nested deeper than the JSON parser recurses (arrays 100,000 deep): invalid input, not a crash.
    get_session().rollback()
    return outcome(400, "invalid_json", message("invalid_json"))


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    # Never log bodies or arguments: they hold health data.
    log.error("unhandled %s on %s %s", type(error).__name__, request.method, request.path,
              exc_info=current_app.config.get("LOG_TRACEBACKS", True))
    get_session().rollback()
    return outcome(500, "internal_error", message("internal_error"))


def base_url() -> str:
    configured = current_app.config.get("FHIR_BASE_URL")
    if configured:
        return str(configured).rstrip("/") + "/"
    return request.url_root.rstrip("/") + bp.url_prefix + "/"  # type: ignore[operator]


def _bundle_limit() -> int:
    return int(current_app.config["FHIR_MAX_BUNDLE_BYTES"])


def _json_body() -> Any:
    mimetype = request.mimetype
    if mimetype not in ACCEPTED_BODY_TYPES:
        raise DomainError("fhir_unsupported_media_type", 415)
    request.max_content_length = _bundle_limit()
    raw = request.get_data(cache=False)  # raises RequestEntityTooLarge past the limit
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise DomainError("fhir_invalid_json", 400) from None


# --- metadata --------------------------------------------------------------------------------------------

@bp.get("/metadata")
@web.public
def metadata() -> Response:
    """CapabilityStatement: what this server does and how to authenticate (public)."""
    return fhir_response(capability.capability_statement(base_url(), utcnow().date().isoformat()))


# --- ITI-65 Provide Document Bundle --------------------------------------------------------------------------

@bp.post("")
@bp.post("/")
@auth.professional_required
def provide_document_bundle() -> Response:
    """ITI-65: store every document of a transaction bundle, or none. No consent needed to deposit."""
    submission = resources.parse_provide_bundle(
        _json_body(), max_document_bytes=int(current_app.config["FHIR_MAX_DOCUMENT_BYTES"]))
    session = get_session()
    stored = service.provide(session, vault(session), auth.current_professional(), submission)
    session.commit()
    base = base_url()
    # One answer per request entry, in order. The List is not kept as a resource of its own (its documents
    # are, each traced by store_document); each Binary is its document's content at Binary/{id}.
    entries = []
    for kind, index in submission.entries:
        answer: dict[str, Any] = {"status": "201 Created"}
        if index is not None:
            doc = stored[index]
            answer["location"] = f"{base}{kind}/{doc.id}"
            answer["lastModified"] = resources.instant(doc.submitted_at)
        entries.append({"response": answer})
    return fhir_response({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})


# --- ITI-67 Find Document References -----------------------------------------------------------------------

DATE_PREFIXES = ("eq", "ge", "gt", "le", "lt")


def _date_bounds(raw: str, name: str) -> list[tuple[str, dt.datetime]]:
    """A FHIR date search value → conditions on the instant, honouring the value's precision."""
    match = re.fullmatch(r"(eq|ge|gt|le|lt)?(\d{4}(-\d{2}(-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:\d{2})?)?)?)?)", raw.strip())
    if not match:
        raise DomainError("fhir_invalid_search", 400, reason=f"{name}={raw[:40]}")
    prefix, text = match.group(1) or "eq", match.group(2)
    try:
        start = resources.parse_fhir_datetime(text)
    except DomainError:
        raise DomainError("fhir_invalid_search", 400, reason=f"{name}={raw[:40]}") from None
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


def _tokens(name: str) -> list[tuple[str | None, str]]:
    out = []
    for raw in request.args.getlist(name):
        for part in raw.split(","):
            if part.strip():
                system, code = resources.parse_token(part.strip())
                out.append((resources.system_to_oid(system), code))
    return out


def _search_filters() -> service.SearchFilters:
    statuses = [code for _, code in _tokens("status")]
    for status in statuses:
        if status not in ("current", "superseded", "entered-in-error"):
            raise DomainError("fhir_invalid_search", 400, reason=f"status={status[:20]}")
    dates = [c for raw in request.args.getlist("date") for c in _date_bounds(raw, "date")]
    periods = [c for raw in request.args.getlist("period") for c in _date_bounds(raw, "period")]
    return service.SearchFilters(types=_tokens("type"), classes=[code for _, code in _tokens("category")],
                                 statuses=statuses, date=dates, period=periods)


def _page_size() -> int:
    raw = request.args.get("_count")
    if raw is None:
        return PAGE_DEFAULT
    if not raw.isdigit() or not 1 <= int(raw) <= PAGE_MAX:
        raise DomainError("fhir_invalid_search", 400, reason=f"_count entre 1 et {PAGE_MAX}")
    return int(raw)


def _cursor() -> int | None:
    try:
        value = web.decode_cursor(request.args.get("_cursor"))
    except DomainError:
        value = -1
    if value is not None and not service.is_row_id(str(value)):
        raise DomainError("fhir_invalid_search", 400, reason="_cursor")
    return value


def _patient_param() -> tuple[str, str]:
    values = request.args.getlist("patient.identifier")
    if len(values) != 1:
        raise DomainError("fhir_invalid_search", 400,
                          reason="patient.identifier=urn:oid:1.2.250.1.213.1.4.8|NIR est obligatoire (une fois)")
    system, value = resources.parse_token(values[0])
    if system not in resources.INS_SYSTEMS or not value:
        raise DomainError("fhir_invalid_search", 400,
                          reason="patient.identifier : système INS attendu (urn:oid:1.2.250.1.213.1.4.8 ou .10)")
    return resources.INS_SYSTEMS[system], re.sub(r"\s", "", value).upper()


@bp.get("/DocumentReference")
@auth.professional_required
def find_document_references() -> Response:
    """ITI-67: the patient's documents this professional may see, newest first, paged."""
    ins_oid, nir = _patient_param()
    filters = _search_filters()
    count, before = _page_size(), _cursor()
    purpose, reason = auth.declared_purpose()
    session = get_session()
    holder = service.find_patient(session, ins_oid, nir)
    if holder is None:
        raise DomainError("fhir_unknown_patient", 404)
    scope = authorize(session, auth.current_actor(), holder.id, "document.search", purpose=purpose, reason=reason,
                      details={"interaction": "ITI-67"})
    docs, total = service.search(session, scope, filters, count=count, before_id=before)
    session.commit()
    base = base_url()
    params = [(k, v) for k, v in request.args.items(multi=True) if k != "_cursor"]
    self_link = f"{base}DocumentReference?{urlencode(params)}"
    next_link = None
    if len(docs) == count and docs:
        next_link = f"{self_link}&{urlencode({'_cursor': web.encode_cursor(docs[-1].id)})}"
    body = resources.searchset([resources.document_reference(d, holder, base) for d in docs], base,
                               total=total, self_link=self_link, next_link=next_link)
    return fhir_response(body)


# --- reads of one document (DocumentReference, ITI-68 Binary) -----------------------------------------------

def _document(raw_id: str) -> Document:
    doc = get_session().get(Document, int(raw_id)) if service.is_row_id(raw_id) else None
    if doc is None:
        raise DomainError("fhir_not_found", 404)
    return doc


def _read_purpose() -> tuple[Purpose, str | None]:
    """The declared purpose of a read by document id; an emergency without its reason is refused before
    the document is even looked up (the answer must not depend on whether it exists)."""
    purpose, reason = auth.declared_purpose()
    if purpose in EMERGENCY_PURPOSES and not reason:
        raise DomainError("access_reason_required", 403)
    return purpose, reason


def _authorize_document(doc: Document, interaction: str, purpose: Purpose, reason: str | None) -> None:
    """Decide, then trace: a granted read of a document outside the scope is a refusal, and every refusal
    answers the same 404 as a missing document (a professional learns nothing about documents they may not
    see); the patient's access history keeps the refusal."""
    session = get_session()
    actor = auth.current_actor()
    details = {"interaction": interaction, "document_id": doc.id}
    decision = decide(session, actor, doc.patient_id, purpose=purpose, reason=reason)
    if decision.allowed and decision.scope is not None and not decision.scope.permits(doc):
        audit.record(session, actor_type="professional", actor_id=auth.current_professional().rpps,
                     action="document.read.refused", patient_id=doc.patient_id, purpose=decision.purpose.value,
                     details={"decision": "out_of_scope", **details})
        raise DomainError("fhir_not_found", 404, persist=True)
    try:
        authorize(session, actor, doc.patient_id, "document.read", purpose=purpose, reason=reason, details=details)
    except AccessRefused:
        raise DomainError("fhir_not_found", 404, persist=True) from None


@bp.get("/DocumentReference/<doc_id>")
@auth.professional_required
def read_document_reference(doc_id: str) -> Response:
    """The metadata of one document, under the same rule as its content."""
    purpose, reason = _read_purpose()
    doc = _document(doc_id)
    _authorize_document(doc, "DocumentReference.read", purpose, reason)
    holder = doc_holder(doc)
    get_session().commit()
    return fhir_response(resources.document_reference(doc, holder, base_url()))


def doc_holder(doc: Document) -> Patient | None:
    return get_session().get(Patient, doc.patient_id)


def _wants_fhir_binary(doc: Document) -> bool:
    if request.args.get("_format") in ("json", resources.FHIR_MIME):
        return True
    accept = request.accept_mimetypes
    return accept.quality(resources.FHIR_MIME) > 0 and accept.best_match(
        [doc.mime_type, resources.FHIR_MIME]) == resources.FHIR_MIME and doc.mime_type != resources.FHIR_MIME


@bp.get("/Binary/<doc_id>")
@auth.professional_required
def retrieve_document(doc_id: str) -> Response:
    """ITI-68: the original bytes, byte for byte, with their type (or a FHIR Binary on request)."""
    purpose, reason = _read_purpose()
    doc = _document(doc_id)
    _authorize_document(doc, "ITI-68", purpose, reason)
    session = get_session()
    data = documents.read_content(session, vault(session), doc)
    session.commit()
    if _wants_fhir_binary(doc):
        return fhir_response(resources.binary(doc, data))
    response = Response(data, status=200, content_type=doc.mime_type)
    response.headers["Content-Disposition"] = "attachment"
    return response


# --- $release ----------------------------------------------------------------------------------------------

@bp.post("/DocumentReference/<doc_id>/$release")
@auth.professional_required
def release_document(doc_id: str) -> Response:
    """The author of an INVISIBLE_PATIENT document makes it visible to the patient."""
    doc = _document(doc_id)
    pro = auth.current_professional()
    if doc.author_professional_id != pro.id and doc.author_rpps != pro.rpps:
        raise DomainError("fhir_not_found", 404)  # other professionals learn nothing about the document
    session = get_session()
    documents.release_document(session, auth.current_actor(), doc.id)
    holder = doc_holder(doc)
    session.commit()
    return fhir_response(resources.document_reference(doc, holder, base_url()))
