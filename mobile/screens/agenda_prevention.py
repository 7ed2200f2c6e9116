"""Prevention checklist: the exams and vaccinations recommended for the patient's age and sex, each
To plan / Done / Not done; the patient marks them."""

from __future__ import annotations

import datetime as dt

from kivy.factory import Factory
from kivy.properties import DictProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from mobile.api import ApiError
from mobile.i18n import _

from .agenda_common import agenda_api, load_kv
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

    def mark(self, row: PreventionRow, status: str) -> None:
        code = row.item["code"]
        api = agenda_api()

        def marked(item: dict) -> None:
            row.item = item
            self._update_summary()

        self.call(lambda: api.mark(code, status), marked, self._failed)

    def _failed(self, error: ApiError) -> None:
        if error.status == 401:
            self.app.signed_out(_("Votre session a expiré. Reconnectez-vous."))
        else:
            self.error = error.detail

    def reset(self) -> None:
        super().reset()
        self.summary = ""
        self.ids.item_list.clear_widgets()
