"""Vaccinations to confirm: a vaccine the pharmacy dispensed (eDISP-MED) proposes a vaccination; the patient
confirms it (it joins the vaccination list, and the prevention calendar follows it) or says it was not
given (the proposal is hidden, the calendar is left alone). Each proposal opens its dispensation."""

from __future__ import annotations

from kivy.properties import BooleanProperty, DictProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from mobile.i18n import _

from .records_common import EndlessList, RecordsScreen, load_kv, partial_date, records_api, short_date

load_kv()
PAGE_SIZE = 20


class VaccinationProposal(BoxLayout):
    entry = DictProperty({})
    title = StringProperty("")
    detail = StringProperty("")
    source = StringProperty("")
    has_document = BooleanProperty(False)

    def on_entry(self, _instance, entry: dict) -> None:
        fields = entry.get("fields") or {}
        self.title = fields.get("vaccine") or ""
        parts = [_("Délivré le {date}").format(date=partial_date(fields.get("date")))]
        if fields.get("batch"):
            parts.append(_("lot {batch}").format(batch=fields["batch"]))
        self.detail = " · ".join(parts)
        document = entry.get("document") or {}
        self.has_document = bool(document)
        where = document.get("organisation") or (entry.get("author") or {}).get("name") or ""
        self.source = (_("D'après la délivrance du {date} ({where})").format(date=short_date(document.get("date")),
                                                                            where=where) if document else "")


class VaccinationProposalsScreen(RecordsScreen):
    loaded = BooleanProperty(False)
    empty = BooleanProperty(False)
    has_more = BooleanProperty(False)
    loading_more = BooleanProperty(False)
    notice = StringProperty("")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pages = EndlessList(self, self._fetch, self._add)
        self.pages.watch(self.ids.page)
        self.ids.page.children[0].bind(height=self._top_if_it_fits)
        self.ids.page.bind(scroll_y=self._top_if_it_fits)

    def _top_if_it_fits(self, *_args) -> None:
        # A settled proposal shortens the page, and Kivy's scroll_to (the notice revealing itself) scrolls a
        # page that fits to its bottom: either would leave a blank band on top.
        page = self.ids.page
        if page.children and page.children[0].height <= page.height:
            page.scroll_y = 1

    def on_pre_enter(self, *_args) -> None:
        self.notice = ""
        self.pages.reload()
        self.loaded = True

    def _fetch(self, cursor: str | None) -> dict:
        return records_api().proposals(cursor, limit=PAGE_SIZE)

    def _add(self, items: list[dict], first: bool) -> None:
        box = self.ids.proposals
        if first:
            box.clear_widgets()
        for entry in items:
            box.add_widget(VaccinationProposal(entry=entry))
        self.empty = not box.children
        self.pages.check()

    def settle(self, row: VaccinationProposal, state: str) -> None:
        """``confirm`` (it was given) or ``hide`` (it was not)."""
        entry = row.entry

        def done(_result) -> None:
            self.ids.proposals.remove_widget(row)
            self.empty = not self.ids.proposals.children
            self.notice = (_("« {vaccine} » est ajouté à vos vaccinations ; le calendrier de prévention en tient "
                             "compte.").format(vaccine=row.title) if state == "confirm"
                           else _("La proposition est écartée : elle n'apparaît plus dans vos vaccinations."))

        self.call(lambda: records_api().set_entry_state("vaccination", entry["id"], state), done)

    def open_document(self, row: VaccinationProposal) -> None:
        document = row.entry.get("document") or {}
        if document.get("id"):
            self.open("document_viewer", document_id=document["id"])

    def rows(self) -> list[VaccinationProposal]:
        return [w for w in reversed(self.ids.proposals.children) if isinstance(w, VaccinationProposal)]
