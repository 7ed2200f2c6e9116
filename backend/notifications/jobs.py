"""Periodic jobs, each acting once per due item however many workers run them.

- ``deliver``: fan due records out, send due pushes (with retries) and the email outbox.
- ``reminders``: every registered reminder source (appointment reminders, consent renewals, the 90-day
  connected-services review…) yields due items; each becomes one notification, once.
- ``activation_expiry``: pre-created accounts whose activation code expired without an objection: the
  opposition period is over, the profile is created; the patient is told and the audit trail records it.
- ``retention_purge``: closed accounts past their retention period are destroyed (once a day).

Once-per-item rests on the database: a :class:`JobClaim` row per (job, item) under a unique constraint,
inserted in the same transaction as the item's effects. A second worker's insert waits for the first
one's commit and then fails, so it skips the item; if the first one rolls back, the item is still due.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import AccountState, ActivationCode, Patient
from backend.db import utcnow
from backend.notifications import delivery
from backend.notifications.models import JobClaim
from backend.notifications.service import KINDS, notify
from backend.notifications.settings import NotificationSettings

log = logging.getLogger(__name__)


def claim_once(session: Session, job: str, item_key: str, *, patient_id: int | None = None,
               claimed_by: str | None = None, now: dt.datetime | None = None) -> bool:
    """Claim an item for this transaction. False when another worker has (or had) it: the transaction
    is then rolled back, so call this first, in a transaction of its own per item."""
    session.add(JobClaim(job=job[:64], item_key=_short(item_key), patient_id=patient_id,
                         claimed_by=(claimed_by or delivery.claim_token())[:64], claimed_at=now or utcnow()))
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return False
    return True


def _short(key: str, size: int = 128) -> str:
    if len(key) <= size:
        return key
    return key[: size - 65] + ":" + hashlib.sha256(key.encode()).hexdigest()


# --- the reminder registry ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Due:
    """One reminder to send. ``key`` identifies it within its source, for ever: the same key is never
    notified twice (e.g. f"{consent_id}:renew" or f"{patient_id}:{window}" for a 90-day cycle)."""

    patient_id: int
    key: str
    kind: str
    ref_type: str | None = None
    ref_id: str | int | None = None


ReminderSource = Callable[[Session, dt.datetime], Iterable[Due]]
_sources: dict[str, ReminderSource] = {}


def reminder_source(name: str) -> Callable[[ReminderSource], ReminderSource]:
    """Register ``fn(session, now) -> Iterable[Due]``; the ``reminders`` job calls it periodically.
    The function only reads: it says what is due, the job notifies each item once."""

    def register(fn: ReminderSource) -> ReminderSource:
        if name in _sources and _sources[name] is not fn:
            raise ValueError(f"reminder source {name!r} registered twice")
        _sources[name] = fn
        return fn

    return register


def unregister_source(name: str) -> None:
    _sources.pop(name, None)


def source_names() -> list[str]:
    return sorted(_sources)


def cycle_index(anchor: dt.datetime, now: dt.datetime, days: int = 90) -> int:
    """Which ``days``-long cycle since ``anchor`` we are in (0 during the first): a periodic reminder's
    key, e.g. the connected-services review every 90 days after the first connection."""
    return max(0, (now - anchor) // dt.timedelta(days=days))


def run_reminders(session: Session, settings: NotificationSettings, now: dt.datetime | None = None
                  ) -> dict[str, Any]:
    now = now or utcnow()
    worker = delivery.claim_token()
    sent: dict[str, int] = {}
    for name in source_names():
        items = list(_sources[name](session, now))
        session.rollback()  # the source only read: end its transaction before claiming
        count = 0
        for item in items:
            if item.kind not in KINDS:
                raise ValueError(f"reminder source {name!r} yielded unknown kind {item.kind!r}")
            if not claim_once(session, f"reminder:{name}", item.key, patient_id=item.patient_id,
                              claimed_by=worker, now=now):
                continue
            notify(session, item.patient_id, item.kind, ref_type=item.ref_type, ref_id=item.ref_id,
                   dedupe_key=_short(f"{name}:{item.key}"), now=now)
            session.commit()
            count += 1
        sent[name] = count
    return {"reminders": sent}


# --- activation codes that expired -------------------------------------------------------------------

def run_activation_expiry(session: Session, settings: NotificationSettings, now: dt.datetime | None = None
                          ) -> dict[str, Any]:
    from backend.audit import service as audit

    now = now or utcnow()
    worker = delivery.claim_token()
    expired = session.execute(
        select(ActivationCode.id, ActivationCode.patient_id).join(Patient, Patient.id == ActivationCode.patient_id)
        .where(Patient.state == AccountState.PRECREATED, ActivationCode.used_at.is_(None),
               ActivationCode.expires_at <= now).order_by(ActivationCode.id).limit(settings.batch_size * 10)).all()
    session.rollback()
    done = 0
    for code_id, patient_id in expired:
        if not claim_once(session, "activation_expiry", f"code:{code_id}", patient_id=patient_id,
                          claimed_by=worker, now=now):
            continue
        notify(session, patient_id, "account", ref_type="activation_code_expired",
               dedupe_key=f"activation_code_expired:{code_id}", now=now)
        audit.record(session, actor_type="system", actor_id=None, action="account.opposition_period_ended",
                     patient_id=patient_id, details={"activation_code_id": code_id}, at=now)
        session.commit()
        done += 1
    return {"activation_codes_expired": done}


# --- retention -------------------------------------------------------------------------------------------

def run_retention_purge(session: Session, settings: NotificationSettings, now: dt.datetime | None = None
                        ) -> dict[str, Any]:
    from backend.accounts.service import purge_retention

    now = now or utcnow()
    if not claim_once(session, "retention_purge", now.date().isoformat(), now=now):
        return {"retention_purge": "already done today"}
    report = purge_retention(session, now)
    session.commit()
    return {"retention_purge": {"patients_removed": len(report.patients_removed),
                                "audit_details_erased": report.audit_details_erased,
                                "emails_removed": report.emails_removed}}


# --- delivery ---------------------------------------------------------------------------------------------

def run_delivery(session: Session, settings: NotificationSettings, now: dt.datetime | None = None
                 ) -> dict[str, Any]:
    report = delivery.Report()
    while True:
        dispatched = delivery.dispatch(session, settings, now=now)
        report.dispatched += dispatched
        if dispatched < settings.batch_size:
            break
    report.extra["subscriptions_forgotten"] = delivery.forget_dead_subscriptions(session, now, settings.push_device)
    delivery.deliver_push(session, settings, now=now, report=report)
    delivery.send_outbox(session, settings, now=now, report=report)
    return report.as_dict()


JOBS: dict[str, Callable[[Session, NotificationSettings, dt.datetime | None], dict[str, Any]]] = {
    "deliver": run_delivery,
    "reminders": run_reminders,
    "activation_expiry": run_activation_expiry,
    "retention_purge": run_retention_purge,
}
