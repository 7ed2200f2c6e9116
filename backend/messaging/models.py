"""The secure inbox: conversations between a patient and professionals, their messages and attachments.

What a message says is sealed with the patient's data key (``records.crypto.Vault``), each ciphertext
bound to its row by its AES-GCM context: a thread's subject (``inbox-thread:<id>:subject``), a message's
text (``inbox-message:<id>``), an attachment's file name (``inbox-attachment:<id>:name``) and bytes
(``inbox-attachment:<id>``, in the blob store). What stays in clear is what routing needs: who, when, sizes and types,
read and archive marks. Searching sealed subjects goes through keyed tokens (``SearchToken``).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, utcnow


class Thread(Base):
    """A conversation between one patient and the professionals taking part in it.

    ``professional_id`` is its owner: the professional who started it, or the one the patient wrote to.
    Patient-side marks (unread count, archive, soft delete) live here: a thread belongs to one patient.
    """

    __tablename__ = "inbox_thread"
    __table_args__ = (
        Index("ix_inbox_thread_patient_listing", "patient_id", "deleted_at", "archived_at", "last_message_at"),
        Index("ix_inbox_thread_purge_after", "purge_after"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    professional_id: Mapped[int] = mapped_column(ForeignKey("professional.id"), index=True)
    # the establishment on whose behalf the first message was sent (directory data, not health data)
    establishment: Mapped[str | None] = mapped_column(String(300))
    started_by: Mapped[str] = mapped_column(String(16))  # professional | patient
    subject_sealed: Mapped[str] = mapped_column(Text)
    replies_allowed: Mapped[bool] = mapped_column(default=True)
    ended_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_message_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # no foreign keys: the message rows point back here
    first_message_id: Mapped[int | None]  # the conversation's root (FHIR Communication.partOf)
    last_message_id: Mapped[int | None]
    message_count: Mapped[int] = mapped_column(default=0)
    attachment_count: Mapped[int] = mapped_column(default=0)
    unread_count: Mapped[int] = mapped_column(default=0)  # professionals' messages the patient has not read
    archived_at: Mapped[dt.datetime | None]
    deleted_at: Mapped[dt.datetime | None]      # the patient deleted it: hidden, kept until purge_after
    purge_after: Mapped[dt.datetime | None]


class Participant(Base):
    """A professional taking part in a thread: its owner ("sender") or one in copy ("copy")."""

    __tablename__ = "inbox_participant"
    __table_args__ = (Index("ix_inbox_participant_professional", "professional_id", "thread_id"),)

    thread_id: Mapped[int] = mapped_column(ForeignKey("inbox_thread.id", ondelete="CASCADE"), primary_key=True)
    professional_id: Mapped[int] = mapped_column(ForeignKey("professional.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(8))  # sender | copy
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "inbox_message"
    __table_args__ = (
        Index("ix_inbox_message_thread", "thread_id", "id"),
        Index("ix_inbox_message_patient_author", "patient_id", "author_professional_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("inbox_thread.id", ondelete="CASCADE"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    author_kind: Mapped[str] = mapped_column(String(16))  # professional | patient
    author_professional_id: Mapped[int | None] = mapped_column(ForeignKey("professional.id"))
    in_reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("inbox_message.id", ondelete="SET NULL"))
    reply_all: Mapped[bool] = mapped_column(default=False)
    body_sealed: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # a professional's message: when the patient read it (the sender's read receipt);
    # the patient's message: when a professional it was addressed to first read it
    read_at: Mapped[dt.datetime | None]


class MessageRecipient(Base):
    """The professionals a message is addressed to (the patient receives every professional's message)."""

    __tablename__ = "inbox_message_recipient"
    __table_args__ = (Index("ix_inbox_message_recipient_professional", "professional_id", "message_id"),)

    message_id: Mapped[int] = mapped_column(ForeignKey("inbox_message.id", ondelete="CASCADE"), primary_key=True)
    professional_id: Mapped[int] = mapped_column(ForeignKey("professional.id"), primary_key=True)


class Attachment(Base):
    """A file sent with a message: sealed name here, sealed bytes in the blob store
    (``blobs.attachment_key(id)``, ``backend/blobs.py``)."""

    __tablename__ = "inbox_attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("inbox_message.id", ondelete="CASCADE"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    name_sealed: Mapped[str] = mapped_column(Text)
    mime_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    # a document of the record the patient attached; the record document it was saved as
    source_document_id: Mapped[int | None] = mapped_column(ForeignKey("document.id", ondelete="SET NULL"))
    saved_document_id: Mapped[int | None] = mapped_column(ForeignKey("document.id", ondelete="SET NULL"))


class SearchToken(Base):
    """Keyed tokens (HMAC with a key derived from the patient's data key) of the prefixes of the words of
    a thread's subject and sender: search without the server holding the subject in clear."""

    __tablename__ = "inbox_search_token"
    __table_args__ = (Index("ix_inbox_search_token_token", "token", "thread_id"),)

    thread_id: Mapped[int] = mapped_column(ForeignKey("inbox_thread.id", ondelete="CASCADE"), primary_key=True)
    token: Mapped[str] = mapped_column(String(32), primary_key=True)
