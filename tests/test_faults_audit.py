"""Tampering with the audit trail, at every position: `carnet audit verify` fails and names the entry.
(tests/test_audit.py has one example of each; here every entry of a chain, every column, and swaps.)"""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, text, update

from backend.audit import service as audit
from backend.audit.models import AuditEntry

N = 6
COLUMNS = {"action": "record.nothing", "actor_id": "someone-else", "actor_type": "operator", "patient_id": 999,
           "purpose": "BTG", "details": '{"document":99}', "hash": "f" * 64, "prev_hash": "e" * 64,
           "details_digest": "d" * 64}


def chain(db) -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for i in range(N):
        audit.record(db, actor_type="professional", actor_id=f"pro{i}", action="record.read", patient_id=1 + i % 2,
                     purpose="TREAT", details={"document": i}, at=start + dt.timedelta(minutes=i))
    db.commit()


def rebuild(db) -> None:
    db.execute(text("DELETE FROM audit_entry"))
    db.execute(text("UPDATE audit_head SET seq = 0, hash = :g"), {"g": audit.GENESIS})
    db.commit()
    chain(db)


def named(runner, seq: int, why: str = "") -> None:
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code != 0, (why, result.output)
    assert f"entry {seq}" in result.output, result.output


@pytest.mark.parametrize("seq", range(1, N + 1))
def test_every_column_of_every_entry(db, runner, seq):
    for column, value in COLUMNS.items():
        rebuild(db)
        db.execute(text(f"UPDATE audit_entry SET {column} = :v WHERE seq = :s"), {"v": value, "s": seq})
        db.commit()
        named(runner, seq, column)
    rebuild(db)
    db.execute(update(AuditEntry).where(AuditEntry.seq == seq)
               .values(at=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)))
    db.commit()
    named(runner, seq)


@pytest.mark.parametrize("seq", range(1, N + 1))
def test_every_entry_deleted_or_swapped(db, runner, seq):
    chain(db)
    db.execute(delete(AuditEntry).where(AuditEntry.seq == seq))
    db.commit()
    named(runner, seq)
    if seq < N:  # and two neighbours exchanged (every column but the place in the chain)
        rebuild(db)
        db.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(seq=-1))
        db.execute(update(AuditEntry).where(AuditEntry.seq == seq + 1).values(seq=seq))
        db.execute(update(AuditEntry).where(AuditEntry.seq == -1).values(seq=seq + 1))
        db.commit()
        named(runner, seq)
