"""`carnet migrate`: bulk pre-migration of legacy dossiers by operators, and where things stand.

``import`` runs dossiers in parallel worker *processes* (``--workers``; each opens its own app and
database connections, parsing is CPU-bound), shows a progress bar on stderr and prints one JSON summary;
``--report FILE`` writes every source item with what became of it (from the journal, so a re-run
reports everything, including what earlier runs did). Nothing printed names a patient by NIR.
"""
from __future__ import annotations

import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

PASSED_CONFIG = ("DATABASE_URL", "SECRET_KEY", "MASTER_KEY", "MASTER_KEYS_PREVIOUS", "TESTING", "TASK_QUEUE",
                 "LOG_TRACEBACKS")

_worker_app: Any = None


@click.group("migrate")
def migrate_group() -> None:
    """Legacy DMP migration."""


def _dossiers(legacy_dir: Path) -> list[tuple[str, Path]]:
    from backend.identity import InvalidIdentifier, validate_nir

    out = []
    for child in sorted(legacy_dir.iterdir()):
        if not child.is_dir() or child.is_symlink():
            continue
        try:
            out.append((validate_nir(child.name), child))
        except InvalidIdentifier:
            continue
    return out


def _init_worker(config: dict[str, Any]) -> None:
    global _worker_app
    from backend import create_app

    _worker_app = create_app(config)


def _run_one(patient_id: int, legacy_dir: str) -> tuple[int, str]:
    return _import(_worker_app, patient_id, legacy_dir)


def _import(app: Any, patient_id: int, legacy_dir: str) -> tuple[int, str]:
    from backend.db import get_db
    from migration.loader import import_dossier

    factory = get_db(app).session_factory
    with app.app_context():
        session = factory()
        try:
            result = import_dossier(session, app.extensions["carnet.keyring"], patient_id, legacy_dir,
                                    trigger="operator")
            return patient_id, result.state
        except Exception as exc:  # one dossier's failure does not stop the others
            session.rollback()
            return patient_id, f"failed:{type(exc).__name__}"
        finally:
            session.close()


@migrate_group.command("import")
@click.argument("legacy_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="dossiers imported in parallel (processes)")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="write a JSON report: one entry per source item, and the totals")
@with_appcontext
def migrate_import(legacy_dir: Path, workers: int, report_path: Path | None) -> None:
    """Pre-migrate the dossiers of LEGACY_DIR (one folder per holder's NIR) into existing accounts."""
    from backend.accounts.models import AccountState, Patient
    from backend.db import get_session

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    session = get_session()
    dossiers = _dossiers(legacy_dir)
    nirs = [nir for nir, _ in dossiers]
    accounts = {}
    for chunk in range(0, len(nirs), 500):
        rows = session.execute(select(Patient.nir, Patient.id, Patient.state)
                               .where(Patient.nir.in_(nirs[chunk:chunk + 500]))).all()
        accounts.update({nir: (pid, state) for nir, pid, state in rows})
    session.rollback()
    todo = [accounts[nir][0] for nir in nirs
            if nir in accounts and accounts[nir][1] not in (AccountState.OPPOSED, AccountState.CLOSED)]
    no_account = sum(1 for nir in nirs if nir not in accounts)
    not_eligible = len(nirs) - len(todo) - no_account
    states: dict[int, str] = {}
    with click.progressbar(length=len(todo), label="dossiers", file=sys.stderr) as bar:
        if workers == 1 or len(todo) <= 1:
            for pid in todo:
                states[pid] = _import(app, pid, str(legacy_dir))[1]
                bar.update(1)
        else:
            config = {k: app.config[k] for k in PASSED_CONFIG if k in app.config}
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                     initargs=(config,)) as pool:
                futures = [pool.submit(_run_one, pid, str(legacy_dir)) for pid in todo]
                for future in as_completed(futures):
                    pid, state = future.result()
                    states[pid] = state
                    bar.update(1)
    report = build_report(get_session(), todo)
    summary = {"dossiers": len(nirs), "imported_dossiers": sum(1 for s in states.values() if s == "done"),
               "failed_dossiers": sum(1 for s in states.values() if s.startswith("failed")),
               "no_account": no_account, "not_eligible": not_eligible, **report["totals"]}
    if report_path is not None:
        report_path.write_text(json.dumps({**report, "summary": summary}, ensure_ascii=False, indent=1,
                                          default=str), encoding="utf-8")
    click.echo(json.dumps(summary, ensure_ascii=False))
    if summary["failed_dossiers"]:
        sys.exit(1)


def build_report(session: Any, patient_ids: list[int]) -> dict[str, Any]:
    from migration.models import ImportItem

    items: list[dict[str, Any]] = []
    totals = {"imported": 0, "duplicate": 0, "quarantined": 0}
    for chunk in range(0, len(patient_ids), 500):
        rows = session.scalars(select(ImportItem).where(ImportItem.patient_id.in_(patient_ids[chunk:chunk + 500]))
                               .order_by(ImportItem.patient_id, ImportItem.id)).all()
        for row in rows:
            prov = json.loads(row.provenance or "{}")
            items.append({"patient_id": row.patient_id, "source": row.source, "status": row.status,
                          "reason": row.reason, "detail": row.reason_detail, "document_id": row.document_id,
                          "sha256": row.sha256, "warnings": prov.get("warnings", [])})
            totals[row.status] = totals.get(row.status, 0) + 1
    session.rollback()
    return {"items": items, "totals": {**totals, "items": len(items)}}


@migrate_group.command("status")
@with_appcontext
def migrate_status() -> None:
    """What is done and what is pending: runs by state, items by status, dossiers not yet started."""
    from backend.accounts.models import Patient
    from backend.db import get_session
    from migration.models import ImportItem, ImportRun

    session = get_session()
    runs = dict(session.execute(select(ImportRun.state, func.count()).group_by(ImportRun.state)).all())
    items = dict(session.execute(select(ImportItem.status, func.count()).group_by(ImportItem.status)).all())
    out: dict[str, Any] = {"runs": runs, "items": items}
    legacy_dir = current_app.config.get("LEGACY_DIR")
    if legacy_dir and Path(legacy_dir).is_dir():
        nirs = [nir for nir, _ in _dossiers(Path(legacy_dir))]
        started = set()
        for chunk in range(0, len(nirs), 500):
            started.update(session.scalars(select(Patient.nir).join(ImportRun, ImportRun.patient_id == Patient.id)
                                           .where(Patient.nir.in_(nirs[chunk:chunk + 500]),
                                                  ImportRun.state == "done")))
        out["dossiers"] = {"total": len(nirs), "done": len(started), "pending": len(nirs) - len(started)}
    click.echo(json.dumps(out, ensure_ascii=False))
