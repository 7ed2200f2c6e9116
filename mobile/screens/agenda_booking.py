"""Booking: search free slots (specialty, place, date), choose one, confirm. Also used to move an
appointment to another slot of the same professional."""

from __future__ import annotations

from kivy.clock import Clock
from kivy.factory import Factory
from kivy.metrics import dp
from kivy.properties import BooleanProperty, DictProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout

from mobile.api import ApiError
from mobile.i18n import _

from .agenda_common import agenda_api, load_kv, long_date, parse_french_date, place_line, upper_first
from .base import CarnetScreen

load_kv()


class SlotRow(ButtonBehavior, BoxLayout):
    slot = DictProperty({})
    selected = BooleanProperty(False)


class AgendaBookingScreen(CarnetScreen):
    # the server's cancellation cut-off (CARNET_AGENDA_CANCEL_CUTOFF_HOURS), for the warning's words
    cutoff_hours = NumericProperty(24)
    chosen = DictProperty({})
    notice = StringProperty("")
    # set when moving an existing appointment: only its professional's slots are offered
    reschedule_id = NumericProperty(0)
    professional_id = NumericProperty(0)
    heading = StringProperty("")

    def start(self, appointment: dict | None = None) -> None:
        """Open for a new booking, or (with ``appointment``) to move that appointment."""
        self.reset()
        if appointment:
            self.reschedule_id = appointment["id"]
            self.professional_id = appointment.get("professional_id") or 0
            self.heading = _("Déplacer le rendez-vous avec {name}").format(name=appointment.get("professional_name", ""))
        else:
            self.heading = _("Prendre rendez-vous")

    def search(self) -> None:
        try:
            date = parse_french_date(self.ids.date.text)
        except ValueError:
            self.error = _("La date doit être au format JJ/MM/AAAA.")
            return
        self.chosen = {}
        specialty = self.ids.specialty.text.strip() or None
        place = self.ids.place.text.strip() or None
        professional_id = self.professional_id or None
        api = agenda_api()
        self.call(lambda: api.slots(specialty=specialty, place=place, date=date, days=7, limit=30,
                                    professional_id=professional_id), self._show, self._failed)

    def _show(self, page: dict) -> None:
        results = self.ids.results
        results.clear_widgets()
        for slot in page["items"]:
            row = SlotRow(slot=slot)
            row.bind(on_release=lambda r: self.choose(r.slot))
            results.add_widget(row)
        if not page["items"]:
            results.add_widget(Factory.MutedText(text=_("Aucun créneau libre pour cette recherche. Essayez une "
                                                        "autre date ou une autre ville.")))
        self.notice = (_("{count} créneaux libres, du plus proche au plus lointain.").format(count=len(page["items"]))
                       if page["items"] else "")

    def choose(self, slot: dict) -> None:
        self.choose_cutoff(slot)
        self.chosen = slot
        for row in self.ids.results.children:
            if isinstance(row, SlotRow):
                row.selected = row.slot.get("slot_id") == slot.get("slot_id")
                if row.selected:
                    self._keep_in_sight(row)

    def _keep_in_sight(self, row: SlotRow) -> None:
        # The confirmation card opens below the list and takes its room: once it is laid out, bring the
        # chosen slot back above it (it was often half hidden by the card).
        def scroll(_dt) -> None:
            if row.parent is not None and row.selected:
                self.ids.page.scroll_to(row, padding=dp(8), animate=False)

        Clock.schedule_once(scroll, 0.1)

    def summary(self, slot: dict) -> str:
        if not slot:
            return ""
        return _("{day} à {time}\n{name} — {specialty}\n{place}").format(
            day=upper_first(long_date(slot["local_date"])), time=slot["local_time"], name=slot["professional_name"],
            specialty=slot.get("specialty_label") or slot.get("visit_type_label") or "",
            place=place_line(slot.get("place")) or slot.get("visit_type_label") or "")

    @staticmethod
    def past_cancel_deadline(slot: dict) -> bool:
        """Booked now, this slot could no longer be cancelled or moved in the app (the cut-off has passed)."""
        import datetime as dt

        until = slot.get("cancel_until") if slot else None
        if not until:
            return False
        try:
            return dt.datetime.fromisoformat(until.replace("Z", "+00:00")) <= dt.datetime.now(dt.timezone.utc)
        except ValueError:
            return False

    def choose_cutoff(self, slot: dict) -> None:
        import datetime as dt

        try:
            starts = dt.datetime.fromisoformat(slot["starts_at"].replace("Z", "+00:00"))
            until = dt.datetime.fromisoformat(slot["cancel_until"].replace("Z", "+00:00"))
            self.cutoff_hours = round((starts - until).total_seconds() / 3600)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass

    def confirm(self) -> None:
        if not self.chosen:
            return
        api = agenda_api()
        slot_id = self.chosen["slot_id"]
        if self.reschedule_id:
            appointment_id = self.reschedule_id
            self.call(lambda: api.reschedule(appointment_id, slot_id), self._booked, self._failed)
        else:
            self.call(lambda: api.book(slot_id), self._booked, self._failed)

    def _booked(self, appointment: dict) -> None:
        detail = self.app.screen("agenda_detail")
        detail.appointment = appointment
        detail.notice = _("Votre rendez-vous est confirmé.") if not self.reschedule_id else _(
            "Votre rendez-vous a été déplacé.")
        self.app.show("agenda_detail")

    def _failed(self, error: ApiError) -> None:
        if self.session_refused(error):
            return
        self.error = error.detail
        if error.code == "agenda_slot_taken":
            self.search_again_later()

    def search_again_later(self) -> None:
        # the slot just went: drop it from the list so the patient picks another
        taken = self.chosen.get("slot_id")
        self.chosen = {}
        for row in list(self.ids.results.children):
            if isinstance(row, SlotRow) and row.slot.get("slot_id") == taken:
                self.ids.results.remove_widget(row)

    def reset(self) -> None:
        super().reset()
        self.chosen = {}
        self.notice = ""
        self.reschedule_id = 0
        self.professional_id = 0
        for name in ("specialty", "place", "date"):
            self.ids[name].text = ""
        self.ids.results.clear_widgets()
