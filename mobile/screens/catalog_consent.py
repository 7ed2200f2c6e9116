"""The consent sheet: every permission a service asks, each with why, each to tick — none is ticked in
advance. Used when the patient connects a service from the catalogue, and when a service's app asks
for access (an OAuth authorization request): the decision then goes back to that app."""

from __future__ import annotations

from kivy.properties import BooleanProperty, DictProperty, NumericProperty, StringProperty

from mobile.api.catalog import authorization_request
from mobile.i18n import _

from .base import CarnetScreen
from .catalog_common import PermissionRow, catalog_api, load_kv

load_kv()


class CatalogConsentScreen(CarnetScreen):
    service = DictProperty({})
    service_name = StringProperty("")
    publisher = StringProperty("")
    ticked_count = NumericProperty(0)
    oauth = BooleanProperty(False)
    # where the service's app is sent once the patient decided (its redirect URI with the code)
    redirect_to = StringProperty("")
    done = BooleanProperty(False)
    outcome = StringProperty("")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.request: dict[str, str] = {}

    def prepare(self, service: dict, permissions: list[dict], request: dict[str, str] | None = None) -> None:
        """Lay the sheet out; nothing ticked, whatever was granted before."""
        self.service = service
        self.service_name, self.publisher = service.get("name", ""), service.get("publisher", "")
        self.request = dict(request or {})
        self.oauth = bool(request)
        self.redirect_to, self.done, self.error, self.outcome = "", False, "", ""
        self.ids.page.scroll_y = 1  # from the top, whatever the previous sheet's scrolling
        container = self.ids.sheet
        container.clear_widgets()
        for permission in permissions:
            row = PermissionRow(permission=permission)
            row.bind(ticked=lambda *_a: self._count())
            container.add_widget(row)
        self._count()

    def open_request(self, url: str) -> None:
        """A service's app opened Carnet with an authorization request: check it, then show the sheet."""
        request = authorization_request(url)
        self.call(lambda: catalog_api().check_authorization(request),
                  lambda checked: self.prepare(checked["service"], checked["requested"], request))

    @staticmethod
    def keep_top(view) -> None:
        """A sheet shorter than the screen stays at the top (a tap's scrolling would drop it down)."""
        if view.children and view.children[0].height <= view.height and view.scroll_y != 1:
            view.scroll_y = 1

    def rows(self) -> list[PermissionRow]:
        return [w for w in reversed(self.ids.sheet.children) if isinstance(w, PermissionRow)]

    def _count(self) -> None:
        self.ticked_count = sum(1 for r in self.rows() if r.ticked)

    def ticked(self) -> list[str]:
        return [r.permission["scope"] for r in self.rows() if r.ticked]

    def accept(self) -> None:
        permissions = self.ticked()
        if not permissions:
            self.error = _("Cochez au moins une autorisation, ou annulez.")
            return
        api = catalog_api()
        if self.oauth:
            request = self.request
            self.call(lambda: api.authorize(request, permissions), self._authorized)
        else:
            service_id = self.service["id"]
            self.call(lambda: api.connect(service_id, permissions), self._connected)

    def refuse(self) -> None:
        if self.oauth:
            request = self.request
            self.call(lambda: catalog_api().deny(request), self._authorized)
        else:
            self.app.back("catalog_service")

    def _connected(self, service: dict) -> None:
        screen = self.app.screen("catalog_service")
        screen.service_id = service["id"]
        self.app.back("catalog_service")
        screen.notice = _("{name} est connecté avec les autorisations que vous avez choisies.").format(
            name=service["name"])

    def leave(self) -> None:
        if self.done or not self.oauth:
            self.app.back("catalog_connections" if self.done else "catalog_service")
        else:
            self.refuse()

    def _authorized(self, redirect_to: str) -> None:
        self.ids.page.scroll_y = 1
        # The platform opens this address (the service's app); the sheet says where the patient goes.
        self.redirect_to = redirect_to
        refused = "error=access_denied" in redirect_to
        self.outcome = (_("Vous avez refusé l'accès à {name}.") if refused else
                        _("Votre choix a été transmis à {name} ({n} autorisation(s)).")).format(
            name=self.service_name, n=self.ticked_count)
        self.done = True
