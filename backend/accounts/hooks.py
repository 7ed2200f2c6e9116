"""What happens when an account becomes active: later features register handlers here.

Handlers run on the task queue after the activation is committed (the legacy import, a welcome
message…). Each takes (session, patient) and only flushes.
"""
from __future__ import annotations

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
