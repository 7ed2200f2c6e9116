"""What the notification screens share: the notifications API bound to the app's client, the device's
push keys, a notification row and an on/off switch (English: ``mobile/locale/en/notifications.json``)."""

from __future__ import annotations

import os
from pathlib import Path

from kivy.app import App
from kivy.lang import Builder
from kivy.properties import BooleanProperty, DictProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.floatlayout import FloatLayout

from mobile import i18n
from mobile.api.notifications import DeviceKeys, NotificationsApi

KV_FILE = str(Path(__file__).with_name("notification_common.kv"))
# Where the device's push keys live (tests and desktop runs may point elsewhere).
PUSH_KEYS_ENV = "CARNET_PUSH_KEYS"


def load_kv() -> None:
    if KV_FILE not in Builder.files:
        Builder.load_file(KV_FILE)


def notifications_api() -> NotificationsApi:
    """The session's NotificationsApi (the client is replaced when the app is rebuilt)."""
    return App.get_running_app().client.feature(NotificationsApi)


def push_keys_path() -> Path:
    configured = os.environ.get(PUSH_KEYS_ENV)
    if configured:
        return Path(configured)
    return Path(App.get_running_app().user_data_dir) / "push_keys.json"


def device_keys() -> DeviceKeys:
    return DeviceKeys.load_or_create(push_keys_path())


class NotificationRow(ButtonBehavior, BoxLayout):
    """One notification of the centre; tapping it marks it read."""

    item = DictProperty({})
    title = StringProperty("")
    body = StringProperty("")
    when = StringProperty("")
    unread = BooleanProperty(False)

    def on_item(self, _instance, item: dict) -> None:
        self.title = item.get("title", "")
        self.body = item.get("body", "")
        self.when = i18n.format_datetime(item.get("created_at"))
        self.unread = not item.get("read")


class OnOffSwitch(ButtonBehavior, FloatLayout):
    """A two-state switch (a 48dp touch target); ``locked`` shows it on and refuses to move."""

    active = BooleanProperty(False)
    locked = BooleanProperty(False)


class ChannelSwitch(BoxLayout):
    """A channel's label with its switch; ``on_toggle(active)`` when the patient flips it."""

    text = StringProperty("")
    active = BooleanProperty(False)
    locked = BooleanProperty(False)

    __events__ = ("on_toggle",)

    def flip(self) -> None:
        if not self.locked:
            self.dispatch("on_toggle", not self.active)

    def on_toggle(self, active: bool) -> None:
        pass
