"""What the agenda's screens share: the agenda API bound to the app's client, rows, French dates.

Dates shown are the server's ``local_date``/``local_time`` (already in the appointment's zone), so the
phone's own zone never shifts an appointment.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from kivy.app import App
from kivy.lang import Builder
from kivy.properties import BooleanProperty, DictProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout

from mobile.api.agenda import AgendaApi
from mobile.i18n import _, get_language

KV_FILE = str(Path(__file__).with_name("agenda_common.kv"))
DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")
DAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December")


def load_kv() -> None:
    if KV_FILE not in Builder.files:
        Builder.load_file(KV_FILE)


def agenda_api() -> AgendaApi:
    """The session's AgendaApi (the client is replaced when the app is rebuilt)."""
    return App.get_running_app().client.feature(AgendaApi)


def _names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (DAYS_EN, MONTHS_EN) if get_language() == "en" else (DAYS, MONTHS)


def long_date(iso_day: str) -> str:
    """'2026-11-24' → 'mardi 24 novembre 2026' (in English: 'Tuesday 24 November 2026')."""
    days, months = _names()
    day = dt.date.fromisoformat(iso_day)
    return f"{days[day.weekday()]} {day.day} {months[day.month - 1]} {day.year}"


def upper_first(text: str) -> str:
    """'mardi 24 novembre' → 'Mardi 24 novembre' (``str.capitalize`` would lower 'November')."""
    return text[:1].upper() + text[1:]


def month_title(year: int, month: int) -> str:
    return f"{upper_first(_names()[1][month - 1])} {year}"


def parse_french_date(text: str) -> str | None:
    """'24/11/2026' → '2026-11-24'; '' → None; raises ValueError on anything else."""
    text = text.strip()
    if not text:
        return None
    day, month, year = text.split("/")
    return dt.date(int(year), int(month), int(day)).isoformat()


def when(appointment: dict) -> str:
    if appointment.get("all_day"):
        return _("Toute la journée")
    return f"{appointment.get('local_time', '')} – {appointment.get('local_end_time', '')}"


def place_line(place: dict | None) -> str:
    place = place or {}
    city = " ".join(x for x in (place.get("postcode"), place.get("city")) if x)
    return ", ".join(x for x in (place.get("name"), place.get("address"), city) if x)


def saved_file(name: str, data: bytes):
    """A calendar file kept for the patient (``mobile.share.keep``), to open or share from the screen."""
    from mobile import share

    return share.keep(Path(App.get_running_app().user_data_dir) / "agenda", name, data, "text/calendar")


class AppointmentRow(ButtonBehavior, BoxLayout):
    """One appointment in a list: day, time, title, place; tapping opens it."""

    appointment = DictProperty({})
    day_text = StringProperty("")
    time_text = StringProperty("")
    title = StringProperty("")
    place_text = StringProperty("")
    cancelled = BooleanProperty(False)

    def on_appointment(self, _instance, value: dict) -> None:
        self.day_text = upper_first(long_date(value["local_date"])) if value.get("local_date") else ""
        self.time_text = when(value)
        self.title = value.get("title", "")
        self.place_text = place_line(value.get("place")) or (value.get("visit_type_label") or "")
        self.cancelled = value.get("status") == "cancelled"
