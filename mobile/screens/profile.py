"""The medical profile at a glance: measures with their charts, what the profile holds kind by kind
(allergies, treatments, contacts…), the views built from documents, and imported entries that
disagree and wait for the patient. Each measure opens its history; each kind opens its entries."""

from __future__ import annotations

from kivy.properties import BooleanProperty, DictProperty, NumericProperty, StringProperty

from mobile.i18n import _
from mobile.widgets_chart import format_number, parse_series

from .records_common import RecordsCard, RecordsScreen, load_kv, records_api, short_date

load_kv()


def component_labels(mtype: str) -> dict[str, str]:
    """The lines a measure type draws: blood pressure has two."""
    if mtype == "blood_pressure":
        return {"systolic": _("Systolique"), "diastolic": _("Diastolique")}
    return {"value": _("Valeur")}


def measure_value(measure: dict | None) -> str:
    """'71 kg', '120/80 mmHg'."""
    if not measure:
        return ""
    unit = measure.get("unit") or ""
    if measure.get("systolic") is not None:
        value = f"{format_number(measure['systolic'])}/{format_number(measure['diastolic'])}"
    elif measure.get("value") is not None:
        value = format_number(measure["value"])
    else:
        return ""
    if unit == "steps":
        unit = _("pas")
    return f"{value} {unit}".strip()


def chart_unit(unit: str) -> str:
    return _("pas") if unit == "steps" else unit


class MeasureCard(RecordsCard):
    summary = DictProperty({})
    title = StringProperty("")
    latest = StringProperty("")

    def on_summary(self, _instance, summary: dict) -> None:
        self.title = summary.get("label") or ""
        latest = summary.get("latest")
        count = summary.get("count", 0)
        self.latest = _("Dernière mesure : {value}, le {date} ({count} au total)").format(
            value=measure_value(latest), date=short_date((latest or {}).get("measured_at")), count=count)
        chart = self.ids.chart
        chart.unit = chart_unit(summary.get("unit") or "")
        chart.series = parse_series(summary.get("series") or {}, component_labels(summary.get("type", "")))


class KindRow(RecordsCard):
    kind = StringProperty("")
    title = StringProperty("")
    detail = StringProperty("")
    count = NumericProperty(0)


class ProfileScreen(RecordsScreen):
    loaded = BooleanProperty(False)
    conflicts_text = StringProperty("")
    views_text = StringProperty("")
    measures_empty = BooleanProperty(True)
    hidden_text = StringProperty("")
    proposals_text = StringProperty("")

    def on_pre_enter(self, *_args) -> None:
        self.load()

    def load(self) -> None:
        self.call(records_api().profile, self._show)

    def _show(self, page: dict) -> None:
        self._measures(page.get("measures") or [])
        self._kinds(page.get("entries") or {})
        conflicts = sum(c.get("count", 0) for c in page.get("conflicts") or [])
        self.conflicts_text = (_("{n} information(s) importée(s) de votre ancien dossier se contredisent : "
                                 "vérifiez-les.").format(n=conflicts) if conflicts else "")
        hidden = page.get("hidden_count", 0)
        self.hidden_text = _("{n} information(s) masquée(s) par vous.").format(n=hidden) if hidden else ""
        views = page.get("views") or {}
        proposed = views.get("proposals", 0)
        self.proposals_text = (_("Votre pharmacie vous a délivré {n} vaccin(s) : confirmez si vous l'avez reçu.")
                               .format(n=proposed) if proposed else "")
        lines = [
            _("Médicaments délivrés ces derniers mois : {n}").format(n=views.get("dispensed", 0)),
            _("Remboursements : {n} relevé(s)").format(n=views.get("reimbursements", 0)),
            _("Parcours de soins en cancérologie : {n} document(s)").format(n=views.get("oncology", 0)),
        ]
        self.views_text = "\n".join(lines)
        self.loaded = True

    def _measures(self, measures: list[dict]) -> None:
        box = self.ids.measures
        box.clear_widgets()
        taken = [m for m in measures if m.get("count")]
        self.measures_empty = not taken
        for summary in taken:
            card = MeasureCard()
            card.summary = summary
            card.bind(on_release=lambda card: self.open("profile_measure", mtype=card.summary["type"],
                                                        choosing_type=False))
            box.add_widget(card)

    def _kinds(self, entries: dict[str, dict]) -> None:
        box = self.ids.kinds
        box.clear_widgets()
        for kind, bucket in entries.items():
            total = bucket.get("total", 0)
            titles = [i.get("title") or "" for i in bucket.get("items") or []][:3]
            detail = ", ".join(t for t in titles if t)
            if total > len(titles) and detail:
                detail += "…"
            row = KindRow(kind=kind, title=bucket.get("label") or kind, count=total,
                          detail=detail or _("Rien d'enregistré pour l'instant."))
            row.bind(on_release=lambda row: self.open("profile_entries", kind=row.kind))
            box.add_widget(row)

    def add_measure(self) -> None:
        self.open("profile_measure", choosing_type=True)

    def review_conflicts(self) -> None:
        self.open("migration_review")

    def kind_rows(self) -> list[KindRow]:
        return [w for w in reversed(self.ids.kinds.children) if isinstance(w, KindRow)]

    def measure_cards(self) -> list[MeasureCard]:
        return [w for w in reversed(self.ids.measures.children) if isinstance(w, MeasureCard)]
