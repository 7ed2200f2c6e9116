"""The inbox: conversations with health professionals, unread first; search by subject or sender,
the archive, and the way to write to a professional who already wrote."""

from __future__ import annotations

from kivy.factory import Factory
from kivy.properties import BooleanProperty, OptionProperty, StringProperty

from mobile.api import ApiError
from mobile.i18n import _

from .base import CarnetScreen
from .inbox_common import ThreadRow, inbox_api, load_kv

load_kv()


class InboxScreen(CarnetScreen):
    folder = OptionProperty("inbox", options=("inbox", "archive"))
    summary = StringProperty("")
    loaded = BooleanProperty(False)
    has_more = BooleanProperty(False)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._cursor: str | None = None
        self._query = ""

    def on_pre_enter(self, *_args) -> None:
        self.refresh()

    def set_folder(self, folder: str) -> None:
        self.folder = folder
        self.refresh()

    def search(self) -> None:
        self._query = self.ids.search.text.strip()
        self.refresh()

    def clear_search(self) -> None:
        self.ids.search.text = ""
        self.search()

    def refresh(self) -> None:
        api, query, archived = inbox_api(), self._query or None, self.folder == "archive"
        self.call(lambda: api.threads(q=query, archived=archived), self._show, self._failed)

    def more(self) -> None:
        api, query, archived, cursor = inbox_api(), self._query or None, self.folder == "archive", self._cursor
        self.call(lambda: api.threads(q=query, archived=archived, cursor=cursor),
                  lambda page: self._show(page, append=True), self._failed)

    def _show(self, page: dict, append: bool = False) -> None:
        container = self.ids.threads
        if not append:
            container.clear_widgets()
        for item in page["items"]:
            row = ThreadRow(thread=item)
            row.bind(on_release=lambda r: self.open(r.thread["id"]))
            container.add_widget(row)
        if not container.children:
            if self._query:
                empty = _("Aucune conversation ne correspond à votre recherche.")
            elif self.folder == "archive":
                empty = _("Aucune conversation archivée.")
            else:
                empty = _("Aucun message pour le moment. Vos professionnels de santé peuvent vous écrire ici.")
            container.add_widget(Factory.MutedText(text=empty))
        self._cursor = page.get("next_cursor")
        self.has_more = bool(self._cursor)
        unread = page.get("unread_threads", 0)
        self.app.unread_messages = unread  # the bottom navigation's badge
        if unread == 0:
            self.summary = _("Aucun message non lu.")
        elif unread == 1:
            self.summary = _("1 conversation non lue.")
        else:
            self.summary = _("{n} conversations non lues.").format(n=unread)
        self.loaded = True

    def rows(self) -> list[ThreadRow]:
        return [w for w in reversed(self.ids.threads.children) if isinstance(w, ThreadRow)]

    # -- navigation --------------------------------------------------------------------

    def open(self, thread_id: int) -> None:
        self.app.screen("inbox_thread").thread_id = thread_id
        self.app.show("inbox_thread")

    def write(self) -> None:
        self.app.screen("inbox_compose").start_new()
        self.app.show("inbox_compose")

    def _failed(self, error: ApiError) -> None:
        if not self.session_refused(error):
            self.show_error(error)

    def reset(self) -> None:
        super().reset()
        self._query = ""
        self._cursor = None
        self.folder = "inbox"
        self.loaded = False
        if "search" in self.ids:
            self.ids.search.text = ""
            self.ids.threads.clear_widgets()
