"""Activation handler: a welcome email (no health data) when the account becomes active."""
from __future__ import annotations

from sqlalchemy.orm import Session

from backend.accounts.hooks import on_activation
from backend.accounts.models import Patient
from backend.db import utcnow
from backend.notifications.models import OutboxEmail


@on_activation("welcome_email")
def send_welcome(session: Session, patient: Patient) -> None:
    if not patient.email:
        return
    session.add(OutboxEmail(
        recipient=patient.email, kind="welcome", patient_id=patient.id, created_at=utcnow(),
        subject="Bienvenue dans Carnet / Welcome to Carnet",
        body=("Bonjour,\n\nVotre profil Carnet est activé. Vous pouvez consulter votre dossier médical, "
              "vos messages et votre agenda depuis l'application.\n\n"
              "Your Carnet profile is active."),
    ))
