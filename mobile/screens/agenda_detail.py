"""One appointment: when, with whom, where, reminders; cancel or move it before the cut-off, add it to
the phone's calendar, or delete one of the patient's own entries."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from kivy.factory import Factory
from kivy.properties import BooleanProperty, DictProperty, ObjectProperty, StringProperty

from mobile import theme

from mobile.api import ApiError
from mobile.i18n import _

from .agenda_common import agenda_api, load_kv, long_date, place_line, saved_file, upper_first, when
from .base import CarnetScreen

load_kv()


class AgendaDetailScreen(CarnetScreen):
    appointment = DictProperty({})
    notice = StringProperty("")
    ready = ObjectProperty(None, allownone=True)  # the .ics kept on the device (mobile.share.KeptFile)
    confirming_cancel = BooleanProperty(False)
    cancelled = BooleanProperty(False)

    def __init__(self, **kwargs) -> None:
        self.buttons: dict = {}
        super().__init__(**kwargs)

    def on_kv_post(self, _base) -> None:
        self._build_actions()

    def on_appointment(self, _instance, value) -> None:
        self.confirming_cancel = False
        self.cancelled = value.get("status") == "cancelled"
        self._build_actions()
        page = self.ids.get("page")
        if page is not None:
            page.scroll_y = 1  # a changed appointment is read from the top

    def on_confirming_cancel(self, _instance, _value) -> None:
        self._build_actions()

    def on_pre_enter(self, *_args) -> None:
        # the list gives the essentials; the detail adds pending reminders and the cut-off
        if self.appointment.get("id"):
            appointment_id = self.appointment["id"]
            api = agenda_api()
            self.call(lambda: api.appointment(appointment_id), self._refreshed, self._failed)

    def _refreshed(self, appointment: dict) -> None:
        self.appointment = appointment

    def _build_actions(self) -> None:
        """Only the actions that make sense now are on screen (no hidden buttons to tap by mistake)."""
        container = self.ids.get("actions")
        if container is None:
            return
        container.clear_widgets()
        self.buttons = {}
        a = self.appointment

        def add(key: str, widget) -> None:
            self.buttons[key] = widget
            container.add_widget(widget)

        if a.get("status") == "booked":
            add("add_to_calendar", Factory.SecondaryButton(text=_("Ajouter à mon calendrier (.ics)"),
                                                           on_release=lambda *_: self.add_to_calendar()))
        if self.can_change(a) and not self.confirming_cancel:
            add("move", Factory.SecondaryButton(text=_("Déplacer le rendez-vous"), on_release=lambda *_: self.move()))
            add("ask_cancel", Factory.SecondaryButton(text=_("Annuler le rendez-vous"), color=theme.ERROR,
                                                      on_release=lambda *_: self.ask_cancel()))
        if self.can_change(a) and self.confirming_cancel:
            card = Factory.CancelConfirmation()
            card.add_widget(Factory.PrimaryButton(text=_("Oui, annuler le rendez-vous"),
                                                  on_release=lambda *_: self.cancel()))
            keep = Factory.SecondaryButton(text=_("Non, le garder"))
            keep.bind(on_release=lambda *_: setattr(self, "confirming_cancel", False))
            card.add_widget(keep)
            self.buttons["confirm_cancel"] = card.children[1]
            add("cancel_card", card)
        if self.is_own(a):
            add("delete", Factory.SecondaryButton(text=_("Supprimer de mon agenda"), on_release=lambda *_: self.delete()))

    def on_leave(self, *_args) -> None:
        self.notice = ""
        self.ready = None
        self.error = ""

    def heading(self, a: dict) -> str:
        return a.get("title", "") if a else ""

    def when_text(self, a: dict) -> str:
        if not a:
            return ""
        return f"{upper_first(long_date(a['local_date']))}\n{when(a)}"

    def where_text(self, a: dict) -> str:
        if not a:
            return ""
        parts = [a.get("visit_type_label") or "", place_line(a.get("place"))]
        return "\n".join(p for p in parts if p)

    def reminders_text(self, a: dict) -> str:
        if not a or a.get("status") != "booked":
            return ""
        reminders = a.get("reminders") or []
        if not reminders:
            return _("Pas de rappel prévu.")
        zone = ZoneInfo(a.get("timezone") or "Europe/Paris")
        moments = [dt.datetime.fromisoformat(r).astimezone(zone).strftime("%d/%m à %H:%M") for r in reminders]
        return _("Rappels : le {list}").format(list=", le ".join(moments))

    def status_text(self, a: dict) -> str:
        if not a:
            return ""
        if a.get("status") == "cancelled":
            return _("Ce rendez-vous est annulé.")
        if a.get("kind") in ("booking", "professional") and not a.get("can_cancel"):
            return _("Il est trop tard pour l'annuler ou le déplacer en ligne : contactez le cabinet.")
        return ""

    def can_change(self, a: dict) -> bool:
        return bool(a) and a.get("kind") in ("booking", "professional") and bool(a.get("can_cancel"))

    def is_own(self, a: dict) -> bool:
        return bool(a) and a.get("kind") in ("personal", "imported")

    # -- actions -----------------------------------------------------------------------

    def ask_cancel(self) -> None:
        self.confirming_cancel = True

    def cancel(self) -> None:
        appointment_id = self.appointment["id"]
        api = agenda_api()

        def done(appointment: dict) -> None:
            self.appointment = appointment
            self.notice = _("Le rendez-vous est annulé ; le créneau est libéré.")

        self.call(lambda: api.cancel(appointment_id), done, self._failed)

    def move(self) -> None:
        booking = self.app.screen("agenda_booking")
        booking.start(self.appointment)
        self.app.show("agenda_booking")

    def delete(self) -> None:
        entry_id = self.appointment["id"]
        api = agenda_api()
        self.call(lambda: api.delete_entry(entry_id), lambda _r: self.app.back("agenda"), self._failed)

    def add_to_calendar(self) -> None:
        appointment_id = self.appointment["id"]
        api = agenda_api()

        def saved(data: bytes) -> None:
            self.notice = ""
            self.ready = saved_file(f"rendez-vous-{appointment_id}.ics", data)

        self.call(lambda: api.export_ics(appointment_id), saved, self._failed)

    def _failed(self, error: ApiError) -> None:
        if not self.session_refused(error):
            self.confirming_cancel = False
            self.error = error.detail

    def reset(self) -> None:
        super().reset()
        self.appointment = {}
        self.notice = ""
