"""The inbox's retention job: deleted threads past their retention period are destroyed, once a day.

It is a job of the notifications' registry (``backend.notifications.jobs.JOBS``, so
``carnet notifications run inbox_purge`` runs it too), claimed once per day however many workers run
the schedule; ``carnet inbox purge`` runs it at once.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from huey import crontab
from sqlalchemy.orm import Session

from backend.db import get_session, utcnow
from backend.messaging import service
from backend.notifications import jobs
from backend.tasks import bound_app, queue

log = logging.getLogger(__name__)


def run_inbox_purge(session: Session, _settings: Any = None, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    if not jobs.claim_once(session, "inbox_purge", now.date().isoformat(), now=now):
        return {"inbox_purge": "already done today"}
    removed = service.purge(session, now)
    session.commit()
    if removed:
        log.info("inbox purge: %d deleted thread(s) past retention destroyed", removed)
    return {"inbox_purge": {"threads_removed": removed}}


jobs.JOBS.setdefault("inbox_purge", run_inbox_purge)


def _periodic() -> dict[str, Any]:
    app = bound_app()
    with app.app_context():
        session = get_session()
        try:
            return run_inbox_purge(session)
        except Exception:
            session.rollback()
            raise


inbox_purge_periodically = queue.periodic_task(crontab(minute="37", hour="3"),
                                               name="backend.messaging.tasks.inbox_purge", retries=0)(_periodic)
