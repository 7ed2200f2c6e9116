import pytest

from backend.accounts.passwords import unmet_rules


@pytest.mark.parametrize("password, rules", [
    ("Lune-Verte-42!x", []),
    ("short1!A", ["length"]),
    ("LUNE-VERTE-42!", ["lower"]),
    ("lune-verte-42!", ["upper"]),
    ("Lune-Verte-xx!", ["digit"]),
    ("LuneVerte42xx", ["special"]),
])
def test_each_rule(password, rules):
    assert [r for r in unmet_rules(password) if r != "common"] == rules


@pytest.mark.parametrize("password", ["Azerty123!", "Motdepasse1!", "Password123!", "Aaaaaaaaa1!", "Soleil!!2024"])
def test_common_passwords_are_refused(password):
    assert "common" in unmet_rules(password)


def test_the_patients_own_name_is_guessable():
    assert "common" in unmet_rules("Martinez1984!", personal=["Martinez", "1984"])
