"""The patient's view of their legacy import under /api/v1/migration: progress while it runs, the
report afterwards (where each item came from, what became of it and why), and the review of profile
entries two legacy documents disagree on (confirm or hide each)."""
from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select

from backend import web
from backend.db import get_session, utcnow
from backend.errors import NotFound
from backend.i18n import message
from backend.records import vault
from backend.records.documents.models import Document
from backend.records.access.policy import Action
from migration import schemas as s
from migration.loader import counts
from migration.messages import reason_code, warning_code
from migration.models import ImportItem, ImportRun

blp = Blueprint("migration", __name__, url_prefix="/api/v1/migration", description="Legacy DMP import")


def display_source(source: str) -> str:
    """The package and the file name, not the server's folders."""
    package, _, member = source.rpartition("!/")
    name = PurePosixPath(member).name or member
    return f"{package} › {name}" if package else name


@blp.route("/status")
@blp.response(200, s.MigrationStatusOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def status() -> dict[str, Any]:
    """Progress of the import (counts while it runs), then its totals."""
    return _status(web.current_patient().id)


def _status(patient_id: int) -> dict[str, Any]:
    session = get_session()
    run = session.scalar(select(ImportRun).where(ImportRun.patient_id == patient_id))
    c = counts(session, patient_id)
    processed = sum(c.values())
    return {"state": run.state if run else "none", "total": max(run.total if run else 0, processed),
            "processed": processed, "counts": c, "open_conflicts": _open_conflicts(patient_id),
            "started_at": run.started_at if run else None, "finished_at": run.finished_at if run else None,
            "reviewed_at": run.reviewed_at if run else None}


def _open_conflicts(patient_id: int) -> int:
    return sum(len(g["entries"]) for g in _conflict_groups(patient_id))


def _conflict_groups(patient_id: int) -> list[dict[str, Any]]:
    from migration import services

    session = get_session()
    if not services.profile_available(session):
        return []
    from backend.records.profile import service as profile

    return [g for g in profile.conflicts(session, vault(session), patient_id) if g["group"].startswith("legacy:")]


@blp.route("/items")
@blp.arguments(s.MigrationItemArgs, location="query")
@blp.response(200, s.MigrationItemPageOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def items(args: dict[str, Any]) -> dict[str, Any]:
    """The report, one page at a time: every item of the legacy dossier and what became of it."""
    session = get_session()
    patient = web.current_patient()
    after = web.decode_cursor(args["cursor"])
    q = select(ImportItem, Document.title, Document.category).outerjoin(
        Document, Document.id == ImportItem.document_id).where(ImportItem.patient_id == patient.id)
    if args["status"]:
        q = q.where(ImportItem.status == args["status"])
    if after is not None:
        q = q.where(ImportItem.id > after)
    rows = session.execute(q.order_by(ImportItem.id).limit(args["limit"] + 1)).all()
    page = rows[: args["limit"]]
    out = []
    for item, title, category in page:
        prov = json.loads(item.provenance or "{}")
        code = reason_code(item.reason)
        visible = title is not None and item.kind == "document"
        out.append({"id": item.id, "source": display_source(item.source), "format": prov.get("format", item.kind),
                    "status": item.status, "reason": item.reason, "reason_text": message(code) if code else None,
                    "document_id": item.document_id if item.status == "imported" else None,
                    "merged_into": item.document_id if item.status == "duplicate" else None,
                    "title": title if visible else None, "category": category if visible else None,
                    "warnings": prov.get("warnings", []),
                    "warnings_text": list(dict.fromkeys(message(warning_code(w)) for w in prov.get("warnings", []))),
                    "conflicts": prov.get("conflicts", []),
                    "entries": prov.get("entries", {})})
    nxt = web.encode_cursor(page[-1][0].id) if len(rows) > args["limit"] else None
    return {"items": out, "next_cursor": nxt}


@blp.route("/conflicts")
@blp.response(200, s.MigrationConflictsOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def conflicts() -> dict[str, Any]:
    """Profile entries that legacy documents disagree on, grouped, waiting for the patient."""
    return {"groups": _conflict_groups(web.current_patient().id)}


@blp.route("/conflicts/<string:kind>/<int:entry_id>", methods=["POST"])
@blp.arguments(s.MigrationDecisionIn)
@blp.response(200, s.MigrationConflictsOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.LEGACY_REVIEW)
def decide(body: dict[str, Any], kind: str, entry_id: int) -> dict[str, Any]:
    """Confirm (keep, visible) or hide one flagged entry; returns the groups still open."""
    from backend.records.profile import service as profile

    session = get_session()
    patient = web.current_patient()
    waiting = {(g["kind"], e["id"]) for g in _conflict_groups(patient.id) for e in g["entries"]}
    if (kind, entry_id) not in waiting:
        raise NotFound("migration_conflict_not_found")
    if body["decision"] == "confirm":
        profile.set_entry_state(session, vault(session), patient.id, kind, entry_id, confirmed=True)
    else:
        profile.set_entry_state(session, vault(session), patient.id, kind, entry_id, hidden=True)
    session.commit()
    return {"groups": _conflict_groups(patient.id)}


@blp.route("/review", methods=["POST"])
@blp.response(200, s.MigrationStatusOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.LEGACY_REVIEW)
def reviewed() -> dict[str, Any]:
    """The patient has seen the report."""
    session = get_session()
    run = session.scalar(select(ImportRun).where(ImportRun.patient_id == web.current_patient().id))
    if run is None:
        raise NotFound("not_found")
    run.reviewed_at = run.reviewed_at or utcnow()
    session.commit()
    return _status(web.current_patient().id)
