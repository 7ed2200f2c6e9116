"""Export: download the agenda as an .ics file, or subscribe another calendar to a secret link whose
events say only "Rendez-vous médical" unless the patient chooses to show the details."""

from __future__ import annotations

from kivy.properties import BooleanProperty, ObjectProperty, StringProperty

from mobile.api import ApiError
from mobile.i18n import _, format_datetime

from .agenda_common import agenda_api, load_kv, saved_file
from .base import CarnetScreen

load_kv()


class AgendaExportScreen(CarnetScreen):
    active = BooleanProperty(False)
    show_details = BooleanProperty(False)
    link = StringProperty("")
    status = StringProperty("")
    notice = StringProperty("")
    ready = ObjectProperty(None, allownone=True)  # the .ics kept on the device (mobile.share.KeptFile)

    def on_pre_enter(self, *_args) -> None:
        self.notice = ""
        self.ready = None
        self.call(agenda_api().feed, self._show, self._failed)

    def _show(self, feed: dict) -> None:
        self.active = bool(feed.get("active"))
        self.show_details = bool(feed.get("show_details"))
        if feed.get("url"):
            self.link = feed["url"]
        if not self.active:
            self.link = ""
            self.status = _("Aucun lien d'abonnement actif.")
        else:
            fetched = format_datetime(feed.get("last_fetched_at"))
            self.status = _("Lien actif, lu {count} fois{last}.").format(
                count=feed.get("fetch_count", 0), last=(", " + _("dernière lecture {when}").format(when=fetched))
                if fetched else "")

    def create_link(self) -> None:
        show = self.show_details
        self.call(lambda: agenda_api().create_feed(show), self._created, self._failed)

    def _created(self, feed: dict) -> None:
        self._show(feed)
        self.notice = _("Copiez ce lien dans votre application de calendrier (« s'abonner à un calendrier »). "
                        "Il ne sera plus affiché ensuite.")

    def copy_link(self) -> None:
        """The link in the clipboard, to paste into the calendar app's "subscribe" field."""
        from kivy.core.clipboard import Clipboard

        Clipboard.copy(self.link)
        self.notice = _("Lien copié : collez-le dans votre application de calendrier (« s'abonner à un "
                        "calendrier »).")

    def toggle_details(self, value: bool) -> None:
        if value == self.show_details:
            return
        if not self.active:  # no link yet: the choice goes with the link about to be made
            self.show_details = value
            return
        self.call(lambda: agenda_api().set_feed_details(value), self._show, self._failed)

    def revoke(self) -> None:
        def revoked(_result) -> None:
            self.notice = _("Le lien est révoqué : les calendriers abonnés ne reçoivent plus rien.")
            self._show({"active": False})

        self.call(agenda_api().revoke_feed, revoked, self._failed)

    def download_all(self) -> None:
        def saved(data: bytes) -> None:
            self.notice = ""
            self.ready = saved_file("agenda-carnet.ics", data)

        self.call(agenda_api().export_ics, saved, self._failed)

    def _failed(self, error: ApiError) -> None:
        if not self.session_refused(error):
            self.error = error.detail

    def reset(self) -> None:
        super().reset()
        self.link = ""
        self.status = ""
        self.notice = ""
        self.active = False
