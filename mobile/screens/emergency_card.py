"""The emergency card: allergies, treatments, contacts, directives and blood group, readable without
network. Each visit with network refreshes it from the record and keeps it in the encrypted offline
cache (``mobile.offline``); without network the last copy is shown under an offline banner."""

from __future__ import annotations

from kivy.properties import BooleanProperty, DictProperty, StringProperty

from mobile.api import ApiError
from mobile.i18n import _, format_datetime
from mobile.offline import OfflineCache, OfflineCacheError, last_patient, sync_record

from .base import CarnetScreen
from .settings import data_dir

def _cache(patient_key: str) -> OfflineCache:
    return OfflineCache(data_dir(), patient_key)


class EmergencyCardScreen(CarnetScreen):
    card = DictProperty({})
    offline = BooleanProperty(False)
    synced = StringProperty("")
    back_target = StringProperty("home")

    def on_pre_enter(self, *_args) -> None:
        self.card = {}
        self.offline = False
        self.synced = ""
        self.refresh()

    def refresh(self) -> None:
        if not self.app.signed_in:
            self._from_cache()
            return
        client = self.client

        def fetch() -> dict:
            return sync_record(client, data_dir())[1]  # the whole offline record, refreshed

        if not self.call(fetch, self._show, self._failed):  # another call still running: try again soon
            from kivy.clock import Clock

            Clock.schedule_once(lambda _dt: self.refresh() if self.manager and self.manager.current == self.name
                                else None, 0.2)

    def _show(self, card: dict) -> None:
        self.offline = False
        self.synced = ""
        self.card = card

    def _failed(self, error: ApiError) -> None:
        if error.is_network and self._from_cache():
            return
        self.error = error.detail

    def _from_cache(self) -> bool:
        key = last_patient(data_dir())
        if key is None:
            self.error = _("Aucune carte d'urgence enregistrée sur cet appareil. Connectez-vous une fois avec internet.")
            return False
        try:
            cache = _cache(key)
            card, synced_at = cache.get("emergency_card"), cache.get("synced_at")
        except OfflineCacheError:
            card, synced_at = None, None
        if card is None:
            self.error = _("Aucune carte d'urgence enregistrée sur cet appareil. Connectez-vous une fois avec internet.")
            return False
        import datetime as dt

        when = dt.datetime.fromtimestamp(synced_at, dt.timezone.utc).isoformat() if synced_at else None
        self.offline = True
        self.synced = _("Hors connexion : copie enregistrée {when}").format(when=format_datetime(when) or "?")
        self.card = card
        return True

    def on_card(self, _instance, card: dict) -> None:
        self.ids.blood_group.body = card.get("blood_group") or _("Non renseigné")
        for name in ("allergies", "treatments", "contacts", "directives"):
            self.ids[name].body = self.lines(card.get(name))

    @staticmethod
    def lines(values) -> str:
        return "\n".join(f"• {v}" for v in values) if values else _("Non renseigné")
