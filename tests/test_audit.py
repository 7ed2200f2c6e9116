"""The hash-chained audit trail: one writer, and `carnet audit verify` catching any tampering."""
import threading

import pytest
from sqlalchemy import delete, select, text, update

from backend.audit import service as audit
from backend.audit.models import AuditEntry
from backend.db import get_db


def write_entries(db, n=5):
    for i in range(n):
        audit.record(db, actor_type="professional", actor_id=f"pro{i}", action="record.read", patient_id=1,
                     purpose="TREAT", details={"document": i, "reason": "suivi"})
    db.commit()


def verify_cli(runner):
    return runner.invoke(args=["audit", "verify"])


def test_intact_chain_verifies(db, runner):
    write_entries(db)
    result = verify_cli(runner)
    assert result.exit_code == 0, result.output
    assert "5 entries verified" in result.output


def test_entries_are_chained(db):
    write_entries(db, 3)
    entries = db.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == audit.GENESIS
    assert entries[1].prev_hash == entries[0].hash and entries[2].prev_hash == entries[1].hash


@pytest.mark.parametrize("column, value", [("action", "record.nothing"), ("actor_id", "someone-else"),
                                           ("details", '{"document":9}'), ("purpose", "BTG")])
def test_a_hand_edited_row_is_named(db, runner, column, value):
    write_entries(db)
    db.execute(text(f"UPDATE audit_entry SET {column} = :v WHERE seq = 3"), {"v": value})
    db.commit()
    result = verify_cli(runner)
    assert result.exit_code != 0
    assert "entry 3" in result.output


def test_a_deleted_row_is_named(db, runner):
    write_entries(db)
    db.execute(delete(AuditEntry).where(AuditEntry.seq == 2))
    db.commit()
    result = verify_cli(runner)
    assert result.exit_code != 0 and "entry 2 is missing" in result.output


def test_a_deleted_last_row_is_named(db, runner):
    write_entries(db)
    db.execute(delete(AuditEntry).where(AuditEntry.seq == 5))
    db.commit()
    result = verify_cli(runner)
    assert result.exit_code != 0 and "entry 5 is missing" in result.output


def test_reordered_rows_are_detected(db, runner):
    write_entries(db)
    db.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(seq=100))
    db.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(seq=2))
    db.execute(update(AuditEntry).where(AuditEntry.seq == 100).values(seq=3))
    db.commit()
    result = verify_cli(runner)
    assert result.exit_code != 0 and "entry 2" in result.output


def test_a_rolled_back_action_leaves_no_entry(db):
    audit.record(db, actor_type="patient", actor_id="1", action="account.login", patient_id=1)
    db.rollback()
    assert db.scalar(select(AuditEntry.seq)) is None
    write_entries(db, 1)
    assert audit.verify(db).ok


def test_erased_details_keep_the_chain_valid(db):
    write_entries(db, 3)
    assert audit.erase_details(db, 1) == 3
    db.commit()
    assert audit.verify(db).ok
    assert db.scalar(select(AuditEntry.details).where(AuditEntry.seq == 1)) is None


def test_concurrent_writers_never_fork_the_chain(app, db):
    """Several transactions appending at once: every entry gets its own place in one chain."""
    factory = get_db(app).session_factory
    errors = []

    def writer(n):
        session = factory()
        try:
            for i in range(10):
                audit.record(session, actor_type="professional", actor_id=str(n), action="record.read",
                             patient_id=n, details={"i": i})
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
    assert result.ok and result.checked == 40
