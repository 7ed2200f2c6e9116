"""Idempotent demo data for `make run`: an active patient, a patient awaiting activation, a doctor.

The demo patient's TOTP seed is fixed so `carnet demo otp` can print the current code: this is for the
local demonstration only and never runs unless asked.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pyotp
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.accounts import service as accounts
from backend.accounts.models import AccountState, Patient
from backend.audit import service as audit
from backend.db import utcnow
from backend.identity import InsTraits, nir_key
from backend.professionals import service as pros
from backend.professionals.models import Professional, ProfessionalToken
from backend.security import hash_password, seal

DEMO_NIR = "2840763220010" + nir_key("2840763220010")
DEMO_PASSWORD = "Carnet-Demo-2026!"
DEMO_TOTP_SECRET = "JBSWY3DPEHPK3PXPCARNETDEMO234567"[:32]
PENDING_NIR = "1900275123456" + nir_key("1900275123456")
DEMO_RPPS = "10101234567"


@dataclass
class DemoInfo:
    api_hint: str
    pending_code: str | None
    pro_token: str

    def instructions(self) -> str:
        lines = [
            "Demo data ready.",
            "",
            "Log in (écran « Se connecter ») as the demo patient, Mme Camille MARTIN:",
            f"  NIR (numéro de sécurité sociale): {DEMO_NIR}",
            f"  Password (mot de passe):          {DEMO_PASSWORD}",
            "  One-time code (code à usage unique): run `carnet demo otp` (or `make otp`)",
            "",
        ]
        if self.pending_code:
            lines += [
                "Activate (écran « Activer mon profil ») M. Louis BERNARD's pre-created account:",
                f"  NIR: {PENDING_NIR}   birth date: 1990-02-17   activation code: {self.pending_code}",
                "",
            ]
        lines += [f"Professional API token (Dr Alice DURAND, RPPS {DEMO_RPPS}): {self.pro_token}"]
        return "\n".join(lines)


def seed(session: Session, config: Any) -> DemoInfo:
    settings = accounts.AccountSettings.from_config(config)
    now = utcnow()
    patient = session.scalar(select(Patient).where(Patient.nir == DEMO_NIR))
    if patient is None:
        traits = InsTraits(nir=DEMO_NIR, birth_family_name="Martin", given_names="Camille Anne",
                           birth_date=dt.date(1984, 7, 14), sex="F", birth_place_cog="63220")
        patient, _code = accounts.create_patient(session, settings, traits, email="camille.martin@example.org",
                                                 now=now)
        patient.password_hash = hash_password(DEMO_PASSWORD)
        patient.mfa_method = "totp"
        patient.mfa_secret = seal(settings.secret_key, f"totp:{DEMO_TOTP_SECRET}")
        patient.state = AccountState.ACTIVE
        patient.activated_at = now
        audit.record(session, actor_type="patient", actor_id=patient.id, action="account.activated",
                     patient_id=patient.id, at=now)

    pending_code = None
    pending = session.scalar(select(Patient).where(Patient.nir == PENDING_NIR))
    if pending is None:
        traits = InsTraits(nir=PENDING_NIR, birth_family_name="Bernard", given_names="Louis",
                           birth_date=dt.date(1990, 2, 17), sex="M")
        pending, pending_code = accounts.create_patient(session, settings, traits, now=now)
    elif pending.state == AccountState.PRECREATED:
        pending_code = accounts.issue_activation_code(session, settings, pending, now=now)

    pro = session.scalar(select(Professional).where(Professional.rpps == DEMO_RPPS))
    if pro is None:
        pro, token = pros.create_professional(session, rpps=DEMO_RPPS, family_name="Durand", given_name="Alice",
                                              profession="10", specialty="SM54", organisation="Cabinet du Parc")
    else:
        session.execute(update(ProfessionalToken).where(ProfessionalToken.professional_id == pro.id,
                                                        ProfessionalToken.revoked_at.is_(None))
                        .values(revoked_at=now))
        token = pros.issue_token(session, pro, now)
    from backend.catalog.service import import_seed  # the demonstration catalogue of services

    import_seed(session, now=now)
    from backend.messaging.demo import seed_inbox  # two conversations from the demo doctor

    seed_inbox(session, patient, pro, now=now)
    session.commit()
    return DemoInfo(api_hint="", pending_code=pending_code, pro_token=token)


def current_code(session: Session, config: Any) -> str:
    patient = session.scalar(select(Patient).where(Patient.nir == DEMO_NIR))
    if patient is None:
        raise SystemExit("error: no demo patient; run `carnet demo` first")
    return pyotp.TOTP(DEMO_TOTP_SECRET).now()
