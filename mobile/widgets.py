"""Widgets every screen uses: buttons, inputs, password rule rows, the busy overlay.

Their look lives in ``widgets.kv``; this module holds only behaviour.
"""

from __future__ import annotations

from pathlib import Path

from kivy.animation import Animation
from kivy.clock import Clock
from kivy.lang import Builder
from kivy.metrics import dp
from kivy.properties import (
    BooleanProperty,
    NumericProperty,
    ObjectProperty,
    OptionProperty,
    StringProperty,
)
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.label import Label
from kivy.uix.scrollview import ScrollView
from kivy.uix.textinput import TextInput

KV_FILE = str(Path(__file__).with_name("widgets.kv"))


def load_kv() -> None:
    if KV_FILE not in Builder.files:
        Builder.load_file(KV_FILE)


class PrimaryButton(ButtonBehavior, Label):
    """The one main action of a step."""


class SecondaryButton(ButtonBehavior, Label):
    """An alternative action, outlined."""


class LinkButton(ButtonBehavior, Label):
    """A discreet action (back); still a full 48dp touch target."""


class TopBar(BoxLayout):
    """The screen title and, except on the first screen, a back link (``on_back``)."""

    title = StringProperty("")
    back_text = StringProperty("")
    show_back = BooleanProperty(True)

    __events__ = ("on_back",)

    def on_kv_post(self, base_widget) -> None:
        self.on_show_back(self, self.show_back)

    def on_show_back(self, _instance, show: bool) -> None:
        # Removed rather than hidden: an invisible widget would still take room and taps.
        back = self.ids.get("back")
        if back is None:
            return
        if show and back.parent is None:
            self.add_widget(back, index=len(self.children))
        elif not show and back.parent is not None:
            self.remove_widget(back)

    def on_back(self) -> None:
        pass


class FieldInput(TextInput):
    """One-line input; Enter moves to the next field, or submits the form on the last one.

    ``submit`` is dispatched by Enter on an input that has no ``next_field``.
    """

    next_field = ObjectProperty(None, allownone=True)

    __events__ = ("on_submit",)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bind(on_text_validate=self._on_enter)

    def _on_enter(self, *_args) -> None:
        if self.next_field is not None:
            self.next_field.focus = True
        else:
            self.dispatch("on_submit")

    def on_submit(self) -> None:
        pass


class ErrorBanner(Label):
    """The error of a form, right above its button. When an error appears it scrolls itself
    into view: a refusal below the fold (or under the soft keyboard) would go unseen."""

    def __init__(self, **kwargs):
        self._reveal_soon = Clock.create_trigger(self._reveal)
        super().__init__(**kwargs)
        # Height too: it grows only once the new text is laid out, and then it may move.
        self.bind(text=self._reveal_soon, height=self._reveal_soon)

    def _reveal(self, *_args) -> None:
        if not self.text:
            return
        parent = self.parent
        while parent is not None and parent.parent is not parent:
            if isinstance(parent, ScrollView):
                parent.scroll_to(self, padding=dp(16), animate=False)
                return
            parent = parent.parent


class RuleRow(BoxLayout):
    """One password rule with its live state: ``pending`` (nothing typed), ``met``, ``unmet``."""

    text = StringProperty("")
    rule_id = StringProperty("")
    state = OptionProperty("pending", options=("pending", "met", "unmet"))


class BusyOverlay(FloatLayout):
    """Covers the app while a request runs: shows a spinner and swallows taps, so a patient
    cannot send the same form twice."""

    active = BooleanProperty(False)
    angle = NumericProperty(0)
    _spin = None

    def on_active(self, _instance, active: bool) -> None:
        if active:
            self._spin = Animation(angle=-360, duration=1.0)
            self._spin.repeat = True
            self.angle = 0
            self._spin.start(self)
        elif self._spin is not None:
            self._spin.cancel(self)
            self._spin = None

    def on_touch_down(self, touch):
        return self.active

    def on_touch_move(self, touch):
        return self.active

    def on_touch_up(self, touch):
        return self.active
