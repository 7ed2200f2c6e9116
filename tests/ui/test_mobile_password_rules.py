"""The password rules the activation screen ticks live (no window, no server)."""

from __future__ import annotations

import pytest

from mobile.api import password_rules
from mobile.api.password_rules import RULES, check_password, is_acceptable, unmet_rules

ALL = ["length", "lower", "upper", "digit", "special"]


@pytest.mark.parametrize(
    ("password", "unmet"),
    [
        ("", ALL),
        ("abc", ["length", "upper", "digit", "special"]),
        ("ABCDEFGHI", ["lower", "digit", "special"]),
        ("abcdefgh1", ["upper", "special"]),
        ("Abcdefgh1", ["special"]),
        ("Abcdefg1!", []),
        ("Abcdef1!", ["length"]),  # 8 characters: one short
        ("Élodie-2026", []),  # accented capitals count as capitals
        ("élodie 2026", ["upper"]),  # a space is a special character
        ("ÉLODIE-2026", ["lower"]),
        ("Carnet-Santé-2026!", []),
    ],
)
def test_unmet_rules(password, unmet):
    assert unmet_rules(password) == unmet


def test_accented_letters_are_letters_not_special_characters():
    assert "special" in unmet_rules("Éléphant12")


def test_rules_come_in_display_order_with_both_languages():
    assert [rule.id for rule in RULES] == ALL
    for rule in RULES:
        assert rule.label("fr") == rule.label_fr and rule.label_fr
        assert rule.label("en") == rule.label_en and rule.label_en
        assert rule.label_fr != rule.label_en
    assert RULES[0].label("fr") == "Au moins 9 caractères"
    assert RULES[0].label("en") == "At least 9 characters"


def test_check_password_reports_every_rule():
    checks = check_password("abc")
    assert [check.id for check in checks] == ALL
    assert {check.id: check.met for check in checks}["lower"] is True


def test_acceptable_needs_every_rule_and_a_matching_confirmation():
    assert is_acceptable("Abcdefg1!", "Abcdefg1!")
    assert not is_acceptable("Abcdefg1!", "Abcdefg1?")
    assert not is_acceptable("abcdefg1!", "abcdefg1!")


def test_rule_ids_match_the_server_weak_password_rules():
    # "common" is the server's alone: it holds the list of common passwords.
    server_rules = {"length", "lower", "upper", "digit", "special", "common"}
    assert set(password_rules.RULES_BY_ID) == server_rules - {"common"}
