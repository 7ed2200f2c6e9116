""""Plus", the bottom navigation's last tab: every part of the app the other tabs do not show, one tap away
(the record's other screens, notifications, catalogue, emergency card, settings), and signing out."""

from __future__ import annotations

from mobile import navigation
from mobile.i18n import _

from .base import CarnetScreen

navigation.load_kv()

# (screen, label) in the order shown; a screen not registered (a feature not there) has no entry.
ENTRIES = (
    ("profile", "Mon profil médical"),
    ("directives", "Directives et volontés"),
    ("access", "Accès à mon dossier"),
    ("history", "Historique des accès"),
    ("notifications", "Mes notifications"),
    ("catalog", "Catalogue de services"),
    ("emergency_card", "Ma carte d'urgence"),
    ("settings", "Paramètres"),
)


class MoreScreen(CarnetScreen):
    def on_kv_post(self, _base) -> None:
        from mobile.main import SCREENS

        box = self.ids.entries
        self.buttons = {}
        for name, label in ENTRIES:
            if name not in SCREENS:
                continue
            button = navigation.HubButton(text=_(label))
            button.bind(on_release=lambda _b, n=name: self.open(n))
            if name == "notifications":
                self.app.bind(unread_notifications=lambda _a, n, b=button: setattr(b, "badge", navigation.badge_text(n)))
                button.badge = navigation.badge_text(self.app.unread_notifications)
            box.add_widget(button)
            self.buttons[name] = button

    def open(self, name: str) -> None:
        screen = self.app.screen(name)
        if hasattr(screen, "back_target"):
            screen.back_target = "more"
        self.app.show(name)

    def logout(self) -> None:
        home = self.app.screen("home")
        home.logout()
