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


def _number(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def notification_target(item: dict) -> tuple[str, dict] | None:
    """(screen, attributes to set on it) for what a notification points to, or None."""
    ref, ref_id = item.get("ref_type"), _number(item.get("ref_id"))
    if ref == "document" and ref_id:
        return "document_viewer", {"document_id": ref_id}
    if ref in ("thread", "message") and ref_id:
        return "inbox_thread", {"thread_id": ref_id}
    if ref == "appointment" and ref_id:
        return "agenda_detail", {"appointment_id": ref_id}
    if ref in ("access", "emergency_access") or item.get("kind") in ("professional_access", "emergency_access"):
        return "history", {}
    if ref in ("consent_renewal", "service_dereferenced") and ref_id:
        return "catalog_service", {"service_id": ref_id}
    if ref == "connected_services_review" or item.get("kind") == "service":
        return "catalog_connections", {}
    if item.get("kind") == "screening":
        return "agenda_prevention", {}
    if item.get("kind") == "message":
        return "inbox", {}
    return None


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
        self.app.unread_notifications = unread  # the bottom navigation's badge
        self.summary = _("{count} non lue(s)").format(count=unread) if unread else _("Tout est lu.")

    def open(self, row: NotificationRow) -> None:
        """Mark it read, then open what it points to (a document, a conversation, an appointment, the access
        history, a service…); one that points nowhere (an account message) is only marked read."""
        item = row.item
        if item.get("read"):
            self.go_to(item)
            return
        public_id = item["id"]

        def done(updated: dict) -> None:
            row.item = updated
            self._count(max(0, self.unread - 1))
            self.go_to(updated)

        self.call(lambda: notifications_api().mark_read(public_id), done, self._failed)

    def go_to(self, item: dict) -> None:
        target = notification_target(item)
        if target is None:
            return
        name, attributes = target
        if name == "agenda_detail":  # the appointment itself is asked for first
            from .agenda_common import agenda_api

            appointment_id = attributes["appointment_id"]

            def shown(appointment: dict) -> None:
                self.app.screen("agenda_detail").appointment = appointment
                self.app.show("agenda_detail")

            self.call(lambda: agenda_api().appointment(appointment_id), shown, self._failed)
            return
        screen = self.app.screen(name)
        for key, value in attributes.items():
            setattr(screen, key, value)
        if hasattr(screen, "back_target"):
            screen.back_target = "notifications"
        self.app.show(name)

    def mark_all(self) -> None:
        def done(_result: dict) -> None:
            for row in self.rows():
                row.item = {**row.item, "read": True}
            self._count(0)

        self.call(lambda: notifications_api().mark_all_read(), done, self._failed)

    def rows(self) -> list[NotificationRow]:
        return [w for w in reversed(self.ids.entries.children) if isinstance(w, NotificationRow)]

    def _failed(self, error: ApiError) -> None:
        if not self.session_refused(error):
            self.error = error.detail

    def reset(self) -> None:
        super().reset()
        self.ids.entries.clear_widgets()
        self.next_cursor = ""
        self.loaded = False
        self._count(0)
