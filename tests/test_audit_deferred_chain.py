"""The audit head lock is taken at the last moment: `record()` queues the entry, and the entry is chained
and inserted when the transaction commits (or when the session reads the audit trail, or on `chain()`).
The action and its entry still commit or roll back together, and the chain stays verifiable."""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from backend.accounts.models import Patient
from backend.audit import service as audit
from backend.audit.models import AuditEntry, AuditHead
from backend.db import get_db
from tests.fhir_helpers import Doc, grant, make_pro, post_bundle, provide_bundle, search
from tests.helpers import NIR_CAMILLE, create_patient


def _head_updates(statements: list[str]) -> list[int]:
    return [i for i, s in enumerate(statements) if s.lstrip().upper().startswith("UPDATE AUDIT_HEAD")]


def _head_statements(statements: list[str]) -> list[int]:
    """The statements that lock or move the head: on PostgreSQL one entry is chained by one statement."""
    return [i for i, s in enumerate(statements) if "audit_head" in s.lower()]


def _entry_inserts(statements: list[str]) -> list[int]:
    return [i for i, s in enumerate(statements) if s.lstrip().upper().startswith("INSERT INTO AUDIT_ENTRY")]


def _record(db, n: int = 0) -> AuditEntry:
    return audit.record(db, actor_type="professional", actor_id=f"pro{n}", action="record.read", patient_id=1,
                        purpose="TREAT", details={"n": n})


def test_the_head_is_locked_only_at_commit(db, count_queries):
    audit.ensure_head(db)
    db.commit()
    count_queries.statements.clear()
    db.scalar(select(func.count()).select_from(Patient))  # the transaction has begun
    first, second = _record(db, 1), _record(db, 2)
    db.scalar(select(func.count()).select_from(Patient))  # other work after record(): no lock yet
    assert _head_updates(count_queries.statements) == [] and _entry_inserts(count_queries.statements) == []
    assert audit.pending(db) == 2 and first.seq is None
    db.commit()
    updates, inserts = _head_updates(count_queries.statements), _entry_inserts(count_queries.statements)
    # one lock for both entries: UPDATE … RETURNING (the lock), the inserts, then the new head hash
    assert len(updates) == 2 and inserts and updates[0] < min(inserts) and max(inserts) < updates[1]
    assert audit.pending(db) == 0
    assert (first.seq, second.seq) == (1, 2) and second.prev_hash == first.hash
    assert audit.verify(db).ok


def test_one_entry_is_chained_by_the_formula_of_the_chain(db, count_queries):
    """On PostgreSQL the usual case, one entry, is chained by the database in one statement: its hash is
    the chain's one formula (``link_hash``), whatever the entry holds (accents, quotes, no patient)."""
    audit.ensure_head(db)
    _record(db, 1)
    db.commit()
    count_queries.statements.clear()
    odd = audit.record(db, actor_type="carer", actor_id='Zoé "l\'aidante" 検査', action="record.read",
                       patient_id=None, purpose=None, details={"note": "é\u2028\"}\\", "n": [1, None]})
    db.commit()
    assert len(_head_statements(count_queries.statements)) == (1 if db.get_bind().dialect.name == "postgresql" else 2)
    db.expire_all()
    stored = db.get(AuditEntry, odd.seq)
    previous = db.get(AuditEntry, odd.seq - 1)
    assert stored.prev_hash == previous.hash and stored.actor_id == 'Zoé "l\'aidante" 検査'
    assert stored.hash == audit.entry_hash(stored.seq, stored.at, stored.actor_type, stored.actor_id, stored.action,
                                           stored.patient_id, stored.purpose, stored.details_digest, stored.prev_hash)
    assert db.get(AuditHead, 1).hash == stored.hash and db.get(AuditHead, 1).seq == stored.seq
    assert audit.verify(db).ok


def test_reading_the_trail_sees_this_transactions_entries(db):
    _record(db)
    assert db.scalar(select(func.count()).select_from(AuditEntry)) == 1  # chained before the SELECT ran
    assert audit.entries_for_patient(db, 1)[0].action == "record.read"
    db.commit()
    assert audit.verify(db).ok


def test_chain_now_gives_the_sequence_before_commit(db):
    entry = _record(db)
    audit.chain(db)
    assert entry.seq == 1 and entry.prev_hash == audit.GENESIS and len(entry.hash) == 64
    db.commit()
    assert audit.verify(db).ok


def test_a_rollback_drops_the_queued_entries(db):
    _record(db, 1)
    db.rollback()
    assert audit.pending(db) == 0
    _record(db, 2)
    db.commit()
    entries = db.scalars(select(AuditEntry)).all()
    assert [(e.seq, e.actor_id) for e in entries] == [(1, "pro2")]
    assert audit.verify(db).ok


def test_a_rolled_back_savepoint_drops_only_its_entries(db):
    _record(db, 1)
    savepoint = db.begin_nested()
    _record(db, 2)
    savepoint.rollback()
    with db.begin_nested():
        _record(db, 3)
    db.commit()
    assert [e.actor_id for e in db.scalars(select(AuditEntry).order_by(AuditEntry.seq))] == ["pro1", "pro3"]
    assert audit.verify(db).ok


def test_erasing_details_covers_queued_entries(db):
    _record(db)
    assert audit.erase_details(db, 1) == 1
    db.commit()
    assert db.scalar(select(AuditEntry.details)) is None and audit.verify(db).ok


def test_concurrent_sessions_chain_in_commit_order(app, db):
    factory = get_db(app).session_factory
    errors: list[Exception] = []

    def writer(n: int) -> None:
        session = factory()
        try:
            for i in range(8):
                for k in range(1 + i % 3):  # several entries in one transaction, sometimes
                    audit.record(session, actor_type="service", actor_id=str(n), action="record.read",
                                 patient_id=n, details={"i": i, "k": k})
                session.commit()
        except Exception as exc:  # surfaced below
            errors.append(exc)
            session.rollback()
        finally:
            session.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    result = audit.verify(db)
    assert result.ok and result.checked == 4 * sum(1 + i % 3 for i in range(8))


def test_iti67_takes_the_lock_after_its_reads(app, client, db, count_queries):
    camille = create_patient(app)
    doctor = make_pro(app)
    grant(app, camille.patient_id, doctor)
    assert post_bundle(client, doctor, provide_bundle(NIR_CAMILLE, [Doc(b"a"), Doc(b"b")])).status_code == 200
    search(client, doctor, NIR_CAMILLE)  # the day's access notification exists from now on
    count_queries.statements.clear()
    assert len(search(client, doctor, NIR_CAMILLE).get_json()["entry"]) == 2
    statements = count_queries.statements
    heads = _head_statements(statements)
    # PostgreSQL: one statement locks the head, chains the entry and moves the head, the request's last;
    # SQLite: UPDATE … RETURNING (the lock), the insert, the head's new hash
    assert len(heads) == (1 if db.get_bind().dialect.name == "postgresql" else 2), statements
    assert heads[-1] == len(statements) - 1
    # every SELECT of the search (patient, token, policy, count, page) ran before the lock was taken
    selects = [i for i, s in enumerate(statements) if s.lstrip().upper().startswith("SELECT")]
    assert selects and max(selects) < heads[0]
    db.expire_all()
    assert audit.verify(db).ok


def test_concurrent_first_notifications_of_a_key_make_one(app, db):
    """Audited reads no longer wait on each other until their commit, so two first searches of a day by one
    professional in one record notify at the same time: the second finds the first one's notification
    instead of failing on the unique key (PostgreSQL; SQLite serialises writers)."""
    if db.get_bind().dialect.name != "postgresql":
        return
    from backend.notifications.models import Notification
    from backend.notifications.service import notify

    patient = create_patient(app)
    factory = get_db(app).session_factory
    first, second = factory(), factory()
    results: list[int] = []
    errors: list[Exception] = []
    try:
        a = notify(first, patient.patient_id, "professional_access", ref_type="access", ref_id=1, dedupe_key="k:1")

        def other() -> None:
            try:
                results.append(notify(second, patient.patient_id, "professional_access", ref_type="access", ref_id=1,
                                      dedupe_key="k:1").id)
                second.commit()
            except Exception as exc:  # surfaced below
                errors.append(exc)
                second.rollback()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # waiting on the unique index for the first transaction
        first.commit()
        thread.join(10)
        assert not errors and results == [a.id]
        assert db.scalar(select(func.count()).select_from(Notification).where(Notification.dedupe_key == "k:1")) == 1
    finally:
        first.close()
        second.close()
