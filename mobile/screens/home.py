"""The patient's home: a greeting, what to do next, what happened recently on the account."""

from __future__ import annotations

import time

from kivy.app import App
from kivy.clock import Clock
from kivy.factory import Factory
from kivy.properties import BooleanProperty, DictProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout

from mobile.api import ApiError
from mobile.api.records import MIGRATION_RUNNING, RecordsApi
from mobile.background import run_in_background
from mobile.i18n import _, agree, format_datetime, set_sex, set_zone
from mobile.navigation import badge_text, open_from_home

from mobile.navigation import HubButton  # noqa: F401  (the hub's buttons, shared with "Plus")

from .base import CarnetScreen
from .family import FamilyLinks, SpaceSwitcher  # noqa: F401  (the profile switcher and family links, in home.kv)
from .records_home import load_home  # the record's section (documents, profile, access…)


# The legacy import, followed while home is shown: asked again every few seconds while it runs.
IMPORT_POLL_SECONDS = 3.0
# Right after the activation, the import is queued but not recorded yet (state "none"): how long home
# keeps asking before concluding there is no legacy dossier.
IMPORT_QUEUE_WAIT_SECONDS = 90.0


def just_activated(home: dict) -> bool:
    """This session began with the activation: its audit entry bears the time of the last login
    (both written by the same request), so the activation's import may still be on its way."""
    last_login = home.get("last_login_at")
    return bool(last_login) and any(
        item.get("action") == "account.activated" and item.get("at") == last_login
        for item in home.get("recent_activity") or []
    )


class NextStepRow(BoxLayout):
    text = StringProperty("")


class ActivityRow(BoxLayout):
    text = StringProperty("")
    when = StringProperty("")
    # a failed sign-in (or code): on its own line, marked, with what to do
    alert = BooleanProperty(False)


def activity_when(item: dict) -> str:
    """When it happened; for a grouped line, from the first to the last."""
    last, first = format_datetime(item.get("at")), format_datetime(item.get("first_at"))
    if item.get("count", 1) > 1 and first and first != last:
        return _("du {first} au {last}").format(first=first.removeprefix(_("le ")), last=last.removeprefix(_("le ")))
    return last


class NextAppointmentCard(ButtonBehavior, BoxLayout):
    """Home's next appointment (or an invitation to book one); a tap opens it."""

    appointment = DictProperty({})
    day = StringProperty("")
    line = StringProperty("")
    place = StringProperty("")

    def on_appointment(self, _instance, appointment: dict) -> None:
        from .agenda_common import long_date, place_line, upper_first, when

        if not appointment:
            self.day = self.line = self.place = ""
            return
        self.day = upper_first(long_date(appointment.get("local_date") or ""))
        self.line = f"{when(appointment)}  ·  {appointment.get('title') or ''}".strip(" ·")
        self.place = place_line(appointment.get("place"))


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
        open_from_home(name)

    def refresh_badge(self) -> None:
        """``/notifications/unread-count``, quietly: the home page is whole without it."""
        from mobile.api.notifications import NotificationsApi

        client = App.get_running_app().client

        def count() -> int:
            return client.feature(NotificationsApi).unread_count()

        def shown(unread: int) -> None:
            self.unread_badge = badge_text(unread)
            App.get_running_app().unread_notifications = unread

        run_in_background(count, shown, lambda _error: None)


class HomeScreen(CarnetScreen):
    last_login = StringProperty("")
    loaded = BooleanProperty(False)
    next_appointment = DictProperty({})
    unread_messages = StringProperty("")
    _import_poll = None  # the Clock event of the next question about the legacy import
    _import_wait_until: float | None = None  # see IMPORT_QUEUE_WAIT_SECONDS

    def on_pre_enter(self, *_args) -> None:
        self.refresh()

    def on_leave(self, *_args) -> None:
        self._stop_import_poll()

    def on_enter(self, *_args) -> None:
        if self.app.signed_in:
            self.ids.hub.refresh_badge()
            self.ids.spaces.refresh()

    def refresh(self) -> None:
        helped = self.app.record_kind == "helped"
        self.call(lambda: load_home(self.client, helped=helped), self._show, self._failed)

    def _show(self, home: dict) -> None:
        set_zone(home.get("timezone"))  # the patient's zone: every time on every screen is in it
        if not self.app.client.record_id:  # the signed-in patient's own record: their name, their grammar
            set_sex(home.get("sex"))  # what the sentences about the patient agree with
            self.app.given_name = home.get("given_name") or self.app.given_name
        # the sign-in before this one (this one, the patient knows): a stranger's would show here
        when = format_datetime(home.get("previous_login_at"))
        self.last_login = (
            _("Dernière connexion : {when}").format(when=when)
            if when
            else _("Première connexion : bienvenue dans Carnet !")
        )
        self._show_hub(home.get("hub") or {})
        self._fill(
            self.ids.next_steps,
            [NextStepRow(text=step.get("label", "")) for step in home.get("next_steps", [])],
            _("Rien à faire pour l'instant."),
        )
        self._fill(
            self.ids.activity,
            [
                ActivityRow(text=item.get("label", ""), when=activity_when(item), alert=bool(item.get("alert")))
                for item in home.get("recent_activity", [])
            ],
            _("Aucune activité récente."),
        )
        self.ids.records.show(home)
        self.loaded = True
        status = home.get("records_migration")
        if (self._import_wait_until is None and status is not None and status.get("state") == "none"
                and just_activated(home)):
            self._import_wait_until = time.monotonic() + IMPORT_QUEUE_WAIT_SECONDS
        self._follow_import(status)
        connectivity = getattr(self.app, "connectivity", None)
        if connectivity is not None and self.app.signed_in:
            connectivity.sync()  # the copy of the record read without network, refreshed in background

    def _show_hub(self, hub: dict) -> None:
        """The next appointment and the unread conversations (the inbox's badge, here and in the bar)."""
        self.next_appointment = hub.get("next_appointment") or {}
        unread = hub.get("unread_threads")
        if unread is not None:
            self.app.unread_messages = unread
        self.unread_messages = _("{n} conversation(s) non lue(s)").format(n=self.app.unread_messages) \
            if self.app.unread_messages else ""

    def open_next_appointment(self) -> None:
        if self.next_appointment:
            detail = self.app.screen("agenda_detail")
            detail.appointment = self.next_appointment
            self.app.show("agenda_detail")
        else:
            booking = self.app.screen("agenda_booking")
            booking.start()
            self.app.show("agenda_booking")

    # -- the legacy import, as it happens ---------------------------------------------------

    def _import_under_way(self, status: dict | None) -> bool:
        if not status:
            return False
        if status.get("state") in MIGRATION_RUNNING:
            return True
        return (status.get("state") == "none" and self._import_wait_until is not None
                and time.monotonic() < self._import_wait_until)

    def _on_screen(self) -> bool:
        return self.app.signed_in and self.manager is not None and self.manager.current == self.name

    def _follow_import(self, status: dict | None) -> None:
        """Ask again in a few seconds while the import is pending or running and home is shown."""
        self._stop_import_poll()
        if self._on_screen() and self._import_under_way(status):
            self._import_poll = Clock.schedule_once(lambda _dt: self._ask_import(status), IMPORT_POLL_SECONDS)

    def _ask_import(self, last: dict) -> None:
        self._import_poll = None
        if not self._on_screen():
            return
        client = self.client

        def asked(status: dict) -> None:
            if not self._on_screen():
                return
            self.ids.records.show_migration(status)
            self._follow_import(status)

        def failed(error: ApiError) -> None:
            # Quietly: the tile keeps its last line; a refused session is the other calls' business.
            if error.status != 401:
                self._follow_import(last)

        run_in_background(lambda: client.feature(RecordsApi).migration_status(), asked, failed)

    def _stop_import_poll(self) -> None:
        if self._import_poll is not None:
            self._import_poll.cancel()
            self._import_poll = None

    @staticmethod
    def _fill(container, rows, empty_text: str) -> None:
        container.clear_widgets()
        for row in rows or [Factory.MutedText(text=empty_text)]:
            container.add_widget(row)

    def _failed(self, error: ApiError) -> None:
        if not self.session_refused(error):
            self.error = error.detail

    def logout(self) -> None:
        # Whatever the server answers, the patient asked to leave: leave.
        def leave(_outcome) -> None:
            self.app.signed_out(agree(_("Vous êtes déconnecté(e).")))

        self.call(self.client.logout, leave, leave)

    def reset(self) -> None:
        super().reset()
        self._stop_import_poll()
        self._import_wait_until = None
        self.last_login = ""
        self.loaded = False
        self.next_appointment = {}
        self.unread_messages = ""
        self.ids.next_steps.clear_widgets()
        self.ids.activity.clear_widgets()
        self.ids.records.reset()
        self.ids.spaces.reset()
