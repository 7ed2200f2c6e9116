"""Patient identity: NIR/INS validation (domain.md) and INS traits.

NIR = sex(1) year(2) month(2) department(2, or 2A/2B) commune(3) serial(3) key(2), with
key = 97 − (first 13 digits mod 97) after 2A→19, 2B→18. The key is checked strictly (python-stdnum),
the month leniently: 20–42 and 50–99 exist for incomplete civil-status data.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from stdnum import exceptions as stdnum_exceptions
from stdnum.fr import nir as stdnum_nir

# OIDs of patient identifiers found in documents
OID_INS_NIR = "1.2.250.1.213.1.4.8"
OID_INS_NIA = "1.2.250.1.213.1.4.9"
OID_INS_NIR_TEST = "1.2.250.1.213.1.4.10"
OID_INS_NIA_TEST = "1.2.250.1.213.1.4.11"
OID_NIR_SOCIAL_SECURITY = "1.2.250.1.213.1.4.13"
OID_INS_C = "1.2.250.1.213.1.4.2"
INS_OIDS = (OID_INS_NIR, OID_INS_NIA, OID_INS_NIR_TEST, OID_INS_NIA_TEST)

SEX_DIGITS = {"1": "M", "2": "F", "3": "M", "4": "F", "7": "M", "8": "F"}


class InvalidIdentifier(ValueError):
    """An identifier refused, with a reason in French and English."""

    def __init__(self, reason_fr: str, reason_en: str) -> None:
        super().__init__(reason_en)
        self.reason_fr = reason_fr
        self.reason_en = reason_en


def normalize_nir(raw: str) -> str:
    return re.sub(r"[\s.\-]", "", raw or "").upper()


def validate_nir(raw: str) -> str:
    """Return the normalized 15-character NIR or raise :class:`InvalidIdentifier`."""
    nir = normalize_nir(raw)
    if not nir:
        raise InvalidIdentifier("numéro vide", "empty number")
    if len(nir) != 15:
        raise InvalidIdentifier(f"il doit comporter 15 caractères (clé comprise), pas {len(nir)}",
                                f"it must have 15 characters (key included), not {len(nir)}")
    if nir[0] not in SEX_DIGITS:
        raise InvalidIdentifier("le premier chiffre (sexe) doit être 1, 2, 3, 4, 7 ou 8",
                                "the first digit (sex) must be 1, 2, 3, 4, 7 or 8")
    month = nir[3:5]
    if not month.isdigit():
        raise InvalidIdentifier("le mois de naissance doit être numérique", "the birth month must be numeric")
    m = int(month)
    if not (1 <= m <= 12 or 20 <= m <= 42 or 50 <= m <= 99):
        raise InvalidIdentifier(f"mois de naissance impossible ({month})", f"impossible birth month ({month})")
    try:
        stdnum_nir.validate(nir)
    except stdnum_exceptions.InvalidChecksum:
        raise InvalidIdentifier("la clé de contrôle ne correspond pas", "the control key does not match") from None
    except stdnum_exceptions.ValidationError:
        raise InvalidIdentifier("format incorrect (chiffres attendus, 2A/2B pour la Corse)",
                                "wrong format (digits expected, 2A/2B for Corsica)") from None
    return nir


def nir_key(first13: str) -> str:
    """The control key of the first 13 characters (2A/2B handled)."""
    digits = first13.upper().replace("2A", "19").replace("2B", "18")
    return f"{97 - int(digits) % 97:02d}"


def parse_birth_date(raw: str, today: dt.date | None = None) -> dt.date:
    try:
        value = dt.date.fromisoformat(str(raw).strip())
    except ValueError:
        raise InvalidIdentifier("format attendu AAAA-MM-JJ", "expected format YYYY-MM-DD") from None
    today = today or dt.date.today()
    if value > today:
        raise InvalidIdentifier("date dans le futur", "date in the future")
    if value.year < 1880:
        raise InvalidIdentifier("date trop ancienne", "date too far in the past")
    return value


def nir_matches_birth_date(nir: str, birth_date: dt.date) -> bool:
    """Year always; month only when the NIR carries a real month (01–12)."""
    if int(nir[1:3]) != birth_date.year % 100:
        return False
    month = int(nir[3:5])
    return not (1 <= month <= 12) or month == birth_date.month


@dataclass(frozen=True)
class InsTraits:
    """The INS traits kept with the matricule."""

    nir: str
    birth_family_name: str
    given_names: str
    birth_date: dt.date
    sex: str
    birth_place_cog: str | None = None
    oid: str = OID_INS_NIR


# --- ages: a birthday starts at midnight in France ---------------------------------------------------------

FRANCE = ZoneInfo("Europe/Paris")
MAJORITY_AGE = 18


def day_in_france(now: dt.datetime) -> dt.date:
    """The calendar day in France at ``now``."""
    return now.astimezone(FRANCE).date()


def birthday(born: dt.date, years: int) -> dt.date:
    """The day one turns ``years`` (a 29 February birthday falls on 1 March in common years)."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:
        return dt.date(born.year + years, 3, 1)


def age_on(born: dt.date, day: dt.date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def is_minor(born: dt.date, today: dt.date, majority_age: int = MAJORITY_AGE) -> bool:
    return today < birthday(born, majority_age)
