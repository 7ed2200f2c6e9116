"""The family space's periodic job: majority, checked every hour (a missed run or a worker restarted late does
not delay it by a day; the job is idempotent: a child with no link left is not seen again)."""
from __future__ import annotations

from huey import crontab
from sqlalchemy.orm import Session

from backend.tasks import bound_app, queue


def run_majority(session: Session) -> int:
    """End the representatives' access of every child come of age; returns how many letters were issued."""
    from flask import current_app

    from backend.accounts.service import AccountSettings
    from backend.family.service import FamilySettings, come_of_age

    letters = come_of_age(session, FamilySettings.from_config(current_app.config),
                          AccountSettings.from_config(current_app.config))
    return len(letters)


@queue.periodic_task(crontab(minute="23"), name="backend.family.tasks.majority_periodically")
def majority_periodically() -> int:
    from backend.db import get_session

    app = bound_app()
    with app.app_context():
        session = get_session()
        try:
            issued = run_majority(session)
            session.commit()
            return issued
        except Exception:
            session.rollback()
            raise
