"""FHIR R4 ``Communication`` in and out of the inbox: pure functions, no database, no Flask.

One message is one Communication. A conversation is its first message: every later message says
``partOf: Communication/<first>``, and ``inResponseTo`` names the message it answers. The patient is
``subject`` (INS identifier); professionals are named by their national identifier (IDNPS, "8" + RPPS).

Carnet extensions (documented in the CapabilityStatement):
- ``communication-replies-allowed`` (valueBoolean): on a professional's message, false forbids the
  patient's replies in the conversation (true allows them again); on the way out, the current setting.
- ``communication-establishment`` (valueString): the establishment the professional writes for.
- ``communication-read`` (valueDateTime, out only): when the recipient read it — the patient for a
  professional's message (the read receipt), a professional for the patient's.
- ``communication-conversation-ended`` (valueDateTime, out only): the conversation was ended.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from backend.errors import DomainError
import backend.fhir.resources as resources
from backend.messaging.service import NewFile, extension_for
from backend.records.documents.service import UPLOAD_TYPES

EXTENSION_BASE = f"{resources.BASE}/StructureDefinition"
EXT_REPLIES_ALLOWED = f"{EXTENSION_BASE}/communication-replies-allowed"
EXT_ESTABLISHMENT = f"{EXTENSION_BASE}/communication-establishment"
EXT_READ = f"{EXTENSION_BASE}/communication-read"
EXT_ENDED = f"{EXTENSION_BASE}/communication-conversation-ended"
IDNPS_SYSTEM = f"urn:oid:{resources.IDNPS_OID}"
REFERENCE = re.compile(r"(?:.*/)?Communication/(\d{1,18})")


def refused(reason: str) -> DomainError:
    return DomainError("inbox_invalid_communication", 422, reason=reason)


@dataclass(frozen=True)
class CommunicationIn:
    ins_oid: str
    nir: str
    subject: str | None
    text: str
    files: tuple[NewFile, ...]
    answers: int | None                 # the message answered (inResponseTo or partOf)
    copies: tuple[str, ...]             # RPPS of the professionals in copy
    sender_rpps: str | None             # when the sender names themselves
    establishment: str | None
    replies_allowed: bool | None


def _patient(body: dict[str, Any]) -> tuple[str, str]:
    identifier = (body.get("subject") or {}).get("identifier") if isinstance(body.get("subject"), dict) else None
    if not isinstance(identifier, dict) or not identifier.get("value") or not identifier.get("system"):
        raise refused("le patient doit être identifié par subject.identifier (urn:oid:1.2.250.1.213.1.4.8|NIR)")
    system = str(identifier["system"])
    if system not in resources.INS_SYSTEMS:
        raise refused(f"identifiant patient non reconnu ({system[:60]}), INS attendu "
                      "(urn:oid:1.2.250.1.213.1.4.8 ou .10 pour une identité de test)")
    return resources.INS_SYSTEMS[system], re.sub(r"\s", "", str(identifier["value"])).upper()


def _referenced_message(references: Any, where: str) -> set[int]:
    found = set()
    for ref in references or []:
        value = ref.get("reference") if isinstance(ref, dict) else None
        match = REFERENCE.fullmatch(str(value or ""))
        if match is None:
            raise refused(f"{where} : référence Communication/<id> attendue")
        found.add(int(match.group(1)))
    return found


def _extension(body: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in body.get("extension") or [] if isinstance(e, dict) and e.get("url") == url), None)


def _attachment(attachment: dict[str, Any], index: int) -> NewFile:
    if attachment.get("url") and not attachment.get("data"):
        raise refused(f"payload[{index}] : pièce jointe par URL non acceptée, contenu en base64 (data) attendu")
    if not attachment.get("data"):
        raise refused(f"payload[{index}] : contenu de la pièce jointe (data) manquant")
    content = resources.decode_base64(attachment["data"], f"payload[{index}].contentAttachment.data")
    declared = str(attachment.get("contentType") or "") or None
    title = " ".join(str(attachment.get("title") or "").split())[:200]
    ext = title.rsplit(".", 1)[-1].lower() if "." in title else ""
    if ext not in UPLOAD_TYPES:
        title = f"{title or 'piece-jointe'}.{extension_for(declared) or 'bin'}"
    return NewFile(filename=title, content=content, declared_type=declared)


def parse_communication(body: Any) -> CommunicationIn:
    """A Communication a professional sends, checked (structure with fhir.resources, then the inbox's
    rules). Nothing here touches the database: a refused message has written nothing."""
    if not isinstance(body, dict) or body.get("resourceType") != "Communication":
        raise resources.invalid_resource("resourceType Communication attendu")
    resources.validate_r4(body)
    if body.get("status") != "completed":
        raise refused("status « completed » attendu (un message envoyé)")
    ins_oid, nir = _patient(body)
    topic = body.get("topic") if isinstance(body.get("topic"), dict) else {}
    subject = topic.get("text") or next((c.get("display") for c in topic.get("coding") or []
                                         if isinstance(c, dict) and c.get("display")), None)
    texts, files = [], []
    for index, item in enumerate(body.get("payload") or []):
        if not isinstance(item, dict):
            continue
        if "contentString" in item:
            texts.append(str(item["contentString"]))
        elif isinstance(item.get("contentAttachment"), dict):
            files.append(_attachment(item["contentAttachment"], index))
        else:
            raise refused(f"payload[{index}] : contentString ou contentAttachment attendu")
    answers = _referenced_message(body.get("inResponseTo"), "inResponseTo") | \
        _referenced_message(body.get("partOf"), "partOf")
    copies = []
    for index, ref in enumerate(body.get("recipient") or []):
        identifier = ref.get("identifier") if isinstance(ref, dict) else None
        system = str((identifier or {}).get("system") or "")
        if system in resources.INS_SYSTEMS:
            if (resources.INS_SYSTEMS[system], re.sub(r"\s", "", str(identifier.get("value") or "")).upper()) \
                    != (ins_oid, nir):
                raise refused(f"recipient[{index}] : un seul patient par message, celui de subject")
            continue
        rpps = resources.rpps_from_idnps(str((identifier or {}).get("value") or "")) if system == IDNPS_SYSTEM else None
        if rpps is None:
            raise refused(f"recipient[{index}] : le patient (INS) ou un professionnel "
                          f"({IDNPS_SYSTEM}|8<RPPS>) attendu")
        copies.append(rpps)
    sender_rpps = None
    sender = body.get("sender")
    if isinstance(sender, dict) and isinstance(sender.get("identifier"), dict):
        sender_rpps = resources.rpps_from_idnps(str(sender["identifier"].get("value") or ""))
    replies = _extension(body, EXT_REPLIES_ALLOWED)
    if replies is not None and not isinstance(replies.get("valueBoolean"), bool):
        raise refused("extension communication-replies-allowed : valueBoolean attendu")
    establishment = _extension(body, EXT_ESTABLISHMENT)
    return CommunicationIn(
        ins_oid=ins_oid, nir=nir, subject=subject, text="\n\n".join(t for t in texts if t.strip()),
        files=tuple(files), answers=_single(answers), copies=tuple(dict.fromkeys(copies)), sender_rpps=sender_rpps,
        establishment=str(establishment.get("valueString") or "") or None if establishment else None,
        replies_allowed=replies.get("valueBoolean") if replies else None)


def _single(ids: set[int]) -> int | None:
    if len(ids) > 1:
        raise refused("inResponseTo et partOf doivent désigner la même conversation")
    return next(iter(ids), None)


# --- writing ---------------------------------------------------------------------------------------------

def practitioner(pro: Any) -> dict[str, Any]:
    return {"type": "Practitioner", "identifier": {"system": IDNPS_SYSTEM, "value": "8" + pro.rpps},
            "display": pro.display_name}


def patient_reference(patient: Any) -> dict[str, Any]:
    """The patient as the professional named them: by their INS, and nothing more (a message sent to a bare
    INS must not disclose the patient's names)."""
    return {"type": "Patient", "identifier": resources.patient_identifier(patient.ins_oid, patient.nir)}


def communication(message: Any, thread: Any, patient: Any, *, subject: str, body: str,
                  professionals: dict[int, Any], recipients: list[int], attachments: list[Any],
                  names: dict[int, str], base_url: str, data: dict[int, bytes] | None = None) -> dict[str, Any]:
    """One inbox message as a Communication. Attachments carry ``data`` only when given (a read of one
    message); otherwise their ``url`` returns the bytes."""
    import base64

    resource: dict[str, Any] = {"resourceType": "Communication", "id": str(message.id), "status": "completed"}
    extensions: list[dict[str, Any]] = [{"url": EXT_REPLIES_ALLOWED, "valueBoolean": bool(thread.replies_allowed)}]
    if thread.establishment:
        extensions.append({"url": EXT_ESTABLISHMENT, "valueString": thread.establishment})
    if message.read_at is not None:
        extensions.append({"url": EXT_READ, "valueDateTime": resources.instant(message.read_at)})
    if thread.ended_at is not None:
        extensions.append({"url": EXT_ENDED, "valueDateTime": resources.instant(thread.ended_at)})
    resource["extension"] = extensions
    if thread.first_message_id and thread.first_message_id != message.id:
        resource["partOf"] = [{"reference": f"Communication/{thread.first_message_id}"}]
    if message.in_reply_to_id:
        resource["inResponseTo"] = [{"reference": f"Communication/{message.in_reply_to_id}"}]
    resource["subject"] = patient_reference(patient)
    resource["topic"] = {"text": subject}
    resource["sent"] = resources.instant(message.sent_at)
    resource["received"] = resources.instant(message.sent_at)
    others = [practitioner(professionals[p]) for p in recipients if p in professionals]
    if message.author_kind == "professional" and message.author_professional_id in professionals:
        resource["sender"] = practitioner(professionals[message.author_professional_id])
        resource["recipient"] = [patient_reference(patient), *others]
    else:
        resource["sender"] = patient_reference(patient)
        resource["recipient"] = others
    payload: list[dict[str, Any]] = []
    if body:
        payload.append({"contentString": body})
    for att in attachments:
        item: dict[str, Any] = {"contentType": att.mime_type, "size": att.size,
                                "title": names.get(att.id, ""),
                                "url": f"{base_url}Communication/{message.id}/attachment/{att.id}"}
        if data is not None and att.id in data:
            item["data"] = base64.b64encode(data[att.id]).decode("ascii")
        payload.append({"contentAttachment": item})
    if payload:
        resource["payload"] = payload
    return resource


DOCUMENTATION = (
    "The secure inbox (messagerie de santé). POST a Communication to write to a patient: "
    "subject.identifier = INS (urn:oid:1.2.250.1.213.1.4.8|NIR, or …4.10 for a test identity), "
    "topic.text = the subject, status = completed, payload = contentString (the text) and contentAttachment "
    "(contentType, title, data in base64: PDF, JPG/JPEG, PNG, TIF/TIFF, RTF or TXT, at most 10 MB each and 5 "
    "per message, the content must be what the type says). Without inResponseTo it starts a conversation; "
    "with inResponseTo (or partOf) = Communication/{id} it writes in that conversation. recipient may add "
    f"professionals in copy ({IDNPS_SYSTEM}|8<RPPS>). Extensions: {EXT_REPLIES_ALLOWED} (valueBoolean false: "
    f"the patient may not reply), {EXT_ESTABLISHMENT} (valueString: writing for an establishment); out only: "
    f"{EXT_READ} (valueDateTime: when the recipient read it — the read receipt) and {EXT_ENDED}. "
    "Every later message of a conversation has partOf = its first message. Search and read return only the "
    "conversations you take part in; every search and read is written to the patient's access history. "
    "The patient replies only while replies are allowed and the conversation is not ended; they may start a "
    "conversation only with a professional who already wrote to them."
    " The bytes of an attachment are at GET /fhir/R4/Communication/{id}/attachment/{attachment_id} "
    "(the same access rule as the message, traced).")
