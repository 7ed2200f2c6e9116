"""The Carnet app: builds the ScreenManager from a registry of lazily loaded screens.

Run it with ``python -m mobile``. Settings come from the environment:
``CARNET_API_URL`` (default ``http://127.0.0.1:5000``) and ``CARNET_LANG`` (``fr`` | ``en``).
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from mobile import startup

# Before anything below opens Kivy's window: its settings, and the HTTP stack imported meanwhile.
startup.configure_kivy()
startup.warm_imports()

from kivy.app import App  # noqa: E402  (after the window settings above, as every kivy import below)
from kivy.core.window import Window  # noqa: E402
from kivy.lang import Builder  # noqa: E402
from kivy.properties import (BooleanProperty, ListProperty, NumericProperty, ObjectProperty, OptionProperty,  # noqa: E402
                             StringProperty)
from kivy.uix.floatlayout import FloatLayout  # noqa: E402
from kivy.uix.screenmanager import NoTransition, ScreenManager, SlideTransition  # noqa: E402
from kivy.utils import platform  # noqa: E402

from mobile import i18n, theme, widgets  # noqa: E402
from mobile.api import CarnetClient  # noqa: E402

log = logging.getLogger(__name__)

DEFAULT_API_URL = "http://127.0.0.1:5000"
PHONE_PLATFORMS = startup.PHONE_PLATFORMS
# A portrait phone, in pixels, when running on a desktop.
DESKTOP_WINDOW_SIZE = startup.DESKTOP_WINDOW_SIZE
ANDROID_BACK_KEY = 27


@dataclass(frozen=True)
class ScreenEntry:
    """Where a screen lives; its ``.kv`` sits next to the module with the same name."""

    module: str
    class_name: str

    def load(self) -> type:
        module = importlib.import_module(self.module)
        kv_file = str(Path(module.__file__).with_suffix(".kv"))
        if kv_file not in Builder.files:
            Builder.load_file(kv_file)
        return getattr(module, self.class_name)


SCREENS: dict[str, ScreenEntry] = {
    "welcome": ScreenEntry("mobile.screens.welcome", "WelcomeScreen"),
    "activation": ScreenEntry("mobile.screens.activation", "ActivationScreen"),
    "login": ScreenEntry("mobile.screens.login", "LoginScreen"),
    "password_reset": ScreenEntry("mobile.screens.password_reset", "PasswordResetScreen"),
    "home": ScreenEntry("mobile.screens.home", "HomeScreen"),
    **{n: ScreenEntry(f"mobile.screens.{n}", c) for n, c in (("inbox", "InboxScreen"), ("inbox_thread", "InboxThreadScreen"), ("inbox_compose", "InboxComposeScreen"), ("inbox_save", "InboxSaveScreen"))},  # noqa: E501  (secure inbox)
    **{n: ScreenEntry(f"mobile.screens.{n}", c) for n, c in (("agenda", "AgendaScreen"), ("agenda_booking", "AgendaBookingScreen"), ("agenda_detail", "AgendaDetailScreen"), ("agenda_prevention", "AgendaPreventionScreen"), ("agenda_export", "AgendaExportScreen"))},  # noqa: E501  (health agenda)
    **{n: ScreenEntry(f"mobile.screens.{n}", c) for n, c in (("notifications", "NotificationCentreScreen"), ("notification_settings", "NotificationSettingsScreen"), ("notification_push", "PushRegistrationScreen"))},  # noqa: E501  (notifications)
    **{n: ScreenEntry(f"mobile.screens.{n}", c) for n, c in (("documents", "DocumentsScreen"), ("document_viewer", "DocumentViewerScreen"), ("documents_upload", "DocumentUploadScreen"), ("profile", "ProfileScreen"), ("profile_measure", "ProfileMeasureScreen"), ("profile_entries", "ProfileEntriesScreen"), ("directives", "DirectivesScreen"), ("access", "AccessScreen"), ("access_professional", "AccessProfessionalScreen"), ("history", "HistoryScreen"), ("migration_review", "MigrationReviewScreen"))},  # noqa: E501  (the record)
    **{n: ScreenEntry(f"mobile.screens.{n}", c) for n, c in (("pathway_oncology", "OncologyPathwayScreen"), ("vaccination_proposals", "VaccinationProposalsScreen"), ("reimbursements", "ReimbursementsScreen"))},  # noqa: E501  (DP and DCC views of the profile)
    "settings": ScreenEntry("mobile.screens.settings", "SettingsScreen"),
    "more": ScreenEntry("mobile.screens.more", "MoreScreen"),  # the bottom navigation's "Plus"
    "emergency_card": ScreenEntry("mobile.screens.emergency_card", "EmergencyCardScreen"),
    "family_actions": ScreenEntry("mobile.screens.family_actions", "FamilyActionsScreen"),  # the family space
    **{n: ScreenEntry(f"mobile.screens.{n}", c) for n, c in (("catalog", "CatalogScreen"), ("catalog_service", "CatalogServiceScreen"), ("catalog_consent", "CatalogConsentScreen"), ("catalog_connections", "CatalogConnectionsScreen"))},  # noqa: E501  (catalogue of services)
}
FIRST_SCREEN = "welcome"
# Screens of the way in: never where a new session resumes.
BACK_TO_WELCOME = ("welcome", "activation", "login", "password_reset")
# Where the back key leads; a screen missing here closes the app (Android convention).
BACK_TO = {
    "activation": "welcome", "login": "welcome", "password_reset": "login",
    **dict.fromkeys(("inbox", "agenda", "notifications", "catalog", "documents", "profile", "directives",
                     "access", "history", "migration_review", "settings", "emergency_card", "more", "family_actions"), "home"),
    "inbox_thread": "inbox", "inbox_compose": "inbox", "inbox_save": "inbox_thread",
    **dict.fromkeys(("agenda_booking", "agenda_detail", "agenda_prevention", "agenda_export"), "agenda"),
    "notification_settings": "notifications", "notification_push": "notification_settings",
    "document_viewer": "documents", "documents_upload": "documents",
    "profile_measure": "profile", "profile_entries": "profile", "access_professional": "access",
    "pathway_oncology": "profile", "vaccination_proposals": "profile", "reimbursements": "profile",
    "catalog_service": "catalog", "catalog_consent": "catalog_service", "catalog_connections": "catalog",
}


class CarnetApp(App):
    title = "Carnet"

    api_url = StringProperty(DEFAULT_API_URL)
    language = OptionProperty(i18n.DEFAULT_LANGUAGE, options=i18n.LANGUAGES)
    client = ObjectProperty(None)
    busy = BooleanProperty(False)
    signed_in = BooleanProperty(False)
    given_name = StringProperty("")
    # The badges of the bottom navigation (mobile/navigation.py): unread conversations, unread notifications.
    unread_messages = NumericProperty(0)
    unread_notifications = NumericProperty(0)
    # Whose record is open (the family space): empty for the patient's own; a child's or a person helped's
    # name, shown with its colour in every screen's top bar, so nobody books in the wrong record.
    record_banner = StringProperty("")
    record_colour = ListProperty([0, 0, 0, 0])
    record_kind = StringProperty("own")   # own | child | helped
    # A sentence for the welcome screen after the session ended (logout, expiry).
    notice = StringProperty("")
    # The screen the patient was on when the session expired: where signing in again leads.
    resume_screen = StringProperty("")

    def build(self):
        i18n.set_language(self.language)
        if platform not in PHONE_PLATFORMS:
            Window.size = DESKTOP_WINDOW_SIZE
        Window.clearcolor = theme.BACKGROUND
        # Keep the focused field visible above the soft keyboard.
        Window.softinput_mode = "below_target"
        Window.bind(on_keyboard=self._on_keyboard)
        # Until the first frame is on screen there is nothing to slide from (see ``show``).
        self.first_frame_drawn = False
        Window.bind(on_flip=self._on_first_flip)
        startup.load_clipboard_quietly()
        widgets.load_kv()
        from mobile import navigation  # the bottom navigation of the main screens

        navigation.load_kv()

        self.client = CarnetClient(self.api_url, language=self.language)
        root = FloatLayout()
        self.manager = ScreenManager(transition=SlideTransition(duration=0.2))
        root.add_widget(self.manager)
        self.busy_overlay = widgets.BusyOverlay()
        self.bind(busy=self.busy_overlay.setter("active"))
        root.add_widget(self.busy_overlay)
        from mobile import connectivity  # offline banner, probe, sync on reconnect (mobile/connectivity.py)

        connectivity.install(self, root)
        self.show(FIRST_SCREEN)
        return root

    # -- navigation -------------------------------------------------------------------

    def screen(self, name: str):
        """The screen called ``name``, built (and its module and kv loaded) on first use."""
        if not self.manager.has_screen(name):
            screen_class = SCREENS[name].load()
            self.manager.add_widget(screen_class(name=name))
        return self.manager.get_screen(name)

    def show(self, name: str, direction: str = "left"):
        screen = self.screen(name)
        if self.manager.current != name:
            if self.first_frame_drawn:
                self.manager.transition.direction = direction
                self.manager.current = name
            else:
                # Nothing drawn yet (a session resumed at start): no slide from a screen never seen,
                # the first frame shows ``name`` in place.
                transition = self.manager.transition
                self.manager.transition = NoTransition()
                self.manager.current = name
                self.manager.transition = transition
        return screen

    def _on_first_flip(self, *_args) -> None:
        self.first_frame_drawn = True
        Window.unbind(on_flip=self._on_first_flip)

    def back(self, name: str):
        return self.show(name, direction="right")

    def _on_keyboard(self, _window, key, *_args) -> bool:
        if key != ANDROID_BACK_KEY or self.busy:
            return key == ANDROID_BACK_KEY
        # A screen that knows where it was opened from (``back_target``) says so; else the table.
        target = getattr(self.manager.current_screen, "back_target", None) or BACK_TO.get(self.manager.current)
        if target is None:
            return False
        self.back(target)
        return True

    # -- session ----------------------------------------------------------------------

    def signed_in_as(self, given_name: str | None = None) -> None:
        """The second factor was accepted: the client holds an access token now."""
        self.signed_in = True
        if given_name:
            self.given_name = given_name
        self.notice = ""
        resume, self.resume_screen = self.resume_screen, ""
        self.show(resume if resume in SCREENS and resume not in BACK_TO_WELCOME else "home")
        self._forget_journeys()

    def open_space(self, space: dict | None) -> None:
        """Open a record from the profile switcher: the patient's own (``None`` or kind ``own``), a child's or
        a person helped's. Every request then names it; every top bar shows whose it is."""
        from mobile.screens.family import banner_of, colour_of

        own = not space or space.get("kind") == "own"
        record_id = None if own else str(space.get("record_id"))
        if record_id != self.client.record_id and getattr(self, "manager", None) is not None:
            # what the screens hold is the previous record's: forgotten, read again when shown
            for screen in list(self.manager.screens):
                if screen.name not in ("home", *BACK_TO_WELCOME) and hasattr(screen, "reset"):
                    screen.reset()
        self.client.record_id = record_id
        self.record_banner = "" if own else banner_of(space)
        self.record_colour = [0, 0, 0, 0] if own else colour_of(space)
        self.record_kind = "own" if own else str(space.get("kind"))

    def signed_out(self, notice: str = "") -> None:
        """Back to the welcome screen with nothing of the patient left in memory."""
        self.open_space(None)
        self.client.forget_token()
        self.signed_in = False
        self.given_name = ""
        self.unread_messages = self.unread_notifications = 0
        i18n.set_sex(None)  # the next patient's sentences agree with them
        self.notice = notice
        self.resume_screen = ""
        self.back("welcome")
        self._forget_journeys()
        if self.manager.has_screen("home"):
            self.manager.get_screen("home").reset()

    def session_expired(self, screen_name: str, sentence: str = "") -> None:
        """The server ended the session (idle, past its lifetime, signed out from another device): the
        sign-in screen says why (the server's sentence), then, once signed in again, ``screen_name``
        comes back. Called once for all screens by ``CarnetScreen.call``."""
        self.signed_out()
        self.resume_screen = screen_name
        self.show("login").session_ended(sentence or i18n._("Votre session a expiré. Reconnectez-vous."))

    def _forget_journeys(self) -> None:
        # Passwords and codes typed on the way in must not stay in widgets.
        for name in ("activation", "login", "password_reset"):
            if self.manager.has_screen(name):
                self.manager.get_screen(name).reset()

    def reset(self) -> None:
        """Forget everything and rebuild the first screen (used between UI test scenarios)."""
        self.busy = False
        self.open_space(None)
        self.client.forget_token()
        self.signed_in = False
        self.given_name = ""
        self.unread_messages = self.unread_notifications = 0
        self.notice = ""
        transition = self.manager.transition
        self.manager.transition = NoTransition()
        self.show(FIRST_SCREEN)
        for screen in list(self.manager.screens):
            if screen.name != FIRST_SCREEN:
                self.manager.remove_widget(screen)
        self.manager.get_screen(FIRST_SCREEN).reset()
        self.manager.transition = transition

    def apply_preferences(self, prefs: dict, rebuild_from: str | None = None) -> None:
        """Language and text size from the settings: every screen is rebuilt so its texts and sizes
        follow; the patient stays on ``rebuild_from`` (the session is kept)."""
        i18n.set_language(prefs["language"])
        self.language = prefs["language"]
        self.client.language = prefs["language"]
        theme.apply_text_scale(prefs["text_size"])
        if rebuild_from is None:
            return
        transition = self.manager.transition
        self.manager.transition = NoTransition()
        from kivy.uix.screenmanager import Screen

        blank = Screen(name="_rebuilding")
        self.manager.add_widget(blank)
        self.manager.current = blank.name
        for screen in list(self.manager.screens):
            if screen is not blank:
                self.manager.remove_widget(screen)
        self.show(rebuild_from)
        self.manager.remove_widget(blank)
        self.manager.transition = transition

    def on_stop(self) -> None:
        if self.client is not None:
            self.client.close()


def main(app_class: type[CarnetApp] = CarnetApp) -> None:
    """Start the app (``app_class``: a subclass for bench/cold_start.py, which resumes a session)."""
    language = os.environ.get("CARNET_LANG", i18n.DEFAULT_LANGUAGE)
    if language not in i18n.LANGUAGES:
        raise SystemExit(f"CARNET_LANG must be one of {', '.join(i18n.LANGUAGES)}")
    from mobile.storage import load_preferences

    prefs = load_preferences()  # language and text size chosen in the settings, if any
    if "CARNET_LANG" in os.environ:
        prefs["language"] = language
    theme.apply_text_scale(prefs["text_size"])
    app_class(
        api_url=os.environ.get("CARNET_API_URL", DEFAULT_API_URL), language=prefs["language"]
    ).run()


__all__ = ["SCREENS", "CarnetApp", "ScreenEntry", "main"]
