"""What happens when an account becomes active: later features register handlers here.

Handlers run on the task queue after the activation is committed (the legacy import, a welcome
message…). Each takes (session, patient) and only flushes.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from backend.accounts.models import Patient
from backend.tasks import app_task

log = logging.getLogger(__name__)

ActivationHandler = Callable[[Session, Patient], None]
_handlers: dict[str, ActivationHandler] = {}


def on_activation(name: str) -> Callable[[ActivationHandler], ActivationHandler]:
    def register(fn: ActivationHandler) -> ActivationHandler:
        _handlers[name] = fn
        return fn

    return register


def handler_names() -> list[str]:
    return sorted(_handlers)


@app_task(retries=3, retry_delay=10)
def run_activation_handler(session: Session, name: str, patient_id: int) -> None:
    patient = session.get(Patient, patient_id)
    if patient is None:
        return
    _handlers[name](session, patient)


def schedule_activation_handlers(session: Session, patient: Patient) -> None:
    from backend.tasks import enqueue_after_commit

    # One task per handler: a failing import must not stop the welcome message, and vice versa.
    for name in handler_names():
        enqueue_after_commit(session, run_activation_handler, name, patient.id)


# --- what dies with an account's credentials -----------------------------------------------------------
# Features register what they derive from an account (a calendar feed's secret, a service's OAuth grant, a
# device's push subscription…) and which events end it; the account service announces the events in the
# same transaction as the revocation of the sessions themselves. README "Security choices" has the table.

ACCOUNT_EVENTS = ("closed", "opposed", "password_changed", "device_revoked", "signed_out")
AccountEventHandler = Callable[[Session, int, str, dt.datetime], None]
_event_handlers: dict[str, tuple[frozenset[str], AccountEventHandler]] = {}


def on_account_event(name: str, *events: str) -> Callable[[AccountEventHandler], AccountEventHandler]:
    """Register ``fn(session, patient_id, event, now)`` for some of ``ACCOUNT_EVENTS``; it only flushes."""
    unknown = set(events) - set(ACCOUNT_EVENTS)
    if unknown or not events:
        raise ValueError(f"unknown account events: {sorted(unknown) or 'none given'}")

    def register(fn: AccountEventHandler) -> AccountEventHandler:
        _event_handlers[name] = (frozenset(events), fn)
        return fn

    return register


def event_handlers(event: str) -> list[str]:
    return sorted(name for name, (events, _fn) in _event_handlers.items() if event in events)


def account_event(session: Session, patient_id: int, event: str, now: dt.datetime) -> None:
    """Run, now and in this transaction, every handler of ``event``: a credential must be dead when the
    request that ends it commits, not after a queue gets to it."""
    assert event in ACCOUNT_EVENTS, event
    for name in event_handlers(event):
        _event_handlers[name][1](session, patient_id, event, now)
