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


class FormPage(ScrollView):
    """Every page scrolls (nothing lost behind the soft keyboard or on a small phone), with two fixes to
    Kivy's ScrollView:

    - a touch outside the page is not offered to what the page holds: Kivy asks the children before
      checking the touch is inside, so a zoomed page image scrolled up under the top bar caught the taps
      meant for "‹ Retour";
    - content shorter than the page stays at the top: after a part of a form folds away (a save, a
      cancel) or an error is scrolled into view, Kivy kept the old ``scroll_y`` and showed the content
      at the bottom with a blank above it.
    """

    def __init__(self, **kwargs):
        self._keep_top = Clock.create_trigger(self._top_if_fits)
        super().__init__(**kwargs)
        self.bind(height=self._keep_top, scroll_y=self._keep_top)

    def add_widget(self, widget, *args, **kwargs):
        super().add_widget(widget, *args, **kwargs)
        widget.bind(height=self._keep_top)

    def remove_widget(self, widget, *args, **kwargs):
        widget.unbind(height=self._keep_top)
        super().remove_widget(widget, *args, **kwargs)

    def fits(self) -> bool:
        viewport = self._viewport
        return viewport is None or viewport.height <= self.height + 0.5

    def _top_if_fits(self, *_args) -> None:
        if self.fits() and self.scroll_y != 1:
            self.scroll_y = 1

    def on_scroll_start(self, touch, check_children=True):
        if not self.collide_point(*touch.pos):
            touch.ud[self._get_uid("svavoid")] = True
            return False
        return super().on_scroll_start(touch, check_children)

    def scroll_to(self, widget, padding=10, animate=True):
        if self.fits():
            self.scroll_y = 1
            return
        super().scroll_to(widget, padding, animate)


class Reveal(BoxLayout):
    """A block shown or not (``shown``). Hidden, its children are taken out of the layout, not just
    made transparent or zero-high: an invisible widget would still take room, and a zero-high one lets
    its children overflow onto their neighbours and take their taps (a disabled widget swallows taps)."""

    shown = BooleanProperty(True)

    def __init__(self, **kwargs):
        self._stash: list = []
        self._ready = False
        super().__init__(**kwargs)

    def on_kv_post(self, base_widget) -> None:
        self._ready = True
        self._apply()

    def on_shown(self, *_args) -> None:
        if self._ready:
            self._apply()

    def _apply(self) -> None:
        if self.shown and self._stash:
            for widget in self._stash:
                self.add_widget(widget)
            self._stash = []
        elif not self.shown and self.children:
            self._stash = list(reversed(self.children))
            self.clear_widgets()


def scroll_into_view(widget) -> None:
    """Scroll the nearest ScrollView holding ``widget`` so that it is in view (an outcome the patient must see)."""
    parent = widget.parent
    while parent is not None and parent.parent is not parent:
        if isinstance(parent, ScrollView):
            parent.scroll_to(widget, padding=dp(16), animate=False)
            return
        parent = parent.parent


class RevealingLabel(Label):
    """A label that scrolls itself into view when its text appears (and when it grows, once laid out)."""

    def __init__(self, **kwargs):
        self._reveal_soon = Clock.create_trigger(self._reveal)
        super().__init__(**kwargs)
        # Height too: it grows only once the new text is laid out, and then it may move.
        self.bind(text=self._reveal_soon, height=self._reveal_soon)

    def _reveal(self, *_args) -> None:
        if self.text:
            scroll_into_view(self)


class ErrorBanner(RevealingLabel):
    """The error of a form, right above its button. When an error appears it scrolls itself
    into view: a refusal below the fold (or under the soft keyboard) would go unseen."""


class FileReadyCard(Reveal):
    """A file the app kept for the patient (``mobile.share.KeptFile``): its name, and "Ouvrir" / "Partager"
    (the platform's open-with and share sheet) — never a path. Hidden while ``file`` is None."""

    file = ObjectProperty(None, allownone=True)
    title = StringProperty("")
    outcome = StringProperty("")
    can_share = BooleanProperty(False)

    def on_file(self, _instance, kept) -> None:
        from mobile import share
        from mobile.i18n import _

        if kept is not None:
            Clock.schedule_once(self._reveal, 0.05)  # once laid out: in view, like an error
        self.outcome = ""
        self.can_share = share.can_share()
        self.title = _("« {name} » est enregistré dans Carnet sur cet appareil.").format(name=kept.name) \
            if kept is not None else ""

    def _reveal(self, *_args) -> None:
        scroll_into_view(self)

    def open_it(self) -> None:
        from mobile import share
        from mobile.i18n import _

        if self.file is not None:
            self.outcome = "" if share.open_file(self.file) else _(
                "Aucune application de cet appareil ne sait ouvrir ce fichier : il reste disponible dans Carnet.")

    def share_it(self) -> None:
        from mobile import share
        from mobile.i18n import _

        if self.file is not None:
            self.outcome = "" if share.share_file(self.file) else _(
                "Le partage n'a pas pu s'ouvrir : le fichier reste disponible dans Carnet.")


class ToggleRow(ButtonBehavior, BoxLayout):
    """A setting that is on or off, the whole row a touch target. ``active`` is the setting as it is;
    ``pending``: a change asked for and waiting for a confirmation (``pending_text`` says which)."""

    title = StringProperty("")
    explanation = StringProperty("")
    active = BooleanProperty(False)
    pending = BooleanProperty(False)
    pending_text = StringProperty("")


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
