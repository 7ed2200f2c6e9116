"""A forgotten password: the NIR and birth date, then the 6-digit code sent to the address on file and a new
password (the same rules, ticked as the patient types). Every session of the account ends; signing in then
asks for the second factor as always."""

from __future__ import annotations

from kivy.properties import BooleanProperty, OptionProperty, StringProperty

from mobile.api import ApiError, password_rules
from mobile.api.fields import FieldProblem, normalise_nir, parse_birth_date
from mobile.i18n import _, get_language
from mobile.widgets import RuleRow

from .base import StepsScreen

STEPS = ("identity", "new_password", "done")


def request_code(client, nir: str, birth_date: str) -> dict:
    return client._post("/auth/password-reset", {"nir": nir, "birth_date": birth_date}, auth=False)


def confirm_code(client, nir: str, code: str, new_password: str) -> dict:
    return client._post("/auth/password-reset/confirm", {"nir": nir, "code": code, "new_password": new_password},
                        auth=False)


class PasswordResetScreen(StepsScreen):
    step = OptionProperty("identity", options=STEPS)
    notice = StringProperty("")
    password_ok = BooleanProperty(False)
    show_password = BooleanProperty(False)

    def on_kv_post(self, base_widget) -> None:
        self._nir = ""
        self._rule_rows = {}
        for rule in password_rules.RULES:
            row = RuleRow(rule_id=rule.id, text=rule.label(get_language()))
            self._rule_rows[rule.id] = row
            self.ids.rules.add_widget(row)

    def start(self, nir: str = "") -> None:
        self.reset()
        self.ids.nir.text = nir

    leave_to = "login"

    def step_back(self) -> bool:
        if self.step != "new_password":
            return False
        self._go_to("identity", direction="right")
        return True

    def _go_to(self, step: str, direction: str = "left", animate: bool = True) -> None:
        self.error = ""
        super()._go_to(step, direction, animate)

    # -- 1. who ------------------------------------------------------------------------

    def submit_identity(self) -> None:
        try:
            nir = normalise_nir(self.ids.nir.text)
            birth_date = parse_birth_date(self.ids.birth_date.text)
        except FieldProblem as problem:
            self.error = _(problem.message)
            return

        def sent(answer: dict) -> None:
            self._nir = nir
            minutes = answer.get("expires_in_minutes") or 15
            # the same sentence whether or not an account exists: the server tells nobody who has one
            self.notice = _("Si ces informations correspondent à un compte, un code à 6 chiffres vient d'être "
                            "envoyé à l'adresse e-mail de ce compte. Il est valable {minutes} minutes.").format(
                minutes=minutes)
            self._go_to("new_password")
            self.ids.code.focus = True

        self.call(lambda: request_code(self.client, nir, birth_date), sent)

    # -- 2. the code and the new password ----------------------------------------------------

    def update_rules(self, *_args) -> None:
        password = self.ids.new_password.text
        for check in password_rules.check_password(password):
            self._rule_rows[check.id].state = "met" if check.met else ("unmet" if password else "pending")
        self.password_ok = password_rules.is_acceptable(password, password)

    def submit_new_password(self) -> None:
        code = self.typed_code()
        if code is None:
            return
        password = self.ids.new_password.text
        if not self.password_ok:
            self.error = _("Le nouveau mot de passe ne respecte pas toutes les règles.")
            return
        nir = self._nir

        def done(_answer: dict) -> None:
            self.ids.new_password.text = ""
            self.ids.code.text = ""
            self._go_to("done")

        self.call(lambda: confirm_code(self.client, nir, code, password), done, self._refused)

    def _refused(self, error: ApiError) -> None:
        self.ids.new_password.text = ""
        if error.code == "weak_password" and error.errors:
            reasons = "\n".join(f"• {e.message}" for e in error.errors if e.message)
            self.error = f"{error.detail}\n{reasons}" if reasons else error.detail
            return
        self.ids.code.text = ""
        self.error = error.detail

    def to_sign_in(self) -> None:
        login = self.app.screen("login")
        login.reset()
        login.ids.nir.text = self._nir
        self.app.back("login")
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._nir = ""
        self.notice = ""
        self.show_password = False
        for field in ("nir", "birth_date", "code", "new_password"):
            self.ids[field].text = ""
        self._go_to("identity", animate=False)
