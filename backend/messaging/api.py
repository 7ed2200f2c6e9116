"""The patient's inbox under /api/v1/inbox: threads (unread first, search, archive), a thread (read marks
it read), replies and new threads with attachments (multipart), attachments' bytes, saving an attachment
into the record, and the professionals the patient may write to.

Every lookup is by the patient's own id: another patient's thread, message or attachment is "not
found", the same answer as one that does not exist, and nothing of it is named.
"""
from __future__ import annotations

import unicodedata
from typing import Any

from flask import Response, current_app, request, url_for
from flask.views import MethodView
from sqlalchemy.orm import Session

from backend import web
from backend.db import get_session
from backend.i18n import message
from backend.messaging import schemas as s
from backend.messaging import service as inbox
from backend.messaging.models import Attachment, Message, Thread
from backend.professionals.models import Professional
from backend.professionals.service import profession_label
from backend.records import vault
from backend.records.crypto import Vault
from backend.records.documents import service as docs
from backend.records.access.policy import Action

blp = web.Blueprint("inbox", __name__, url_prefix="/api/v1/inbox",
                    description="The secure inbox: conversations with health professionals")

BINARY = web.binary("The attachment's bytes, as sent", docs.SERVED_TYPES | {docs.OPAQUE})


def settings() -> inbox.InboxSettings:
    return current_app.extensions["carnet.inbox_settings"]


@blp.before_request
def _room_for_attachments() -> None:
    # A message may carry several attachments of the upload size each: more than the app's default limit.
    if request.method == "POST":
        request.max_content_length = settings().max_request_bytes


# --- shaping -----------------------------------------------------------------------------------------------

def _pro_name(pro: Professional) -> str:
    return f"{pro.given_name} {pro.family_name}".strip()


def _sender(pro: Professional, thread: Thread) -> dict[str, Any]:
    return {"professional_id": pro.id, "name": _pro_name(pro), "profession": profession_label(pro.profession_code),
            "organisation": pro.organisation, "establishment": thread.establishment}


def _thread_item(box: Vault, thread: Thread, pro: Professional, last_body: str | None,
                 last_kind: str | None) -> dict[str, Any]:
    text = box.open_text(thread.patient_id, last_body, inbox.body_context(thread.last_message_id)) \
        if last_body and thread.last_message_id else ""
    return {"id": thread.id, "subject": inbox.subject_of(box, thread), "sender": _sender(pro, thread),
            "started_by": thread.started_by, "last_message_at": thread.last_message_at,
            "preview": inbox.preview(text), "last_message_from_you": last_kind == "patient",
            "unread": thread.unread_count > 0, "unread_count": thread.unread_count,
            "message_count": thread.message_count, "attachment_count": thread.attachment_count,
            "replies_allowed": thread.replies_allowed, "ended": thread.ended_at is not None,
            "archived": thread.archived_at is not None}


def _attachment(box: Vault, att: Attachment) -> dict[str, Any]:
    return {"id": att.id, "filename": inbox.attachment_name(box, att), "mime_type": att.mime_type, "size": att.size,
            "from_record": att.source_document_id is not None, "saved_document_id": att.saved_document_id,
            "content_url": url_for("inbox.attachment_content", attachment_id=att.id)}


def _message(box: Vault, msg: Message, pros: dict[int, Professional], recipients: list[int],
             attachments: list[Attachment]) -> dict[str, Any]:
    pro = pros.get(msg.author_professional_id) if msg.author_professional_id else None
    name = _pro_name(pro) if pro else message("inbox_sender_you")
    return {"id": msg.id, "author": {"kind": msg.author_kind, "professional_id": msg.author_professional_id,
                                     "name": name},
            "from_you": msg.author_kind == "patient", "body": inbox.body_of(box, msg), "sent_at": msg.sent_at,
            "read_at": msg.read_at, "in_reply_to": msg.in_reply_to_id, "reply_all": msg.reply_all,
            "recipients": [_pro_name(pros[p]) for p in recipients if p in pros],
            "attachments": [_attachment(box, a) for a in attachments]}


def _notice(thread: Thread) -> str | None:
    if thread.ended_at is not None:
        return message("inbox_conversation_ended")
    if not thread.replies_allowed:
        return message("inbox_replies_forbidden")
    return None


def _detail(box: Vault, view: inbox.ThreadView) -> dict[str, Any]:
    thread = view.thread
    owner = view.professionals[thread.professional_id]
    item = _thread_item(box, thread, owner, None, None)
    may_reply = thread.ended_at is None and thread.replies_allowed
    pros = view.professionals
    item.update({
        "participants": [{"professional_id": p, "name": _pro_name(pros[p]), "role": role,
                          "profession": profession_label(pros[p].profession_code), "organisation": pros[p].organisation}
                         for p, role in sorted(view.participants.items(), key=lambda kv: (kv[1] != "sender", kv[0]))],
        "messages": [_message(box, m, pros, view.recipients.get(m.id, []), view.attachments.get(m.id, []))
                     for m in view.messages],
        "next_cursor": web.encode_cursor(view.next_after) if view.next_after else None,
        "actions": {"reply": may_reply, "reply_all": may_reply and len(view.participants) > 1,
                    "archive": thread.archived_at is None, "unarchive": thread.archived_at is not None,
                    "delete": True},
        "notice": _notice(thread)})
    item.pop("preview")
    item.pop("last_message_from_you")
    return item


def _sent(session: Session, box: Vault, msg: Message) -> dict[str, Any]:
    attachments, pros, recipients = inbox.details_of(session, [msg], [])
    return {"thread_id": msg.thread_id,
            "message": _message(box, msg, pros, recipients.get(msg.id, []), attachments.get(msg.id, []))}


def _files(files: dict[str, Any]) -> tuple[inbox.NewFile, ...]:
    limit = settings().attachment_max_bytes
    return tuple(inbox.NewFile(filename=f.filename or "", content=f.stream.read(limit + 1), declared_type=f.mimetype)
                 for f in files["file"])


# --- threads ----------------------------------------------------------------------------------------------

@blp.route("/threads")
class Threads(MethodView):
    @blp.arguments(s.InboxThreadListArgs, location="query")
    @blp.response(200, s.InboxThreadPageOut)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The patient's threads: unread first, then the latest activity; search by subject and sender
        (``q``, or ``subject`` / ``sender``), ``archived`` for the archive, keyset pagination."""
        session = get_session()
        pid = web.current_patient().id
        filters = inbox.ThreadFilters(archived=args["archived"], text=args["q"], subject=args["subject"],
                                      sender=args["sender"], unread_only=args["unread"])
        after = inbox.decode_cursor(args["cursor"], filters)
        box = vault(session)
        page = inbox.list_threads(session, box, pid, filters, limit=args["limit"], after=after)
        return {"items": [_thread_item(box, r.thread, r.professional, r.last_body_sealed, r.last_author_kind)
                          for r in page.items],
                "next_cursor": inbox.encode_cursor(filters, page.next_cursor) if page.next_cursor else None,
                "unread_threads": page.unread_threads}

    @blp.arguments(s.InboxNewThreadIn, location="multipart")
    @blp.response(201, s.InboxSentOut)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    @web.writes(Action.MESSAGE_START)
    def post(self, form: dict[str, Any]) -> dict[str, Any]:
        """Start a conversation with a professional who already wrote to you (multipart: ``professional_id``,
        ``subject``, ``body``, ``file`` and ``document_id`` repeatable). Anyone else: 403."""
        session = get_session()
        box = vault(session)
        outgoing = inbox.Outgoing(body=form["body"], files=_files(form), document_ids=tuple(form["document_id"]),
                              actor=web.current_actor())
        msg = inbox.start_thread_by_patient(session, box, settings(), web.current_patient().id,
                                            form["professional_id"], form["subject"], outgoing)
        result = _sent(session, box, msg)
        session.commit()
        return result


@blp.route("/threads/<int:thread_id>")
class ThreadDetail(MethodView):
    @blp.arguments(s.InboxThreadArgs, location="query")
    @blp.response(200, s.InboxThreadDetailOut)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    def get(self, args: dict[str, Any], thread_id: int) -> dict[str, Any]:
        """A thread and its messages (oldest first). Opening it reads it: the professionals see when."""
        session = get_session()
        view = inbox.read_thread(session, web.current_patient().id, thread_id, limit=args["limit"],
                                 after_id=web.decode_cursor(args["cursor"]))
        result = _detail(vault(session), view)
        session.commit()
        return result

    @blp.response(204)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    @web.writes(Action.CONVERSATION)
    def delete(self, thread_id: int) -> None:
        """Delete a thread: gone from the inbox now, destroyed after the retention period."""
        session = get_session()
        inbox.delete_thread(session, settings(), web.current_patient().id, thread_id)
        session.commit()


@blp.route("/threads/<int:thread_id>/messages", methods=["POST"])
@blp.arguments(s.InboxReplyIn, location="multipart")
@blp.response(201, s.InboxSentOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.MESSAGE_SEND)
def reply(form: dict[str, Any], thread_id: int) -> dict[str, Any]:
    """Reply (to the professional who wrote last, or ``in_reply_to``'s author) or reply to all (``reply_all``).
    Multipart: ``body``, ``file`` and ``document_id`` repeatable. Replies forbidden: 403; conversation
    ended: 409; a refused attachment: 413/415/422 and nothing is sent."""
    session = get_session()
    box = vault(session)
    outgoing = inbox.Outgoing(body=form["body"], files=_files(form), document_ids=tuple(form["document_id"]),
                              actor=web.current_actor())
    msg = inbox.reply(session, box, settings(), web.current_patient().id, thread_id, outgoing,
                      reply_all=form["reply_all"], in_reply_to_id=form["in_reply_to"])
    result = _sent(session, box, msg)
    session.commit()
    return result


def _archive(thread_id: int, archived: bool) -> dict[str, Any]:
    session = get_session()
    pid = web.current_patient().id
    thread = inbox.set_archived(session, pid, thread_id, archived)
    box = vault(session)
    pro = session.get(Professional, thread.professional_id)
    assert pro is not None
    last = session.get(Message, thread.last_message_id) if thread.last_message_id else None
    result = _thread_item(box, thread, pro, last.body_sealed if last else None, last.author_kind if last else None)
    session.commit()
    return result


@blp.route("/threads/<int:thread_id>/archive", methods=["POST"])
@blp.response(200, s.InboxThreadItemOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.CONVERSATION)
def archive(thread_id: int) -> dict[str, Any]:
    """Move the thread to the archive (a new professional's message brings it back)."""
    return _archive(thread_id, True)


@blp.route("/threads/<int:thread_id>/unarchive", methods=["POST"])
@blp.response(200, s.InboxThreadItemOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.CONVERSATION)
def unarchive(thread_id: int) -> dict[str, Any]:
    """Back to the inbox."""
    return _archive(thread_id, False)


@blp.route("/correspondents")
@blp.arguments(s.InboxCorrespondentArgs, location="query")
@blp.response(200, s.InboxCorrespondentPageOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def correspondents(args: dict[str, Any]) -> dict[str, Any]:
    """The professionals who wrote to you: those you may start a conversation with."""
    pros, next_after = inbox.correspondents(get_session(), web.current_patient().id, limit=args["limit"],
                                            after_id=web.decode_cursor(args["cursor"]))
    return {"items": [{"professional_id": p.id, "name": _pro_name(p), "profession": profession_label(p.profession_code),
                       "organisation": p.organisation} for p in pros],
            "next_cursor": web.encode_cursor(next_after) if next_after else None}


# --- attachments ------------------------------------------------------------------------------------------

@blp.route("/attachments/<int:attachment_id>/content")
@blp.doc(security=[{"bearer": []}], responses={"200": BINARY})
@web.patient_required
def attachment_content(attachment_id: int) -> Response:
    """The attachment's bytes, as sent."""
    session = get_session()
    box = vault(session)
    att = inbox.patient_attachment(session, web.current_patient().id, attachment_id)
    content = inbox.attachment_content(session, box, att)
    response = Response(content, status=200, content_type=docs.served_type(att.mime_type))
    response.headers["Content-Disposition"] = web.disposition(_safe_name(inbox.attachment_name(box, att)))
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@blp.route("/attachments/<int:attachment_id>/save", methods=["POST"])
@blp.arguments(s.InboxSaveIn)
@blp.response(201, s.InboxSavedOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.DOCUMENT_UPLOAD)
def save(body: dict[str, Any], attachment_id: int) -> dict[str, Any]:
    """Save the attachment into your record, in the category you choose (the same bytes, as a document
    you added). Saving it again gives the same document back (``created`` false)."""
    session = get_session()
    doc, created = inbox.save_attachment(session, vault(session), web.current_patient().id, attachment_id,
                                         body["category"], body["title"])
    session.commit()
    return {"document_id": doc.id, "created": created, "title": doc.title, "category": doc.category,
            "category_label": message(f"document_category_{doc.category}"), "mime_type": doc.mime_type,
            "size": doc.size, "sha256": doc.sha256}


def _safe_name(filename: str) -> str:
    """A sender's file name a device can save: no path separators, reserved or control characters."""
    cleaned = "".join("-" if ch in '\\/:*?"<>|;' or unicodedata.category(ch)[0] == "C" else ch for ch in filename)
    return cleaned.strip(" .-")[:150] or "piece-jointe"
