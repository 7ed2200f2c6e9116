"""Professionals: creation by operators and bearer-token authentication behind an interface that
Pro Santé Connect (OpenID Connect) can replace."""
from __future__ import annotations

import datetime as dt
import re
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.audit import service as audit
from backend.db import utcnow
from backend.errors import DomainError
from backend.professionals.models import Professional, ProfessionalToken
from backend.security import new_token, token_digest

# Professions (nomenclature TRE_G15-ProfessionSante)
PROFESSIONS: dict[str, str] = {
    "10": "Médecin", "21": "Pharmacien", "26": "Audioprothésiste", "28": "Opticien-lunetier",
    "40": "Chirurgien-dentiste", "50": "Sage-femme", "60": "Infirmier", "69": "Infirmier psychiatrique",
    "70": "Masseur-kinésithérapeute", "80": "Pédicure-podologue", "81": "Orthoprothésiste",
    "82": "Podo-orthésiste", "83": "Orthopédiste-orthésiste", "84": "Oculariste", "85": "Épithésiste",
    "86": "Technicien de laboratoire médical", "91": "Orthophoniste", "92": "Orthoptiste", "93": "Psychologue",
    "94": "Ergothérapeute", "95": "Diététicien", "96": "Psychomotricien", "98": "Manipulateur ERM",
}


def normalize_rpps(raw: str) -> str:
    """11 digits; the national identifier form '8' + RPPS (12 digits) is accepted too."""
    value = re.sub(r"\s", "", raw or "")
    if len(value) == 12 and value.startswith("8"):
        value = value[1:]
    if not value.isdigit():
        raise DomainError("invalid_rpps", reason="chiffres uniquement")
    if len(value) != 11:
        raise DomainError("invalid_rpps", reason=f"11 chiffres attendus, {len(value)} reçus")
    return value


def create_professional(session: Session, *, rpps: str, family_name: str, given_name: str, profession: str,
                        specialty: str | None = None, organisation: str | None = None,
                        samu_regulator: bool = False, now: dt.datetime | None = None,
                        ) -> tuple[Professional, str]:
    now = now or utcnow()
    rpps = normalize_rpps(rpps)
    if profession not in PROFESSIONS:
        raise DomainError("unknown_profession", profession=profession)
    if session.scalar(select(Professional.id).where(Professional.rpps == rpps)) is not None:
        raise DomainError("rpps_exists", 409)
    pro = Professional(rpps=rpps, family_name=family_name.strip().upper(), given_name=given_name.strip(),
                       profession_code=profession, specialty_code=specialty, organisation=organisation,
                       samu_regulator=samu_regulator, created_at=now)
    session.add(pro)
    session.flush()
    token = issue_token(session, pro, now)
    audit.record(session, actor_type="operator", actor_id=None, action="professional.created",
                 details={"professional_id": pro.id, "rpps": rpps}, at=now)
    return pro, token


def issue_token(session: Session, pro: Professional, now: dt.datetime | None = None) -> str:
    token = new_token()
    session.add(ProfessionalToken(professional_id=pro.id, token_hash=token_digest(token), created_at=now or utcnow()))
    session.flush()
    return token


class ProfessionalAuthenticator(Protocol):
    """Turns a request credential into a Professional (or None). Pro Santé Connect plugs in here."""

    def authenticate(self, session: Session, credential: str) -> Professional | None: ...


class BearerTokenAuthenticator:
    def authenticate(self, session: Session, credential: str) -> Professional | None:
        # one round trip: this runs before every professional request
        return session.scalar(select(Professional).join(ProfessionalToken,
                                                        ProfessionalToken.professional_id == Professional.id)
                              .where(ProfessionalToken.token_hash == token_digest(credential),
                                     ProfessionalToken.revoked_at.is_(None)))
