"""The password policy: ≥ 9 characters with lower, upper, digit and special; no common password."""
from __future__ import annotations

import re
import unicodedata

from zxcvbn import zxcvbn

# French words that zxcvbn's (English-leaning) dictionaries miss, frequent in French password leaks.
FRENCH_COMMON = [
    "motdepasse", "azerty", "soleil", "bonjour", "doudou", "loulou", "chouchou", "marseille", "nicolas",
    "julien", "camille", "chocolat", "coucou", "tresor", "amour", "jetaime", "princesse", "maman", "papa",
    "france", "paris", "sante", "carnet", "monespacesante", "ameli", "secu", "vitale", "bienvenue",
    "liberte", "dauphin", "football", "olivier", "nathalie", "isabelle", "sandrine", "celine", "thomas",
]

RULES = ("length", "lower", "upper", "digit", "special", "common")


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def unmet_rules(password: str, min_length: int = 9, personal: list[str] | None = None) -> list[str]:
    """The rules the password breaks, in display order; empty when acceptable."""
    failed = []
    if len(password) < min_length:
        failed.append("length")
    if not re.search(r"[a-zà-ÿ]", password):
        failed.append("lower")
    if not re.search(r"[A-ZÀ-Þ]", password):
        failed.append("upper")
    if not re.search(r"\d", password):
        failed.append("digit")
    if not re.search(r"[^\w\s]|_", password):
        failed.append("special")
    if _is_common(password, personal or []):
        failed.append("common")
    return failed


def _is_common(password: str, personal: list[str]) -> bool:
    inputs = FRENCH_COMMON + [_fold(p) for p in personal if p]
    core = re.sub(r"[\d\W_]+", "", _fold(password))
    if core in inputs or len(set(_fold(password))) <= 3:
        return True
    # zxcvbn scores 0..4; 0 and 1 are "too guessable" (dictionary words with common substitutions).
    return zxcvbn(password[:72], user_inputs=inputs)["score"] < 2
