"""Signing in: NIR and password, then the one-time code of the second factor; a closed account is
reopened from the code step (during its retention period) with the same code."""

from __future__ import annotations

from kivy.properties import BooleanProperty, OptionProperty, StringProperty

from mobile.api import ApiError
from mobile.api.fields import FieldProblem, normalise_nir
from mobile.i18n import _

from .base import StepsScreen

STEPS = ("credentials", "otp")


class LoginScreen(StepsScreen):
    step = OptionProperty("credentials", options=STEPS)
    # The code step was refused because the account is closed: the reactivation is offered.
    closed = BooleanProperty(False)
    # Why the patient is here again (a session that ended), shown above the form until they sign in.
    notice = StringProperty("")
    show_password = BooleanProperty(False)

    def start(self) -> None:
        self.reset()

    def step_back(self) -> bool:
        if self.step != "otp":
            return False
        self.client.forget_token()
        self.error = ""
        self.closed = False
        self.ids.code.text = ""
        self._go_to("credentials", direction="right")
        return True

    def reset(self) -> None:
        super().reset()
        self.closed = False
        self.notice = ""
        self.show_password = False
        for field in ("nir", "password", "code"):
            self.ids[field].text = ""
        self._go_to("credentials", animate=False)

    def session_ended(self, sentence: str) -> None:
        """Shown by the app when the server ended the session: the reason, and that the patient will be
        back where they were."""
        self.reset()
        back = _("Une fois reconnecté(e), vous retrouverez l'écran où vous étiez.")
        self.notice = f"{sentence}\n{back}"
        self.ids.nir.focus = True

    # -- first factor -------------------------------------------------------------------

    def submit_credentials(self) -> None:
        try:
            nir = normalise_nir(self.ids.nir.text)
        except FieldProblem as problem:
            self.error = _(problem.message)
            return
        password = self.ids.password.text
        if not password:
            self.error = _("Saisissez votre mot de passe.")
            return
        self.call(lambda: self.client.login(nir, password), self._password_accepted)

    def _password_accepted(self, result: dict) -> None:
        self.ids.password.text = ""
        if result.get("next") == "enrol":
            # Activated earlier but left before the second factor: finish that first.
            self.app.show("activation").resume_enrolment()
            self.reset()
            return
        self._go_to("otp")
        self.ids.code.focus = True

    # -- second factor ------------------------------------------------------------------

    def submit_code(self) -> None:
        code = self.typed_code()
        if code is None:
            return
        self.call(lambda: self.client.verify_otp(code), self._code_accepted, self._code_refused)

    def _code_accepted(self, _result: dict) -> None:
        self.app.signed_in_as()

    def _code_refused(self, error: ApiError) -> None:
        self.error = error.detail
        if error.status == 403 and error.code == "account_closed":
            # The code was not spent (the account state is checked first): it can reopen the account.
            self.closed = True
            return
        self.ids.code.text = ""
        if error.status == 401 and error.code != "invalid_otp":
            # The sign-in attempt itself is over (expired or revoked): start again.
            self.client.forget_token()
            self._go_to("credentials", direction="right")

    # -- a closed account -----------------------------------------------------------------

    def submit_reactivation(self) -> None:
        """``/account/reactivate`` with the code typed (a new one if it has expired meanwhile), then home."""
        code = self.typed_code()
        if code is None:
            return
        self.call(lambda: self.client.reactivate_account(code), self._reactivated, self._reactivation_refused)

    def _reactivated(self, _result: dict) -> None:
        self.closed = False
        self.app.signed_in_as()

    def _reactivation_refused(self, error: ApiError) -> None:
        self.ids.code.text = ""
        if error.code == "invalid_otp":
            self.error = error.detail  # a new code, and the button again
            return
        self.closed = False
        self._code_refused(error)
