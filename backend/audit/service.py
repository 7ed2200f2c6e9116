"""The single writer of the audit trail, and its verification.

Every feature calls :func:`record` in the same transaction as the action it records. Writers are
serialised on the ``audit_head`` row (a row lock on PostgreSQL, the write lock on SQLite), so the
chain has no forks.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.audit.models import AuditEntry, AuditHead
from backend.db import utcnow

GENESIS = "0" * 64


def canonical(details: dict[str, Any] | None) -> str | None:
    if details is None:
        return None
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _digest(text: str | None) -> str:
    return hashlib.sha256((text or "").encode()).hexdigest()


def entry_hash(seq: int, at: dt.datetime, actor_type: str, actor_id: str | None, action: str,
               patient_id: int | None, purpose: str | None, details_digest: str, prev_hash: str) -> str:
    material = json.dumps(
        [seq, at.astimezone(dt.timezone.utc).isoformat(), actor_type, actor_id, action, patient_id, purpose,
         details_digest, prev_hash],
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode()).hexdigest()


def ensure_head(session: Session) -> None:
    if session.get(AuditHead, 1) is None:
        session.add(AuditHead(id=1, seq=0, hash=GENESIS))
        session.flush()


def record(
    session: Session,
    *,
    actor_type: str,
    actor_id: str | int | None,
    action: str,
    patient_id: int | None = None,
    purpose: str | None = None,
    details: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> AuditEntry:
    """Append one entry. Flushes; the caller's transaction commits it with the action."""
    # Take the lock first (UPDATE), then read the previous hash under it.
    row = session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1)
        .returning(AuditHead.seq, AuditHead.hash)
    ).one_or_none()
    if row is None:
        ensure_head(session)
        return record(session, actor_type=actor_type, actor_id=actor_id, action=action, patient_id=patient_id,
                      purpose=purpose, details=details, at=at)
    seq, prev_hash = row
    at = at or utcnow()
    text = canonical(details)
    digest = _digest(text)
    actor = None if actor_id is None else str(actor_id)
    new_hash = entry_hash(seq, at, actor_type, actor, action, patient_id, purpose, digest, prev_hash)
    entry = AuditEntry(seq=seq, at=at, actor_type=actor_type, actor_id=actor, action=action, patient_id=patient_id,
                       purpose=purpose, details=text, details_digest=digest, prev_hash=prev_hash, hash=new_hash)
    session.add(entry)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=new_hash))
    session.flush()
    # Keep the identity map from serving a stale head to a later write in this session (looked up in the
    # map only: a SELECT here would run under the head lock, which every audited request waits for).
    head = session.identity_map.get(session.identity_key(AuditHead, 1))
    if head is not None:
        session.expire(head)
    return entry


@dataclass
class Verification:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


def _entries(session: Session, batch: int = 2000) -> Iterator[AuditEntry]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.seq > last).order_by(AuditEntry.seq).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def verify(session: Session) -> Verification:
    """Walk the chain; report the first entry that was altered, reordered, or is missing."""
    expected_seq = 1
    prev = GENESIS
    checked = 0
    for entry in _entries(session):
        if entry.seq != expected_seq:
            return Verification(False, checked, expected_seq, f"entry {expected_seq} is missing")
        if entry.prev_hash != prev:
            return Verification(False, checked, entry.seq,
                                f"entry {entry.seq} does not follow entry {entry.seq - 1} (reordered or altered)")
        if entry.details is not None and _digest(entry.details) != entry.details_digest:
            return Verification(False, checked, entry.seq, f"entry {entry.seq} details were altered")
        computed = entry_hash(entry.seq, entry.at, entry.actor_type, entry.actor_id, entry.action, entry.patient_id,
                              entry.purpose, entry.details_digest, entry.prev_hash)
        if computed != entry.hash:
            return Verification(False, checked, entry.seq, f"entry {entry.seq} was altered")
        prev = entry.hash
        expected_seq += 1
        checked += 1
    head = session.get(AuditHead, 1)
    last_seq = expected_seq - 1
    if head is not None and (head.seq != last_seq or head.hash != prev):
        if head.seq > last_seq:
            return Verification(False, checked, last_seq + 1, f"entry {last_seq + 1} is missing (after the last entry)")
        return Verification(False, checked, head.seq, "the chain head does not match the last entry")
    return Verification(True, checked)


def erase_details(session: Session, patient_id: int) -> int:
    """Retention purge: drop a closed account's details, keep their digests so the chain still verifies."""
    result = session.execute(
        update(AuditEntry).where(AuditEntry.patient_id == patient_id, AuditEntry.details.is_not(None))
        .values(details=None)
    )
    return result.rowcount or 0


def entries_for_patient(session: Session, patient_id: int, *, limit: int = 20,
                        before_seq: int | None = None) -> list[AuditEntry]:
    stmt = select(AuditEntry).where(AuditEntry.patient_id == patient_id)
    if before_seq is not None:
        stmt = stmt.where(AuditEntry.seq < before_seq)
    return list(session.scalars(stmt.order_by(AuditEntry.seq.desc()).limit(limit)))


