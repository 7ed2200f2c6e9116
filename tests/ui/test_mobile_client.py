"""The mobile API client against a live backend (no window), and its error parsing."""

from __future__ import annotations

import pyotp
import pytest
import requests

from mobile.api import ApiError, CarnetClient
from mobile.api.errors import FieldError


@pytest.fixture
def client(live_backend):
    with CarnetClient(live_backend.url) as client:
        yield client


@pytest.fixture
def english_client(live_backend):
    with CarnetClient(live_backend.url, language="en") as client:
        yield client


def test_check_activation_names_the_patient(client, new_patient):
    result = client.check_activation(
        new_patient.nir, new_patient.birth_date, new_patient.activation_code
    )
    assert result["status"] == "valid"
    assert result["given_name"] == new_patient.given_name
    assert client.token is None


def test_wrong_activation_code_is_a_localised_problem(client, english_client, new_patient):
    with pytest.raises(ApiError) as french:
        client.check_activation(new_patient.nir, new_patient.birth_date, "WRONG0CODE00")
    with pytest.raises(ApiError) as english:
        english_client.check_activation(new_patient.nir, new_patient.birth_date, "WRONG0CODE01")
    for error in (french.value, english.value):
        assert error.status == 422
        assert error.code == "invalid_activation"
        assert error.detail and not error.detail.startswith("{")
    assert french.value.detail != english.value.detail


def test_weak_password_lists_the_rules_it_breaks(client, new_patient):
    with pytest.raises(ApiError) as refused:
        client.activate(new_patient.nir, new_patient.birth_date, new_patient.activation_code, "abc")
    error = refused.value
    assert (error.status, error.code) == (422, "weak_password")
    rules = {field_error.rule for field_error in error.errors}
    assert {"length", "upper", "digit", "special"} <= rules
    assert all(isinstance(e, FieldError) and e.message for e in error.errors)
    assert client.token is None


def test_activation_enrolment_and_session(client, live_backend, new_patient):
    activated = client.activate(
        new_patient.nir, new_patient.birth_date, new_patient.activation_code, new_patient.password
    )
    assert activated["next"] == "enrol"
    assert client.token == activated["token"]

    enrolment = client.enrol_totp()
    assert enrolment["method"] == "totp"
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/")
    secret = enrolment["secret"]

    session = client.confirm_enrolment(pyotp.TOTP(secret).now(), device_name="pytest")
    assert session["token_type"].lower() == "bearer"
    assert client.token == session["access_token"]

    me = client.me()
    assert me["given_name"] == new_patient.given_name
    assert me["family_name"].upper() == new_patient.family_name.upper()
    home = client.home()
    assert home["given_name"] == new_patient.given_name
    assert isinstance(home["recent_activity"], list)
    assert isinstance(home["next_steps"], list)
    for step in home["next_steps"]:
        assert {"id", "label"} <= step.keys()

    access_token = client.token
    client.logout()
    assert client.token is None
    response = requests.get(
        f"{live_backend.url}/api/v1/me",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=5,
    )
    assert response.status_code == 401


def test_home_labels_follow_the_language(live_backend, enrolled_patient, totp_code):
    with CarnetClient(live_backend.url, language="en") as client:
        assert client.login(enrolled_patient.nir, enrolled_patient.password)["next"] == "otp"
        client.verify_otp(totp_code(enrolled_patient))
        english = client.home()
        client.language = "fr"
        french = client.home()
        client.logout()
    assert english["given_name"] == french["given_name"] == enrolled_patient.given_name
    english_labels = [step["label"] for step in english["next_steps"]]
    french_labels = [step["label"] for step in french["next_steps"]]
    if french_labels:
        assert english_labels != french_labels


def test_wrong_password_then_wrong_code(client, enrolled_patient, totp_code):
    with pytest.raises(ApiError) as refused:
        client.login(enrolled_patient.nir, "Pas-le-bon-1")
    assert (refused.value.status, refused.value.code) == (401, "invalid_credentials")
    assert refused.value.detail

    assert client.login(enrolled_patient.nir, enrolled_patient.password)["next"] == "otp"
    good = totp_code(enrolled_patient)
    with pytest.raises(ApiError) as wrong_code:
        client.verify_otp("000000" if good != "000000" else "111111")
    assert (wrong_code.value.status, wrong_code.value.code) == (401, "invalid_otp")
    client.verify_otp(good)
    assert client.me()["given_name"] == enrolled_patient.given_name
    client.logout()


def test_requests_without_a_token_are_refused(client):
    with pytest.raises(ApiError) as refused:
        client.home()
    assert refused.value.status == 401
    assert refused.value.detail


def test_unreachable_server_is_a_french_sentence():
    # A port nothing listens on: the connection is refused at once.
    with CarnetClient("http://127.0.0.1:9", timeout=2) as client:
        with pytest.raises(ApiError) as failed:
            client.check_activation("284076322001001", "1984-07-14", "ABCDEFGH2345")
    error = failed.value
    assert (error.status, error.code, error.is_network) == (0, "network", True)
    assert error.detail.startswith("Impossible de joindre Carnet")


def test_unsupported_language_is_refused():
    with pytest.raises(ValueError):
        CarnetClient("http://127.0.0.1:9", language="de")


# -- parsing problems (no server) ---------------------------------------------------------


def test_problem_with_retry_after():
    error = ApiError.from_problem(
        429,
        {"type": "about:blank", "title": "Too Many Requests", "status": 429,
         "detail": "Trop de tentatives. Réessayez dans 60 secondes.", "code": "too_many_attempts"},
        "60",
        "fr",
    )  # fmt: skip
    assert (error.status, error.code, error.retry_after) == (429, "too_many_attempts", 60)
    assert error.detail == "Trop de tentatives. Réessayez dans 60 secondes."
    assert str(error) == "429 too_many_attempts: Trop de tentatives. Réessayez dans 60 secondes."


def test_problem_field_errors():
    error = ApiError.from_problem(
        422,
        {"detail": "Mot de passe trop faible.", "code": "weak_password",
         "errors": [{"rule": "length", "message": "Au moins 9 caractères"}, "junk"]},
        None,
        "fr",
    )  # fmt: skip
    assert error.errors == (FieldError(rule="length", message="Au moins 9 caractères"),)
    assert error.retry_after is None


@pytest.mark.parametrize("body", [None, "<html>Bad gateway</html>", {}, {"detail": ""}])
def test_a_body_that_is_not_a_problem_still_gives_a_sentence(body):
    error = ApiError.from_problem(502, body, "soon", "fr")
    assert error.status == 502
    assert error.code == "unexpected"
    assert error.detail.startswith("Une erreur inattendue")
    assert error.retry_after is None
    assert ApiError.from_problem(502, body, None, "en").detail.startswith("Something unexpected")

