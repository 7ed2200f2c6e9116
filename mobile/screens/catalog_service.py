"""One service: what it does, who publishes it, its privacy policy, the permissions it asks and why,
and where the patient stands (connect, change permissions, renew, disconnect, report)."""

from __future__ import annotations

from kivy.properties import BooleanProperty, DictProperty, ListProperty, NumericProperty, StringProperty

from mobile.i18n import _

from .base import CarnetScreen
from .catalog_common import GrantedRow, catalog_api, connection_text, french_date, load_kv

load_kv()


class CatalogServiceScreen(CarnetScreen):
    service_id = NumericProperty(0)
    service = DictProperty({})
    loaded = BooleanProperty(False)
    state = StringProperty("")            # "" (never connected) | active | expired | revoked
    connection_label = StringProperty("")
    service_name = StringProperty("")
    summary = StringProperty("")
    description = StringProperty("")
    themes_text = StringProperty("")
    privacy_text = StringProperty("")
    connectable = BooleanProperty(False)
    status_text = StringProperty("")
    status_alert = BooleanProperty(False)
    facts = StringProperty("")
    notice = StringProperty("")
    confirming_revoke = BooleanProperty(False)
    reporting = BooleanProperty(False)
    report_reasons = ListProperty([])
    report_choice = StringProperty("")
    came_from = StringProperty("catalog")

    def on_pre_enter(self, *_args) -> None:
        self.confirming_revoke = self.reporting = False
        self.refresh()

    def refresh(self) -> None:
        service_id = self.service_id
        self.call(lambda: catalog_api().service(service_id), self._show)

    def _show(self, service: dict) -> None:
        self.service = service
        self.service_name, self.summary, self.description = service["name"], service["summary"], service["description"]
        self.themes_text = _("Thèmes : {themes}").format(themes=", ".join(t["label"] for t in service["themes"]))
        self.privacy_text = _("Politique de confidentialité : {url}").format(url=service["privacy_policy_url"])
        self.connectable = bool(service["connectable"])
        connection = service.get("connection")
        self.state = connection["state"] if connection else ""
        self.connection_label = connection_text(connection)
        if service["status"] != "online":
            self.status_text = service["status_label"] + (" · " + self.connection_label if self.connection_label else "")
        else:
            self.status_text = self.connection_label or _("Non connecté")
        self.status_alert = self.state == "expired" or service["status"] != "online"
        regions = ", ".join(r["label"] for r in service["regions"])
        self.facts = _("Éditeur : {publisher}\nDisponible : {regions}\nRéférencé le {date}").format(
            publisher=service["publisher"], regions=regions, date=french_date(service["referenced_at"]))
        container = self.ids.permissions
        container.clear_widgets()
        for permission in service["permissions"]:
            container.add_widget(GrantedRow(text=permission["label"], purpose=permission.get("purpose") or "",
                                            granted=permission["granted"]))
        self.loaded = True

    # -- consent ---------------------------------------------------------------------------

    def connect(self) -> None:
        sheet = self.app.screen("catalog_consent")
        sheet.prepare(self.service, self.service["permissions"])
        self.app.show("catalog_consent")

    def renew(self) -> None:
        service_id = self.service_id
        self.call(lambda: catalog_api().renew(service_id), self._renewed)

    def _renewed(self, service: dict) -> None:
        self._show(service)
        self.notice = _("Autorisation renouvelée jusqu'au {date}.").format(
            date=french_date(service["connection"]["expires_at"]))

    def ask_revoke(self) -> None:
        self.confirming_revoke = True

    def revoke(self) -> None:
        service_id = self.service_id
        self.call(lambda: catalog_api().revoke(service_id), self._revoked)

    def _revoked(self, _result) -> None:
        self.confirming_revoke = False
        self.notice = _("Service déconnecté : il n'a plus accès à vos données.")
        self.refresh()

    # -- report ------------------------------------------------------------------------------

    def start_report(self) -> None:
        if self.report_reasons:
            self.reporting = True
            return
        self.call(lambda: catalog_api().filters(), self._reasons_loaded)

    def _reasons_loaded(self, filters: dict) -> None:
        self._reasons = {r["label"]: r["code"] for r in filters["report_reasons"]}
        self.report_reasons = list(self._reasons)
        self.report_choice = _("Choisissez un motif")
        self.reporting = True

    def send_report(self) -> None:
        reason = getattr(self, "_reasons", {}).get(self.report_choice)
        if reason is None:
            self.error = _("Choisissez le motif du signalement.")
            return
        service_id, comment = self.service_id, self.ids.report_comment.text.strip()
        self.call(lambda: catalog_api().report(service_id, reason, comment), self._reported)

    def _reported(self, _result) -> None:
        self.reporting = False
        self.ids.report_comment.text = ""
        self.notice = _("Merci : votre signalement a été transmis à l'Assurance Maladie.")

    def on_leave(self, *_args) -> None:
        self.notice = ""
