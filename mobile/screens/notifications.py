"""The notification centre: what happened, newest first, unread ones marked; tap one to mark it read,
or mark them all. It is the channel that never fails: push and email only point here."""

from __future__ import annotations

from kivy.factory import Factory
from kivy.properties import BooleanProperty, NumericProperty, StringProperty

from mobile.api import ApiError
from mobile.i18n import _

from .base import CarnetScreen
from .notification_common import NotificationRow, load_kv, notifications_api

load_kv()
PAGE = 20


class NotificationCentreScreen(CarnetScreen):
    unread = NumericProperty(0)
    summary = StringProperty("")
    next_cursor = StringProperty("")
    loaded = BooleanProperty(False)

    def on_pre_enter(self, *_args) -> None:
        self.refresh()

    def refresh(self) -> None:
        self.call(lambda: notifications_api().page(limit=PAGE), self._show_first, self._failed)

    def more(self) -> None:
        cursor = self.next_cursor
        self.call(lambda: notifications_api().page(limit=PAGE, cursor=cursor), self._append, self._failed)

    def _show_first(self, page: dict) -> None:
        self.ids.entries.clear_widgets()
        self._append(page)
        if not page.get("items"):
            self.ids.entries.add_widget(Factory.MutedText(text=_("Aucune notification pour l'instant.")))
        self.loaded = True

    def _append(self, page: dict) -> None:
        for item in page.get("items", []):
            self.ids.entries.add_widget(NotificationRow(item=item, on_release=self.open))
        self.next_cursor = page.get("next_cursor") or ""
        self._count(page.get("unread_count", 0))

    def _count(self, unread: int) -> None:
        self.unread = unread
        self.summary = _("{count} non lue(s)").format(count=unread) if unread else _("Tout est lu.")

    def open(self, row: NotificationRow) -> None:
        if row.item.get("read"):
            return
        public_id = row.item["id"]

        def done(item: dict) -> None:
            row.item = item
            self._count(max(0, self.unread - 1))

        self.call(lambda: notifications_api().mark_read(public_id), done, self._failed)

    def mark_all(self) -> None:
        def done(_result: dict) -> None:
            for row in self.rows():
                row.item = {**row.item, "read": True}
            self._count(0)

        self.call(lambda: notifications_api().mark_all_read(), done, self._failed)

    def rows(self) -> list[NotificationRow]:
        return [w for w in reversed(self.ids.entries.children) if isinstance(w, NotificationRow)]

    def _failed(self, error: ApiError) -> None:
        if error.status == 401:
            self.app.signed_out(_("Votre session a expiré. Reconnectez-vous."))
        else:
            self.error = error.detail

    def reset(self) -> None:
        super().reset()
        self.ids.entries.clear_widgets()
        self.next_cursor = ""
        self.loaded = False
        self._count(0)
