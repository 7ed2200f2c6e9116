"""The bottom navigation of the main screens (home, record, inbox, agenda, more), as the MES app has: one
tap from any of them to any other, the inbox's unread conversations and the unread notifications as
badges. The badges are the app's (``CarnetApp.unread_messages`` / ``unread_notifications``), set by whichever
screen learnt them last (home, the inbox, the notification centre)."""

from __future__ import annotations

from pathlib import Path

from kivy.app import App
from kivy.lang import Builder
from kivy.properties import StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout

KV_FILE = str(Path(__file__).with_name("navigation.kv"))
# (screen, symbol) in the order of the bar; the labels are in navigation.kv (translated there).
TABS = (("home", "⌂"), ("documents", "▤"), ("inbox", "✉"), ("agenda", "▦"), ("more", "☰"))
MAIN_SCREENS = tuple(name for name, _symbol in TABS)


def load_kv() -> None:
    if KV_FILE not in Builder.files:
        Builder.load_file(KV_FILE)


def badge_text(count: int) -> str:
    return "" if not count else ("99+" if count > 99 else str(count))


def open_from_home(name: str, **show) -> None:
    """Show the screen ``name`` with its back link leading home (the hub, the bottom bar, the record's section)."""
    app = App.get_running_app()
    screen = app.screen(name)
    if hasattr(screen, "back_target"):
        screen.back_target = "home"
    app.show(name, **show)


class NavTab(ButtonBehavior, BoxLayout):
    target = StringProperty("")
    symbol = StringProperty("")
    text = StringProperty("")
    badge = StringProperty("")
    current = StringProperty("")


class HubButton(ButtonBehavior, BoxLayout):
    """An entry to a feature: a full-width button, 52 dp high at least, with a badge (home's hub, "Plus")."""

    text = StringProperty("")
    badge = StringProperty("")


class BottomNav(BoxLayout):
    """The bar itself; ``current`` is the screen it sits on."""

    current = StringProperty("")

    def go(self, target: str) -> None:
        app = App.get_running_app()
        if target == self.current or app.busy:
            return
        order = list(MAIN_SCREENS)
        direction = "left" if order.index(target) > order.index(self.current or "home") else "right"
        open_from_home(target, direction=direction)
