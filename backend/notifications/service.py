"""Notification records and what the patient does with them: the in-app centre (the channel that never
fails) and the preferences per kind. Delivery by push and email is in ``delivery.py``.

No Flask here: functions take a Session and only flush; the caller commits.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, bindparam, cast, event, func, or_, select, update
from sqlalchemy.orm import Session

from backend.db import utcnow
from backend.errors import DomainError, NotFound
from backend.notifications import messages
from backend.notifications.models import Notification, NotificationPreference
from backend.records.documents.models import Document

# Kinds the patient can switch off, and the ones they cannot (any professional or emergency access).
SWITCHABLE_KINDS = ("message", "document", "appointment", "service", "screening")
MANDATORY_KINDS = ("professional_access", "emergency_access", "account")
KINDS = SWITCHABLE_KINDS + MANDATORY_KINDS
CHANNELS = ("push", "email")


# built once: ITI-67 asks it on every search (the day's access notification of a professional in a record)
_BY_DEDUPE_KEY = select(Notification).where(Notification.dedupe_key == bindparam("dedupe_key"))


def notify(session: Session, patient_id: int, kind: str, *, ref_type: str | None = None, ref_id: str | int | None = None,
           dedupe_key: str | None = None, now: dt.datetime | None = None) -> Notification:
    """Record that something happened for a patient. ``dedupe_key`` makes it idempotent (one reminder per
    appointment and offset, say). Flushes; the caller commits with its action.

    ``now`` is when the notification is due: a reminder written ahead is delivered (and shown in the centre)
    at that time by the periodic dispatch job; one due already is dispatched right after the commit."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    if dedupe_key is not None:
        existing = session.scalar(_BY_DEDUPE_KEY, {"dedupe_key": dedupe_key})
        if existing is not None:
            return existing
        if session.get_bind().dialect.name == "postgresql":
            return _notify_once(session, patient_id, kind, ref_type, ref_id, dedupe_key, now)
    notification = Notification(patient_id=patient_id, kind=kind, ref_type=ref_type,
                                ref_id=None if ref_id is None else str(ref_id), dedupe_key=dedupe_key,
                                created_at=now or utcnow())
    session.add(notification)
    session.flush()
    if notification.created_at <= utcnow():
        _dispatch_after_commit(session, notification.id)
    return notification


def _notify_once(session: Session, patient_id: int, kind: str, ref_type: str | None, ref_id: str | int | None,
                 dedupe_key: str, now: dt.datetime | None) -> Notification:
    """Two transactions notifying the same key at once (two searches of one professional in one record, the
    day's first): the second waits on the unique index, inserts nothing, then reads the first one's row."""
    from sqlalchemy.dialects.postgresql import insert

    created = session.scalars(insert(Notification).values(
        patient_id=patient_id, kind=kind, ref_type=ref_type, ref_id=None if ref_id is None else str(ref_id),
        dedupe_key=dedupe_key, created_at=now or utcnow()).on_conflict_do_nothing(
        index_elements=[Notification.dedupe_key]).returning(Notification)).one_or_none()
    if created is None:
        existing = session.scalar(_BY_DEDUPE_KEY, {"dedupe_key": dedupe_key})
        assert existing is not None
        return existing
    if created.created_at <= utcnow():
        _dispatch_after_commit(session, created.id)
    return created


# --- dispatch right after the commit (one task per transaction, whatever the number of records) ---------

_PENDING_KEY = "carnet.notifications.pending"
# The task that fans records out right after their commit. It lives above this module (in
# ``backend.notifications.tasks``, which registers it when the app loads it): without one, the periodic
# ``deliver`` job still delivers every record, later.
_dispatch_task: Callable[[list[int]], Any] | None = None


def dispatch_with(task: Callable[[list[int]], Any]) -> None:
    global _dispatch_task
    _dispatch_task = task


class _DispatchAfterCommit:
    """Enqueued once per transaction; by commit time it holds every record the transaction notified."""

    name = "backend.notifications.tasks.dispatch_notifications"

    def __init__(self, session: Session) -> None:
        self.session = session

    def __call__(self) -> None:
        ids = self.session.info.pop(_PENDING_KEY, [])
        if ids and _dispatch_task is not None:
            _dispatch_task(ids)


def _dispatch_after_commit(session: Session, notification_id: int) -> None:
    from backend.tasks import enqueue_after_commit

    if _PENDING_KEY not in session.info:
        session.info[_PENDING_KEY] = []
        enqueue_after_commit(session, _DispatchAfterCommit(session))
    session.info[_PENDING_KEY].append(notification_id)


@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


# --- the in-app centre -------------------------------------------------------------------------------------

def _due(patient_id: int, now: dt.datetime, for_representative: bool = False) -> Any:
    """The patient's notifications due by now; read by a minor's legal representative, none about a document
    flagged INVISIBLE_REPRESENTANTS_LEGAUX (the minor's secrecy)."""
    due = and_(Notification.patient_id == patient_id, Notification.created_at <= now)
    if not for_representative:
        return due
    secret = select(cast(Document.id, String)).where(Document.patient_id == patient_id,
                                                     Document.invisible_legal_representatives.is_(True))
    return and_(due, or_(Notification.ref_type.is_(None), Notification.ref_type != "document",
                         Notification.ref_id.is_(None), Notification.ref_id.not_in(secret)))


def list_notifications(session: Session, patient_id: int, *, limit: int, after_id: int | None = None,
                       unread_only: bool = False, now: dt.datetime | None = None,
                       for_representative: bool = False) -> list[Notification]:
    """Newest first. ``after_id`` is the last record of the previous page (keyset on (created_at, id))."""
    now = now or utcnow()
    stmt = select(Notification).where(_due(patient_id, now, for_representative))
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    if after_id is not None:
        anchor = session.scalar(select(Notification.created_at).where(Notification.id == after_id,
                                                                      Notification.patient_id == patient_id))
        if anchor is None:
            return []
        stmt = stmt.where(or_(Notification.created_at < anchor,
                              and_(Notification.created_at == anchor, Notification.id < after_id)))
    stmt = stmt.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def unread_count(session: Session, patient_id: int, now: dt.datetime | None = None, *,
                 for_representative: bool = False) -> int:
    now = now or utcnow()
    return session.scalar(select(func.count()).select_from(Notification).where(
        _due(patient_id, now, for_representative), Notification.read_at.is_(None))) or 0


def get_notification(session: Session, patient_id: int, public_id: str, now: dt.datetime | None = None, *,
                     for_representative: bool = False) -> Notification:
    now = now or utcnow()
    row = session.scalar(select(Notification).where(_due(patient_id, now, for_representative),
                                                    Notification.public_id == public_id))
    if row is None:
        raise NotFound("notification_not_found")
    return row


def mark_read(session: Session, patient_id: int, public_id: str, now: dt.datetime | None = None, *,
              for_representative: bool = False) -> Notification:
    now = now or utcnow()
    row = get_notification(session, patient_id, public_id, now, for_representative=for_representative)
    if row.read_at is None:
        row.read_at = now
        session.flush()
    return row


def mark_all_read(session: Session, patient_id: int, now: dt.datetime | None = None, *,
                  for_representative: bool = False) -> int:
    now = now or utcnow()
    result = session.execute(update(Notification).where(_due(patient_id, now, for_representative),
                                                        Notification.read_at.is_(None))
                             .values(read_at=now))
    return result.rowcount or 0


def describe(notification: Notification, lang: str | None = None) -> dict[str, Any]:
    """The centre's view of a record: generic texts in the reader's language, the reference to open."""
    title, body = messages.texts(notification.kind, notification.ref_type, lang)
    return {"id": notification.public_id, "kind": notification.kind, "title": title, "body": body,
            "ref_type": notification.ref_type, "ref_id": notification.ref_id,
            "created_at": notification.created_at, "read_at": notification.read_at,
            "read": notification.read_at is not None}


# --- preferences ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Preference:
    kind: str
    push: bool
    email: bool

    @property
    def switchable(self) -> bool:
        return self.kind in SWITCHABLE_KINDS


def preferences(session: Session, patient_id: int) -> list[Preference]:
    """Every kind, in the order the settings screen shows them; mandatory kinds are always on."""
    rows = {p.kind: p for p in session.scalars(
        select(NotificationPreference).where(NotificationPreference.patient_id == patient_id))}
    out = []
    for kind in KINDS:
        row = rows.get(kind)
        if kind in MANDATORY_KINDS or row is None:
            out.append(Preference(kind, True, True))
        else:
            out.append(Preference(kind, row.push, row.email))
    return out


def channels_for(session: Session, patient_id: int, kind: str) -> Preference:
    if kind in MANDATORY_KINDS:
        return Preference(kind, True, True)
    row = session.scalar(select(NotificationPreference).where(NotificationPreference.patient_id == patient_id,
                                                              NotificationPreference.kind == kind))
    return Preference(kind, True, True) if row is None else Preference(kind, row.push, row.email)


def set_preference(session: Session, patient_id: int, kind: str, *, push: bool | None = None,
                   email: bool | None = None, now: dt.datetime | None = None) -> Preference:
    """Switch a kind on or off per channel. Professional and emergency access (and account security)
    cannot be switched off: the refusal says so."""
    from backend.audit import service as audit

    now = now or utcnow()
    if kind not in KINDS:
        raise NotFound("notification_kind_unknown")
    if kind in MANDATORY_KINDS:
        if push is False or email is False:
            field = "push" if push is False else "email"
            raise DomainError("notification_kind_mandatory", 422, label=messages.kind_label(kind),
                              errors=[{"field": field, "message_code": "notification_kind_mandatory",
                                       "params": {"label": messages.kind_label(kind)}}])
        return Preference(kind, True, True)
    row = session.scalar(select(NotificationPreference).where(NotificationPreference.patient_id == patient_id,
                                                              NotificationPreference.kind == kind))
    if row is None:
        row = NotificationPreference(patient_id=patient_id, kind=kind, push=True, email=True)
        session.add(row)
    if push is not None:
        row.push = push
    if email is not None:
        row.email = email
    row.updated_at = now
    session.flush()
    audit.record(session, actor_type="patient", actor_id=patient_id, action="notifications.preferences_changed",
                 patient_id=patient_id, details={"kind": kind, "push": row.push, "email": row.email}, at=now)
    return Preference(kind, row.push, row.email)
