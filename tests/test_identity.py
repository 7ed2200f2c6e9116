import datetime as dt

import pytest

from backend.identity import InvalidIdentifier, nir_key, nir_matches_birth_date, parse_birth_date, validate_nir
from tests.helpers import make_nir


def test_key_is_97_minus_mod_97():
    first13 = "1850578006048"
    assert nir_key(first13) == f"{97 - int(first13) % 97:02d}"
    assert validate_nir(first13 + nir_key(first13)) == first13 + nir_key(first13)


def test_spaces_and_dots_are_ignored():
    nir = make_nir("2840763220010")
    spaced = f"{nir[0]} {nir[1:3]} {nir[3:5]} {nir[5:7]} {nir[7:10]} {nir[10:13]} {nir[13:]}"
    assert validate_nir(spaced) == nir


@pytest.mark.parametrize("dept, substitute", [("2A", "19"), ("2B", "18")])
def test_corsica_departments_use_19_and_18_for_the_key(dept, substitute):
    first13 = f"18505{dept}004123"
    key = f"{97 - int(first13.replace(dept, substitute)) % 97:02d}"
    assert validate_nir(first13 + key) == first13 + key
    assert nir_key(first13) == key


@pytest.mark.parametrize("month", ["20", "33", "42", "50", "62", "99"])
def test_month_is_validated_leniently(month):
    # incomplete civil-status data gives months 20–42 and 50+
    assert validate_nir(make_nir(f"185{month}78006048"))


@pytest.mark.parametrize("month", ["00", "13", "19", "43", "49"])
def test_impossible_months_are_refused(month):
    with pytest.raises(InvalidIdentifier, match="impossible"):
        validate_nir(make_nir(f"185{month}78006048"))


def test_key_is_checked_strictly():
    good = make_nir("1850578006048")
    bad = good[:13] + f"{(int(good[13:]) + 1) % 97:02d}"
    with pytest.raises(InvalidIdentifier) as exc:
        validate_nir(bad)
    assert "clé" in exc.value.reason_fr


@pytest.mark.parametrize("raw, reason", [
    ("", "vide"), ("12345", "15 caractères"), ("5850578006048" + "00", "premier chiffre"),
    ("18505780060AB" + "00", "format"), ("1850578006048123", "15 caractères"),
])
def test_malformed_numbers_have_a_reason(raw, reason):
    with pytest.raises(InvalidIdentifier) as exc:
        validate_nir(raw)
    assert reason in exc.value.reason_fr
    assert exc.value.reason_en


def test_birth_dates():
    assert parse_birth_date("1984-07-14") == dt.date(1984, 7, 14)
    for raw in ["14/07/1984", "1984-13-01", "", "tomorrow"]:
        with pytest.raises(InvalidIdentifier):
            parse_birth_date(raw)
    with pytest.raises(InvalidIdentifier, match="future"):
        parse_birth_date((dt.date.today() + dt.timedelta(days=1)).isoformat())


def test_nir_and_birth_date_agree_on_year_and_real_month():
    nir = make_nir("2840763220010")
    assert nir_matches_birth_date(nir, dt.date(1984, 7, 14))
    assert not nir_matches_birth_date(nir, dt.date(1985, 7, 14))
    assert not nir_matches_birth_date(nir, dt.date(1984, 8, 14))
    assert nir_matches_birth_date(make_nir("2843063220010"), dt.date(1984, 3, 1))  # month 30: unknown month
