"""Professionals: creation by operators and bearer-token authentication behind an interface that
Pro Santé Connect (OpenID Connect) can replace."""
from __future__ import annotations

import datetime as dt
import re
from typing import Protocol

from sqlalchemy import bindparam, select
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


# The same, for the English app (the official English names of the professions)
PROFESSIONS_EN: dict[str, str] = {
    "10": "Doctor", "21": "Pharmacist", "26": "Hearing-aid specialist", "28": "Optician",
    "40": "Dentist", "50": "Midwife", "60": "Nurse", "69": "Psychiatric nurse",
    "70": "Physiotherapist", "80": "Podiatrist", "81": "Orthotist-prosthetist",
    "82": "Podiatric orthotist", "83": "Orthopaedic orthotist", "84": "Ocularist", "85": "Epithesist",
    "86": "Medical laboratory technician", "91": "Speech therapist", "92": "Orthoptist", "93": "Psychologist",
    "94": "Occupational therapist", "95": "Dietitian", "96": "Psychomotor therapist", "98": "Radiographer",
}


def profession_label(code: str | None, lang: str | None = None) -> str | None:
    """The profession in the reader's language (the request's unless ``lang``); the code if unknown."""
    if not code:
        return None
    from backend.i18n import language

    table = PROFESSIONS_EN if (lang or language()) == "en" else PROFESSIONS
    return table.get(code) or PROFESSIONS.get(code, code)


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


# Organization.identifier systems that name a structure, and the idNat_Struct prefix of each (ANS,
# "identifiant national de structure": 1 = FINESS, 2 = SIREN, 3 = SIRET).
IDNAT_STRUCT_OID = "1.2.250.1.71.4.2.2"
FINESS_SYSTEMS = ("http://finess.sante.gouv.fr", "https://finess.esante.gouv.fr")
SIRENE_SYSTEMS = ("https://sirene.fr", "http://sirene.fr")


def normalize_structure_id(raw: str) -> str:
    """A national structure identifier (idNat_Struct, e.g. "1" + FINESS): letters and digits, 2 to 32."""
    value = re.sub(r"\s", "", raw or "")
    if not re.fullmatch(r"[0-9A-Za-z]{2,32}", value):
        raise DomainError("invalid_structure_id")
    return value.upper()


def structure_id_from(system: str | None, value: str | None) -> str | None:
    """The idNat_Struct an Organization identifier stands for (FINESS, SIREN/SIRET, idNat_Struct), or None."""
    system, value = (system or "").strip(), re.sub(r"\s", "", value or "")
    if not value or len(value) > 31:
        return None
    if system in (f"urn:oid:{IDNAT_STRUCT_OID}", IDNAT_STRUCT_OID):
        candidate = value
    elif system in FINESS_SYSTEMS and re.fullmatch(r"(?:[0-9]{2}|2[AB])[0-9]{7}", value.upper()):
        candidate = "1" + value
    elif system in SIRENE_SYSTEMS and re.fullmatch(r"[0-9]{9}|[0-9]{14}", value):
        candidate = ("2" if len(value) == 9 else "3") + value
    else:
        return None
    try:
        return normalize_structure_id(candidate)
    except DomainError:
        return None


def create_professional(session: Session, *, rpps: str, family_name: str, given_name: str, profession: str,
                        specialty: str | None = None, organisation: str | None = None,
                        structure_id: str | None = None, samu_regulator: bool = False,
                        now: dt.datetime | None = None) -> tuple[Professional, str]:
    now = now or utcnow()
    rpps = normalize_rpps(rpps)
    structure_id = normalize_structure_id(structure_id) if structure_id else None
    if profession not in PROFESSIONS:
        raise DomainError("unknown_profession", profession=profession)
    if session.scalar(select(Professional.id).where(Professional.rpps == rpps)) is not None:
        raise DomainError("rpps_exists", 409)
    pro = Professional(rpps=rpps, family_name=family_name.strip().upper(), given_name=given_name.strip(),
                       profession_code=profession, specialty_code=specialty, organisation=organisation,
                       structure_id=structure_id, samu_regulator=samu_regulator, created_at=now)
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


# one round trip, built once: this runs before every professional request (only the digest changes)
_PROFESSIONAL_BY_TOKEN = (select(Professional)
                          .join(ProfessionalToken, ProfessionalToken.professional_id == Professional.id)
                          .where(ProfessionalToken.token_hash == bindparam("digest"),
                                 ProfessionalToken.revoked_at.is_(None)))


class BearerTokenAuthenticator:
    def authenticate(self, session: Session, credential: str) -> Professional | None:
        return session.scalar(_PROFESSIONAL_BY_TOKEN, {"digest": token_digest(credential)})
