"""Activating a profile: the letter's data, then a password, then the second factor.

Three steps on one screen, because they are one journey the patient may not leave halfway
without starting again: identity (NIR, birth date, activation code) → password (rules ticked
live) → TOTP enrolment (key shown, 6-digit code asked). Login also sends a patient here when
the server says the second factor is still missing (``resume_enrolment``).
"""

from __future__ import annotations

from kivy.properties import BooleanProperty, OptionProperty, StringProperty

from mobile.api import ApiError, password_rules
from mobile.api.fields import (
    FieldProblem,
    group,
    normalise_activation_code,
    normalise_nir,
    parse_birth_date,
)
from mobile.i18n import _, get_language
from mobile.widgets import RuleRow

from .base import StepsScreen

STEPS = ("identity", "password", "second_factor")
MATCH_RULE = "match"


class ActivationScreen(StepsScreen):
    step = OptionProperty("identity", options=STEPS)
    given_name = StringProperty("")
    # Set once the rules are all met and both entries match: enables the button.
    password_ok = BooleanProperty(False)
    show_password = BooleanProperty(False)
    secret = StringProperty("")
    otpauth_uri = StringProperty("")
    enrolment_failed = BooleanProperty(False)

    def on_kv_post(self, base_widget) -> None:
        language = get_language()
        self._rule_rows = {}
        for rule in password_rules.RULES:
            self._add_rule_row(rule.id, rule.label(language))
        self._add_rule_row(MATCH_RULE, _("Les deux saisies sont identiques"))
        self._letter = None

    def _add_rule_row(self, rule_id: str, text: str) -> None:
        row = RuleRow(rule_id=rule_id, text=text)
        self._rule_rows[rule_id] = row
        self.ids.rules.add_widget(row)

    # -- journey ----------------------------------------------------------------------

    def start(self) -> None:
        self.reset()

    def resume_enrolment(self) -> None:
        """The password is set but no second factor yet; the client holds the enrolment token."""
        self.reset()
        self._go_to("second_factor")
        self.enrol()

    def step_back(self) -> bool:
        if self.step != "password":
            return False  # from the last step the account exists already: signing in later resumes there
        self.error = ""
        self._go_to("identity", direction="right")
        return True

    def reset(self) -> None:
        super().reset()
        self._letter = None
        self.given_name = ""
        self.secret = ""
        self.otpauth_uri = ""
        self.enrolment_failed = False
        self.show_password = False
        for field in ("nir", "birth_date", "activation_code", "password", "confirmation", "code"):
            self.ids[field].text = ""
        self.update_rules()
        self._go_to("identity", animate=False)

    # -- step 1: the activation letter --------------------------------------------------

    def submit_identity(self) -> None:
        ids = self.ids
        try:
            letter = (
                normalise_nir(ids.nir.text),
                parse_birth_date(ids.birth_date.text),
                normalise_activation_code(ids.activation_code.text),
            )
        except FieldProblem as problem:
            self.error = _(problem.message)
            return
        self.call(lambda: self.client.check_activation(*letter), lambda r: self._checked(letter, r))

    def _checked(self, letter: tuple[str, str, str], result: dict) -> None:
        self._letter = letter
        self.given_name = result.get("given_name") or ""
        self._go_to("password")
        self.ids.password.focus = True

    # -- step 2: the password -----------------------------------------------------------

    def update_rules(self, *_args) -> None:
        password = self.ids.password.text
        confirmation = self.ids.confirmation.text
        for check in password_rules.check_password(password):
            self._rule_rows[check.id].state = _state(bool(password), check.met)
        matches = bool(confirmation) and confirmation == password
        self._rule_rows[MATCH_RULE].state = _state(bool(confirmation), matches)
        self.password_ok = password_rules.is_acceptable(password, confirmation)

    def rule_state(self, rule_id: str) -> str:
        """``pending``, ``met`` or ``unmet``: what the patient sees next to the rule."""
        return self._rule_rows[rule_id].state

    def submit_password(self) -> None:
        if not self.password_ok or self._letter is None:
            return
        password = self.ids.password.text
        self.call(
            lambda: self.client.activate(*self._letter, password),
            self._activated,
            self._password_refused,
        )

    def _activated(self, _result: dict) -> None:
        self._letter = None
        self.ids.password.text = ""
        self.ids.confirmation.text = ""
        self._go_to("second_factor")
        self.enrol()

    def _password_refused(self, error: ApiError) -> None:
        if error.code == "weak_password" and error.errors:
            # The server knows rules we cannot check here (common passwords): say which.
            for field_error in error.errors:
                if field_error.rule in self._rule_rows:
                    self._rule_rows[field_error.rule].state = "unmet"
            reasons = "\n".join(f"• {e.message}" for e in error.errors if e.message)
            self.error = f"{error.detail}\n{reasons}" if reasons else error.detail
        else:
            self.error = error.detail

    # -- step 3: the second factor ------------------------------------------------------

    def enrol(self) -> None:
        self.enrolment_failed = False
        self.call(self.client.enrol_totp, self._enrolled, self._enrolment_failed)

    def _enrolled(self, result: dict) -> None:
        self.secret = group(result.get("secret", ""))
        self.otpauth_uri = result.get("otpauth_uri", "")

    def _enrolment_failed(self, error: ApiError) -> None:
        self.enrolment_failed = True
        self.error = error.detail

    def open_authenticator(self) -> None:
        """The otpauth:// link handed to the platform: the authenticator app installed takes it."""
        from mobile import share

        if self.otpauth_uri and not share.open_uri(self.otpauth_uri):
            self.error = _("Aucune application d'authentification n'a répondu : saisissez la clé ci-dessus.")

    def submit_code(self) -> None:
        code = self.typed_code()
        if code is None:
            return
        self.call(lambda: self.client.confirm_enrolment(code), self._confirmed, self._refused)

    def _confirmed(self, _result: dict) -> None:
        self.app.signed_in_as(self.given_name)

    def _refused(self, error: ApiError) -> None:
        self.ids.code.text = ""
        self.error = error.detail


def _state(typed: bool, met: bool) -> str:
    if met:
        return "met"
    return "unmet" if typed else "pending"
