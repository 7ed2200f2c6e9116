"""The secure inbox's rules, in one place (domain.md, "Secure inbox").

- Professionals (for themselves or an establishment) start conversations; others may be in copy.
- The patient replies to the last professional who wrote (or to the message they pick) or to all the
  professionals of the thread, and may start a new thread only with a professional who already wrote to
  them. A professional may forbid replies (403) or end the conversation (409 for everyone after that).
- Attachments are checked exactly like document uploads (``records.documents.service.check_upload``: types,
  size, content sniffing); the patient may attach a document of their record (read through their own
  scope) and save an attachment into the record (``records.documents.service.store_document``, source "patient").
- Everything a message says is sealed with the patient's key (see ``models``); a new professional's
  message leaves a "message" notification (kind and thread id, nothing else); every read by a
  professional is written to the audit trail; the patient's own reads are not.
- A thread the patient deletes is hidden at once and destroyed by :func:`purge` after the retention period.

The professional's side (start, answer, end, search, read) is ``professional.py``; this module holds the
rules both sides share (validation, sealing, writing a message) and the patient's side.

No Flask: functions take a Session (and the request's Vault), only flush; callers commit.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from backend import blobs, cursors
from backend.audit import service as audit
from backend.db import utcnow
from backend.errors import DomainError, Forbidden, NotFound
from backend.messaging import messages as _texts  # noqa: F401  (registers the texts)
from backend.messaging.models import (Attachment, Message, MessageRecipient, Participant,
                                      SearchToken, Thread)
from backend.notifications.models import Notification
from backend.notifications.service import notify
from backend.professionals.models import Professional
from backend.professionals.service import PROFESSIONS
from backend.records.documents import service as docs
from backend.records.access.authorize import authorize, authorize_write
from backend.records.crypto import Vault
from backend.records.documents.models import Document
from backend.records.access.policy import Action, Actor, Correspondent

log = logging.getLogger(__name__)

SUBJECT_MAX = 200
BODY_MAX = 10_000
PREVIEW_CHARS = 140
DEFAULT_MAX_ATTACHMENTS = 5


@dataclass(frozen=True)
class InboxSettings:
    max_attachments: int = DEFAULT_MAX_ATTACHMENTS
    attachment_max_bytes: int = docs.DEFAULT_UPLOAD_MAX_BYTES
    retention: dt.timedelta = dt.timedelta(days=3653)  # a deleted thread is kept this long, then destroyed

    @classmethod
    def from_config(cls, config: Any) -> InboxSettings:
        days = config.get("INBOX_RETENTION_DAYS")
        if days is None:
            days = round(365.25 * float(config.get("RETENTION_YEARS", 10)))
        return cls(max_attachments=int(config.get("INBOX_MAX_ATTACHMENTS") or DEFAULT_MAX_ATTACHMENTS),
                   attachment_max_bytes=int(config.get("UPLOAD_MAX_BYTES") or docs.DEFAULT_UPLOAD_MAX_BYTES),
                   retention=dt.timedelta(days=int(days)))

    @property
    def max_request_bytes(self) -> int:
        """The largest body a message may come in: every attachment at its maximum (base64 for the
        professional API), plus room for the text and the envelope."""
        return (self.attachment_max_bytes * self.max_attachments * 4) // 3 + 1024 * 1024


# --- inputs -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NewFile:
    """A file as received, before any check."""

    filename: str
    content: bytes
    declared_type: str | None = None


@dataclass(frozen=True)
class Outgoing:
    body: str
    files: tuple[NewFile, ...] = ()
    document_ids: tuple[int, ...] = ()  # documents of the patient's record (patient only)
    actor: Actor | None = None          # who attaches them: the holder, or their representative or carer


@dataclass(frozen=True)
class _Prepared:
    name: str
    mime_type: str
    content: bytes
    source_document_id: int | None = None


# --- sealing and search tokens --------------------------------------------------------------------------

def subject_context(thread_id: int) -> str:
    return f"inbox-thread:{thread_id}:subject"


def body_context(message_id: int) -> str:
    return f"inbox-message:{message_id}"


def attachment_name_context(attachment_id: int) -> str:
    return f"inbox-attachment:{attachment_id}:name"


def attachment_context(attachment_id: int) -> str:
    return f"inbox-attachment:{attachment_id}"


TOKEN_MIN = 2
TOKEN_MAX = 24
SEARCH_TERMS_MAX = 8


def words(text: str) -> list[str]:
    """Lower-case words without accents ("Résultat d'IRM" → ["resultat", "d", "irm"])."""
    plain = unicodedata.normalize("NFKD", text or "")
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).lower()
    return re.findall(r"[a-z0-9]+", plain)


def _search_key(vault: Vault, patient_id: int) -> bytes:
    return hmac.new(vault.data_key(patient_id), b"carnet/inbox-search/v1", hashlib.sha256).digest()


def _token(key: bytes, namespace: str, prefix: str) -> str:
    return hmac.new(key, f"{namespace}:{prefix}".encode(), hashlib.sha256).hexdigest()[:32]


def _index_tokens(key: bytes, namespace: str, text: str) -> set[str]:
    out = set()
    for word in words(text):
        for end in range(TOKEN_MIN, min(len(word), TOKEN_MAX) + 1):
            out.add(_token(key, namespace, word[:end]))
    return out


def search_terms(text: str | None) -> list[str]:
    """The words of a search, each at least TOKEN_MIN long; a search with none is refused."""
    if text is None or not text.strip():
        return []
    terms = [w[:TOKEN_MAX] for w in words(text) if len(w) >= TOKEN_MIN][:SEARCH_TERMS_MAX]
    if not terms:
        raise DomainError("inbox_search_too_short", 422, min=TOKEN_MIN,
                          errors=[{"field": "q", "message_code": "inbox_search_too_short",
                                   "params": {"min": TOKEN_MIN}}])
    return terms


def _sender_text(pro: Professional, establishment: str | None) -> str:
    return " ".join(filter(None, [pro.given_name, pro.family_name, pro.organisation, establishment,
                                  PROFESSIONS.get(pro.profession_code)]))


def index_thread(session: Session, vault: Vault, thread: Thread, subject: str, pro: Professional) -> None:
    key = _search_key(vault, thread.patient_id)
    tokens = _index_tokens(key, "subject", subject) | _index_tokens(key, "sender", _sender_text(pro, thread.establishment))
    session.add_all([SearchToken(thread_id=thread.id, token=t) for t in sorted(tokens)])


# --- validation -------------------------------------------------------------------------------------------

def check_subject(subject: str | None) -> str:
    subject = " ".join((subject or "").split())
    if not subject:
        raise DomainError("inbox_subject_required", 422,
                          errors=[{"field": "subject", "message_code": "inbox_subject_required"}])
    if len(subject) > SUBJECT_MAX:
        raise DomainError("inbox_subject_too_long", 422, max=SUBJECT_MAX,
                          errors=[{"field": "subject", "message_code": "inbox_subject_too_long",
                                   "params": {"max": SUBJECT_MAX}}])
    return subject


def check_body(body: str | None, has_attachments: bool) -> str:
    body = (body or "").strip()
    if len(body) > BODY_MAX:
        raise DomainError("inbox_body_too_long", 422, max=BODY_MAX,
                          errors=[{"field": "body", "message_code": "inbox_body_too_long", "params": {"max": BODY_MAX}}])
    if not body and not has_attachments:
        raise DomainError("inbox_empty_message", 422, errors=[{"field": "body", "message_code": "inbox_empty_message"}])
    return body



def extension_for(mime_type: str | None) -> str | None:
    """The upload extension a declared content type stands for (for files that come without a name)."""
    mime = (mime_type or "").split(";")[0].strip().lower()
    mime = docs.DECLARED_ALIASES.get(mime, mime)
    return next((ext for ext, known in docs.UPLOAD_TYPES.items() if known == mime and len(ext) == 3), None)


def prepare_outgoing(session: Session, vault: Vault, settings: InboxSettings, patient_id: int, outgoing: Outgoing, *,
             by_patient: bool) -> list[_Prepared]:
    """Check every attachment before anything is written: a refusal stores nothing."""
    if len(outgoing.files) + len(outgoing.document_ids) > settings.max_attachments:
        raise DomainError("inbox_too_many_attachments", 422, max=settings.max_attachments,
                          errors=[{"field": "file", "message_code": "inbox_too_many_attachments",
                                   "params": {"max": settings.max_attachments}}])
    prepared = []
    for new in outgoing.files:
        mime = docs.check_upload(docs.Upload(filename=new.filename, content=new.content,
                                             declared_type=new.declared_type), settings.attachment_max_bytes)
        name = new.filename.replace("\\", "/").rsplit("/", 1)[-1].strip()[:255]
        prepared.append(_Prepared(name, mime, new.content))
    if outgoing.document_ids:
        if not by_patient:
            raise ValueError("only the patient attaches documents of their record")
        # The owner's scope, the one every read of the record goes through (an unreleased document is
        # as unknown here as a document of someone else).
        scope = authorize(session, outgoing.actor or Actor.patient(patient_id), patient_id, "document.read")
        for document_id in dict.fromkeys(outgoing.document_ids):
            try:
                doc = docs.get_document(session, scope, document_id)
            except NotFound:
                raise NotFound("inbox_document_not_found") from None
            content = docs.read_content(session, vault, doc)
            ext = docs.file_extension(doc.mime_type)
            prepared.append(_Prepared(f"{doc.title[:240]}.{ext}", doc.mime_type, content, doc.id))
    return prepared


# --- writing a message ------------------------------------------------------------------------------------

def seal_thread(session: Session, vault: Vault, thread: Thread, subject: str) -> None:
    thread.subject_sealed = ""
    session.add(thread)
    session.flush()
    thread.subject_sealed = vault.seal_text(thread.patient_id, subject, subject_context(thread.id))


def post_message(session: Session, vault: Vault, thread: Thread, *, author_kind: str, author: Professional | None,
          body: str, prepared: Sequence[_Prepared], recipients: Iterable[int], in_reply_to_id: int | None,
          reply_all: bool, now: dt.datetime) -> Message:
    message = Message(thread_id=thread.id, patient_id=thread.patient_id, author_kind=author_kind,
                      author_professional_id=author.id if author else None, in_reply_to_id=in_reply_to_id,
                      reply_all=reply_all, body_sealed="", sent_at=now)
    session.add(message)
    session.flush()
    message.body_sealed = vault.seal_text(thread.patient_id, body, body_context(message.id))
    session.add_all([MessageRecipient(message_id=message.id, professional_id=pid) for pid in sorted(set(recipients))])
    for item in prepared:
        attachment = Attachment(message_id=message.id, patient_id=thread.patient_id, name_sealed="",
                                mime_type=item.mime_type, size=len(item.content),
                                sha256=hashlib.sha256(item.content).hexdigest(),
                                source_document_id=item.source_document_id)
        session.add(attachment)
        session.flush()
        attachment.name_sealed = vault.seal_text(thread.patient_id, item.name, attachment_name_context(attachment.id))
        # the sealed bytes go to the blob store before the transaction commits (backend/blobs.py)
        blobs.of(session).put(blobs.attachment_key(attachment.id),
                              vault.seal(thread.patient_id, item.content, attachment_context(attachment.id)))
    thread.last_message_at = now
    thread.first_message_id = thread.first_message_id or message.id
    thread.last_message_id = message.id
    thread.message_count += 1
    thread.attachment_count += len(prepared)
    if author_kind == "professional":
        thread.unread_count += 1
        # new words from a professional bring a thread back to the inbox (archived or deleted alike)
        thread.archived_at = None
        thread.deleted_at = None
        thread.purge_after = None
    session.flush()
    if author_kind == "professional":
        notify(session, thread.patient_id, "message", ref_type="thread", ref_id=thread.id,
               dedupe_key=f"inbox-message:{message.id}", now=now)
    actor_type, actor_id = ("professional", author.rpps) if author else ("patient", str(thread.patient_id))
    audit.record(session, actor_type=actor_type, actor_id=actor_id, action="inbox.message_sent",
                 patient_id=thread.patient_id,
                 details={"thread_id": thread.id, "message_id": message.id, "attachments": len(prepared)}, at=now)
    for item in prepared:
        if item.source_document_id is not None:
            audit.record(session, actor_type="patient", actor_id=str(thread.patient_id),
                         action="inbox.document_attached", patient_id=thread.patient_id,
                         details={"document_id": item.source_document_id, "thread_id": thread.id,
                                  "message_id": message.id}, at=now)
    log.info("inbox message %s in thread %s (%s, %d attachments)", message.id, thread.id, author_kind, len(prepared))
    return message


def participants_of(session: Session, thread_id: int) -> dict[int, str]:
    return {pid: role for pid, role in session.execute(
        select(Participant.professional_id, Participant.role).where(Participant.thread_id == thread_id))}


# --- what a page of messages names -----------------------------------------------------------------------

def details_of(session: Session, messages: Sequence[Message], threads: Sequence[Thread]
                ) -> tuple[dict[int, list[Attachment]], dict[int, Professional], dict[int, list[int]]]:
    """Attachments, recipients and the professionals named by a set of messages: three queries."""
    ids = [m.id for m in messages]
    attachments: dict[int, list[Attachment]] = {i: [] for i in ids}
    recipients: dict[int, list[int]] = {i: [] for i in ids}
    if not ids:
        return attachments, {}, recipients
    for att in session.scalars(select(Attachment).where(Attachment.message_id.in_(ids)).order_by(Attachment.id)):
        attachments[att.message_id].append(att)
    for mid, pid in session.execute(select(MessageRecipient.message_id, MessageRecipient.professional_id)
                                    .where(MessageRecipient.message_id.in_(ids))
                                    .order_by(MessageRecipient.professional_id)):
        recipients[mid].append(pid)
    wanted = {m.author_professional_id for m in messages if m.author_professional_id} | \
        {t.professional_id for t in threads} | {p for ps in recipients.values() for p in ps}
    pros = {p.id: p for p in session.scalars(select(Professional).where(Professional.id.in_(sorted(wanted))))}
    return attachments, pros, recipients


# --- reading sealed things ----------------------------------------------------------------------------------

def subject_of(vault: Vault, thread: Thread) -> str:
    return vault.open_text(thread.patient_id, thread.subject_sealed, subject_context(thread.id))


def body_of(vault: Vault, message: Message) -> str:
    return vault.open_text(message.patient_id, message.body_sealed, body_context(message.id))


def attachment_name(vault: Vault, att: Attachment) -> str:
    return vault.open_text(att.patient_id, att.name_sealed, attachment_name_context(att.id))


class ContentIntegrityError(RuntimeError):
    """Stored bytes no longer match their recorded hash."""


def attachment_content(session: Session, vault: Vault, att: Attachment) -> bytes:
    """The attachment's bytes from the blob store, opened and checked against the recorded sha256."""
    try:
        sealed = blobs.of(session).get(blobs.attachment_key(att.id))
    except blobs.BlobNotFound:
        log.error("attachment %s has no content in the blob store", att.id)
        raise ContentIntegrityError(f"attachment {att.id} has no content") from None
    try:
        content = vault.open(att.patient_id, sealed, attachment_context(att.id))
    except InvalidTag:
        raise ContentIntegrityError(f"attachment {att.id} does not open") from None
    if hashlib.sha256(content).hexdigest() != att.sha256:
        raise ContentIntegrityError(f"attachment {att.id} does not match its hash")
    return content


def preview(text: str, size: int = PREVIEW_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= size else flat[: size - 1].rstrip() + "…"


# --- the patient's side -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ThreadFilters:
    archived: bool = False
    text: str | None = None      # subject or sender
    subject: str | None = None
    sender: str | None = None
    unread_only: bool = False


@dataclass(frozen=True)
class ThreadCursor:
    unread: int
    last_message_at: dt.datetime
    id: int


@dataclass
class ThreadRow:
    thread: Thread
    professional: Professional
    last_body_sealed: str | None
    last_author_kind: str | None


@dataclass
class ThreadPage:
    items: list[ThreadRow]
    next_cursor: ThreadCursor | None
    unread_threads: int = 0


def _unread_key() -> Any:
    return case((Thread.unread_count > 0, 1), else_=0)


def _listing_conditions(vault: Vault, patient_id: int, filters: ThreadFilters) -> list[Any]:
    conditions: list[Any] = [Thread.patient_id == patient_id, Thread.deleted_at.is_(None),
                             Thread.archived_at.is_not(None) if filters.archived else Thread.archived_at.is_(None)]
    if filters.unread_only:
        conditions.append(Thread.unread_count > 0)
    searches = [(filters.text, ("subject", "sender")), (filters.subject, ("subject",)), (filters.sender, ("sender",))]
    if any(text and text.strip() for text, _ in searches):
        key = _search_key(vault, patient_id)
        for text, namespaces in searches:
            for term in search_terms(text):
                tokens = [_token(key, ns, term) for ns in namespaces]
                conditions.append(Thread.id.in_(select(SearchToken.thread_id).where(SearchToken.token.in_(tokens))))
    return conditions


def list_threads(session: Session, vault: Vault, patient_id: int, filters: ThreadFilters, *, limit: int,
                 after: ThreadCursor | None = None) -> ThreadPage:
    """One page of the patient's threads: unread first, then the latest activity. Two queries whatever
    the number of threads and messages (plus the patient's key once per request when searching)."""
    unread = _unread_key()
    conditions = _listing_conditions(vault, patient_id, filters)
    stmt = (select(Thread, Professional, Message.body_sealed, Message.author_kind)
            .join(Professional, Professional.id == Thread.professional_id)
            .outerjoin(Message, Message.id == Thread.last_message_id).where(*conditions))
    if after is not None:
        stmt = stmt.where(or_(unread < after.unread,
                              and_(unread == after.unread, Thread.last_message_at < after.last_message_at),
                              and_(unread == after.unread, Thread.last_message_at == after.last_message_at,
                                   Thread.id < after.id)))
    stmt = stmt.order_by(unread.desc(), Thread.last_message_at.desc(), Thread.id.desc()).limit(limit + 1)
    rows = [ThreadRow(t, p, body, kind) for t, p, body, kind in session.execute(stmt)]
    page, more = rows[:limit], len(rows) > limit
    next_cursor = None
    if more and page:
        last = page[-1].thread
        next_cursor = ThreadCursor(1 if last.unread_count > 0 else 0, last.last_message_at, last.id)
    total_unread = session.scalar(select(func.count()).select_from(Thread).where(
        Thread.patient_id == patient_id, Thread.deleted_at.is_(None), Thread.unread_count > 0)) or 0
    return ThreadPage(page, next_cursor, int(total_unread))


def encode_cursor(filters: ThreadFilters, cursor: ThreadCursor) -> str:
    return cursors.encode(int(filters.archived), cursor.unread,
                          cursor.last_message_at.astimezone(dt.timezone.utc).isoformat(), cursor.id)


def decode_cursor(raw: str | None, filters: ThreadFilters) -> ThreadCursor | None:
    def parse(archived: Any, unread: Any, when: Any, ident: Any) -> ThreadCursor:
        moment = dt.datetime.fromisoformat(when)
        if archived != int(filters.archived) or unread not in (0, 1) or moment.tzinfo is None:
            raise ValueError("cursor of another listing")
        return ThreadCursor(unread, moment, cursors.integer(ident))

    return cursors.decode(raw, parse)


def patient_thread(session: Session, patient_id: int, thread_id: int) -> Thread:
    """The patient's own thread (not deleted); "not found" for anything else, whoever it belongs to."""
    thread = session.scalar(select(Thread).where(Thread.id == thread_id, Thread.patient_id == patient_id,
                                                 Thread.deleted_at.is_(None)))
    if thread is None:
        raise NotFound("inbox_thread_not_found")
    return thread


@dataclass
class ThreadView:
    thread: Thread
    messages: list[Message]
    attachments: dict[int, list[Attachment]]
    professionals: dict[int, Professional]
    recipients: dict[int, list[int]]
    participants: dict[int, str]
    next_after: int | None
    newly_read: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def read_thread(session: Session, patient_id: int, thread_id: int, *, limit: int, after_id: int | None = None,
                now: dt.datetime | None = None) -> ThreadView:
    """The patient opens a thread: its messages, oldest first (keyset on the id), and the thread is read:
    every professional's message in it gets its read receipt, its notifications are read too."""
    now = now or utcnow()
    thread = patient_thread(session, patient_id, thread_id)
    stmt = select(Message).where(Message.thread_id == thread.id)
    if after_id is not None:
        stmt = stmt.where(Message.id > after_id)
    rows = list(session.scalars(stmt.order_by(Message.id).limit(limit + 1)))
    page, more = rows[:limit], len(rows) > limit
    attachments, pros, recipients = details_of(session, page, [thread])
    participants = participants_of(session, thread.id)
    missing = sorted(set(participants) - set(pros))
    if missing:
        pros.update({p.id: p for p in session.scalars(select(Professional).where(Professional.id.in_(missing)))})
    newly_read = 0
    if thread.unread_count:
        newly_read = session.execute(update(Message).where(
            Message.thread_id == thread.id, Message.author_kind == "professional", Message.read_at.is_(None))
            .values(read_at=now)).rowcount or 0
        thread.unread_count = 0
        for m in page:
            if m.author_kind == "professional" and m.read_at is None:
                m.read_at = now
        # the centre's "new message" records of this thread are read too (the badge follows the inbox)
        session.execute(update(Notification).where(
            Notification.patient_id == patient_id, Notification.kind == "message", Notification.ref_type == "thread",
            Notification.ref_id == str(thread.id), Notification.read_at.is_(None), Notification.created_at <= now)
            .values(read_at=now))
        session.flush()
    return ThreadView(thread, page, attachments, pros, recipients, participants,
                      page[-1].id if more and page else None, newly_read)


def reply(session: Session, vault: Vault, settings: InboxSettings, patient_id: int, thread_id: int,
          outgoing: Outgoing, *, reply_all: bool = False, in_reply_to_id: int | None = None,
          now: dt.datetime | None = None) -> Message:
    """The patient answers in a thread: to the professional who wrote last (or who wrote the message
    answered), or to every professional of the thread. Refused when the conversation was ended (409) or
    its replies forbidden (403); a refusal writes nothing."""
    now = now or utcnow()
    thread = patient_thread(session, patient_id, thread_id)
    if thread.ended_at is not None:
        raise DomainError("inbox_conversation_ended", 409)
    if not thread.replies_allowed:
        raise Forbidden("inbox_replies_forbidden")
    participants = participants_of(session, thread.id)
    answered = None
    if in_reply_to_id is not None:
        answered = session.scalar(select(Message).where(Message.id == in_reply_to_id, Message.thread_id == thread.id))
        if answered is None:
            raise DomainError("inbox_reply_to_unknown", 422,
                              errors=[{"field": "in_reply_to", "message_code": "inbox_reply_to_unknown"}])
    else:
        answered = session.scalar(select(Message).where(Message.thread_id == thread.id,
                                                        Message.author_kind == "professional")
                                  .order_by(Message.id.desc()).limit(1))
    if reply_all:
        recipients = list(participants)
    elif answered is not None and answered.author_professional_id is not None:
        recipients = [answered.author_professional_id]
    else:
        recipients = [thread.professional_id]
    body = check_body(outgoing.body, bool(outgoing.files or outgoing.document_ids))
    prepared = prepare_outgoing(session, vault, settings, patient_id, outgoing, by_patient=True)
    return post_message(session, vault, thread, author_kind="patient", author=None, body=body, prepared=prepared,
                 recipients=recipients, in_reply_to_id=answered.id if answered else None, reply_all=reply_all,
                 now=now)


def has_written(session: Session, patient_id: int, professional_id: int) -> bool:
    return session.scalar(select(Message.id).where(
        Message.patient_id == patient_id, Message.author_kind == "professional",
        Message.author_professional_id == professional_id).limit(1)) is not None


def start_thread_by_patient(session: Session, vault: Vault, settings: InboxSettings, patient_id: int,
                            professional_id: int, subject: str, outgoing: Outgoing,
                            now: dt.datetime | None = None) -> Message:
    """The patient starts a conversation, with a professional who already wrote to them only (MESSAGE_START:
    403 otherwise)."""
    now = now or utcnow()
    subject = check_subject(subject)
    body = check_body(outgoing.body, bool(outgoing.files or outgoing.document_ids))
    prepared = prepare_outgoing(session, vault, settings, patient_id, outgoing, by_patient=True)  # checks, writes nothing
    authorize_write(session, Actor.patient(patient_id), patient_id, Action.MESSAGE_START,
                    target=Correspondent(professional_id, has_written(session, patient_id, professional_id)),
                    details={"professional_id": professional_id}, now=now)
    pro = session.get(Professional, professional_id)
    assert pro is not None
    thread = Thread(patient_id=patient_id, professional_id=pro.id, started_by="patient", replies_allowed=True,
                    created_at=now, last_message_at=now)
    seal_thread(session, vault, thread, subject)
    session.add(Participant(thread_id=thread.id, professional_id=pro.id, role="sender", added_at=now))
    index_thread(session, vault, thread, subject, pro)
    return post_message(session, vault, thread, author_kind="patient", author=None, body=body, prepared=prepared,
                 recipients=[pro.id], in_reply_to_id=None, reply_all=False, now=now)


def correspondents(session: Session, patient_id: int, *, limit: int, after_id: int | None = None
                   ) -> tuple[list[Professional], int | None]:
    """The professionals who wrote to the patient (those they may start a conversation with), by id."""
    wrote = select(Message.author_professional_id).where(
        Message.patient_id == patient_id, Message.author_kind == "professional").distinct()
    stmt = select(Professional).where(Professional.id.in_(wrote))
    if after_id is not None:
        stmt = stmt.where(Professional.id > after_id)
    rows = list(session.scalars(stmt.order_by(Professional.id).limit(limit + 1)))
    page = rows[:limit]
    return page, page[-1].id if len(rows) > limit and page else None


def set_archived(session: Session, patient_id: int, thread_id: int, archived: bool,
                 now: dt.datetime | None = None) -> Thread:
    thread = patient_thread(session, patient_id, thread_id)
    if archived and thread.archived_at is None:
        thread.archived_at = now or utcnow()
    elif not archived:
        thread.archived_at = None
    session.flush()
    return thread


def delete_thread(session: Session, settings: InboxSettings, patient_id: int, thread_id: int,
                  now: dt.datetime | None = None) -> Thread:
    """Soft delete: gone from the patient's inbox now, destroyed once the retention period is over."""
    now = now or utcnow()
    thread = patient_thread(session, patient_id, thread_id)
    thread.deleted_at = now
    thread.purge_after = now + settings.retention
    thread.unread_count = 0
    audit.record(session, actor_type="patient", actor_id=str(patient_id), action="inbox.thread_deleted",
                 patient_id=patient_id, details={"thread_id": thread.id}, at=now)
    session.flush()
    return thread


def patient_attachment(session: Session, patient_id: int, attachment_id: int) -> Attachment:
    att = session.scalar(select(Attachment).join(Message, Message.id == Attachment.message_id)
                         .join(Thread, Thread.id == Message.thread_id)
                         .where(Attachment.id == attachment_id, Attachment.patient_id == patient_id,
                                Thread.deleted_at.is_(None)))
    if att is None:
        raise NotFound("inbox_attachment_not_found")
    return att


def save_attachment(session: Session, vault: Vault, patient_id: int, attachment_id: int, category: str,
                    title: str | None = None, now: dt.datetime | None = None) -> tuple[Document, bool]:
    """Save an attachment into the record, in the category the patient chooses: a record document with
    the same bytes, stored by ``store_document`` (source "patient"). Saving it again gives the same
    document back (``False``) while it is in the record."""
    now = now or utcnow()
    if category not in docs.PATIENT_UPLOAD_TYPES:
        raise DomainError("inbox_save_category", 422, errors=[{"field": "category", "message_code": "inbox_save_category"}])
    att = patient_attachment(session, patient_id, attachment_id)
    if att.saved_document_id is not None:
        saved = session.scalar(select(Document).where(Document.id == att.saved_document_id,
                                                      Document.deleted_at.is_(None)))
        if saved is not None:
            return saved, False
    content = attachment_content(session, vault, att)
    name = attachment_name(vault, att)
    title = " ".join((title or "").split()) or _title_from(name)
    if len(title) > docs.TITLE_MAX:
        raise DomainError("invalid_request", errors=[{"field": "title", "message": f"{docs.TITLE_MAX} caractères au plus"}])
    message = session.get(Message, att.message_id)
    author = session.get(Professional, message.author_professional_id) if message and message.author_professional_id else None
    meta = docs.DocumentMeta(
        title=title, mime_type=att.mime_type, class_code=docs.PATIENT_CLASS,
        type_code=docs.PATIENT_UPLOAD_TYPES[category], type_system=docs.FR_TYPES, category=category,
        author_rpps=author.rpps if author else None, author_name=author.display_name if author else None,
        author_profession=author.profession_code if author else None,
        author_organisation=author.organisation if author else None)
    stored = docs.store_document(session, vault, patient_id, content, meta, source="patient",
                                 actor=Actor.patient(patient_id), now=now)
    att.saved_document_id = stored.document.id
    audit.record(session, actor_type="patient", actor_id=str(patient_id), action="inbox.attachment_saved",
                 patient_id=patient_id, details={"attachment_id": att.id, "document_id": stored.document.id,
                                                 "category": category}, at=now)
    session.flush()
    return stored.document, True


def _title_from(filename: str) -> str:
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    return " ".join(stem.replace("_", " ").split())[: docs.TITLE_MAX] or "Pièce jointe"


def unread_threads(session: Session, patient_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Thread).where(
        Thread.patient_id == patient_id, Thread.deleted_at.is_(None), Thread.unread_count > 0)) or 0


# --- retention ----------------------------------------------------------------------------------------------

def purge(session: Session, now: dt.datetime | None = None, *, batch: int = 500) -> int:
    """Destroy the deleted threads past their retention period (messages, attachments and tokens go with
    them). One audit entry per patient. Returns how many threads were destroyed."""
    now = now or utcnow()
    removed = 0
    while True:
        due = session.execute(select(Thread.id, Thread.patient_id).where(
            Thread.deleted_at.is_not(None), Thread.purge_after <= now).order_by(Thread.id).limit(batch)).all()
        if not due:
            return removed
        per_patient: dict[int, int] = {}
        for thread_id, patient_id in due:
            per_patient[patient_id] = per_patient.get(patient_id, 0) + 1
        # children first: SQLite may run without foreign-key cascades on other connections
        ids = [t for t, _ in due]
        messages_q = select(Message.id).where(Message.thread_id.in_(ids))
        attachment_ids = list(session.scalars(select(Attachment.id).where(Attachment.message_id.in_(messages_q))))
        session.execute(delete(Attachment).where(Attachment.message_id.in_(messages_q)))
        blobs.delete_after_commit(session, "attachments", attachment_ids)  # their bytes, once this commits
        session.execute(delete(MessageRecipient).where(MessageRecipient.message_id.in_(messages_q)))
        session.execute(update(Message).where(Message.thread_id.in_(ids)).values(in_reply_to_id=None))
        session.execute(delete(Message).where(Message.thread_id.in_(ids)))
        session.execute(delete(SearchToken).where(SearchToken.thread_id.in_(ids)))
        session.execute(delete(Participant).where(Participant.thread_id.in_(ids)))
        session.execute(delete(Thread).where(Thread.id.in_(ids)))
        for patient_id, count in sorted(per_patient.items()):
            audit.record(session, actor_type="system", actor_id=None, action="inbox.purged", patient_id=patient_id,
                         details={"count": count}, at=now)
        session.flush()
        removed += len(ids)
