"""The professional side of the inbox, FHIR R4 ``Communication`` under ``/fhir/R4`` (see messaging.fhir):

- ``POST /fhir/R4/Communication`` — write to a patient (a new conversation, or in one with inResponseTo)
- ``GET /fhir/R4/Communication?patient.identifier=…&part-of=…&sender-kind=patient&sent=ge…`` — the
  messages of the professional's own conversations, newest first; every search is audited
- ``GET /fhir/R4/Communication/{id}`` — one message, attachments inline; audited
- ``GET /fhir/R4/Communication/{id}/attachment/{attachment_id}`` — an attachment's bytes; audited
- ``POST /fhir/R4/Communication/{id}/$end`` · ``$forbid-replies`` · ``$allow-replies``

Professionals authenticate with their bearer token; errors, negotiation and the CapabilityStatement entry
come from the FHIR layer (``backend.fhir.layer``).
A message of a conversation the professional is not part of is "not found", like one that does not exist.
"""
from __future__ import annotations

import re
from typing import Any

from flask import Response, current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend import web
from backend.accounts.models import Patient
from backend.db import get_session
from backend.errors import DomainError, NotFound
import backend.fhir.auth as auth
import backend.fhir.layer as layer
import backend.fhir.resources as resources
from backend.messaging import fhir
from backend.messaging import professional
from backend.messaging import service as inbox
from backend.messaging.models import Message, Thread
from backend.professionals.models import Professional
from backend.records import vault
from backend.records.crypto import Vault

bp = layer.FhirBlueprint("inbox_fhir", __name__)
bp.resource("Communication", documentation=fhir.DOCUMENTATION)
fhir_response = layer.fhir_response
base_url = layer.base_url
information = layer.information
PAGE_DEFAULT = 20
OPERATIONS = f"{layer.CARNET}/OperationDefinition/Communication-"


def settings() -> inbox.InboxSettings:
    return current_app.extensions["carnet.inbox_settings"]


def _json_body() -> Any:
    limit = settings().max_request_bytes
    return layer.json_body(limit, too_large=("inbox_too_large", {"max_mb": limit // (1024 * 1024)}))


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

@bp.interaction("create", "/Communication")
def send() -> Response:
    """Write to a patient: a new conversation, or a message in one (inResponseTo/partOf)."""
    session = get_session()
    pro = auth.current_professional()
    data = fhir.parse_communication(_json_body())
    if data.sender_rpps is not None and data.sender_rpps != pro.rpps:
        raise DomainError("inbox_sender_not_you", 422)
    patient = professional.find_recipient(session, data.ins_oid, data.nir)
    box = vault(session)
    outgoing = inbox.Outgoing(body=data.text, files=data.files)
    if data.answers is None:
        created = professional.start_thread(session, box, settings(), pro, patient, data.subject or "", outgoing,
                                     copies=_copies(session, data.copies), establishment=data.establishment,
                                     replies_allowed=data.replies_allowed is not False)
    else:
        _, thread = professional.professional_message(session, pro, data.answers)
        if thread.patient_id != patient.id:
            raise fhir.refused("subject : ce patient n'est pas celui de la conversation")
        if data.copies:
            raise fhir.refused("recipient : les professionnels en copie se choisissent en commençant la conversation")
        created = professional.post_in_thread(session, box, settings(), pro, data.answers, outgoing,
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
    raw = layer.params().get("patient.identifier")
    if raw is None:
        return True, None
    system, _, value = raw.partition("|")
    if not value or system not in resources.INS_SYSTEMS:
        raise _invalid_search("patient.identifier : urn:oid:1.2.250.1.213.1.4.8|<NIR> attendu")
    found = session.scalar(select(Patient.id).where(Patient.nir == re.sub(r"\s", "", value).upper(),
                                                    Patient.ins_oid == resources.INS_SYSTEMS[system]))
    return found is not None, found


def _sent_bounds(search: dict[str, Any]) -> None:
    for raw in layer.params().getlist("sent"):
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
    raw = layer.params().get("_count", str(PAGE_DEFAULT))
    if not raw.isdigit() or not 1 <= int(raw) <= web.PAGE_MAX:
        raise _invalid_search(f"_count : entier de 1 à {web.PAGE_MAX} attendu")
    return int(raw)


SEARCH = (
    layer.SearchParam("patient.identifier", "token", "urn:oid:1.2.250.1.213.1.4.8|<NIR> (INS): this patient's "
                                                     "messages only."),
    layer.SearchParam("part-of", "reference", "Communication/{id}: the conversation of that message.",
                      "http://hl7.org/fhir/SearchParameter/Communication-part-of"),
    layer.SearchParam("sender-kind", "token", "patient (the patient's replies) or professional."),
    layer.SearchParam("sent", "date", "Prefixes ge, gt, le, lt; repeatable.",
                      "http://hl7.org/fhir/SearchParameter/Communication-sent"),
    layer.SearchParam("_count", "number", "Page size, 1 to 100 (default 20), newest first; the 'next' link "
                                          "carries _cursor."),
)


@bp.interaction("search-type", "/Communication", search=SEARCH)
def search() -> Response:
    """The messages of the professional's conversations, newest first (audited per patient)."""
    session = get_session()
    pro = auth.current_professional()
    limit = _count()
    before = web.decode_cursor(layer.params().get("_cursor"))
    criteria: dict[str, Any] = {}
    searchable, patient_id = _patient_filter(session)
    if patient_id is not None:
        criteria["patient_id"] = patient_id
    part_of = layer.params().get("part-of")
    empty = not searchable
    if part_of is not None:
        match = fhir.REFERENCE.fullmatch(part_of)
        if match is None:
            raise _invalid_search("part-of : Communication/<id> attendu")
        try:
            criteria["thread_id"] = professional.professional_message(session, pro, int(match.group(1)))[1].id
        except NotFound:
            empty = True
    kind = layer.params().get("sender-kind")
    if kind is not None:
        if kind not in ("patient", "professional"):
            raise _invalid_search("sender-kind : patient ou professional attendu")
        criteria["author_kind"] = kind
    _sent_bounds(criteria)
    if empty:
        return fhir_response(resources.searchset([], base_url(), total=0))
    found = professional.professional_messages(session, pro, professional.ProSearch(**criteria), limit=limit, before_id=before)
    box = vault(session)
    entries = _resources(session, box, found.rows, (found.attachments, found.professionals, found.recipients))
    professional.record_professional_read(session, pro, [m for m, _, _ in found.rows])
    _, next_link = layer.page_links("Communication", found.next_before)
    session.commit()
    return fhir_response(resources.searchset(entries, base_url(), next_link=next_link))


@bp.interaction("read", "/Communication/<int:message_id>")
def read(message_id: int) -> Response:
    """One message with its attachments inline (audited)."""
    session = get_session()
    pro = auth.current_professional()
    msg, thread = professional.professional_message(session, pro, message_id)
    patient = session.get(Patient, msg.patient_id)
    assert patient is not None
    body = _resources(session, vault(session), [(msg, thread, patient)],
                      inbox.details_of(session, [msg], [thread]), with_data=True)[0]
    professional.record_professional_read(session, pro, [msg])
    session.commit()
    return fhir_response(body)


@bp.extra("/Communication/<int:message_id>/attachment/<int:attachment_id>", type_="Communication")
def attachment(message_id: int, attachment_id: int) -> Response:
    """An attachment's bytes, as they were sent (audited)."""
    session = get_session()
    pro = auth.current_professional()
    att, _ = professional.professional_attachment(session, pro, message_id, attachment_id)
    content = inbox.attachment_content(session, vault(session), att)
    professional.record_attachment_read(session, pro, att)
    session.commit()
    response = Response(content, status=200, content_type=att.mime_type)
    response.headers["Content-Disposition"] = web.disposition()
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# --- operations on a conversation --------------------------------------------------------------------------

@bp.operation("/Communication/<int:message_id>/$end", definition=OPERATIONS + "end",
              documentation="POST /fhir/R4/Communication/{id}/$end: the professional who started the conversation "
                            "ends it; nobody may write in it afterwards (409).")
def end(message_id: int) -> Response:
    """End the conversation of this message (its owner only): nobody writes in it afterwards."""
    session = get_session()
    professional.end_conversation(session, auth.current_professional(), message_id)
    session.commit()
    return information("inbox_conversation_ended_done")


@bp.operation("/Communication/<int:message_id>/$forbid-replies", definition=OPERATIONS + "forbid-replies",
              documentation="POST /fhir/R4/Communication/{id}/$forbid-replies: the patient may not reply (403).")
def forbid_replies(message_id: int) -> Response:
    """The patient may no longer reply in this conversation (its owner only)."""
    session = get_session()
    professional.set_replies(session, auth.current_professional(), message_id, False)
    session.commit()
    return information("inbox_replies_forbidden_done")


@bp.operation("/Communication/<int:message_id>/$allow-replies", definition=OPERATIONS + "allow-replies",
              documentation="POST /fhir/R4/Communication/{id}/$allow-replies: replies allowed again.")
def allow_replies(message_id: int) -> Response:
    """The patient may reply again (its owner only)."""
    session = get_session()
    professional.set_replies(session, auth.current_professional(), message_id, True)
    session.commit()
    return information("inbox_replies_allowed_done")
