"""What the catalogue's screens share: the catalogue API bound to the app's client, a service row, a
permission row with its tick box, dates in French."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from kivy.app import App
from kivy.lang import Builder
from kivy.properties import BooleanProperty, DictProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout

from mobile.api.catalog import CatalogApi
from mobile.i18n import _, get_language

KV_FILE = str(Path(__file__).with_name("catalog_common.kv"))
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December")


def load_kv() -> None:
    if KV_FILE not in Builder.files:
        Builder.load_file(KV_FILE)


def catalog_api() -> CatalogApi:
    """The session's CatalogApi (the client is replaced when the app is rebuilt)."""
    return App.get_running_app().client.feature(CatalogApi)


def french_date(iso: str | None) -> str:
    """'2027-01-10T09:00:00+00:00' or '2027-01-10' → '10 janvier 2027' (in English: '10 January 2027')."""
    if not iso:
        return ""
    day = dt.date.fromisoformat(iso[:10])
    months = MONTHS_EN if get_language() == "en" else MONTHS
    return f"{day.day} {months[day.month - 1]} {day.year}"


def connection_text(connection: dict | None) -> str:
    if not connection:
        return ""
    if connection["state"] == "active":
        return _("Connecté · autorisation valable jusqu'au {date}").format(date=french_date(connection["expires_at"]))
    if connection["state"] == "expired":
        return _("Autorisation expirée le {date} : renouvelez-la").format(date=french_date(connection["expires_at"]))
    return connection.get("state_label", "")


class ServiceRow(ButtonBehavior, BoxLayout):
    """A service in a list: name, publisher, summary, themes, and where the patient stands."""

    service = DictProperty({})
    name = StringProperty("")
    publisher = StringProperty("")
    summary = StringProperty("")
    themes = StringProperty("")
    badge = StringProperty("")
    warning = BooleanProperty(False)

    def on_service(self, _instance, service: dict) -> None:
        self.name = service.get("name", "")
        self.publisher = service.get("publisher", "")
        self.summary = service.get("summary", "")
        self.themes = " · ".join(t["label"] for t in service.get("themes", []))
        connection = service.get("connection")
        if service.get("status") not in ("online",):
            self.badge, self.warning = service.get("status_label", ""), True
        elif connection and connection.get("state") == "active":
            self.badge, self.warning = _("Connecté"), bool(connection.get("renewal_due"))
        elif connection and connection.get("state") == "expired":
            self.badge, self.warning = _("Autorisation expirée"), True
        else:
            self.badge, self.warning = "", False


class PermissionRow(ButtonBehavior, BoxLayout):
    """One permission of the consent sheet: a box the patient ticks (never ticked in advance)."""

    permission = DictProperty({})
    ticked = BooleanProperty(False)
    label = StringProperty("")
    purpose = StringProperty("")
    access = StringProperty("read")

    def on_permission(self, _instance, permission: dict) -> None:
        self.label = permission.get("label", "")
        self.purpose = permission.get("purpose") or ""
        self.access = permission.get("access", "read")

    def on_release(self) -> None:
        self.ticked = not self.ticked


class FoldingGroup(BoxLayout):
    """A group of widgets shown or folded away; folded, it takes no room and no touch (a disabled widget
    would still swallow the touches that land on it)."""

    shown = BooleanProperty(False)

    def on_touch_down(self, touch):
        return super().on_touch_down(touch) if self.shown else False

    def on_touch_move(self, touch):
        return super().on_touch_move(touch) if self.shown else False

    def on_touch_up(self, touch):
        return super().on_touch_up(touch) if self.shown else False


class GrantedRow(BoxLayout):
    """A permission as granted (or not), read-only, on the service's page."""

    text = StringProperty("")
    purpose = StringProperty("")
    granted = BooleanProperty(False)
