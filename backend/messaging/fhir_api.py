"""The professional side of the inbox, FHIR R4 ``Communication`` under ``/fhir/R4`` (see messaging.fhir):

- ``POST /fhir/R4/Communication`` — write to a patient (a new conversation, or in one with inResponseTo)
- ``GET /fhir/R4/Communication?patient.identifier=…&part-of=…&sender-kind=patient&sent=ge…`` — the
  messages of the professional's own conversations, newest first; every search is audited
- ``GET /fhir/R4/Communication/{id}`` — one message, attachments inline; audited
- ``GET /fhir/R4/Communication/{id}/attachment/{attachment_id}`` — an attachment's bytes; audited
- ``POST /fhir/R4/Communication/{id}/$end`` · ``$forbid-replies`` · ``$allow-replies``

Professionals authenticate with their bearer token (``backend.fhir.auth``); errors are OperationOutcome.
A message of a conversation the professional is not part of is "not found", like one that does not exist.
"""
from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, request
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from backend import web
from backend.accounts.models import Patient
from backend.db import get_session
from backend.errors import DomainError, NotFound
from backend.fhir import auth, resources
from backend.i18n import message
from backend.messaging import fhir
from backend.messaging import service as inbox
from backend.messaging.models import Message, Thread
from backend.professionals.models import Professional
from backend.records import vault
from backend.records.crypto import Vault

log = logging.getLogger(__name__)

bp = Blueprint("inbox_fhir", __name__, url_prefix="/fhir/R4")

FHIR_CONTENT_TYPE = f"{resources.FHIR_MIME}; charset=utf-8"
ACCEPTED_BODY_TYPES = {"application/fhir+json", "application/json", "application/json+fhir"}
PAGE_DEFAULT = 20


def settings() -> inbox.InboxSettings:
    return current_app.extensions["carnet.inbox_settings"]


# --- responses and errors ------------------------------------------------------------------------------------

def fhir_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status,
                        content_type=FHIR_CONTENT_TYPE)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def outcome(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return fhir_response(resources.operation_outcome(status, code, detail), status, headers)


def information(code: str) -> Response:
    text = message(code)
    return fhir_response({"resourceType": "OperationOutcome", "issue": [{
        "severity": "information", "code": "informational", "diagnostics": text,
        "details": {"coding": [{"system": f"{resources.BASE}/CodeSystem/carnet-error", "code": code}], "text": text}}]})


@bp.errorhandler(DomainError)
def _domain_error(error: DomainError) -> Response:
    session = get_session()
    if error.persist:
        session.commit()
    else:
        session.rollback()
    return outcome(error.status, error.code, error.detail(), error.headers)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    get_session().rollback()
    if isinstance(error, RequestEntityTooLarge):
        limit_mb = settings().max_request_bytes // (1024 * 1024)
        return outcome(413, "inbox_too_large", message("inbox_too_large", max_mb=limit_mb))
    status = error.code or 500
    codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}
    code = codes.get(status, "bad_request")
    return outcome(status, code, message(code))


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
    return request.url_root.rstrip("/") + "/fhir/R4/"


def _json_body() -> Any:
    if request.mimetype not in ACCEPTED_BODY_TYPES:
        raise DomainError("fhir_unsupported_media_type", 415)
    request.max_content_length = settings().max_request_bytes
    raw = request.get_data(cache=False)  # RequestEntityTooLarge past the limit
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise DomainError("fhir_invalid_json", 400) from None


def _invalid_search(reason: str) -> DomainError:
    return DomainError("inbox_invalid_search", 400, reason=reason)


# --- shaping -----------------------------------------------------------------------------------------------

def _resources(session: Session, box: Vault, rows: list[tuple[Message, Thread, Patient]],
               details: tuple[dict[int, list[Any]], dict[int, Professional], dict[int, list[int]]], *,
               with_data: bool = False) -> list[dict[str, Any]]:
    attachments, pros, recipients = details
    subjects: dict[int, str] = {}
    out = []
    for msg, thread, patient in rows:
        if thread.id not in subjects:
            subjects[thread.id] = inbox.subject_of(box, thread)
        atts = attachments.get(msg.id, [])
        data = {a.id: inbox.attachment_content(session, box, a) for a in atts} if with_data else None
        out.append(fhir.communication(msg, thread, patient, subject=subjects[thread.id], body=inbox.body_of(box, msg),
                                      professionals=pros, recipients=recipients.get(msg.id, []), attachments=atts,
                                      names={a.id: inbox.attachment_name(box, a) for a in atts},
                                      base_url=base_url(), data=data))
    return out


def _copies(session: Session, rpps_list: tuple[str, ...]) -> list[Professional]:
    if not rpps_list:
        return []
    found = {p.rpps: p for p in session.scalars(select(Professional).where(Professional.rpps.in_(rpps_list)))}
    for rpps in rpps_list:
        if rpps not in found:
            raise DomainError("inbox_unknown_professional", 422, rpps=rpps)
    return [found[r] for r in rpps_list]


# --- write ---------------------------------------------------------------------------------------------------

@bp.post("/Communication")
@auth.professional_required
def send() -> Response:
    """Write to a patient: a new conversation, or a message in one (inResponseTo/partOf)."""
    session = get_session()
    pro = auth.current_professional()
    data = fhir.parse_communication(_json_body())
    if data.sender_rpps is not None and data.sender_rpps != pro.rpps:
        raise DomainError("inbox_sender_not_you", 422)
    patient = inbox.find_recipient(session, data.ins_oid, data.nir)
    box = vault(session)
    outgoing = inbox.Outgoing(body=data.text, files=data.files)
    if data.answers is None:
        created = inbox.start_thread(session, box, settings(), pro, patient, data.subject or "", outgoing,
                                     copies=_copies(session, data.copies), establishment=data.establishment,
                                     replies_allowed=data.replies_allowed is not False)
    else:
        _, thread = inbox.professional_message(session, pro, data.answers)
        if thread.patient_id != patient.id:
            raise fhir.refused("subject : ce patient n'est pas celui de la conversation")
        if data.copies:
            raise fhir.refused("recipient : les professionnels en copie se choisissent en commençant la conversation")
        created = inbox.post_in_thread(session, box, settings(), pro, data.answers, outgoing,
                                       replies_allowed=data.replies_allowed)
    thread = session.get(Thread, created.thread_id)
    assert thread is not None
    rows = [(created, thread, patient)]
    body = _resources(session, box, rows, inbox.details_of(session, [created], [thread]))[0]
    session.commit()
    return fhir_response(body, 201, {"Location": f"{base_url()}Communication/{created.id}"})


# --- search and read -----------------------------------------------------------------------------------------

def _patient_filter(session: Session) -> tuple[bool, int | None]:
    """``patient.identifier`` → (searchable, patient id); an unknown INS finds nothing, and says no more."""
    raw = request.args.get("patient.identifier")
    if raw is None:
        return True, None
    system, _, value = raw.partition("|")
    if not value or system not in resources.INS_SYSTEMS:
        raise _invalid_search("patient.identifier : urn:oid:1.2.250.1.213.1.4.8|<NIR> attendu")
    found = session.scalar(select(Patient.id).where(Patient.nir == re.sub(r"\s", "", value).upper(),
                                                    Patient.ins_oid == resources.INS_SYSTEMS[system]))
    return found is not None, found


def _sent_bounds(search: dict[str, Any]) -> None:
    for raw in request.args.getlist("sent"):
        prefix, value = (raw[:2], raw[2:]) if raw[:2] in {"ge", "gt", "le", "lt", "eq"} else ("eq", raw)
        try:
            when = resources.parse_fhir_datetime(value)
        except DomainError:
            raise _invalid_search(f"sent : date illisible ({value[:40]})") from None
        if when is None:
            raise _invalid_search("sent : date attendue")
        if prefix in {"ge", "gt"}:
            search["sent_from"] = when
        elif prefix in {"le", "lt"}:
            search["sent_until"] = when
        else:
            raise _invalid_search("sent : préfixe ge, gt, le ou lt attendu")


def _count() -> int:
    raw = request.args.get("_count", str(PAGE_DEFAULT))
    if not raw.isdigit() or not 1 <= int(raw) <= web.PAGE_MAX:
        raise _invalid_search(f"_count : entier de 1 à {web.PAGE_MAX} attendu")
    return int(raw)


@bp.get("/Communication")
@auth.professional_required
def search() -> Response:
    """The messages of the professional's conversations, newest first (audited per patient)."""
    session = get_session()
    pro = auth.current_professional()
    limit = _count()
    before = web.decode_cursor(request.args.get("_cursor"))
    criteria: dict[str, Any] = {}
    searchable, patient_id = _patient_filter(session)
    if patient_id is not None:
        criteria["patient_id"] = patient_id
    part_of = request.args.get("part-of")
    empty = not searchable
    if part_of is not None:
        match = fhir.REFERENCE.fullmatch(part_of)
        if match is None:
            raise _invalid_search("part-of : Communication/<id> attendu")
        try:
            criteria["thread_id"] = inbox.professional_message(session, pro, int(match.group(1)))[1].id
        except NotFound:
            empty = True
    kind = request.args.get("sender-kind")
    if kind is not None:
        if kind not in ("patient", "professional"):
            raise _invalid_search("sender-kind : patient ou professional attendu")
        criteria["author_kind"] = kind
    _sent_bounds(criteria)
    if empty:
        return fhir_response(resources.searchset([], base_url(), total=0))
    found = inbox.professional_messages(session, pro, inbox.ProSearch(**criteria), limit=limit, before_id=before)
    box = vault(session)
    entries = _resources(session, box, found.rows, (found.attachments, found.professionals, found.recipients))
    inbox.record_professional_read(session, pro, [m for m, _, _ in found.rows])
    next_link = None
    if found.next_before is not None:
        args = [(k, v) for k, v in request.args.items(multi=True) if k != "_cursor"]
        args.append(("_cursor", web.encode_cursor(found.next_before)))
        next_link = f"{base_url()}Communication?{urlencode(args)}"
    session.commit()
    return fhir_response(resources.searchset(entries, base_url(), next_link=next_link))


@bp.get("/Communication/<int:message_id>")
@auth.professional_required
def read(message_id: int) -> Response:
    """One message with its attachments inline (audited)."""
    session = get_session()
    pro = auth.current_professional()
    msg, thread = inbox.professional_message(session, pro, message_id)
    patient = session.get(Patient, msg.patient_id)
    assert patient is not None
    body = _resources(session, vault(session), [(msg, thread, patient)],
                      inbox.details_of(session, [msg], [thread]), with_data=True)[0]
    inbox.record_professional_read(session, pro, [msg])
    session.commit()
    return fhir_response(body)


@bp.get("/Communication/<int:message_id>/attachment/<int:attachment_id>")
@auth.professional_required
def attachment(message_id: int, attachment_id: int) -> Response:
    """An attachment's bytes, as they were sent (audited)."""
    session = get_session()
    pro = auth.current_professional()
    att, _ = inbox.professional_attachment(session, pro, message_id, attachment_id)
    content = inbox.attachment_content(session, vault(session), att)
    inbox.record_attachment_read(session, pro, att)
    session.commit()
    response = Response(content, status=200, content_type=att.mime_type)
    response.headers["Content-Disposition"] = "attachment"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# --- operations on a conversation --------------------------------------------------------------------------

@bp.post("/Communication/<int:message_id>/$end")
@auth.professional_required
def end(message_id: int) -> Response:
    """End the conversation of this message (its owner only): nobody writes in it afterwards."""
    session = get_session()
    inbox.end_conversation(session, auth.current_professional(), message_id)
    session.commit()
    return information("inbox_conversation_ended_done")


@bp.post("/Communication/<int:message_id>/$forbid-replies")
@auth.professional_required
def forbid_replies(message_id: int) -> Response:
    """The patient may no longer reply in this conversation (its owner only)."""
    session = get_session()
    inbox.set_replies(session, auth.current_professional(), message_id, False)
    session.commit()
    return information("inbox_replies_forbidden_done")


@bp.post("/Communication/<int:message_id>/$allow-replies")
@auth.professional_required
def allow_replies(message_id: int) -> Response:
    """The patient may reply again (its owner only)."""
    session = get_session()
    inbox.set_replies(session, auth.current_professional(), message_id, True)
    session.commit()
    return information("inbox_replies_allowed_done")
