"""Notification records, their delivery (Web Push per device, the email outbox), the patient's
preferences, and the claims that make a periodic job act once per due item across workers."""
from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, utcnow


def new_public_id() -> str:
    """The opaque identifier a push payload carries: random, so it says nothing (not even a count)."""
    return secrets.token_urlsafe(16)


class OutboxEmail(Base):
    """An email written in the same transaction as the action; a job sends it over SMTP.

    ``claimed_by``/``claimed_at`` mark a row a sender is working on (a conditional UPDATE, so one
    sender only); ``next_attempt_at`` spaces retries; ``failed_at`` ends them.
    """

    __tablename__ = "outbox_email"
    __table_args__ = (Index("ix_outbox_email_pending", "sent_at", "failed_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    patient_id: Mapped[int | None] = mapped_column(index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime | None]
    failed_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(64))  # a short code, never content


class Notification(Base):
    """A notification record: what happened, for whom, never the health data itself.

    Features create them with :func:`backend.notifications.service.notify`; the notifications feature
    delivers them (in-app centre, push, email) according to the patient's preferences. A record whose
    ``created_at`` is in the future (a reminder written ahead) is delivered, and shown, once it is due.
    """

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_dispatch", "dispatched_at", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))          # see backend.notifications.service.KINDS
    ref_type: Mapped[str | None] = mapped_column(String(32))  # e.g. "document", "message", "appointment"
    ref_id: Mapped[str | None] = mapped_column(String(64))    # an opaque identifier, never content
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    read_at: Mapped[dt.datetime | None]
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    # set once, by the one worker that fans the record out to push and email
    dispatched_at: Mapped[dt.datetime | None]


class PushSubscription(Base):
    """A Web Push subscription (RFC 8030/8291) of one signed-in device: it lives and dies with the
    device's access token."""

    __tablename__ = "push_subscription"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    auth_token_id: Mapped[int] = mapped_column(ForeignKey("auth_token.id", ondelete="CASCADE"), unique=True)
    endpoint: Mapped[str] = mapped_column(String(1024))
    endpoint_hash: Mapped[str] = mapped_column(String(64), unique=True)
    p256dh: Mapped[str] = mapped_column(String(128))
    auth: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_success_at: Mapped[dt.datetime | None]


class PushDelivery(Base):
    """One notification to one device. Claimed by one worker at a time; retried with backoff."""

    __tablename__ = "push_delivery"
    __table_args__ = (
        UniqueConstraint("notification_id", "subscription_id"),
        Index("ix_push_delivery_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notification.id", ondelete="CASCADE"), index=True)
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("push_subscription.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | sent | gone | failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]
    last_status: Mapped[int | None]  # the push service's HTTP status, for operators


class NotificationPreference(Base):
    """The patient's choice for one kind; no row means the default (every channel on)."""

    __tablename__ = "notification_preference"
    __table_args__ = (UniqueConstraint("patient_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    push: Mapped[bool] = mapped_column(Boolean, default=True)
    email: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class JobClaim(Base):
    """A periodic job's item, done once: inserting (job, item_key) is the claim, and the unique
    constraint makes a second worker's insert fail (it waits for the first one's commit, then skips)."""

    __tablename__ = "notification_job_claim"
    __table_args__ = (UniqueConstraint("job", "item_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    item_key: Mapped[str] = mapped_column(String(128))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    claimed_by: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
