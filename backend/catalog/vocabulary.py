"""What the catalogue speaks: themes, regions and permissions (scopes), each with its label.

A permission is an OAuth scope ``<area>.<item>.<access>``:

- ``documents.<CATEGORY>.read`` — the record's documents of one patient category (``BIOLOGIE``…);
- ``measures.<type>.read`` / ``measures.<type>.write`` — measures of one type (``glucose``, ``weight``…);
- ``profile.<kind>.read`` — a kind of the medical profile (``allergy``, ``treatment``, ``vaccination``).

Each permission names the record category the access decision (``records.access.policy``) is asked for, so a
service's consent becomes ``Actor(kind="service", granted_categories=...)`` for exactly what it reads.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from backend.records.profile import kinds as pk
from backend.records.documents.service import CATEGORIES

THEMES = ("chronic_disease", "teleconsultation", "pharmacy", "vaccination", "pregnancy", "mental_health",
          "physical_activity", "addiction", "hearing", "sleep", "nutrition", "prevention", "ageing",
          "disability", "caregivers")

# INSEE region codes (2016 regions, overseas included)
REGIONS = ("84", "27", "53", "24", "94", "44", "32", "11", "28", "75", "76", "52", "93",
           "01", "02", "03", "04", "06")
NATIONAL = "national"

PROFILE_KINDS = ("allergy", "treatment", "vaccination")
ACCESS = ("read", "write")


@dataclass(frozen=True)
class Permission:
    scope: str
    area: str          # documents | measures | profile
    item: str          # category, measure type or profile kind
    access: str        # read | write

    @property
    def record_category(self) -> str:
        """The record category the access decision is asked for."""
        if self.area == "documents":
            return self.item
        if self.area == "measures":
            return pk.MEASURE_CATEGORY
        return pk.KINDS[self.item].category


def _all_permissions() -> dict[str, Permission]:
    out: dict[str, Permission] = {}
    for category in CATEGORIES:
        out[f"documents.{category}.read"] = Permission(f"documents.{category}.read", "documents", category, "read")
    for mtype in pk.MEASURE_TYPES:
        for access in ACCESS:
            out[f"measures.{mtype}.{access}"] = Permission(f"measures.{mtype}.{access}", "measures", mtype, access)
    for kind in PROFILE_KINDS:
        out[f"profile.{kind}.read"] = Permission(f"profile.{kind}.read", "profile", kind, "read")
    return out


PERMISSIONS: dict[str, Permission] = _all_permissions()


def permission(scope: str) -> Permission | None:
    return PERMISSIONS.get(scope)


# --- folding for sorting and searching --------------------------------------------------------------------

_LIGATURES = str.maketrans({"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ß": "ss"})


def expand_ligatures(text: str) -> str:
    """œ → oe, æ → ae: neither SQLite's unicode61 tokenizer nor a French reader treats them as letters
    of their own."""
    return text.translate(_LIGATURES)


def fold(text: str) -> str:
    """Case- and accent-free text ("Cœur Diabète" → "coeur diabete"), for sorting and the SQLite index."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def search_words(query: str, limit: int = 8) -> list[str]:
    """The words of a search, folded; anything but letters and digits is a separator (so nothing the
    user types can become full-text query syntax)."""
    return _WORD.findall(fold(query))[:limit]
