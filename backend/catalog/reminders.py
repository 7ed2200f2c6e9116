"""The catalogue's reminders, in the notifications job registry (``notifications.jobs``):

- ``catalog.connected_services_review``: every ``CARNET_SERVICE_REVIEW_DAYS`` (90) days after a patient's
  oldest running consent, a notification (kind "service") asking them to review their connected services;
- ``catalog.consent_renewal``: ``CARNET_SERVICE_RENEWAL_NOTICE_DAYS`` (30) days before a consent lapses,
  a notification asking to renew it (once per consent and deadline: a renewal makes a new deadline).

The sources only read; the ``reminders`` job notifies each key once, however many workers run it.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from flask import current_app
from sqlalchemy.orm import Session

from backend.catalog import service as catalog
from backend.notifications.jobs import Due, cycle_index, reminder_source


def _settings() -> catalog.CatalogSettings:
    try:
        return current_app.extensions["carnet.catalog"]
    except (RuntimeError, KeyError):
        return catalog.CatalogSettings()


@reminder_source("catalog.connected_services_review")
def connected_services_review(session: Session, now: dt.datetime) -> Iterator[Due]:
    days = _settings().review_days
    for patient_id, anchor in catalog.review_anchors(session, now):
        cycle = cycle_index(anchor, now, days=days)
        if cycle >= 1:
            yield Due(patient_id, f"{patient_id}:{anchor.isoformat()}:{cycle}", "service",
                      ref_type="connected_services_review")


@reminder_source("catalog.consent_renewal")
def consent_renewal(session: Session, now: dt.datetime) -> Iterator[Due]:
    window = dt.timedelta(days=_settings().renewal_notice_days)
    for connection in catalog.expiring(session, now, window):
        yield Due(connection.patient_id, f"{connection.id}:{connection.expires_at.isoformat()}", "service",
                  ref_type="consent_renewal", ref_id=connection.service_id)
