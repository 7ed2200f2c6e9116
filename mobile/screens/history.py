"""The access history: every access and action on the record (who, when, what, why, emergency
reason), newest first, filtered by who acted, emergencies and dates, loaded page after page as the
patient scrolls; downloadable as CSV or PDF into the app's own folder (the screen says where)."""

from __future__ import annotations

from kivy.properties import BooleanProperty, DictProperty, NumericProperty, ObjectProperty, StringProperty

from mobile.i18n import _, zone_note

from .records_common import (EndlessList, FilteredList, RecordsBadge, RecordsCard, RecordsChip, RecordsScreen,
                             date_time, iso_day, load_kv, records_api, saved_file)

load_kv()
PAGE_SIZE = 20


def actor_filters() -> list[tuple[str, str]]:
    return [("", _("Tous")), ("professional", _("Professionnels")), ("patient", _("Vous")),
            ("service", _("Services")), ("carer", _("Aidants"))]


class HistoryRow(RecordsCard):
    item = DictProperty({})
    what = StringProperty("")
    who = StringProperty("")
    when = StringProperty("")
    why = StringProperty("")

    def show(self, item: dict) -> None:
        self.item = item
        actor = item.get("actor") or {}
        self.what = item.get("label") or item.get("action") or ""
        who = actor.get("name") or ""
        if actor.get("profession"):
            who += f" ({actor['profession']})"
        self.who = who
        self.when = date_time(item.get("at"))
        reasons = [item.get("purpose_label"), item.get("reason_label")]
        if item.get("emergency_reason"):
            reasons.append(_("Motif de l'urgence : {reason}").format(reason=item["emergency_reason"]))
        document = item.get("document") or {}
        if document.get("category_label"):
            reasons.append(_("Document : {category}").format(category=document["category_label"]))
        if item.get("count"):
            reasons.append(_("{n} élément(s)").format(n=item["count"]))
        self.why = "\n".join(r for r in reasons if r)
        badges = self.ids.badges
        badges.clear_widgets()
        outcome = item.get("outcome")
        tone = {"refused": "warning", "granted": "success"}.get(outcome, "muted")
        if item.get("outcome_label"):
            badges.add_widget(RecordsBadge(text=item["outcome_label"], tone=tone))
        if item.get("emergency"):
            badges.add_widget(RecordsBadge(text=_("Urgence"), tone="warning"))


class HistoryScreen(FilteredList, RecordsScreen):
    loaded = BooleanProperty(False)
    has_more = BooleanProperty(False)
    loading_more = BooleanProperty(False)
    actor = StringProperty("")
    emergency = BooleanProperty(False)
    notice = StringProperty("")
    shown = NumericProperty(0)
    applied = DictProperty({})
    last_export = StringProperty("")
    back_target = StringProperty("home")
    zone_note = StringProperty("")
    ready = ObjectProperty(None, allownone=True)  # the export kept on the device (mobile.share.KeptFile)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pages = EndlessList(self, self._fetch, self._add)
        self.pages.watch(self.ids.page)

    def on_kv_post(self, base_widget) -> None:
        box = self.ids.actors
        for value, label in actor_filters():
            chip = RecordsChip(text=label, value=value, selected=value == self.actor)
            chip.bind(on_release=lambda chip: self.choose_actor(chip.value))
            box.add_widget(chip)

    def on_pre_enter(self, *_args) -> None:
        self.notice = ""
        self.zone_note = zone_note()
        self.reload()

    def choose_actor(self, actor: str) -> None:
        self.actor = actor
        for chip in self.ids.actors.children:
            chip.selected = chip.value == actor
        self.reload()

    def toggle_emergency(self) -> None:
        self.emergency = not self.emergency
        self.reload()

    def _criteria(self) -> dict | None:
        try:
            since, until = iso_day(self.ids.since.text), iso_day(self.ids.until.text)
        except ValueError:
            self.error = _("Saisissez les dates au format JJ/MM/AAAA.")
            return None
        return {"actors": [self.actor] if self.actor else [], "since": since, "until": until,
                "emergency": self.emergency}

    def _fetch(self, cursor: str | None) -> dict:
        return records_api().history(**self.applied, cursor=cursor, limit=PAGE_SIZE)

    def _add(self, items: list[dict], first: bool) -> None:
        box = self.ids.history_items
        if first:
            box.clear_widgets()
            self.ids.page.scroll_y = 1
        for item in items:
            row = HistoryRow()
            row.show(item)
            box.add_widget(row)
        self.shown = len(box.children)
        self.loaded = True
        self.pages.check()

    def rows(self) -> list[HistoryRow]:
        return [w for w in reversed(self.ids.history_items.children) if isinstance(w, HistoryRow)]

    def export(self, fmt: str) -> None:
        criteria = self._criteria()
        if criteria is None:
            return

        def saved(download) -> None:
            kept = saved_file("historique", download.filename, download.content)
            self.notice = ""
            self.ready = kept
            self.last_export = str(kept.path)

        self.call(lambda: records_api().export_history(fmt, **criteria), saved)
