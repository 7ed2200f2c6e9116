"""Settings: language, text size, trusted devices, password, second factor, export of the record,
close the account.

Language and text size apply at once (the screens are rebuilt) and are kept in
``preferences.json`` in the app's data directory, read again at the next start.
The export ("take my data with me") is saved under ``exports/`` in that same directory.
"""

from __future__ import annotations

from pathlib import Path

from kivy.clock import mainthread
from kivy.factory import Factory
from kivy.properties import BooleanProperty, DictProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from mobile import i18n, theme
from mobile.storage import data_dir, save_preferences
from mobile.api import ApiError
from mobile.api.export import export_record
from mobile.i18n import _, format_datetime

from .base import CarnetScreen

EXPORTS_FOLDER = "exports"


def human_size(size: int) -> str:
    """A size the patient reads: ``820 o``, ``12 ko``, ``3,4 Mo`` (French units and decimal comma)."""
    if size < 1000:
        return _("{n} o").format(n=size)
    if size < 1000 * 1000:
        return _("{n} ko").format(n=round(size / 1000))
    mega = f"{size / 1_000_000:.1f}"
    return _("{n} Mo").format(n=mega.replace(".", ",") if i18n.get_language() == "fr" else mega)


class DeviceRow(BoxLayout):
    __events__ = ("on_revoke",)
    device = DictProperty({})
    title = StringProperty("")
    detail = StringProperty("")
    current = BooleanProperty(False)

    def on_device(self, _instance, device: dict) -> None:
        self.title = device.get("device_name") or _("Appareil sans nom")
        self.current = bool(device.get("current"))
        used = format_datetime(device.get("last_used_at") or device.get("created_at"))
        self.detail = _("Cet appareil") if self.current else _("Utilisé {when}").format(when=used)

    def on_revoke(self) -> None:
        pass


class SettingsScreen(CarnetScreen):
    language = StringProperty(i18n.DEFAULT_LANGUAGE)
    text_size = StringProperty("normal")
    notice = StringProperty("")
    exporting = BooleanProperty(False)
    export_status = StringProperty("")
    # The last export written (a Path), for the patient's sentence and for tests.
    exported = None

    def on_pre_enter(self, *_args) -> None:
        self.language = i18n.get_language()
        self.text_size = theme.text_size_name()
        self.load_devices()

    def on_notice(self, _instance, notice: str) -> None:
        if notice:
            self.ids.page.scroll_y = 1  # the sentence is at the top: show it

    # -- language and text size ------------------------------------------------------

    def choose(self, *, language: str | None = None, text_size: str | None = None) -> None:
        prefs = {"language": language or self.language, "text_size": text_size or self.text_size}
        if prefs == {"language": self.language, "text_size": self.text_size}:
            return
        save_preferences(prefs)
        self.app.apply_preferences(prefs, rebuild_from=self.name)

    # -- devices ---------------------------------------------------------------------

    def load_devices(self) -> None:
        if self.app.signed_in:
            self.call(self.client.devices, self._show_devices)

    def _show_devices(self, page: dict) -> None:
        box = self.ids.devices
        box.clear_widgets()
        for device in page.get("items") or []:
            row = DeviceRow(device=device)
            row.bind(on_revoke=lambda row: self.revoke(row.device["id"]))
            box.add_widget(row)
        if not box.children:
            box.add_widget(Factory.MutedText(text=_("Aucun appareil.")))

    def revoke(self, device_id: int) -> None:
        def done(_none) -> None:
            self.notice = _("L'appareil a été déconnecté.")
            self.load_devices()

        self.call(lambda: self.client.revoke_device(device_id), done)

    # -- password --------------------------------------------------------------------

    def change_password(self) -> None:
        current, new = self.ids.current_password.text, self.ids.new_password.text
        if not current or not new:
            self.error = _("Saisissez votre mot de passe actuel et le nouveau.")
            return

        def done(result: dict) -> None:
            self.ids.current_password.text = self.ids.new_password.text = ""
            self.notice = _("Mot de passe modifié. Vos autres appareils ont été déconnectés.")
            self.load_devices()

        self.call(lambda: self.client.change_password(current, new), done, self._form_error)

    def _form_error(self, error: ApiError) -> None:
        messages = [e.message for e in error.errors if e.message]
        self.error = " ".join([error.detail, *messages]) if messages else error.detail

    # -- export of the record --------------------------------------------------------

    def export(self, fmt: str) -> None:
        """Download the whole record (``fhir`` | ``zip``) into the app's data folder, showing progress."""
        folder = data_dir() / EXPORTS_FOLDER
        client = self.client

        @mainthread
        def progress(received: int) -> None:
            if self.exporting:
                self.export_status = _("Export en cours : {size} reçus…").format(size=human_size(received))

        def done(path: Path) -> None:
            self.exporting = False
            self.exported = path
            self.export_status = ""
            self.notice = _("Export terminé : {name} ({size}), enregistré dans le dossier de l'application : "
                            "{folder}").format(name=path.name, size=human_size(path.stat().st_size),
                                               folder=path.parent)

        def failed(error: ApiError) -> None:
            self.exporting = False
            self.export_status = ""
            self.error = error.detail

        if self.call(lambda: export_record(client, fmt, folder, progress), done, failed):
            self.notice = ""
            self.exporting = True
            self.export_status = _("Préparation de l'export…")

    # -- closing the account ---------------------------------------------------------

    def close_account(self) -> None:
        password = self.ids.close_password.text
        if not password:
            self.error = _("Saisissez votre mot de passe pour fermer votre compte.")
            return
        deletion = self.ids.request_deletion.active

        def closed(_result: dict) -> None:
            self.ids.close_password.text = ""
            self.app.signed_out(_("Votre compte est fermé."))

        self.call(lambda: self.client.close_account(password, deletion), closed, self._form_error)

    def reset(self) -> None:
        super().reset()
        self.notice = ""
        self.export_status = ""
        self.exporting = False
        for name in ("current_password", "new_password", "close_password"):
            self.ids[name].text = ""

