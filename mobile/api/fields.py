"""Turning what a patient types into what the API expects. Pure functions, no Kivy.

Patients copy numbers from a letter or a carte Vitale: with spaces, dashes, lower case,
dates the French way. We accept all of that and send the canonical form; anything we cannot
understand is reported with a sentence key the screen translates (see ``mobile.i18n``).
"""

from __future__ import annotations

import re
from datetime import date

NIR_LENGTH = 15
ACTIVATION_CODE_LENGTH = 12
OTP_LENGTH = 6

_SEPARATORS = re.compile(r"[\s.\-/_]+")
_DATE_FR = re.compile(r"^\s*(\d{1,2})\s*[/.\- ]\s*(\d{1,2})\s*[/.\- ]\s*(\d{4})\s*$")
_DATE_ISO = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})\s*$")


class FieldProblem(ValueError):
    """A value the patient typed that cannot be sent as is; ``message`` is a French msgid."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def normalise_nir(raw: str) -> str:
    """'2 84 07 63 220 010 49' → '284076322001049'. Corsica's 2A/2B kept upper case."""
    nir = _SEPARATORS.sub("", raw or "").upper()
    if len(nir) != NIR_LENGTH:
        raise FieldProblem("nir", "Le numéro de sécurité sociale comporte 15 caractères.")
    if not re.fullmatch(r"[1-8]\d{4}(\d{2}|2A|2B)\d{8}", nir) or nir_key(nir[:13]) != int(
        nir[13:]
    ):
        raise FieldProblem("nir", "Ce numéro de sécurité sociale n'est pas valide.")
    return nir


def nir_key(first_thirteen: str) -> int:
    """The NIR control key: 97 − (number mod 97), Corsica's 2A/2B read as 19/18."""
    digits = first_thirteen.upper().replace("2A", "19").replace("2B", "18")
    return 97 - (int(digits) % 97)


def parse_birth_date(raw: str) -> str:
    """'14/07/1984', '14.07.1984' or '1984-07-14' → '1984-07-14'."""
    text = (raw or "").strip()
    match = _DATE_ISO.match(text)
    if match:
        year, month, day = (int(part) for part in match.groups())
    else:
        match = _DATE_FR.match(text)
        if not match:
            raise FieldProblem("birth_date", "Saisissez la date au format JJ/MM/AAAA.")
        day, month, year = (int(part) for part in match.groups())
    try:
        parsed = date(year, month, day)
    except ValueError:
        raise FieldProblem("birth_date", "Cette date de naissance n'existe pas.") from None
    if parsed > date.today() or parsed.year < 1880:
        raise FieldProblem("birth_date", "Cette date de naissance n'est pas plausible.")
    return parsed.isoformat()


def normalise_activation_code(raw: str) -> str:
    """'abcd-efgh-1234' → 'ABCDEFGH1234'."""
    code = _SEPARATORS.sub("", raw or "").upper()
    if len(code) != ACTIVATION_CODE_LENGTH:
        raise FieldProblem("activation_code", "Le code d'activation comporte 12 caractères.")
    return code


def normalise_otp(raw: str) -> str:
    code = _SEPARATORS.sub("", raw or "")
    if not re.fullmatch(rf"\d{{{OTP_LENGTH}}}", code):
        raise FieldProblem("code", "Le code de sécurité comporte 6 chiffres.")
    return code


def group(text: str, size: int = 4, per_line: int = 4) -> str:
    """'JBSWY3DPEHPK3PXP…' → 'JBSW Y3DP EHPK 3PXP\n…': easier to copy by hand, and a
    line break we choose rather than one the screen width chooses mid-group."""
    groups = [text[i : i + size] for i in range(0, len(text), size)]
    return "\n".join(" ".join(groups[i : i + per_line]) for i in range(0, len(groups), per_line))
