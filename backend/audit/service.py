"""The single writer of the audit trail, and its verification.

Every feature calls :func:`record` in the same transaction as the action it records. Writers are
serialised on the ``audit_head`` row (a row lock on PostgreSQL, the write lock on SQLite), so the
chain has no forks.

The lock is taken as late as possible: :func:`record` queues the entry on the session, and the entries
are chained and inserted when the transaction commits (a ``before_commit`` hook, so the action and its
entry still commit or roll back together), when a statement of this session reads or writes the audit
tables (so a transaction sees its own entries), or on :func:`chain`. Until then the head row is not
touched: the queries and the work that follow ``record()`` in a request run without holding the lock,
which is then held only for the chaining statements and the COMMIT itself. A rollback (of the
transaction, or of the savepoint the entry was recorded in) drops the queued entries.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, bindparam, event, insert, select, text, update
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql import Alias, ClauseElement, Join, Select, Subquery, TableClause
from sqlalchemy.sql.expression import ColumnClause

from backend.audit.models import AuditEntry, AuditHead
from backend.db import utcnow

GENESIS = "0" * 64


def canonical(details: dict[str, Any] | None) -> str | None:
    if details is None:
        return None
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _digest(text: str | None) -> str:
    return hashlib.sha256((text or "").encode()).hexdigest()


def entry_middle(at: dt.datetime, actor_type: str, actor_id: str | None, action: str, patient_id: int | None,
                 purpose: str | None, details_digest: str) -> str:
    """What an entry's hash covers besides its place in the chain (its sequence and the previous hash)."""
    return json.dumps([at.astimezone(dt.timezone.utc).isoformat(), actor_type, actor_id, action, patient_id, purpose,
                       details_digest], separators=(",", ":"))[1:-1]


def link_hash(seq: int, middle: str, prev_hash: str) -> str:
    """The chain's one formula: SHA-256 of the JSON array [seq, *middle, prev_hash]. ``_CHAIN_ONE`` writes the
    same on PostgreSQL (seq is an integer, prev_hash hexadecimal: the JSON text is their plain text)."""
    return hashlib.sha256(f'[{seq},{middle},"{prev_hash}"]'.encode()).hexdigest()


def entry_hash(seq: int, at: dt.datetime, actor_type: str, actor_id: str | None, action: str,
               patient_id: int | None, purpose: str | None, details_digest: str, prev_hash: str) -> str:
    return link_hash(seq, entry_middle(at, actor_type, actor_id, action, patient_id, purpose, details_digest),
                     prev_hash)


def ensure_head(session: Session) -> None:
    if session.get(AuditHead, 1) is None:
        session.add(AuditHead(id=1, seq=0, hash=GENESIS))
        session.flush()


_HEAD = AuditHead.__table__
_LOCK_HEAD = (update(_HEAD).where(_HEAD.c.id == 1).values(seq=_HEAD.c.seq + bindparam("n"))
              .returning(_HEAD.c.seq, _HEAD.c.hash))
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == 1).values(hash=bindparam("new_hash"))
_INSERT_ENTRY = insert(AuditEntry.__table__)
_ENTRY_COLUMNS = tuple(c.key for c in AuditEntry.__table__.columns)
_ENTRY_FIELDS = ("at", "actor_type", "actor_id", "action", "patient_id", "purpose", "details", "details_digest")
# One entry (the usual request) on PostgreSQL: one statement takes the head's lock, chains the entry with
# the formula of ``link_hash`` and moves the head, so the lock is held for that statement and the COMMIT
# only (three round trips before: each a wait for the interpreter's lock under load, with the row locked).
_CHAIN_ONE = text("""
WITH head AS (SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE),
entry AS (
    INSERT INTO audit_entry (seq, at, actor_type, actor_id, action, patient_id, purpose, details, details_digest,
                             prev_hash, hash)
    SELECT head.seq + 1, :at, :actor_type, :actor_id, :action, :patient_id, :purpose, :details, :details_digest,
           head.hash, encode(sha256(convert_to(
               '[' || CAST(head.seq + 1 AS text) || ',' || :middle || ',"' || head.hash || '"]', 'UTF8')), 'hex')
    FROM head
    RETURNING seq, prev_hash, hash),
moved AS (UPDATE audit_head SET seq = entry.seq, hash = entry.hash FROM entry WHERE audit_head.id = 1)
SELECT seq, prev_hash, hash FROM entry""").bindparams(
    *(bindparam(name, type_=AuditEntry.__table__.c[name].type) for name in _ENTRY_FIELDS),
    bindparam("middle", type_=Text()))
_PENDING = "carnet.audit.pending"  # session.info key: [(transaction recorded in, entry)], in record() order


# session.info key: (actor_type, actor id, holder's patient id) when a request acts in someone else's record
# (``act_as``): an entry written for the holder's own hand (actor "patient", the holder's id) names the person
# who acted, so every service that traces "the patient did" traces the representative or the carer instead.
ACTING_KEY = "carnet.audit.acting"


def act_as(session: Session, actor_type: str, actor_id: int, holder_id: int) -> None:
    """From now on in this session, what the holder's hand does is this person's (see ``ACTING_KEY``)."""
    session.info[ACTING_KEY] = (actor_type, str(actor_id), holder_id)


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
    """Append one entry to the caller's transaction: it is chained (``seq``, ``prev_hash``, ``hash``) and
    inserted when that transaction commits, or earlier on :func:`chain` or a query of the audit trail."""
    at = at or utcnow()
    acting = session.info.get(ACTING_KEY)
    if acting is not None and actor_type == "patient" and actor_id is not None and str(actor_id) == str(acting[2]):
        # the holder's hand in this session is someone else's: a representative or a carer, traced as themselves
        actor_type, actor_id = acting[0], acting[1]
    text = canonical(details)
    entry = AuditEntry(at=at, actor_type=actor_type, actor_id=None if actor_id is None else str(actor_id),
                       action=action, patient_id=patient_id, purpose=purpose, details=text,
                       details_digest=_digest(text))
    current = session.get_nested_transaction() or session.get_transaction() or session.begin()
    session.info.setdefault(_PENDING, []).append((current, entry))
    return entry


def pending(session: Session) -> int:
    """Entries recorded in this session and not chained yet."""
    return len(session.info.get(_PENDING) or ())


def chain(session: Session) -> None:
    """Chain and insert the queued entries now: take the head lock, link them in order, move the head."""
    queued = session.info.pop(_PENDING, None)
    if not queued:
        return
    entries = [entry for _, entry in queued]
    # The action's own writes first, before the lock (a flush can take time: index updates, constraints).
    session.flush()
    # Take the lock (UPDATE), then read the previous hash under it; no SELECT runs under the lock. Core
    # statements built once, on the session's connection: the ORM's bulk UPDATE and unit of work cost
    # more CPU than the three statements themselves, and this runs under the lock.
    connection = session.connection()
    if len(entries) == 1 and connection.dialect.name == "postgresql":
        entry = entries[0]
        params = {name: getattr(entry, name) for name in _ENTRY_FIELDS}
        params["middle"] = entry_middle(entry.at, entry.actor_type, entry.actor_id, entry.action, entry.patient_id,
                                        entry.purpose, entry.details_digest)
        chained = connection.execute(_CHAIN_ONE, params).one_or_none()
        if chained is None:  # no head row yet
            ensure_head(session)
            session.info[_PENDING] = queued
            chain(session)
            return
        entry.seq, entry.prev_hash, entry.hash = chained
        _forget_head(session)
        return
    row = connection.execute(_LOCK_HEAD, {"n": len(entries)}).one_or_none()
    if row is None:
        ensure_head(session)
        session.info[_PENDING] = queued
        chain(session)
        return
    last_seq, prev_hash = row
    seq = last_seq - len(entries)
    rows = []
    for entry in entries:
        seq += 1
        entry.seq, entry.prev_hash = seq, prev_hash
        entry.hash = prev_hash = entry_hash(seq, entry.at, entry.actor_type, entry.actor_id, entry.action,
                                            entry.patient_id, entry.purpose, entry.details_digest, entry.prev_hash)
        rows.append({c: getattr(entry, c) for c in _ENTRY_COLUMNS})
    connection.execute(_INSERT_ENTRY, rows)
    connection.execute(_MOVE_HEAD, {"new_hash": prev_hash})
    _forget_head(session)


def _forget_head(session: Session) -> None:
    """Keep the identity map from serving a stale head to a later write in this session (looked up in the
    map only: a SELECT here would run under the head lock, which every audited request waits for)."""
    head = session.identity_map.get(session.identity_key(AuditHead, 1))
    if head is not None:
        session.expire(head)


_AUDIT_NAMES = frozenset({AuditEntry.__tablename__, AuditHead.__tablename__})


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "before_commit")
def _chain_before_commit(session: Session) -> None:
    if session.info.get(_PENDING):
        chain(session)


@event.listens_for(Session, "do_orm_execute")
def _chain_before_audit_statement(state: ORMExecuteState) -> None:
    """A statement on the audit tables sees (or erases, or counts) this transaction's entries too."""
    session = state.session
    if session.info.get(_PENDING) and _touches_audit(state.statement):
        chain(session)


def _touches_audit(statement: Any) -> bool:
    """Whether a statement reads or writes the audit tables: its target, its columns' tables and its FROM
    list, joins included. Cheap on purpose (no compilation): it runs for every statement between
    ``record()`` and the commit."""
    items: list[Any] = [getattr(statement, "table", None)]
    _parts(statement, items)
    while items:
        item = items.pop()
        if item is None:
            continue
        if isinstance(item, TableClause):
            if item.name in _AUDIT_NAMES:
                return True
        elif isinstance(item, Join):
            items += [item.left, item.right]
        elif isinstance(item, (Alias, Subquery)):
            items.append(item.element)
        elif isinstance(item, Select):
            _parts(item, items)
        elif isinstance(item, ColumnClause):
            items.append(item.table)
        elif isinstance(item, ClauseElement):
            items += item.get_children()  # count(audit_entry.seq), a labelled expression…
    return False


def _parts(statement: Any, into: list[Any]) -> None:
    into += getattr(statement, "_raw_columns", ())
    into += getattr(statement, "_from_obj", ())
    into += [join[0] for join in getattr(statement, "_setup_joins", ())]


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    queued = session.info.get(_PENDING)
    if queued:
        session.info[_PENDING] = [(tx, e) for tx, e in queued if not _within(tx, previous_transaction)]


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # committed (chained before), rolled back or closed: nothing is left to chain
        session.info.pop(_PENDING, None)


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


_LATEST_FOR_PATIENT = (select(AuditEntry).where(AuditEntry.patient_id == bindparam("patient_id"))
                       .order_by(AuditEntry.seq.desc()).limit(bindparam("limit")))


def entries_for_patient(session: Session, patient_id: int, *, limit: int = 20,
                        before_seq: int | None = None) -> list[AuditEntry]:
    if before_seq is None:  # the home screen's recent activity: the statement built once
        return list(session.scalars(_LATEST_FOR_PATIENT, {"patient_id": patient_id, "limit": limit}))
    stmt = select(AuditEntry).where(AuditEntry.patient_id == patient_id)
    if before_seq is not None:
        stmt = stmt.where(AuditEntry.seq < before_seq)
    return list(session.scalars(stmt.order_by(AuditEntry.seq.desc()).limit(limit)))


