"""Crash safety: a real `carnet migrate import` process is killed (SIGKILL) at random moments, then run
again until it finishes. Every document must be there exactly once, every item journaled once."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from backend.records.documents.models import Document
from migration.models import ImportItem
from migration.readers.dossier import scan
from tests.conftest import server_env
from tests.helpers import create_patient
from tests.migration_support import BIRTH, EXPECTED, NIR_277, NIR_PAT_TROIS, SEX, build_legacy_dir


def _start(database_url: str, legacy: Path, instance: Path) -> subprocess.Popen[bytes]:
    env = server_env(database_url, CARNET_INSTANCE_PATH=str(instance), CARNET_TASK_QUEUE="immediate")
    return subprocess.Popen([sys.executable, "-m", "backend.tools.cli", "migrate", "import", str(legacy)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=Path(__file__).resolve().parents[1])


def _journaled(db: Any) -> int:
    db.rollback()
    return db.scalar(select(func.count()).select_from(ImportItem)) or 0


def test_kill_9_at_random_points_then_rerun(app: Flask, db: Any, database_url: str, tmp_path: Path) -> None:
    nirs = [NIR_PAT_TROIS, NIR_277]
    legacy = build_legacy_dir(tmp_path, only=nirs)
    ids = {nir: create_patient(app, nir=nir, birth_date=BIRTH[nir], sex=SEX[nir]).patient_id for nir in nirs}
    expected_sources = {(ids[nir], item.source) for nir in nirs for item in scan(legacy / nir)}
    seed = int(os.environ.get("CARNET_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    kills = 0
    for _ in range(12):
        before = _journaled(db)
        if before == len(expected_sources):
            break
        proc = _start(database_url, legacy, tmp_path / "instance")
        # kill after a random number of newly journaled items (0 = during start-up or the first item)
        target = before + rng.randrange(0, 3)
        deadline = time.monotonic() + 60
        while proc.poll() is None and _journaled(db) < target and time.monotonic() < deadline:
            time.sleep(0.01)
        # and anywhere inside the next item's transaction (an item takes tens of ms on a quiet machine: a pause
        # of up to 0.3 s let the rest of the import finish before the kill, and the test fell short of kills)
        time.sleep(rng.uniform(0, 0.03))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    final = _start(database_url, legacy, tmp_path / "instance")
    assert final.wait(timeout=300) == 0, f"seed {seed}"
    assert kills >= 3, f"seed {seed}: the import finished before it could be killed enough"

    db.rollback()
    rows = db.scalars(select(ImportItem)).all()
    assert {(r.patient_id, r.source) for r in rows} == expected_sources, f"seed {seed}"
    assert len(rows) == len(expected_sources)
    assert not [r for r in rows if r.reason == "internal_error"], f"seed {seed}"
    for r in rows:
        nir = next(n for n, i in ids.items() if i == r.patient_id)
        if (nir, r.source) in EXPECTED:
            assert (r.status, r.reason) == EXPECTED[(nir, r.source)], (seed, r.source)
        elif r.source != "settings.json":
            assert r.status == "imported", (seed, r.source, r.reason)
    docs = db.scalars(select(Document)).all()
    imported = [r for r in rows if r.status == "imported" and r.kind == "document"]
    # exactly once: one document per imported item, none without its journal row, no bytes twice
    assert sorted(d.id for d in docs) == sorted(r.document_id for r in imported), f"seed {seed}"
    assert len({(d.patient_id, d.sha256) for d in docs}) == len(docs), f"seed {seed}"
    assert len({(d.patient_id, d.unique_id) for d in docs}) == len(docs), f"seed {seed}"
