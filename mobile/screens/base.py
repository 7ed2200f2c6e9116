"""What every Carnet screen shares: the app, a visible error, and calls made in background."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kivy.app import App
from kivy.properties import ObjectProperty, StringProperty
from kivy.uix.screenmanager import Screen

from mobile.api import ApiError
from mobile.background import run_in_background


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
            if error.status == 401 and app.signed_in and getattr(app, "session_expired", None):
                app.session_expired(self.name)  # back to sign-in, then here again
                return
            (on_error or self.show_error)(error)

        run_in_background(work, succeeded, failed)
        return True

    def show_error(self, error: ApiError) -> None:
        self.error = error.detail

    def reset(self) -> None:
        """Forget what was typed; called when the patient leaves the journey."""
        self.error = ""
        self.last_error = None
