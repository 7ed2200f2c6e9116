"""The patient's home: a greeting, what to do next, what happened recently on the account."""

from __future__ import annotations

from kivy.app import App
from kivy.factory import Factory
from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout

from mobile.api import ApiError
from mobile.background import run_in_background
from mobile.i18n import _, format_datetime

from .base import CarnetScreen
from .records_home import load_home  # the record's section (documents, profile, access…)


class NextStepRow(BoxLayout):
    text = StringProperty("")


class ActivityRow(BoxLayout):
    text = StringProperty("")
    when = StringProperty("")


class HubButton(ButtonBehavior, BoxLayout):
    text = StringProperty("")
    badge = StringProperty("")


class HomeHub(BoxLayout):
    """Entries to every feature of the app; the notification centre shows the unread count."""

    unread_badge = StringProperty("")

    def on_kv_post(self, _base) -> None:
        from mobile.main import SCREENS  # the registry: a feature not there yet has no entry

        self.entries = []  # the features shown, in order
        for key, button in list(self.ids.items()):
            if not key.startswith("hub_"):
                continue
            if key[4:] in SCREENS:
                self.entries.append(key[4:])
            else:
                self.remove_widget(button)

    def open(self, name: str) -> None:
        app = App.get_running_app()
        screen = app.screen(name)
        if hasattr(screen, "back_target"):
            screen.back_target = "home"
        app.show(name)

    def refresh_badge(self) -> None:
        """``/notifications/unread-count``, quietly: the home page is whole without it."""
        from mobile.api.notifications import NotificationsApi

        client = App.get_running_app().client

        def count() -> int:
            api = NotificationsApi(client)
            try:
                return api.unread_count()
            finally:
                api.close()

        def shown(unread: int) -> None:
            self.unread_badge = "" if not unread else ("99+" if unread > 99 else str(unread))

        run_in_background(count, shown, lambda _error: None)


class HomeScreen(CarnetScreen):
    last_login = StringProperty("")
    loaded = BooleanProperty(False)

    def on_pre_enter(self, *_args) -> None:
        self.refresh()

    def on_enter(self, *_args) -> None:
        if self.app.signed_in:
            self.ids.hub.refresh_badge()

    def refresh(self) -> None:
        self.call(lambda: load_home(self.client), self._show, self._failed)

    def _show(self, home: dict) -> None:
        self.app.given_name = home.get("given_name") or self.app.given_name
        when = format_datetime(home.get("last_login_at"))
        self.last_login = (
            _("Dernière connexion : {when}").format(when=when)
            if when
            else _("Première connexion : bienvenue dans Carnet !")
        )
        self._fill(
            self.ids.next_steps,
            [NextStepRow(text=step.get("label", "")) for step in home.get("next_steps", [])],
            _("Rien à faire pour l'instant."),
        )
        self._fill(
            self.ids.activity,
            [
                ActivityRow(text=item.get("label", ""), when=format_datetime(item.get("at")))
                for item in home.get("recent_activity", [])
            ],
            _("Aucune activité récente."),
        )
        self.ids.records.show(home)
        self.loaded = True
        connectivity = getattr(self.app, "connectivity", None)
        if connectivity is not None and self.app.signed_in:
            connectivity.sync()  # the copy of the record read without network, refreshed in background

    @staticmethod
    def _fill(container, rows, empty_text: str) -> None:
        container.clear_widgets()
        for row in rows or [Factory.MutedText(text=empty_text)]:
            container.add_widget(row)

    def _failed(self, error: ApiError) -> None:
        if error.status == 401:
            self.app.signed_out(_("Votre session a expiré. Reconnectez-vous."))
        else:
            self.error = error.detail

    def logout(self) -> None:
        # Whatever the server answers, the patient asked to leave: leave.
        def leave(_outcome) -> None:
            self.app.signed_out(_("Vous êtes déconnecté(e)."))

        self.call(self.client.logout, leave, leave)

    def reset(self) -> None:
        super().reset()
        self.last_login = ""
        self.loaded = False
        self.ids.next_steps.clear_widgets()
        self.ids.activity.clear_widgets()
        self.ids.records.reset()
