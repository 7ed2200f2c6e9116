"""Turning what the patient types into what the API expects (no window, no server)."""

from __future__ import annotations

from datetime import date

import pytest

from mobile.api.fields import (
    FieldProblem,
    group,
    nir_key,
    normalise_activation_code,
    normalise_nir,
    normalise_otp,
    parse_birth_date,
)

NIR = "2840763220010" + f"{97 - 2840763220010 % 97:02d}"


def test_nir_key():
    assert nir_key("2840763220010") == 97 - 2840763220010 % 97
    # Corsica: 2A reads as 19, 2B as 18.
    assert nir_key("184022A001001") == 97 - 1840219001001 % 97


@pytest.mark.parametrize("typed", [NIR, f" {NIR} ", "2 84 07 63 220 010 " + NIR[-2:], "2-84-07-63-220-010-" + NIR[-2:]])
def test_nir_spaces_and_dashes_are_ignored(typed):
    assert normalise_nir(typed) == NIR


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Le numéro de sécurité sociale comporte 15 caractères."),
        (NIR[:-1], "Le numéro de sécurité sociale comporte 15 caractères."),
        (NIR[:-2] + f"{(int(NIR[-2:]) % 97) + 1:02d}", "Ce numéro de sécurité sociale n'est pas valide."),
        ("9" + NIR[1:], "Ce numéro de sécurité sociale n'est pas valide."),
    ],
)
def test_bad_nir(typed, message):
    with pytest.raises(FieldProblem) as problem:
        normalise_nir(typed)
    assert problem.value.field == "nir"
    assert problem.value.message == message


def test_corsican_nir_is_accepted_upper_cased():
    first13 = "184022a001001"
    nir = f"{first13}{nir_key(first13):02d}"
    assert normalise_nir(nir) == nir.upper()


@pytest.mark.parametrize(
    "typed", ["14/07/1984", "14.07.1984", "14-07-1984", "4/7/1984", " 14 / 07 / 1984 ", "1984-07-14", "04/07/1984"]
)
def test_birth_date_french_or_iso(typed):
    assert parse_birth_date(typed) in {"1984-07-14", "1984-07-04"}


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("1984", "Saisissez la date au format JJ/MM/AAAA."),
        ("31/02/1984", "Cette date de naissance n'existe pas."),
        (f"01/01/{date.today().year + 1}", "Cette date de naissance n'est pas plausible."),
    ],
)
def test_bad_birth_date(typed, message):
    with pytest.raises(FieldProblem) as problem:
        parse_birth_date(typed)
    assert problem.value.message == message


def test_activation_code_is_upper_cased_without_separators():
    assert normalise_activation_code("abcd-efgh 2345") == "ABCDEFGH2345"
    with pytest.raises(FieldProblem):
        normalise_activation_code("ABCDEFGH234")


def test_otp():
    assert normalise_otp(" 123 456 ") == "123456"
    for bad in ("12345", "1234567", "12a456", ""):
        with pytest.raises(FieldProblem):
            normalise_otp(bad)


def test_group_splits_a_totp_secret_for_reading():
    assert group("JBSWY3DPEHPK3PXP") == "JBSW Y3DP EHPK 3PXP"
    assert group("A" * 32) == "AAAA AAAA AAAA AAAA\nAAAA AAAA AAAA AAAA"
    assert "".join(group("JBSWY3DPEHPK3PXPXX").split()) == "JBSWY3DPEHPK3PXPXX"
