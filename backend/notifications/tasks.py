"""The notifications feature's tasks on the huey queue (see ``backend.tasks``).

Right after a commit: ``dispatch_notifications`` (records just created) and ``send_outbox_emails`` (emails
just written, e.g. a one-time code). Periodically, with a consumer started with periodic tasks on (every
``carnet worker`` is): the jobs of ``jobs.py``. Several consumers may all schedule them: each job acts
once per due item (see ``jobs.py`` and ``delivery.py``).
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from huey import crontab
from sqlalchemy import event
from sqlalchemy.orm import Session

from backend.notifications import delivery, jobs, service
from backend.notifications.models import OutboxEmail
from backend.notifications.settings import NotificationSettings
from backend.tasks import app_task, bound_app, enqueue_after_commit, queue

log = logging.getLogger(__name__)


def settings() -> NotificationSettings:
    return bound_app().extensions["carnet.notifications"]


@app_task(retries=3, retry_delay=5, retry_backoff=2)
def dispatch_notifications(session: Session, ids: list[int]) -> dict[str, Any]:
    """Fan the given records out and push them now (later attempts belong to the ``deliver`` job)."""
    s = settings()
    report = delivery.Report()
    report.dispatched = delivery.dispatch(session, s, ids=list(ids))
    delivery.deliver_push(session, s, notification_ids=list(ids), report=report)
    return report.as_dict()


service.dispatch_with(dispatch_notifications)


@app_task(retries=3, retry_delay=5, retry_backoff=2)
def send_outbox_emails(session: Session, ids: list[int]) -> dict[str, Any]:
    return delivery.send_outbox(session, settings(), ids=list(ids)).as_dict()


@app_task(retries=0)
def run_job(session: Session, name: str) -> dict[str, Any]:
    """Run one job now (operators, tests): the same code the schedule runs."""
    return jobs.JOBS[name](session, settings(), None)


def _periodic(schedule: Any, name: str) -> Callable[[], Any]:
    """A periodic task running job ``name`` in an app context with a session of its own."""

    def run() -> Any:
        from backend.db import get_session

        app = bound_app()
        with app.app_context():
            session = get_session()
            try:
                result = jobs.JOBS[name](session, app.extensions["carnet.notifications"], None)
                session.commit()
                return result
            except Exception:
                session.rollback()
                raise

    functools.update_wrapper(run, jobs.JOBS[name])
    return queue.periodic_task(schedule, name=f"backend.notifications.periodic.{name}")(run)


deliver_periodically = _periodic(crontab(minute="*"), "deliver")
reminders_periodically = _periodic(crontab(minute="*/5"), "reminders")
activation_expiry_periodically = _periodic(crontab(minute="7"), "activation_expiry")
retention_purge_periodically = _periodic(crontab(minute="17", hour="3"), "retention_purge")


# Every email written to the outbox (by any feature) is sent right after its transaction commits.
_OUTBOX_KEY = "carnet.notifications.outbox"


class _SendAfterCommit:
    name = "backend.notifications.tasks.send_outbox_emails"

    def __init__(self, session: Session) -> None:
        self.session = session

    def __call__(self) -> None:
        ids = self.session.info.pop(_OUTBOX_KEY, [])
        if ids and bound_app().extensions["carnet.notifications"].smtp_host:
            send_outbox_emails(ids)


@event.listens_for(Session, "after_flush")
def _outbox_written(session: Session, flush_context: Any) -> None:
    ids = [obj.id for obj in session.new if isinstance(obj, OutboxEmail)]
    if not ids:
        return
    if _OUTBOX_KEY not in session.info:
        session.info[_OUTBOX_KEY] = []
        enqueue_after_commit(session, _SendAfterCommit(session))
    session.info[_OUTBOX_KEY].extend(ids)


@event.listens_for(Session, "after_rollback")
def _forget_outbox(session: Session) -> None:
    session.info.pop(_OUTBOX_KEY, None)
