"""The reminder job: every minute, due reminders become notification records.

A periodic job reading the ``agenda_reminder`` table, rather than one delayed task per appointment,
survives restarts and queue loss, and needs nothing undone on cancellation (the rows are deleted in the
cancelling transaction). Running it twice is harmless (see ``service.send_due_reminders``).
"""
from __future__ import annotations

import logging

from huey import crontab

from backend.agenda import service
from backend.db import get_session, utcnow
from backend.tasks import bound_app, queue

log = logging.getLogger(__name__)


def run_reminders() -> int:
    app = bound_app()
    with app.app_context():
        session = get_session()
        try:
            sent = service.send_due_reminders(session, now=utcnow())
            session.commit()
        except Exception:
            session.rollback()
            raise
    if sent:
        log.info("agenda reminders: %d notification(s) recorded", sent)
    return sent


send_due_reminders = queue.periodic_task(crontab(minute="*"), name="backend.agenda.tasks.send_due_reminders",
                                         retries=0)(run_reminders)
