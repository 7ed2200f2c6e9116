"""What every Carnet screen shares: the app, a visible error, and calls made in background."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kivy.app import App
from kivy.properties import ObjectProperty, StringProperty
from kivy.uix.screenmanager import NoTransition, Screen, SlideTransition

from mobile.api import ApiError
from mobile.api.fields import FieldProblem, normalise_otp
from mobile.background import run_in_background
from mobile.i18n import _


class CarnetScreen(Screen):
    """A screen whose network calls run in background while the app shows it is busy.

    ``error`` is the sentence the screen shows in its error banner: the server's ``detail``
    (already in the patient's language) or a message of ours, never raw JSON.
    """

    error = StringProperty("")
    # The ApiError behind ``error``, for screens that react to its code (and for tests).
    last_error = ObjectProperty(None, allownone=True)

    @property
    def app(self):
        return App.get_running_app()

    @property
    def client(self):
        return self.app.client

    def call(
        self,
        work: Callable[[], Any],
        on_success: Callable[[Any], Any],
        on_error: Callable[[ApiError], Any] | None = None,
    ) -> bool:
        """Run ``work`` (which uses ``self.client``) off the UI thread.

        Returns False, doing nothing, if another call is still running: the overlay blocks
        taps, but Enter on a keyboard could still try to send a form twice.
        """
        app = self.app
        if app.busy:
            return False
        app.busy = True
        self.error = ""
        self.last_error = None

        def succeeded(result: Any) -> None:
            app.busy = False
            on_success(result)

        def failed(error: ApiError) -> None:
            app.busy = False
            connectivity = getattr(app, "connectivity", None)
            if error.is_network and connectivity is not None:
                # No answer at all: offline mode (banner, the record from the device), and a sentence
                # saying this action needs the network.
                from mobile.connectivity import offline_error

                connectivity.went_offline()
                error = offline_error(error)
            self.last_error = error
            if self.session_refused(error):
                return
            (on_error or self.show_error)(error)

        run_in_background(work, succeeded, failed)
        return True

    def session_refused(self, error: ApiError) -> bool:
        """The one answer to a refused session (401 while signed in: idle too long, past its lifetime, signed
        out elsewhere): to sign-in with the server's sentence saying which, then back to this screen. → True
        when it was that (the caller shows nothing more). Calls made with :meth:`call` get it already; a
        screen's quiet calls (the next page, polling) get it through :meth:`show_error`."""
        app = self.app
        if error.status != 401 or not app.signed_in:
            return False
        expired = getattr(app, "session_expired", None)
        if expired is not None:
            expired(self.name, error.detail)
        else:
            app.signed_out(_("Votre session a expiré. Reconnectez-vous."))
        return True

    def show_error(self, error: ApiError) -> None:
        if not self.session_refused(error):
            self.error = error.detail

    def reset(self) -> None:
        """Forget what was typed; called when the patient leaves the journey."""
        self.error = ""
        self.last_error = None


class StepsScreen(CarnetScreen):
    """A journey told in steps inside one screen (its ``steps`` ScreenManager: activation, sign-in, password
    reset); ``step`` (an OptionProperty of the subclass) names the one shown."""

    leave_to = "welcome"  # where leaving the journey leads

    def go_back(self) -> None:
        """Back one step, or out of the journey (to ``leave_to``, what was typed forgotten)."""
        if not self.step_back():
            self.app.back(self.leave_to)
            self.reset()

    def step_back(self) -> bool:
        """Go back one step inside the journey when there is one to go back to; False to leave it."""
        return False

    def typed_code(self) -> str | None:
        """The one-time code typed in the ``code`` field, normalised; None, with the reason shown, when what
        was typed is not one (the sign-in's second factor, enrolment, reactivation, password reset)."""
        try:
            return normalise_otp(self.ids.code.text)
        except FieldProblem as problem:
            self.error = _(problem.message)
            return None

    def _go_to(self, step: str, direction: str = "left", animate: bool = True) -> None:
        self.step = step
        steps = self.ids.steps
        steps.transition = SlideTransition(direction=direction, duration=0.2) if animate else NoTransition()
        steps.current = step
