"""One kind of measure (weight, blood pressure, glucose…): its chart over time, its history, and a
form to record a new value. Ranges are checked by the server, which says in French what is wrong
and under which field."""

from __future__ import annotations

import datetime as dt

from kivy.properties import BooleanProperty, DictProperty, ListProperty, StringProperty

from mobile.api import ApiError
from mobile.i18n import _, now_local, zone, zone_note
from mobile.widgets_chart import parse_series

from .profile import chart_unit, component_labels, measure_value
from .records_common import (RecordsCard, RecordsChip, RecordsScreen, date_time, load_kv, profile_kinds,
                             records_api)

load_kv()
HISTORY_SIZE = 100


def unit_label(unit: str) -> str:
    return _("pas") if unit == "steps" else unit


class MeasureRow(RecordsCard):
    measure = DictProperty({})
    value = StringProperty("")
    detail = StringProperty("")
    editable = BooleanProperty(False)
    removal_requested = BooleanProperty(False)


class ProfileMeasureScreen(RecordsScreen):
    mtype = StringProperty("weight")
    title = StringProperty("")
    unit = StringProperty("")
    summary = StringProperty("")
    choosing_type = BooleanProperty(False)
    two_values = BooleanProperty(False)
    units = ListProperty([])
    unit_text = StringProperty("")

    def on_unit(self, *_args) -> None:
        self.unit_text = unit_label(self.unit)
    notice = StringProperty("")
    loaded = BooleanProperty(False)
    back_target = StringProperty("profile")

    # 'heure de Paris': the zone the time is typed in (the patient's, see mobile.i18n)
    zone_note = StringProperty("")

    def on_pre_enter(self, *_args) -> None:
        self.notice = ""
        self.zone_note = zone_note()
        self._clear_form()
        self.load()

    def load(self) -> None:
        mtype = self.mtype

        def work():
            return profile_kinds(), records_api().measure_series(mtype, limit=HISTORY_SIZE)

        self.call(work, self._show)

    def _show(self, result) -> None:
        spec, series = result
        types = {t["type"]: t for t in spec.get("measure_types") or []}
        self._type_chips(spec.get("measure_types") or [])
        current = types.get(self.mtype) or {}
        self.title = series.get("label") or current.get("label") or self.mtype
        self.unit = series.get("unit") or ""
        self.two_values = bool(current.get("components"))
        self.units = [u["unit"] for u in current.get("units") or []]
        if self.unit not in self.units and self.units:
            self.unit = self.units[0]
        self._unit_chips()
        chart = self.ids.chart
        chart.unit = chart_unit(series.get("unit") or "")
        chart.series = parse_series(series.get("series") or {}, component_labels(self.mtype))
        items = series.get("items") or []
        self.summary = (_("{n} mesure(s) enregistrée(s).").format(n=len(items)) if items
                        else _("Aucune mesure enregistrée pour l'instant."))
        box = self.ids.history
        box.clear_widgets()
        for measure in items:
            row = MeasureRow(value=measure_value(measure), editable=bool(measure.get("editable")))
            row.measure = measure
            row.removal_requested = bool(measure.get("removal_requested_at"))
            author = (measure.get("author") or {}).get("name")
            who = _("par vous") if measure.get("source") == "patient" else (author or _("par un professionnel"))
            row.detail = " · ".join(p for p in (date_time(measure.get("measured_at")), who, measure.get("note")) if p)
            row.ids.delete.bind(on_release=lambda button, row=row: self.delete(row.measure))
            box.add_widget(row)
        self.loaded = True

    def _type_chips(self, types: list[dict]) -> None:
        box = self.ids.types
        if box.children:
            for chip in box.children:
                chip.selected = chip.value == self.mtype
            return
        for item in types:
            chip = RecordsChip(text=item.get("label") or item["type"], value=item["type"],
                               selected=item["type"] == self.mtype)
            chip.bind(on_release=lambda chip: self.choose_type(chip.value))
            box.add_widget(chip)

    def _unit_chips(self) -> None:
        box = self.ids.unit_chips
        box.clear_widgets()
        for unit in self.units:
            chip = RecordsChip(text=unit_label(unit), value=unit, selected=unit == self.unit)
            chip.bind(on_release=lambda chip: self.choose_unit(chip.value))
            box.add_widget(chip)

    def choose_type(self, mtype: str) -> None:
        if mtype != self.mtype:
            self.notice = ""
            self.mtype = mtype
            self._clear_form()
            self.load()
        self.choosing_type = False

    def choose_unit(self, unit: str) -> None:
        self.unit = unit
        for chip in self.ids.unit_chips.children:
            chip.selected = chip.value == unit

    # -- the form -------------------------------------------------------------------------

    def _clear_form(self) -> None:
        now = now_local()  # the patient's zone, whatever the phone's
        ids = self.ids
        for name in ("value", "systolic", "diastolic", "note"):
            ids[name].text = ""
        ids.day.text = now.strftime("%d/%m/%Y")
        ids.time.text = now.strftime("%H:%M")
        self._field_errors({})
        self.error = ""

    def _field_errors(self, errors: dict[str, str]) -> None:
        for name in ("value", "systolic", "diastolic", "measured_at", "note", "unit"):
            self.ids[f"{name}_error"].text = errors.get(name, "")

    def save(self) -> None:
        ids = self.ids
        self._field_errors({})
        try:
            day = dt.datetime.strptime(ids.day.text.strip(), "%d/%m/%Y").date()
        except ValueError:
            self._field_errors({"measured_at": _("Saisissez la date au format JJ/MM/AAAA.")})
            return
        try:
            clock = dt.datetime.strptime(ids.time.text.strip() or "12:00", "%H:%M").time()
        except ValueError:
            self._field_errors({"measured_at": _("Saisissez l'heure au format HH:MM.")})
            return
        body: dict = {"type": self.mtype, "unit": self.unit or None,
                      # with the patient's offset: what was typed is what the list and the exports show
                      "measured_at": dt.datetime.combine(day, clock, tzinfo=zone()).isoformat(timespec="minutes")}
        if self.two_values:
            body["systolic"] = ids.systolic.text.strip() or None
            body["diastolic"] = ids.diastolic.text.strip() or None
        else:
            body["value"] = ids.value.text.strip() or None
        if ids.note.text.strip():
            body["note"] = ids.note.text.strip()

        def saved(measure: dict) -> None:
            self.notice = _("Mesure enregistrée : {value}.").format(value=measure_value(measure))
            self._clear_form()
            self.load()

        self.call(lambda: records_api().add_measure(body), saved, self._refused)

    def _refused(self, error: ApiError) -> None:
        self.show_error(error)
        self._field_errors({e.field: e.message for e in error.errors if e.field})

    def delete(self, measure: dict) -> None:
        def deleted(result: dict) -> None:
            self.notice = (_("Mesure supprimée.") if result.get("status") == "deleted"
                           else _("Votre demande de suppression a été transmise."))
            self.load()

        self.call(lambda: records_api().delete_measure(measure["id"]), deleted)

    def rows(self) -> list[MeasureRow]:
        return [w for w in reversed(self.ids.history.children) if isinstance(w, MeasureRow)]

