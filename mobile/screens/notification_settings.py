"""Notification settings: per kind, on the phone and by email. Professional and emergency access (and
the account's security) are always on: shown locked, with the reason."""

from __future__ import annotations

from kivy.properties import BooleanProperty, DictProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from mobile.api import ApiError
from mobile.i18n import _, agree

from .base import CarnetScreen
from .notification_common import load_kv, notifications_api

load_kv()
MANDATORY_NOTE = {
    "professional_access": "Toujours activé : vous êtes prévenu(e) de chaque accès.",
    "emergency_access": "Toujours activé : vous êtes prévenu(e) de chaque accès.",
}


class PreferenceRow(BoxLayout):
    """One kind: its label and its two channels, as the server last said them."""

    preference = DictProperty({})
    label = StringProperty("")
    push = BooleanProperty(True)
    email = BooleanProperty(True)
    locked = BooleanProperty(False)
    note = StringProperty("")

    def on_preference(self, _instance, preference: dict) -> None:
        # Plain properties for the kv rule: an expression like preference.get(...) is not re-evaluated.
        self.label = preference.get("label", "")
        self.push = bool(preference.get("push", True))
        self.email = bool(preference.get("email", True))
        self.locked = not preference.get("switchable", True)
        self.note = agree(_(MANDATORY_NOTE.get(preference.get("kind", ""), "Toujours activé."))) if self.locked else ""


class NotificationSettingsScreen(CarnetScreen):
    notice = StringProperty("")
    device_status = StringProperty("")
    loaded = BooleanProperty(False)

    def on_pre_enter(self, *_args) -> None:
        self.refresh()

    def refresh(self) -> None:
        def load() -> tuple[list[dict], dict | None]:
            api = notifications_api()
            try:
                subscription = api.subscription()
            except ApiError as error:
                if error.status == 401:
                    raise
                subscription = None
            return api.preferences(), subscription

        self.notice = ""
        self.call(load, self._show, self._failed)

    def _show(self, loaded: tuple[list[dict], dict | None]) -> None:
        preferences, subscription = loaded
        self.ids.kinds.clear_widgets()
        for preference in preferences:
            self.ids.kinds.add_widget(PreferenceRow(preference=preference))
        registered = bool(subscription and subscription.get("registered"))
        self.device_status = (_("Notifications activées sur cet appareil.") if registered
                              else _("Notifications désactivées sur cet appareil."))
        self.loaded = True

    def rows(self) -> list[PreferenceRow]:
        return [w for w in reversed(self.ids.kinds.children) if isinstance(w, PreferenceRow)]

    def toggle(self, row: PreferenceRow, channel: str, active: bool) -> None:
        kind = row.preference["kind"]

        def saved(preference: dict) -> None:
            row.preference = preference
            self.notice = _("Préférence enregistrée.")

        self.notice = ""
        self.call(lambda: notifications_api().set_preference(kind, **{channel: active}), saved, self._failed)

    def _failed(self, error: ApiError) -> None:
        if not self.session_refused(error):
            self.error = error.detail

    def reset(self) -> None:
        super().reset()
        self.ids.kinds.clear_widgets()
        self.notice = ""
        self.device_status = ""
        self.loaded = False
