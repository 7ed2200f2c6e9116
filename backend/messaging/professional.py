"""The professional's side of the secure inbox (MSSanté-like, reached over FHIR by their software): find the
patient, start a conversation or answer in one, end it or close replies, search their messages and read
them and their attachments (each read in the patient's access history). Every write is decided by the one
policy (``access.authorize_write``) before anything is written; nothing here imports Flask.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from backend.accounts.models import Patient
from backend.audit import service as audit
from backend.db import utcnow
from backend.errors import DomainError, Forbidden, NotFound
from backend.messaging.models import Attachment, Message, MessageRecipient, Participant, Thread
from backend.professionals.models import Professional
from backend.records.access.authorize import authorize_write
from backend.records.crypto import Vault
from backend.records.access.policy import Action, Actor
from backend.messaging.service import (InboxSettings, Outgoing, check_body, check_subject, details_of, index_thread,
                                      participants_of, post_message, prepare_outgoing, seal_thread)


def find_recipient(session: Session, ins_oid: str, nir: str) -> Patient:
    """The patient known by this INS (a test identity is not a production one). Whether one may write to
    them is the policy's to say (MESSAGE_SEND: an opposed or closed profile answers as an unknown one)."""
    patient = session.scalar(select(Patient).where(Patient.nir == nir, Patient.ins_oid == ins_oid))
    if patient is None:
        raise DomainError("inbox_unknown_patient", 422)
    return patient


def _may_write(session: Session, pro: Professional, patient_id: int, now: dt.datetime,
               thread_id: int | None = None) -> None:
    """MESSAGE_SEND for a professional: refused when the patient blocked them (traced, 403), and for a
    profile refused or closed (the same answer as an unknown patient)."""
    authorize_write(session, Actor.of_professional(pro), patient_id, Action.MESSAGE_SEND,
                    details={"thread_id": thread_id} if thread_id else None,
                    concealed=DomainError("inbox_unknown_patient", 422), now=now)


def start_thread(session: Session, vault: Vault, settings: InboxSettings, pro: Professional, patient: Patient,
                 subject: str, outgoing: Outgoing, *, copies: Sequence[Professional] = (),
                 establishment: str | None = None, replies_allowed: bool = True,
                 now: dt.datetime | None = None) -> Message:
    """A professional (for themselves or an establishment) writes to a patient: a new conversation."""
    now = now or utcnow()
    _may_write(session, pro, patient.id, now)
    subject = check_subject(subject)
    body = check_body(outgoing.body, bool(outgoing.files))
    prepared = prepare_outgoing(session, vault, settings, patient.id, outgoing, by_patient=False)
    establishment = " ".join((establishment or "").split())[:300] or None
    thread = Thread(patient_id=patient.id, professional_id=pro.id, establishment=establishment,
                    started_by="professional", replies_allowed=replies_allowed, created_at=now,
                    last_message_at=now)
    seal_thread(session, vault, thread, subject)
    copied = [c for c in dict.fromkeys(copies) if c.id != pro.id]
    session.add(Participant(thread_id=thread.id, professional_id=pro.id, role="sender", added_at=now))
    session.add_all([Participant(thread_id=thread.id, professional_id=c.id, role="copy", added_at=now) for c in copied])
    index_thread(session, vault, thread, subject, pro)
    return post_message(session, vault, thread, author_kind="professional", author=pro, body=body, prepared=prepared,
                 recipients=[c.id for c in copied], in_reply_to_id=None, reply_all=False, now=now)


def _visible_to(pro_id: int) -> Any:
    """A message a professional may read: theirs, or one addressed to them."""
    return or_(Message.author_professional_id == pro_id,
               exists().where(MessageRecipient.message_id == Message.id, MessageRecipient.professional_id == pro_id))


def professional_message(session: Session, pro: Professional, message_id: int) -> tuple[Message, Thread]:
    """A message the professional may read, with its thread; "not found" for anything else."""
    row = session.execute(select(Message, Thread).join(Thread, Thread.id == Message.thread_id)
                          .where(Message.id == message_id, _visible_to(pro.id))).one_or_none()
    if row is None:
        raise NotFound("inbox_message_not_found")
    return row[0], row[1]


def post_in_thread(session: Session, vault: Vault, settings: InboxSettings, pro: Professional, message_id: int,
                   outgoing: Outgoing, *, replies_allowed: bool | None = None,
                   now: dt.datetime | None = None) -> Message:
    """A professional of the thread writes in it again (``message_id``: the message answered)."""
    now = now or utcnow()
    answered, thread = professional_message(session, pro, message_id)
    participants = participants_of(session, thread.id)
    if pro.id not in participants:
        raise NotFound("inbox_message_not_found")
    _may_write(session, pro, thread.patient_id, now, thread.id)
    if thread.ended_at is not None:
        raise DomainError("inbox_conversation_ended", 409)
    body = check_body(outgoing.body, bool(outgoing.files))
    prepared = prepare_outgoing(session, vault, settings, thread.patient_id, outgoing, by_patient=False)
    if replies_allowed is not None and replies_allowed != thread.replies_allowed:
        _set_replies(session, pro, thread, replies_allowed, participants, now)
    return post_message(session, vault, thread, author_kind="professional", author=pro, body=body, prepared=prepared,
                 recipients=[p for p in participants if p != pro.id], in_reply_to_id=answered.id,
                 reply_all=False, now=now)


def _owned_thread(session: Session, pro: Professional, message_id: int) -> tuple[Thread, dict[int, str]]:
    _, thread = professional_message(session, pro, message_id)
    participants = participants_of(session, thread.id)
    if pro.id not in participants:
        raise NotFound("inbox_message_not_found")
    if thread.professional_id != pro.id:
        raise Forbidden("inbox_not_thread_owner")
    authorize_write(session, Actor.of_professional(pro), thread.patient_id, Action.CONVERSATION,
                    details={"thread_id": thread.id}, concealed=NotFound("inbox_message_not_found"))
    return thread, participants


def end_conversation(session: Session, pro: Professional, message_id: int, now: dt.datetime | None = None) -> Thread:
    """The owner ends the conversation: nobody writes in it any more (idempotent)."""
    now = now or utcnow()
    thread, _ = _owned_thread(session, pro, message_id)
    if thread.ended_at is None:
        thread.ended_at = now
        audit.record(session, actor_type="professional", actor_id=pro.rpps, action="inbox.conversation_ended",
                     patient_id=thread.patient_id, details={"thread_id": thread.id}, at=now)
        session.flush()
    return thread


def set_replies(session: Session, pro: Professional, message_id: int, allowed: bool,
                now: dt.datetime | None = None) -> Thread:
    """The owner forbids (or allows again) the patient's replies (idempotent)."""
    now = now or utcnow()
    thread, participants = _owned_thread(session, pro, message_id)
    if thread.replies_allowed != allowed:
        _set_replies(session, pro, thread, allowed, participants, now)
    return thread


def _set_replies(session: Session, pro: Professional, thread: Thread, allowed: bool, participants: dict[int, str],
                 now: dt.datetime) -> None:
    if thread.professional_id != pro.id:
        raise Forbidden("inbox_not_thread_owner")
    thread.replies_allowed = allowed
    audit.record(session, actor_type="professional", actor_id=pro.rpps,
                 action="inbox.replies_allowed" if allowed else "inbox.replies_forbidden",
                 patient_id=thread.patient_id, details={"thread_id": thread.id}, at=now)
    session.flush()


@dataclass(frozen=True)
class ProSearch:
    patient_id: int | None = None
    thread_id: int | None = None
    author_kind: str | None = None          # patient | professional
    sent_from: dt.datetime | None = None    # inclusive
    sent_until: dt.datetime | None = None   # exclusive


@dataclass
class ProMessages:
    rows: list[tuple[Message, Thread, Patient]]
    attachments: dict[int, list[Attachment]]
    professionals: dict[int, Professional]
    recipients: dict[int, list[int]]
    next_before: int | None


def professional_messages(session: Session, pro: Professional, search: ProSearch, *, limit: int,
                          before_id: int | None = None) -> ProMessages:
    """The messages a professional may read, newest first, keyset-paginated on the id. Fixed queries."""
    stmt = (select(Message, Thread, Patient).join(Thread, Thread.id == Message.thread_id)
            .join(Patient, Patient.id == Message.patient_id).where(_visible_to(pro.id)))
    if search.patient_id is not None:
        stmt = stmt.where(Message.patient_id == search.patient_id)
    if search.thread_id is not None:
        stmt = stmt.where(Message.thread_id == search.thread_id)
    if search.author_kind is not None:
        stmt = stmt.where(Message.author_kind == search.author_kind)
    if search.sent_from is not None:
        stmt = stmt.where(Message.sent_at >= search.sent_from)
    if search.sent_until is not None:
        stmt = stmt.where(Message.sent_at < search.sent_until)
    if before_id is not None:
        stmt = stmt.where(Message.id < before_id)
    rows = [tuple(r) for r in session.execute(stmt.order_by(Message.id.desc()).limit(limit + 1))]
    page = rows[:limit]
    more = len(rows) > limit
    found = details_of(session, [m for m, _, _ in page], [t for _, t, _ in page])
    return ProMessages(page, *found, next_before=page[-1][0].id if more and page else None)  # type: ignore[arg-type]


def record_professional_read(session: Session, pro: Professional, messages: Sequence[Message],
                             now: dt.datetime | None = None) -> None:
    """Every read by a professional goes to the patient's audit trail (one entry per patient read), and
    the patient's messages addressed to them are marked read (the patient sees it)."""
    now = now or utcnow()
    by_patient: dict[int, list[Message]] = {}
    for m in messages:
        by_patient.setdefault(m.patient_id, []).append(m)
    for patient_id, items in sorted(by_patient.items()):
        audit.record(session, actor_type="professional", actor_id=pro.rpps, action="inbox.read", patient_id=patient_id,
                     purpose="TREAT", details={"count": len(items), "message_ids": sorted(m.id for m in items),
                                               "thread_ids": sorted({m.thread_id for m in items})}, at=now)
    unread = [m.id for m in messages if m.author_kind == "patient" and m.read_at is None]
    if unread:
        session.execute(update(Message).where(Message.id.in_(unread), Message.read_at.is_(None)).values(read_at=now))
        for m in messages:
            if m.id in unread:
                m.read_at = now
    session.flush()


def professional_attachment(session: Session, pro: Professional, message_id: int, attachment_id: int
                            ) -> tuple[Attachment, Message]:
    message, _ = professional_message(session, pro, message_id)
    att = session.scalar(select(Attachment).where(Attachment.id == attachment_id, Attachment.message_id == message.id))
    if att is None:
        raise NotFound("inbox_attachment_not_found")
    return att, message


def record_attachment_read(session: Session, pro: Professional, att: Attachment, now: dt.datetime | None = None) -> None:
    audit.record(session, actor_type="professional", actor_id=pro.rpps, action="inbox.attachment_read",
                 patient_id=att.patient_id, purpose="TREAT",
                 details={"attachment_id": att.id, "message_id": att.message_id}, at=now or utcnow())
