"""The services the patient connected: what each may see, until when, and the way to each one's page
(to renew, change or disconnect)."""

from __future__ import annotations

from kivy.factory import Factory
from kivy.properties import BooleanProperty, NumericProperty

from mobile.i18n import _

from .base import CarnetScreen
from .catalog_common import ServiceRow, catalog_api, connection_text, load_kv

load_kv()


class CatalogConnectionsScreen(CarnetScreen):
    loaded = BooleanProperty(False)
    count = NumericProperty(0)

    def on_pre_enter(self, *_args) -> None:
        self.call(lambda: catalog_api().connections(limit=50), self._show)

    def _show(self, page: dict) -> None:
        container = self.ids.connected
        container.clear_widgets()
        for item in page["items"]:
            service = item["service"]
            row = ServiceRow(service=service)
            # under the name: until when, and what it may do
            row.summary = connection_text(service.get("connection")) + "\n" + "\n".join(
                "• " + p["label"] for p in item["permissions"])
            row.bind(on_release=lambda r: self.open(r.service))
            container.add_widget(row)
        self.count = len(page["items"])
        if not page["items"]:
            container.add_widget(Factory.MutedText(
                text=_("Aucun service connecté. Parcourez le catalogue pour en trouver un.")))
        self.loaded = True

    def open(self, service: dict) -> None:
        screen = self.app.screen("catalog_service")
        screen.service_id = service["id"]
        screen.came_from = "catalog_connections"
        self.app.show("catalog_service")
