"""Idempotent demo data for `make run`: an active patient with a lived-in record (``backend.tools.demo_record``),
a patient awaiting activation, a doctor with the token of her software.

The credentials stay the same from one run to the next: the demo patient's password and TOTP seed are
fixed (so `carnet demo otp` can print the current code), and the pending patient's activation code and the
doctor's token are derived from this instance's secret key (the same on every run of one instance, different
on another machine). This is for the local demonstration only and never runs unless asked.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pyotp
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.accounts import service as accounts
from backend.accounts.models import AccountState, ActivationCode, Patient
from backend.audit import service as audit
from backend.db import utcnow
from backend.identity import InsTraits, nir_key
from backend.professionals import service as pros
from backend.professionals.models import Professional, ProfessionalToken
from backend.security import (ACTIVATION_ALPHABET, ACTIVATION_CODE_LENGTH, hash_password, keyed_digest, seal,
                              token_digest)

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
        lines += ["The profile switcher on home opens Léo MARTIN's record (her son: she is his legal representative)",
                  "and Jean MARTIN's (her father: she helps him with his agenda and messages).", ""]
        lines += [f"Professional API token (Dr Alice DURAND, RPPS {DEMO_RPPS}): {self.pro_token}"]
        return "\n".join(lines)


def _derived(secret_key: str, purpose: str) -> bytes:
    return bytes.fromhex(keyed_digest(secret_key, f"carnet-demo:{purpose}"))


def demo_activation_code(secret_key: str) -> str:
    """The pending patient's activation code on this instance: the same on every run."""
    raw = _derived(secret_key, "activation")
    return "".join(ACTIVATION_ALPHABET[b % len(ACTIVATION_ALPHABET)] for b in raw[:ACTIVATION_CODE_LENGTH])


def demo_pro_token(secret_key: str) -> str:
    """Dr Durand's software token on this instance: the same on every run."""
    import base64

    return base64.urlsafe_b64encode(_derived(secret_key, "professional-token")).decode().rstrip("=")


def _pending_code(session: Session, settings: accounts.AccountSettings, pending: Patient, now: dt.datetime) -> str:
    code = demo_activation_code(settings.secret_key)
    digest = keyed_digest(settings.secret_key, code)
    live = session.scalar(select(ActivationCode).where(
        ActivationCode.patient_id == pending.id, ActivationCode.used_at.is_(None), ActivationCode.code_hash == digest,
        ActivationCode.expires_at > now + dt.timedelta(days=7)))
    if live is None:
        session.execute(update(ActivationCode).where(ActivationCode.patient_id == pending.id,
                                                     ActivationCode.used_at.is_(None)).values(used_at=now))
        session.add(ActivationCode(patient_id=pending.id, code_hash=digest, created_at=now,
                                   expires_at=now + settings.activation_code_validity))
        session.flush()
    return code


def _pro_token(session: Session, settings: accounts.AccountSettings, pro: Professional, now: dt.datetime) -> str:
    token = demo_pro_token(settings.secret_key)
    row = session.scalar(select(ProfessionalToken).where(ProfessionalToken.token_hash == token_digest(token)))
    if row is None or row.revoked_at is not None:
        if row is not None:
            row.revoked_at = None
        else:
            session.add(ProfessionalToken(professional_id=pro.id, token_hash=token_digest(token), created_at=now))
        session.flush()
    return token


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
        pending, _random_code = accounts.create_patient(session, settings, traits, now=now)
    if pending.state == AccountState.PRECREATED:
        pending_code = _pending_code(session, settings, pending, now)

    pro = session.scalar(select(Professional).where(Professional.rpps == DEMO_RPPS))
    if pro is None:
        pro, first_token = pros.create_professional(session, rpps=DEMO_RPPS, family_name="Durand", given_name="Alice",
                                                    profession="10", specialty="SM54", organisation="Cabinet du Parc")
        # only the derived token below is printed: the random one made with the professional is dropped
        session.execute(update(ProfessionalToken).where(ProfessionalToken.token_hash == token_digest(first_token))
                        .values(revoked_at=now))
    token = _pro_token(session, settings, pro, now)
    from backend.catalog.operators import import_seed  # the demonstration catalogue of services

    import_seed(session, now=now)
    from backend.messaging.demo import seed_inbox  # two conversations from the demo doctor

    seed_inbox(session, patient, pro, now=now)
    from backend.tools.demo_record import seed_record  # documents, profile, agenda, service, access history

    seed_record(session, config, patient, pro, now=now)

    from backend.tools.demo_pathways import seed_pathways  # DP and DCC: implant, dispensed vaccine, cancer pathway, insurer

    seed_pathways(session, patient, now=now)
    from backend.tools.demo_family import seed_family  # her son Léo (she represents him) and her father (she helps him)

    seed_family(session, config, patient, pro, now=now)
    session.commit()
    return DemoInfo(api_hint="", pending_code=pending_code, pro_token=token)


def current_code(session: Session, config: Any) -> str:
    patient = session.scalar(select(Patient).where(Patient.nir == DEMO_NIR))
    if patient is None:
        raise SystemExit("error: no demo patient; run `carnet demo` first")
    return pyotp.TOTP(DEMO_TOTP_SECRET).now()
