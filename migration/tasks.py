"""The import on the task queue (huey): retried on failure, resumable, never duplicating."""
from __future__ import annotations

from flask import current_app
from sqlalchemy.orm import Session

from backend.tasks import app_task


@app_task(retries=3, retry_delay=30)
def import_legacy_dossier(session: Session, patient_id: int, trigger: str = "activation") -> str:
    from migration.loader import import_dossier

    result = import_dossier(session, current_app.extensions["carnet.keyring"], patient_id,
                            current_app.config.get("LEGACY_DIR"), trigger=trigger)
    return result.state
