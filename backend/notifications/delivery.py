"""Delivering notification records: fan-out to push and email (once per record), push sends with
retries and backoff, and the email outbox over SMTP.

These are job bodies, not services: they commit. A claim must be committed before the slow network
call so that another worker sees it; outcomes are committed in small groups (see OUTCOMES_PER_COMMIT).

Claims are conditional UPDATEs (``… WHERE id IN (…) AND claimed_at IS NULL``): the database lets one
worker win each row. On PostgreSQL the candidates are read with ``FOR UPDATE SKIP LOCKED`` so workers
take different rows instead of waiting on each other; SQLite serialises writers, and the condition is
re-checked under its write lock.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import smtplib
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from backend.accounts.models import AccountState, AuthToken, Patient, TokenKind
from backend.db import utcnow
from backend.notifications import messages, push
from backend.notifications.models import Notification, OutboxEmail, PushDelivery, PushSubscription
from backend.i18n import message
from backend.notifications.service import MANDATORY_KINDS, Preference, preferences
from backend.notifications.settings import NotificationSettings

log = logging.getLogger(__name__)


# Outcomes are committed in small groups (a commit per message costs an fsync on SQLite). A worker that
# dies mid-group leaves those rows claimed: after the lease they are sent again, and the device, which
# keys notifications by their opaque id, shows each once.
OUTCOMES_PER_COMMIT = 20


def claim_token() -> str:
    """Who holds a claim: the process, and a fresh id per batch."""
    return f"{os.getpid()}:{uuid.uuid4().hex}"


def backoff(base: dt.timedelta, cap: dt.timedelta, attempts: int, retry_after: float | None = None
            ) -> dt.timedelta:
    delay = min(base * (2 ** max(0, attempts - 1)), cap)
    if retry_after is not None:
        delay = max(delay, dt.timedelta(seconds=min(retry_after, cap.total_seconds())))
    return delay


@dataclass
class Report:
    dispatched: int = 0
    push_sent: int = 0
    push_retry: int = 0
    push_gone: int = 0
    push_failed: int = 0
    emails_sent: int = 0
    emails_retry: int = 0
    emails_failed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        out.update(self.extra)
        return out


# --- fan-out ------------------------------------------------------------------------------------------

def dispatch(session: Session, settings: NotificationSettings, *, ids: list[int] | None = None,
             now: dt.datetime | None = None, limit: int | None = None) -> int:
    """Fan due records out to push deliveries and outbox emails; each record once, whoever runs this.
    Commits. Returns how many records this call dispatched."""
    now = now or utcnow()
    stmt = select(Notification.id).where(Notification.dispatched_at.is_(None), Notification.created_at <= now)
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(ids))
    stmt = stmt.order_by(Notification.id).limit(limit or settings.batch_size).with_for_update(skip_locked=True)
    candidates = list(session.scalars(stmt))
    done = 0
    won = [notification_id for notification_id in candidates
           if session.execute(update(Notification).where(Notification.id == notification_id,
                                                         Notification.dispatched_at.is_(None))
                              .values(dispatched_at=now).execution_options(synchronize_session=False)).rowcount]
    audience: dict[int, _Audience | None] = {}
    for notification in session.scalars(select(Notification).where(Notification.id.in_(won))
                                        .order_by(Notification.id)):
        if notification.patient_id not in audience:
            audience[notification.patient_id] = _audience(session, settings, notification.patient_id, now)
        _fan_out(session, audience[notification.patient_id], notification, now)
        done += 1
    session.commit()
    return done


@dataclass
class _Audience:
    """A patient as the fan-out needs them, read once per batch."""

    state: AccountState
    email: str | None
    preferences: dict[str, Preference]
    subscription_ids: list[int]


def _audience(session: Session, settings: NotificationSettings, patient_id: int, now: dt.datetime) -> _Audience | None:
    patient = session.get(Patient, patient_id)
    if patient is None:
        return None
    subscription_ids: list[int] = []
    if settings.vapid_private_key:
        subscription_ids = list(session.scalars(
            select(PushSubscription.id).join(AuthToken, AuthToken.id == PushSubscription.auth_token_id).where(
                PushSubscription.patient_id == patient_id, AuthToken.kind == TokenKind.ACCESS,
                AuthToken.revoked_at.is_(None), AuthToken.expires_at > now - settings.push_device)))
    return _Audience(patient.state, patient.email, {p.kind: p for p in preferences(session, patient_id)},
                     subscription_ids)


def _fan_out(session: Session, audience: _Audience | None, notification: Notification, now: dt.datetime) -> None:
    if audience is None:
        return
    wanted = audience.preferences[notification.kind]
    # A closed or not yet activated account hears only what it must (an access to its record, the account).
    reachable = audience.state == AccountState.ACTIVE or notification.kind in MANDATORY_KINDS
    if not reachable:
        return
    if wanted.push:
        for subscription_id in audience.subscription_ids:
            session.add(PushDelivery(notification_id=notification.id, subscription_id=subscription_id,
                                     status="pending", next_attempt_at=now))
    if wanted.email and audience.email:
        fr_title, fr_body = messages.texts(notification.kind, notification.ref_type, "fr")
        en_title, en_body = messages.texts(notification.kind, notification.ref_type, "en")
        session.add(OutboxEmail(
            recipient=audience.email, kind="notification", patient_id=notification.patient_id, created_at=now,
            subject=f"{message('notif_email_subject', 'fr', title=fr_title)} / "
                    f"{message('notif_email_subject', 'en', title=en_title)}",
            body=(message("notif_email_body", "fr", body=fr_body) + "\n\n— English —\n\n"
                  + message("notif_email_body", "en", body=en_body)),
        ))


# --- push ---------------------------------------------------------------------------------------------

def _claim(session: Session, model: Any, due: Any, now: dt.datetime, lease: dt.timedelta, limit: int) -> str | None:
    free = or_(model.claimed_at.is_(None), model.claimed_at < now - lease)
    ids = list(session.scalars(select(model.id).where(due, free).order_by(model.id).limit(limit)
                               .with_for_update(skip_locked=True)))
    if not ids:
        session.commit()
        return None
    token = claim_token()
    session.execute(update(model).where(model.id.in_(ids), due, free).values(claimed_by=token, claimed_at=now)
                    .execution_options(synchronize_session=False))
    session.commit()
    return token


def deliver_push(session: Session, settings: NotificationSettings, *, notification_ids: list[int] | None = None,
                 now: dt.datetime | None = None, report: Report | None = None) -> Report:
    """Send every due push delivery (or those of some records), batch after batch. Commits."""
    report = report or Report()
    if not settings.vapid_private_key:
        return report
    sender = push.sender_for(settings.vapid_private_key, settings.vapid_subject, settings.push_ttl,
                             settings.push_timeout, settings.push_allow_http)
    while True:
        now_claim = now or utcnow()
        due = and_(PushDelivery.status == "pending", PushDelivery.next_attempt_at <= now_claim)
        if notification_ids is not None:
            due = and_(due, PushDelivery.notification_id.in_(notification_ids))
        token = _claim(session, PushDelivery, due, now_claim, settings.claim_lease, settings.batch_size)
        if token is None:
            return report
        rows = session.execute(
            select(PushDelivery, Notification.kind, Notification.public_id)
            .join(Notification, Notification.id == PushDelivery.notification_id)
            .where(PushDelivery.claimed_by == token).order_by(PushDelivery.id)).all()
        for done, (delivery, kind, public_id) in enumerate(rows, start=1):
            _send_one(session, settings, sender, delivery, kind, public_id, now, report)
            if done % OUTCOMES_PER_COMMIT == 0:
                session.commit()
        session.commit()


def _send_one(session: Session, settings: NotificationSettings, sender: push.PushSender, delivery: PushDelivery,
              kind: str, public_id: str, now: dt.datetime | None, report: Report) -> None:
    subscription = session.get(PushSubscription, delivery.subscription_id) if delivery.subscription_id else None
    if subscription is None:  # the device went away since the fan-out
        delivery.status, delivery.claimed_by, delivery.claimed_at = "gone", None, None
        report.push_gone += 1
        return
    urgency = "high" if kind in push.URGENT_KINDS else "normal"
    result = sender.send(subscription.endpoint, subscription.p256dh, subscription.auth,
                         push.payload(kind, public_id), urgency=urgency)
    at = now or utcnow()
    delivery.attempts += 1
    delivery.last_status = result.status
    delivery.claimed_by = None
    delivery.claimed_at = None
    if result.outcome == "sent":
        delivery.status, delivery.sent_at = "sent", at
        subscription.last_success_at = at
        report.push_sent += 1
    elif result.outcome == "gone":
        # RFC 8030: 404/410 mean the subscription expired or was unsubscribed: forget it.
        delivery.status = "gone"
        session.execute(update(PushDelivery).where(PushDelivery.subscription_id == subscription.id,
                                                   PushDelivery.status == "pending")
                        .values(status="gone").execution_options(synchronize_session=False))
        session.delete(subscription)
        report.push_gone += 1
        log.info("push subscription %s removed (push service answered %s)", subscription.id, result.status)
    elif result.outcome == "retry" and delivery.attempts < settings.push_max_attempts:
        delivery.next_attempt_at = at + backoff(settings.push_backoff, settings.push_backoff_max, delivery.attempts,
                                                result.retry_after)
        report.push_retry += 1
    else:
        delivery.status = "failed"
        report.push_failed += 1
        log.warning("push delivery %s failed for good (status %s)", delivery.id, result.status)


def forget_dead_subscriptions(session: Session, now: dt.datetime | None = None,
                              device_lifetime: dt.timedelta = dt.timedelta(0)) -> int:
    """A device signed out (revoked token), or whose session ended longer than ``device_lifetime`` ago, must
    not be pushed to: drop its subscription."""
    now = now or utcnow()
    dead = select(AuthToken.id).where(or_(AuthToken.revoked_at.is_not(None),
                                          AuthToken.expires_at <= now - device_lifetime))
    removed = session.execute(delete(PushSubscription).where(PushSubscription.auth_token_id.in_(dead))
                              .execution_options(synchronize_session=False)).rowcount or 0
    session.commit()
    return removed


# --- email outbox ------------------------------------------------------------------------------------------

def send_outbox(session: Session, settings: NotificationSettings, *, ids: list[int] | None = None,
                now: dt.datetime | None = None, report: Report | None = None) -> Report:
    """Send due outbox emails over SMTP, batch after batch. Without an SMTP host they wait. Commits."""
    report = report or Report()
    if not settings.smtp_host:
        return report
    while True:
        now_claim = now or utcnow()
        due = and_(OutboxEmail.sent_at.is_(None), OutboxEmail.failed_at.is_(None),
                   or_(OutboxEmail.next_attempt_at.is_(None), OutboxEmail.next_attempt_at <= now_claim))
        if ids is not None:
            due = and_(due, OutboxEmail.id.in_(ids))
        token = _claim(session, OutboxEmail, due, now_claim, settings.claim_lease, settings.batch_size)
        if token is None:
            return report
        rows = list(session.scalars(select(OutboxEmail).where(OutboxEmail.claimed_by == token).order_by(OutboxEmail.id)))
        from backend.notifications.mail import SmtpConnection

        try:
            with SmtpConnection(settings) as connection:
                for row in rows:
                    try:
                        outcome = connection.send(row)
                    except (smtplib.SMTPServerDisconnected, OSError):
                        outcome = "retry"
                    _record_email(settings, row, outcome, "smtp", now, report)
                    session.commit()
        except (smtplib.SMTPException, OSError) as exc:
            # The server could not be reached (or refused us): every row still claimed waits and retries.
            log.warning("SMTP server unavailable (%s): emails wait in the outbox", type(exc).__name__)
            for row in rows:
                if row.claimed_by == token and row.sent_at is None and row.failed_at is None:
                    _record_email(settings, row, "retry", "smtp_unavailable", now, report)
            session.commit()
            return report


def _record_email(settings: NotificationSettings, row: OutboxEmail, outcome: str, error: str,
                  now: dt.datetime | None, report: Report) -> None:
    at = now or utcnow()
    row.attempts += 1
    row.claimed_by = None
    row.claimed_at = None
    if outcome == "sent":
        row.sent_at = at
        row.last_error = None
        report.emails_sent += 1
    elif outcome == "retry" and row.attempts < settings.email_max_attempts:
        row.next_attempt_at = at + backoff(settings.email_backoff, dt.timedelta(hours=1), row.attempts)
        row.last_error = error
        report.emails_retry += 1
    else:
        row.failed_at = at
        row.last_error = "refused" if outcome == "failed" else error
        report.emails_failed += 1
