"""The agenda: upcoming appointments as a list, or a month with its days; the way to book, to the
prevention checklist and to calendar export."""

from __future__ import annotations

import calendar
import datetime as dt

from kivy.factory import Factory
from kivy.properties import BooleanProperty, NumericProperty, OptionProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.label import Label

from mobile.api import ApiError
from mobile.i18n import _, today_local

from .agenda_common import AppointmentRow, agenda_api, load_kv, long_date, month_title, upper_first
from .base import CarnetScreen

load_kv()


class DayCell(ButtonBehavior, Label):
    day = NumericProperty(0)
    count = NumericProperty(0)
    selected = BooleanProperty(False)
    today = BooleanProperty(False)


class AgendaScreen(CarnetScreen):
    mode = OptionProperty("list", options=("list", "month"))
    month_label = StringProperty("")
    day_label = StringProperty("")
    loaded = BooleanProperty(False)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        today = today_local()
        self.year, self.month = today.year, today.month
        self.selected_day: dt.date | None = None
        self._month_items: list[dict] = []

    def on_pre_enter(self, *_args) -> None:
        self.refresh()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.refresh()

    def refresh(self) -> None:
        api = agenda_api()
        if self.mode == "list":
            today = today_local().isoformat()
            self.call(lambda: api.appointments(date_from=today, limit=50), self._show_list, self._failed)
        else:
            first = dt.date(self.year, self.month, 1)
            last = dt.date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])
            self.month_label = month_title(self.year, self.month)
            self.call(lambda: api.appointments(date_from=first.isoformat(), date_to=last.isoformat(), limit=100),
                      self._show_month, self._failed)

    # -- list --------------------------------------------------------------------------

    def _rows(self, container, items: list[dict], empty: str) -> None:
        container.clear_widgets()
        for item in items:
            row = AppointmentRow(appointment=item)
            row.bind(on_release=lambda r: self.open(r.appointment))
            container.add_widget(row)
        if not items:
            container.add_widget(Factory.MutedText(text=empty))

    def _show_list(self, page: dict) -> None:
        self._rows(self.ids.upcoming, page["items"], _("Aucun rendez-vous à venir. Prenez rendez-vous ou ajoutez "
                                                        "un rendez-vous pris ailleurs."))
        self.loaded = True

    # -- month -------------------------------------------------------------------------

    def change_month(self, step: int) -> None:
        month = self.month + step
        self.year, self.month = self.year + (month - 1) // 12, (month - 1) % 12 + 1
        self.selected_day = None
        self.refresh()

    def _show_month(self, page: dict) -> None:
        self._month_items = page["items"]
        counts: dict[int, int] = {}
        for item in self._month_items:
            day = dt.date.fromisoformat(item["local_date"])
            if (day.year, day.month) == (self.year, self.month):
                counts[day.day] = counts.get(day.day, 0) + 1
        grid = self.ids.month_grid
        grid.clear_widgets()
        for name in ("L", "M", "M", "J", "V", "S", "D"):
            grid.add_widget(Factory.MutedText(text=name, halign="center", bold=True))
        first_weekday, days = calendar.monthrange(self.year, self.month)
        for _blank in range(first_weekday):
            grid.add_widget(Label())
        today = today_local()
        for number in range(1, days + 1):
            date = dt.date(self.year, self.month, number)
            cell = DayCell(day=number, count=counts.get(number, 0), selected=date == self.selected_day,
                           today=date == today)
            cell.bind(on_release=lambda c: self.select_day(c.day))
            grid.add_widget(cell)
        self._show_day()
        self.loaded = True

    def select_day(self, number: int) -> None:
        self.selected_day = dt.date(self.year, self.month, number)
        for cell in self.ids.month_grid.children:
            if isinstance(cell, DayCell):
                cell.selected = cell.day == number
        self._show_day()

    def _show_day(self) -> None:
        day = self.selected_day
        if day is None:
            self.day_label = _("Touchez un jour pour voir ses rendez-vous.")
            self.ids.day_list.clear_widgets()
            return
        self.day_label = upper_first(long_date(day.isoformat()))
        items = [i for i in self._month_items if i["local_date"] == day.isoformat()]
        self._rows(self.ids.day_list, items, _("Aucun rendez-vous ce jour-là."))

    # -- navigation --------------------------------------------------------------------

    def open(self, appointment: dict) -> None:
        self.app.screen("agenda_detail").appointment = appointment
        self.app.show("agenda_detail")

    def book(self) -> None:
        self.app.screen("agenda_booking").start()
        self.app.show("agenda_booking")

    def _failed(self, error: ApiError) -> None:
        if not self.session_refused(error):
            self.error = error.detail

    def reset(self) -> None:
        super().reset()
        self.loaded = False
        self.mode = "list"
        self.ids.upcoming.clear_widgets()
        self.ids.month_grid.clear_widgets()
        self.ids.day_list.clear_widgets()
