"""Prevention checklist: the exams and vaccinations recommended for the patient's age and sex, each
To plan / Done / Not done; the patient marks them."""

from __future__ import annotations

import datetime as dt

from kivy.factory import Factory
from kivy.properties import BooleanProperty, DictProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from mobile.api import ApiError
from mobile.i18n import _, today_local

from .agenda_common import agenda_api, load_kv, parse_french_date
from .base import CarnetScreen

load_kv()
CATEGORIES = {"check": "Bilans de prévention", "screening": "Dépistages", "vaccination": "Vaccinations",
              "dental": "Examens bucco-dentaires"}


def _fr(iso: str | None) -> str:
    return dt.date.fromisoformat(iso).strftime("%d/%m/%Y") if iso else ""


class PreventionRow(BoxLayout):
    item = DictProperty({})
    detail = StringProperty("")
    status = StringProperty("")
    # "Fait" asks when first: a date field under the row, today by default
    asking_date = BooleanProperty(False)
    date_error = StringProperty("")

    def ask_date(self) -> None:
        self.asking_date = not self.asking_date
        self.date_error = ""
        if self.asking_date:
            done = self.item.get("done_on")
            self.ids.done_on.text = _fr(done) if done else today_local().strftime("%d/%m/%Y")

    def on_item(self, _instance, item: dict) -> None:
        self.status = item.get("status", "")
        parts = []
        if item.get("done_on"):
            parts.append(_("Fait le {date}").format(date=_fr(item["done_on"])))
        if item.get("next_due_on") and item.get("status") == "done":
            parts.append(_("à refaire à partir du {date}").format(date=_fr(item["next_due_on"])))
        elif item.get("planned_on"):
            parts.append(_("prévu le {date}").format(date=_fr(item["planned_on"])))
        elif item.get("status") == "to_plan":
            parts.append(_("recommandé jusqu'au {date}").format(date=_fr(item.get("due_until"))))
        self.detail = " · ".join(parts)


class AgendaPreventionScreen(CarnetScreen):
    summary = StringProperty("")

    def on_pre_enter(self, *_args) -> None:
        api = agenda_api()
        self.call(api.prevention, self._show, self._failed)

    def _show(self, body: dict) -> None:
        container = self.ids.item_list
        container.clear_widgets()
        current = None
        for item in body["items"]:
            if item["category"] != current:
                current = item["category"]
                container.add_widget(Factory.Subtitle(text=_(CATEGORIES.get(current, current))))
            row = PreventionRow(item=item)
            container.add_widget(row)
        self._age = body["age"]
        self._update_summary()

    def _update_summary(self) -> None:
        rows = [w for w in self.ids.item_list.children if isinstance(w, PreventionRow)]
        todo = sum(1 for r in rows if r.item.get("status") == "to_plan")
        self.summary = _("{age} ans : {count} recommandation(s) à planifier.").format(age=self._age, count=todo)

    def mark(self, row: PreventionRow, status: str, done_on: str | None = None) -> None:
        code = row.item["code"]
        api = agenda_api()

        def marked(item: dict) -> None:
            row.asking_date = False
            row.item = item
            self._update_summary()

        def refused(error: ApiError) -> None:
            if row.asking_date and error.status != 401:
                row.date_error = error.detail
            else:
                self._failed(error)

        self.call(lambda: api.mark(code, status, done_on=done_on), marked, refused)

    def mark_done(self, row: PreventionRow, typed: str) -> None:
        """"Fait", on the day the patient says (not later than today)."""
        try:
            day = parse_french_date(typed)
        except ValueError:
            day = None
        if not day:
            row.date_error = _("Saisissez la date au format JJ/MM/AAAA.")
            return
        if day > today_local().isoformat():
            row.date_error = _("Cette date est dans le futur : indiquez le jour où c'était fait.")
            return
        row.date_error = ""
        self.mark(row, "done", done_on=day)

    def _failed(self, error: ApiError) -> None:
        if not self.session_refused(error):
            self.error = error.detail

    def reset(self) -> None:
        super().reset()
        self.summary = ""
        self.ids.item_list.clear_widgets()
