"""On activation, the patient's legacy dossier is imported: the run is recorded now (so the app shows
"import pending" at once) and the work goes to the task queue after the commit."""
from __future__ import annotations

from sqlalchemy.orm import Session

from backend.accounts.hooks import on_activation
from backend.accounts.models import Patient
from backend.db import utcnow
from backend.tasks import enqueue_after_commit
from migration.loader import ensure_run
from migration.tasks import import_legacy_dossier


@on_activation("legacy_import")
def legacy_import(session: Session, patient: Patient) -> None:
    run = ensure_run(session, patient.id, "activation", utcnow())
    if run.state != "running":
        run.state = "pending"
    session.flush()
    enqueue_after_commit(session, import_legacy_dossier, patient.id, "activation")
