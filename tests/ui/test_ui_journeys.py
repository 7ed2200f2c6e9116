"""The patient's journeys through the real app, against a live backend, under Xvfb.

Each scenario starts on the welcome screen and goes through the screens with taps and
typing; screenshots land in ``tests/ui/screenshots/`` (not committed) for a human to look at.
"""

from __future__ import annotations

import pytest
import requests

from mobile.api import ApiError, CarnetClient

pytestmark = pytest.mark.ui

WEAK_PASSWORD = "carnet1"
COMMON_PASSWORD = "Motdepasse1!"


def test_activation_from_letter_to_home(ui, new_patient, totp_code):
    welcome = ui.wait_for_screen("welcome")
    ui.screenshot("01-welcome")

    ui.tap(welcome.ids.activate)
    activation = ui.wait_for_screen("activation")
    ids = activation.ids
    ui.type(ids.nir, new_patient.nir)
    ui.type(ids.birth_date, new_patient.birth_date_fr)
    ui.type(ids.activation_code, "WRONG0CODE00")
    ui.tap(ids.check)
    ui.wait_until(lambda: ids.identity_error.text, "the refusal is shown")
    ui.settle()
    # The banner shows the server's own (French) sentence, not JSON and not a code.
    refusal = activation.last_error
    assert refusal.status == 422 and refusal.code == "invalid_activation"
    assert ids.identity_error.text == refusal.detail
    assert not ids.identity_error.text.lstrip().startswith("{")
    assert activation.step == "identity"
    ui.screenshot("02-activation-wrong-code")

    ui.type(ids.activation_code, new_patient.activation_code)
    ui.tap(ids.check)
    ui.wait_until(lambda: activation.step == "password", "the password step is shown")
    ui.settle()
    assert activation.given_name == new_patient.given_name
    assert ids.identity_error.text == ""

    # Rules are ticked while typing, before anything is sent.
    ui.type(ids.password, WEAK_PASSWORD)
    states = {rule: activation.rule_state(rule) for rule in ("length", "lower", "upper", "digit", "special")}
    assert states == {
        "length": "unmet",
        "lower": "met",
        "upper": "unmet",
        "digit": "met",
        "special": "unmet",
    }
    assert activation.rule_state("match") == "pending"
    assert ids.create_password.disabled
    ui.screenshot("03-activation-weak-password")

    # Meets every rule we can check here, but the server knows it is too common.
    ui.type(ids.password, COMMON_PASSWORD)
    ui.type(ids.confirmation, COMMON_PASSWORD)
    assert not ids.create_password.disabled
    ui.tap(ids.create_password)
    ui.wait_until(lambda: ids.password_error.text, "the server's refusal is shown")
    ui.settle()
    refusal = activation.last_error
    assert (refusal.status, refusal.code) == (422, "weak_password")
    assert [e.rule for e in refusal.errors] == ["common"]
    assert ids.password_error.text.startswith(refusal.detail)
    assert refusal.errors[0].message in ids.password_error.text
    assert activation.step == "password"
    ui.screenshot("04-activation-common-password")

    ui.type(ids.password, new_patient.password)
    ui.type(ids.confirmation, new_patient.password)
    assert all(
        activation.rule_state(rule) == "met"
        for rule in ("length", "lower", "upper", "digit", "special", "match")
    )
    assert not ids.create_password.disabled
    ui.screenshot("05-activation-strong-password")

    ui.tap(ids.create_password)
    ui.wait_until(
        lambda: activation.step == "second_factor" and ids.secret.text, "the TOTP key is shown"
    )
    ui.settle()
    # the set-up link as a QR code to scan, never as raw otpauth:// text
    assert ids.otpauth_qr.data == activation.otpauth_uri and activation.otpauth_uri.startswith("otpauth://totp/")
    assert ids.otpauth_qr.texture is not None and ids.otpauth_qr.texture.width >= 21
    from kivy.uix.label import Label

    assert not any("otpauth" in w.text for w in activation.walk() if isinstance(w, Label))
    ui.screenshot("06-activation-totp-key")

    # Like the patient's authenticator app: read the key off the screen.
    new_patient.totp_secret = "".join(ids.secret.text.split())
    ui.type(ids.code, totp_code(new_patient))
    ui.tap(ids.confirm)
    home = ui.wait_for_screen("home")
    ui.wait_until(lambda: home.loaded, "the home page is loaded")
    ui.settle()
    assert home.ids.greeting.text == f"Bonjour {new_patient.given_name}"
    assert ui.app.signed_in
    ui.screenshot("07-home-after-activation")


def test_login_with_password_and_code(ui, enrolled_patient, totp_code):
    welcome = ui.wait_for_screen("welcome")
    ui.tap(welcome.ids.login)
    login = ui.wait_for_screen("login")
    ids = login.ids

    ui.type(ids.nir, enrolled_patient.nir)
    ui.type(ids.password, enrolled_patient.password)
    ui.screenshot("08-login-credentials")
    ui.tap(ids.sign_in)
    ui.wait_until(lambda: login.step == "otp", "the code step is shown")
    ui.settle()

    good_code = totp_code(enrolled_patient)
    ui.type(ids.code, "000000" if good_code != "000000" else "111111")
    ui.tap(ids.verify)
    ui.wait_until(lambda: ids.otp_error.text, "the wrong code is refused")
    ui.settle()
    refusal = login.last_error
    assert refusal.status == 401 and refusal.code == "invalid_otp"
    assert ids.otp_error.text == refusal.detail
    assert login.step == "otp" and ids.code.text == ""
    ui.screenshot("09-login-wrong-code")

    ui.type(ids.code, good_code)
    ui.tap(ids.verify)
    home = ui.wait_for_screen("home")
    ui.wait_until(lambda: home.loaded, "the home page is loaded")
    ui.settle()
    assert home.ids.greeting.text == f"Bonjour {enrolled_patient.given_name}"
    ui.screenshot("10-home-after-login")


def to_code_step(ui, patient):
    """From the welcome screen to the sign-in's code step, the password accepted."""
    welcome = ui.wait_for_screen("welcome")
    ui.tap(welcome.ids.login)
    login = ui.wait_for_screen("login")
    ui.type(login.ids.nir, patient.nir)
    ui.type(login.ids.password, patient.password)
    ui.tap(login.ids.sign_in)
    ui.wait_until(lambda: login.step == "otp", "the code step is shown")
    return login


def test_back_goes_one_step_back_then_out_of_the_journey(ui, enrolled_patient):
    # the code step back to the credentials (the half-open session forgotten), then out to the welcome screen
    login = to_code_step(ui, enrolled_patient)
    ui.settle()
    login.go_back()
    ui.settle()
    assert login.step == "credentials" and ui.app.manager.current == "login"
    assert ui.app.client.token is None
    login.go_back()
    ui.wait_for_screen("welcome")
    assert login.ids.nir.text == login.ids.password.text == ""
    # the password reset leads back to the sign-in it was opened from
    reset = ui.app.show("password_reset")
    ui.settle()
    reset.go_back()
    ui.wait_for_screen("login")
    activation = ui.app.show("activation")
    ui.settle()
    assert activation.step == "identity"
    activation.go_back()
    ui.wait_for_screen("welcome")


def test_wrong_password_is_refused_in_french(ui, enrolled_patient):
    welcome = ui.wait_for_screen("welcome")
    ui.tap(welcome.ids.login)
    login = ui.wait_for_screen("login")
    ui.type(login.ids.nir, enrolled_patient.nir)
    ui.type(login.ids.password, "Pas-le-bon-1")
    ui.tap(login.ids.sign_in)
    ui.wait_until(lambda: login.ids.credentials_error.text, "the refusal is shown")
    ui.settle()
    assert login.last_error.code == "invalid_credentials"
    assert login.ids.credentials_error.text == login.last_error.detail
    assert login.step == "credentials"
    ui.screenshot("11-login-wrong-password")


def test_too_many_attempts_say_when_to_try_again(ui, new_patient, live_backend):
    # Someone already tried codes on this profile until the server stopped answering them.
    with CarnetClient(live_backend.url) as client:
        for _attempt in range(20):
            try:
                client.check_activation(new_patient.nir, new_patient.birth_date, "WRONG0CODE00")
            except ApiError as error:
                if error.status == 429:
                    break
        else:
            pytest.fail("the server never throttled activation attempts")

    welcome = ui.wait_for_screen("welcome")
    ui.tap(welcome.ids.activate)
    activation = ui.wait_for_screen("activation")
    ids = activation.ids
    ui.type(ids.nir, new_patient.nir)
    ui.type(ids.birth_date, new_patient.birth_date_fr)
    ui.type(ids.activation_code, new_patient.activation_code)
    ui.tap(ids.check)
    ui.wait_until(lambda: ids.identity_error.text, "the refusal is shown")
    ui.settle()
    refusal = activation.last_error
    assert refusal.status == 429
    assert refusal.retry_after and refusal.retry_after > 0
    assert ids.identity_error.text == refusal.detail
    assert activation.step == "identity"
    ui.screenshot("13-activation-too-many-attempts")


def test_logout_returns_to_welcome(ui, enrolled_patient, live_backend, totp_code):
    login = to_code_step(ui, enrolled_patient)
    ui.type(login.ids.code, totp_code(enrolled_patient))
    ui.tap(login.ids.verify)
    home = ui.wait_for_screen("home")
    ui.wait_until(lambda: home.loaded, "the home page is loaded")
    access_token = ui.app.client.token

    ui.tap(home.ids.logout)
    welcome = ui.wait_for_screen("welcome")
    assert not ui.app.signed_in
    assert ui.app.client.token is None
    assert welcome.ids.notice.text == "Vous êtes déconnectée."  # agreed: Lucie's sex is known
    ui.screenshot("12-welcome-after-logout")

    # The server ended the session too: the old token no longer opens anything.
    response = requests.get(
        f"{live_backend.url}/api/v1/me",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=5,
    )
    assert response.status_code == 401


def test_closed_account_is_reactivated_from_the_login_screen(ui, enrolled_patient, live_backend, totp_code):
    # The patient closed the account (another device, through the API); it is kept for the retention period.
    with CarnetClient(live_backend.url) as client:
        client.login(enrolled_patient.nir, enrolled_patient.password)
        client.verify_otp(totp_code(enrolled_patient))
        client.close_account(enrolled_patient.password)

    welcome = ui.wait_for_screen("welcome")
    ui.tap(welcome.ids.login)
    login = ui.wait_for_screen("login")
    ids = login.ids
    ui.type(ids.nir, enrolled_patient.nir)
    ui.type(ids.password, enrolled_patient.password)
    ui.tap(ids.sign_in)
    ui.wait_until(lambda: login.step == "otp", "the code step is shown")
    assert ids.reactivate.opacity == 0 and ids.reactivate.disabled
    good_code = totp_code(enrolled_patient)
    ui.type(ids.code, good_code)
    ui.tap(ids.verify)
    ui.wait_until(lambda: login.closed, "the sign-in is refused: the account is closed")
    ui.settle()
    assert (login.last_error.status, login.last_error.code) == (403, "account_closed")
    assert ids.otp_error.text == login.last_error.detail
    # The refusal offers the way back, with the code still typed (the server did not spend it).
    assert ids.reactivate.text == "Réactiver mon compte" and not ids.reactivate.disabled
    assert ids.verify.disabled and ids.code.text == good_code
    ui.screenshot("16-login-account-closed")

    # A wrong code is refused like at sign-in, and the button stays.
    ui.type(ids.code, "000000" if good_code != "000000" else "111111")
    ui.tap(ids.reactivate)
    ui.wait_until(lambda: login.last_error is not None and login.last_error.code == "invalid_otp",
                  "the wrong code is refused")
    ui.settle()
    assert login.closed and ids.otp_error.text == login.last_error.detail and not ui.app.signed_in

    ui.type(ids.code, good_code)
    ui.tap(ids.reactivate)
    home = ui.wait_for_screen("home")
    ui.wait_until(lambda: home.loaded, "the home page is loaded")
    ui.settle()
    assert ui.app.signed_in and home.ids.greeting.text == f"Bonjour {enrolled_patient.given_name}"
    assert not login.closed and ids.code.text == ""
    ui.screenshot("17-home-after-reactivation")
    with CarnetClient(live_backend.url) as client:
        client.token = ui.app.client.token
        assert client.me()["state"] == "active"


ENGLISH_RUN = """
import runpy

from kivy.clock import Clock


def look(_dt):
    from kivy.app import App
    from kivy.core.window import Window

    app = App.get_running_app()
    welcome = app.manager.current_screen
    print("language", app.language)
    print("api_url", app.api_url)
    print("window", *Window.size)
    print("buttons", welcome.ids.activate.text, "|", welcome.ids.login.text)
    # Read the frame once drawn and before it is swapped away (a Clock callback runs
    # between frames, where the back buffer holds nothing worth saving).
    Window.bind(on_flip=shoot)
    Window.canvas.ask_update()


def shoot(window):
    from kivy.app import App

    window.unbind(on_flip=shoot)
    window.screenshot(name={shot!r})
    Clock.schedule_once(lambda _dt: App.get_running_app().stop())


Clock.schedule_once(look, 1)
runpy.run_module("mobile", run_name="__main__", alter_sys=True)
"""


def test_entry_point_reads_language_and_url_from_the_environment(display, screenshots_dir, tmp_path):
    """``python -m mobile``, in a process of its own (Kivy opens one window per process)."""
    import os
    import subprocess
    import sys

    shot = tmp_path / "welcome-en.png"
    env = {
        **os.environ,
        "CARNET_LANG": "en",
        "CARNET_API_URL": "http://127.0.0.1:9",
        "KIVY_NO_ARGS": "1",
        "KIVY_HOME": str(tmp_path / "kivy_home"),
        "KIVY_NO_CONSOLELOG": "1",
        "KIVY_NO_FILELOG": "1",
        "KIVY_CLIPBOARD": "sdl2",
    }
    result = subprocess.run(
        [sys.executable, "-c", ENGLISH_RUN.format(shot=str(shot))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert lines["language"] == "en"
    assert lines["api_url"] == "http://127.0.0.1:9"
    assert lines["window"] == "400 760"
    assert lines["buttons"] == "Activate my profile | Sign in"
    written = sorted(tmp_path.glob("welcome-en*.png"))
    assert written, "no screenshot"
    os.replace(written[0], screenshots_dir / "14-welcome-in-english.png")


def _sign_in_through_the_screens(ui, login, patient, totp_code):
    ui.type(login.ids.nir, patient.nir)
    ui.type(login.ids.password, patient.password)
    ui.tap(login.ids.sign_in)
    ui.wait_until(lambda: login.step == "otp", "the code step is shown")
    ui.type(login.ids.code, totp_code(patient))
    ui.tap(login.ids.verify)


def _end_the_session_by_idleness(live_backend, patient, minutes: int, lifetime_over: bool = False) -> None:
    """The server's clock cannot be moved: the device's session is made to have seen no request for
    ``minutes`` (its last use moved back in the live backend's database), and with ``lifetime_over`` to be
    past its 12 hours; the next request finds it so."""
    import datetime as dt

    from sqlalchemy import create_engine, select, update

    from backend.accounts.models import AuthToken, Patient, TokenKind

    engine = create_engine(live_backend.env["CARNET_DATABASE_URL"])
    try:
        with engine.begin() as conn:
            then = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes)
            patient_id = conn.scalar(select(Patient.id).where(Patient.nir == patient.nir))
            conn.execute(update(AuthToken).where(AuthToken.patient_id == patient_id,
                                                 AuthToken.kind == TokenKind.ACCESS,
                                                 AuthToken.revoked_at.is_(None))
                         .values(last_used_at=then, created_at=then - dt.timedelta(hours=12 if lifetime_over else 0),
                                 **({"expires_at": then} if lifetime_over else {})))
    finally:
        engine.dispose()


def test_an_idle_session_signs_in_again_and_comes_back_to_the_same_screen(ui, enrolled_patient, live_backend,
                                                                         totp_code):
    welcome = ui.wait_for_screen("welcome")
    ui.tap(welcome.ids.login)
    _sign_in_through_the_screens(ui, ui.wait_for_screen("login"), enrolled_patient, totp_code)
    home = ui.wait_for_screen("home")
    ui.wait_until(lambda: home.loaded, "the home page is loaded")
    ui.tap(home.ids.hub.ids.hub_agenda)
    agenda = ui.wait_for_screen("agenda")
    ui.settle()
    ui.screenshot("40-agenda-before-the-break")

    # thirty-one minutes away from the phone: the next request is refused, saying why
    _end_the_session_by_idleness(live_backend, enrolled_patient, minutes=31)
    agenda.on_pre_enter()  # the agenda asks the server again, as when the patient comes back to it
    login = ui.wait_for_screen("login")
    ui.settle()
    assert not ui.app.signed_in and ui.app.client.token is None
    assert ui.app.resume_screen == "agenda"
    notice = login.ids.session_notice.text
    assert "30 minutes sans activité" in notice, notice
    assert "vous retrouverez l'écran où vous étiez" in notice
    assert login.step == "credentials" and login.ids.nir.text == "" and login.ids.password.text == ""
    ui.screenshot("41-session-idle-sign-in-again")

    # signing in again leads back to the agenda, not to the home page
    _sign_in_through_the_screens(ui, login, enrolled_patient, totp_code)
    ui.wait_for_screen("agenda")
    ui.settle()
    assert ui.app.signed_in and ui.app.resume_screen == ""
    assert login.notice == ""  # said once; gone with the sign-in
    ui.screenshot("42-back-on-the-agenda")


def test_a_session_past_its_lifetime_says_so(ui, enrolled_patient, live_backend, totp_code):
    welcome = ui.wait_for_screen("welcome")
    ui.tap(welcome.ids.login)
    _sign_in_through_the_screens(ui, ui.wait_for_screen("login"), enrolled_patient, totp_code)
    home = ui.wait_for_screen("home")
    ui.wait_until(lambda: home.loaded, "the home page is loaded")
    _end_the_session_by_idleness(live_backend, enrolled_patient, minutes=5, lifetime_over=True)
    home.on_pre_enter()
    login = ui.wait_for_screen("login")
    ui.settle()
    assert "12 heures au plus" in login.ids.session_notice.text, login.ids.session_notice.text
    assert ui.app.resume_screen == "home"
    ui.screenshot("43-session-past-its-lifetime")
