"""The emergency card: whose card it is (name, birth date), allergies with their severity and reaction,
treatments, implanted devices, contacts, directives and blood group, readable without network. It is the screen a stranger
reads in an emergency: the holder first, the severe allergies marked. A new section is one more entry in
``SECTIONS`` (and its key in ``mobile.offline.emergency_card``). Each visit with network refreshes it from the record and keeps it in the encrypted offline
cache (``mobile.offline``); without network the last copy is shown under an offline banner."""

from __future__ import annotations

import datetime as dt

from kivy.properties import BooleanProperty, DictProperty, StringProperty
from kivy.utils import escape_markup, get_hex_from_color

from mobile import theme

from mobile.api import ApiError
from mobile.i18n import _, format_datetime, get_language
from mobile.offline import OfflineCache, OfflineCacheError, last_patient, sync_record

from .base import CarnetScreen
from mobile.storage import data_dir

def _cache(patient_key: str) -> OfflineCache:
    return OfflineCache(data_dir(), patient_key)


def severity_label(code: str) -> str:
    return {"mild": _("légère"), "moderate": _("modérée"), "severe": _("sévère")}.get(code, code)


def allergy_lines(card: dict) -> str:
    details = card.get("allergy_details")
    if not details:
        return escape_markup(EmergencyCardScreen.lines(card.get("allergies")))
    out = []
    rank = {"severe": 0, "moderate": 1, "mild": 2}
    for item in sorted(details, key=lambda d: rank.get(d.get("severity") or "", 3)):  # the dangerous first
        line = item["substance"]
        if item.get("severity"):
            line += " — " + _("allergie {severity}").format(severity=severity_label(item["severity"]))
        if item.get("reaction"):
            line += "\n   " + _("Réaction : {reaction}").format(reaction=item["reaction"])
        line = escape_markup(line)
        if item.get("severity") == "severe":
            line = f"[color={ERROR_HEX}][b][font={theme.SYMBOL_FONT}]⚠[/font] {line}[/b][/color]"
        else:
            line = "• " + line
        out.append(line)
    return "\n".join(out)


def holder_lines(card: dict) -> tuple[str, str]:
    """(the name as on an ID, 'Née le 14/07/1984'), or ('', '') for a card without identity."""
    holder = card.get("holder") or {}
    name = " ".join(p for p in (holder.get("given_name"), (holder.get("family_name") or "").upper()) if p)
    born = ""
    if holder.get("birth_date"):
        try:
            day = dt.date.fromisoformat(holder["birth_date"][:10])
        except ValueError:
            day = None
        if day is not None:
            shown = day.strftime("%d %b %Y") if get_language() == "en" else day.strftime("%d/%m/%Y")
            template = {"F": _("Née le {date}"), "M": _("Né le {date}")}.get(holder.get("sex") or "",
                                                                          _("Date de naissance : {date}"))
            born = template.format(date=shown)
    return name, born


ERROR_HEX = get_hex_from_color(theme.ERROR)[1:7]
# (id of the section in the kv, key of the card) in the order a stranger reads them; the text of each is
# made by ``section_text``.
SECTIONS = ("allergies", "treatments", "implants", "blood_group", "contacts", "directives")


class EmergencyCardScreen(CarnetScreen):
    card = DictProperty({})
    holder = StringProperty("")
    born = StringProperty("")
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
        when = dt.datetime.fromtimestamp(synced_at, dt.timezone.utc).isoformat() if synced_at else None
        self.offline = True
        self.synced = _("Hors connexion : copie enregistrée {when}").format(when=format_datetime(when) or "?")
        self.card = card
        return True

    def on_card(self, _instance, card: dict) -> None:
        self.holder, self.born = holder_lines(card)
        for name in SECTIONS:
            self.ids[name].body = self.section_text(name, card)

    def section_text(self, name: str, card: dict) -> str:
        if name == "blood_group":
            return card.get("blood_group") or _("Non renseigné")
        if name == "allergies":
            return allergy_lines(card)
        return self.lines(card.get(name))

    @staticmethod
    def lines(values) -> str:
        return "\n".join(f"• {v}" for v in values) if values else _("Non renseigné")
