"""The catalogue: search by words, filter by theme and region, the services page by page; the way to
the patient's connected services."""

from __future__ import annotations

from kivy.factory import Factory
from kivy.properties import BooleanProperty, ListProperty, StringProperty

from mobile.i18n import _

from .base import CarnetScreen
from .catalog_common import ServiceRow, catalog_api, load_kv

load_kv()

ALL_THEMES = "Tous les thèmes"
ALL_REGIONS = "Toutes les régions"


class CatalogScreen(CarnetScreen):
    loaded = BooleanProperty(False)
    theme_names = ListProperty([])
    region_names = ListProperty([])
    theme_choice = StringProperty("")
    region_choice = StringProperty("")
    summary = StringProperty("")
    next_cursor = StringProperty("", allownone=True)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.theme_choice, self.region_choice = _(ALL_THEMES), _(ALL_REGIONS)
        self._themes: dict[str, str] = {}
        self._regions: dict[str, str] = {}
        self.items: list[dict] = []

    def on_pre_enter(self, *_args) -> None:
        if not self._themes:
            self.call(lambda: catalog_api().filters(), self._filters_loaded)
        else:
            self.search()

    def _filters_loaded(self, filters: dict) -> None:
        self._themes = {t["label"]: t["code"] for t in filters["themes"]}
        self._regions = {r["label"]: r["code"] for r in filters["regions"] if r["code"] != "national"}
        self.theme_names = [_(ALL_THEMES), *self._themes]
        self.region_names = [_(ALL_REGIONS), *self._regions]
        self.search()

    def _query(self) -> dict:
        return {"query": self.ids.query.text.strip() or None, "theme": self._themes.get(self.theme_choice),
                "region": self._regions.get(self.region_choice)}

    def search(self, *_args) -> None:
        params = self._query()
        self.call(lambda: catalog_api().services(limit=20, **params), self._show_first)

    def more(self) -> None:
        params, cursor = self._query(), self.next_cursor
        if cursor:
            self.call(lambda: catalog_api().services(limit=20, cursor=cursor, **params), self._show_more)

    def choose_theme(self, label: str) -> None:
        if label != self.theme_choice:
            self.theme_choice = label
            self.search()

    def choose_region(self, label: str) -> None:
        if label != self.region_choice:
            self.region_choice = label
            self.search()

    def _show_first(self, page: dict) -> None:
        self.items = []
        self.ids.results.clear_widgets()
        self._show_more(page)

    def _show_more(self, page: dict) -> None:
        for item in page["items"]:
            row = ServiceRow(service=item)
            row.bind(on_release=lambda r: self.open(r.service))
            self.ids.results.add_widget(row)
        self.items += page["items"]
        self.next_cursor = page.get("next_cursor") or ""
        if not self.items:
            self.ids.results.add_widget(Factory.MutedText(
                text=_("Aucun service ne correspond à votre recherche. Essayez d'autres mots ou un autre thème.")))
        count = len(self.items)
        self.summary = (_("{n} service") if count == 1 else _("{n} services")).format(n=count) + (
            "" if not self.next_cursor else " " + _("et plus"))
        self.loaded = True

    def open(self, service: dict) -> None:
        screen = self.app.screen("catalog_service")
        screen.service_id = service["id"]
        self.app.show("catalog_service")
