"""The password rules the activation screen ticks off while the patient types.

They mirror the server's rules (same ids as the ``rule`` of a ``weak_password`` problem) so
the patient rarely meets a refusal. The server stays the authority: it alone knows the list
of common passwords (rule ``common``), which is why that rule is not checked here.
Pure functions, no Kivy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MIN_LENGTH = 9


@dataclass(frozen=True)
class PasswordRule:
    id: str
    label_fr: str
    label_en: str
    is_met: Callable[[str], bool]

    def label(self, language: str = "fr") -> str:
        return self.label_en if language == "en" else self.label_fr


@dataclass(frozen=True)
class RuleCheck:
    rule: PasswordRule
    met: bool

    @property
    def id(self) -> str:
        return self.rule.id


def _is_special(char: str) -> bool:
    # Anything that is neither a letter nor a digit counts, spaces and accented signs included;
    # accented letters (é, ç) are letters, not special characters.
    return not char.isalnum()


RULES: tuple[PasswordRule, ...] = (
    PasswordRule(
        "length",
        f"Au moins {MIN_LENGTH} caractères",
        f"At least {MIN_LENGTH} characters",
        lambda password: len(password) >= MIN_LENGTH,
    ),
    PasswordRule(
        "lower",
        "Une lettre minuscule",
        "A lowercase letter",
        lambda password: any(char.islower() for char in password),
    ),
    PasswordRule(
        "upper",
        "Une lettre majuscule",
        "An uppercase letter",
        lambda password: any(char.isupper() for char in password),
    ),
    PasswordRule(
        "digit",
        "Un chiffre",
        "A digit",
        lambda password: any(char.isdigit() for char in password),
    ),
    PasswordRule(
        "special",
        "Un caractère spécial (par exemple ! ? @ # -)",
        "A special character (for example ! ? @ # -)",
        lambda password: any(_is_special(char) for char in password),
    ),
)

RULES_BY_ID = {rule.id: rule for rule in RULES}


def check_password(password: str) -> list[RuleCheck]:
    """Every rule, in display order, with whether ``password`` meets it."""
    return [RuleCheck(rule, rule.is_met(password)) for rule in RULES]


def unmet_rules(password: str) -> list[str]:
    """Ids of the rules ``password`` does not meet yet (empty when it looks strong enough)."""
    return [check.id for check in check_password(password) if not check.met]


def is_acceptable(password: str, confirmation: str) -> bool:
    """Whether the form may be sent: every local rule met and both entries identical."""
    return not unmet_rules(password) and password == confirmation
