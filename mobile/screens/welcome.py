"""First screen: activate a profile for the first time, or sign in; the language can be changed here
already, before any account (the same preference as in the settings)."""

from __future__ import annotations

from mobile import i18n, theme

from .base import CarnetScreen


class WelcomeScreen(CarnetScreen):
    def start_activation(self) -> None:
        self.app.notice = ""
        self.app.show("activation").start()

    def start_login(self) -> None:
        self.app.notice = ""
        self.app.show("login").start()

    def other_language(self) -> str:
        """The language the toggle offers: the one the app does not speak now."""
        return "en" if i18n.get_language() == "fr" else "fr"

    def switch_language(self) -> None:
        """Speak the other language, kept for the next start like a choice made in the settings."""
        from mobile.storage import load_preferences, save_preferences

        prefs = load_preferences()
        prefs["language"] = self.other_language()
        prefs["text_size"] = theme.text_size_name()  # the size in use stays
        save_preferences(prefs)
        self.app.apply_preferences(prefs, rebuild_from=self.name)
