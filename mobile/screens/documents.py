"""The patient's documents: categories with their counts, search, filters (author, dates, only mine,
sort) and a list that loads the next page as the patient scrolls. A document opens in the viewer;
"Ajouter" leads to the upload."""

from __future__ import annotations

from kivy.properties import BooleanProperty, DictProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from mobile.i18n import _

from .records_common import (EndlessList, FilteredList, RecordsBadge, RecordsCard, RecordsChip, RecordsScreen, iso_day,
                             load_kv, records_api, short_date)

load_kv()
PAGE_SIZE = 15


def document_badges(document: dict) -> list[tuple[str, str]]:
    """(text, tone) of what the patient should notice about a document."""
    badges = []
    if document.get("own_upload"):
        badges.append((_("Ajouté par vous"), "success"))
    if document.get("masked"):
        badges.append((_("Masqué aux professionnels"), "muted"))
    if document.get("removal_requested_at"):
        badges.append((_("Suppression demandée"), "warning"))
    return badges


class DocumentRow(RecordsCard):
    document = DictProperty({})
    category = StringProperty("")
    title = StringProperty("")
    detail = StringProperty("")

    def on_document(self, _instance, document: dict) -> None:
        self.category = document.get("category_label") or ""
        self.title = document.get("title") or ""
        author = (document.get("author") or {}).get("name") or ""
        when = short_date(document.get("service_date")) or short_date(document.get("submitted_at"))
        self.detail = " · ".join(p for p in (author, when) if p)
        box = self.ids.badges
        box.clear_widgets()
        for text, tone in document_badges(document):
            box.add_widget(RecordsBadge(text=text, tone=tone))


class DocumentFilters(BoxLayout):
    """Author, dates, only mine, sort: applied together."""

    sort = StringProperty("submitted")
    mine = BooleanProperty(False)


class DocumentsScreen(FilteredList, RecordsScreen):
    loaded = BooleanProperty(False)
    has_more = BooleanProperty(False)
    loading_more = BooleanProperty(False)
    filters_open = BooleanProperty(False)
    summary = StringProperty("")
    notice = StringProperty("")
    shown = NumericProperty(0)
    category = StringProperty("")
    # What the list shows now (the filters applied), for the footer and for tests.
    applied = DictProperty({})
    categories = ListProperty([])

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.filters = DocumentFilters()
        self.pages = EndlessList(self, self._fetch, self._add)
        self.pages.on_page = self._page
        self.pages.watch(self.ids.page)

    def on_pre_enter(self, *_args) -> None:
        if not self.loaded:
            self.reload()

    def refresh(self) -> None:
        """Reload with the same filters (after an upload, a deletion…)."""
        self.loaded = False

    # -- filters --------------------------------------------------------------------------

    def toggle_filters(self) -> None:
        self.filters_open = not self.filters_open
        slot = self.ids.filters_slot
        if self.filters_open and self.filters.parent is None:
            slot.add_widget(self.filters)
        elif not self.filters_open and self.filters.parent is not None:
            slot.remove_widget(self.filters)

    def choose_category(self, category: str) -> None:
        self.notice = ""
        self.category = category
        self.reload()

    def search(self) -> None:
        self.notice = ""
        self.reload()

    def apply_filters(self) -> None:
        self.reload()

    def clear_filters(self) -> None:
        ids = self.filters.ids
        ids.author.text = ids.date_from.text = ids.date_to.text = ""
        self.filters.mine = False
        self.filters.sort = "submitted"
        self.ids.search.text = ""
        self.category = ""
        self.reload()

    def _criteria(self) -> dict | None:
        ids = self.filters.ids
        try:
            date_from, date_to = iso_day(ids.date_from.text), iso_day(ids.date_to.text)
        except ValueError:
            self.error = _("Saisissez les dates au format JJ/MM/AAAA.")
            return None
        return {"categories": [self.category] if self.category else [],
                "q": self.ids.search.text.strip() or None, "author": ids.author.text.strip() or None,
                "date_from": date_from, "date_to": date_to, "mine": self.filters.mine, "sort": self.filters.sort}

    def _fetch(self, cursor: str | None) -> dict:
        return records_api().documents(**self.applied, limit=PAGE_SIZE, cursor=cursor)

    # -- showing --------------------------------------------------------------------------

    def _page(self, page: dict) -> None:
        if page.get("categories") is None:
            return
        self.loaded = True
        total = page.get("total", 0)
        self.categories = page.get("categories") or []
        if self.category and self.category not in {c["category"] for c in self.categories}:
            self.categories = [*self.categories, {"category": self.category, "label": self.category, "count": 0}]
        self.summary = (_("{n} document(s)").format(n=total) if total else _("Aucun document ne correspond."))
        self._chips(total)

    def _chips(self, total: int) -> None:
        box = self.ids.categories
        box.clear_widgets()
        everything = RecordsChip(text=_("Tous"), value="", selected=not self.category)
        everything.bind(on_release=lambda chip: self.choose_category(""))
        box.add_widget(everything)
        for item in self.categories:
            chip = RecordsChip(text=f"{item['label']} ({item['count']})", value=item["category"],
                               selected=item["category"] == self.category)
            chip.bind(on_release=lambda chip: self.choose_category(chip.value))
            box.add_widget(chip)

    def _add(self, items: list[dict], first: bool) -> None:
        box = self.ids.documents
        if first:
            box.clear_widgets()
            self.ids.page.scroll_y = 1
        for document in items:
            row = DocumentRow()
            row.document = document
            row.bind(on_release=self._open_row)
            box.add_widget(row)
        self.shown = len(box.children)
        self.pages.check()

    def _open_row(self, row: DocumentRow) -> None:
        self.open("document_viewer", document_id=row.document["id"])

    def rows(self) -> list[DocumentRow]:
        return [w for w in reversed(self.ids.documents.children) if isinstance(w, DocumentRow)]

    def add_document(self) -> None:
        self.open("documents_upload")

    def reset(self) -> None:
        super().reset()
        self.loaded = False
        self.ids.documents.clear_widgets()
        self.shown = 0

