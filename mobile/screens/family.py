"""The profile switcher on home (the family space): the patient's own record, each child they represent,
each person they help. Choosing one opens that record for every screen (``CarnetApp.open_space``): its name
and colour stay in every top bar."""

from __future__ import annotations

from pathlib import Path

from kivy.app import App
from kivy.properties import BooleanProperty, DictProperty, ListProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.utils import get_color_from_hex

from mobile.api.family import FamilyApi
from mobile.background import run_in_background
from mobile.i18n import _

from .records_common import load_kv

load_kv(str(Path(__file__).with_suffix(".kv")))

KIND_LABELS = {"own": "Mon espace", "child": "Enfant", "helped": "Personne aidée"}


def person_name(space: dict) -> str:
    return f"{space.get('given_name') or ''} {(space.get('family_name') or '').upper()}".strip()


def banner_of(space: dict) -> str:
    """What every top bar says while someone else's record is open."""
    return _("Dossier de {name}").format(name=person_name(space))


def colour_of(space: dict) -> list[float]:
    try:
        return list(get_color_from_hex(space.get("colour") or "#000091"))
    except (ValueError, TypeError):
        return list(get_color_from_hex("#000091"))


def open_family_form(mode: str) -> None:
    """One of the family space's forms (mobile/screens/family_actions.py)."""
    App.get_running_app().screen("family_actions").start(mode)


class FamilyLinks(BoxLayout):
    """Home's links to the family space's forms: a child's letter, a code received, a carer's invitation."""

    def start(self, mode: str) -> None:
        open_family_form(mode)


class SpaceButton(ButtonBehavior, BoxLayout):
    space = DictProperty({})
    name = StringProperty("")
    kind = StringProperty("")
    colour = ListProperty([0, 0, 0, 1])
    selected = BooleanProperty(False)

    def on_space(self, _instance, space: dict) -> None:
        self.name = person_name(space)
        self.kind = _(KIND_LABELS.get(space.get("kind", ""), ""))
        self.colour = colour_of(space)


class SpaceSwitcher(BoxLayout):
    """Home's profile switcher: shown when the account has more than its own record."""

    spaces = ListProperty([])
    current = StringProperty("")   # the record_id open ("" for the patient's own)

    def refresh(self) -> None:
        client = App.get_running_app().client

        run_in_background(lambda: client.feature(FamilyApi).spaces(), self.show, lambda _error: None)

    def show(self, spaces: list[dict]) -> None:
        self.spaces = spaces
        app = App.get_running_app()
        ids = {str(s.get("record_id")) for s in spaces}
        if app.client.record_id and app.client.record_id not in ids:
            app.open_space(None)  # that record is no longer theirs to open (majority, revoked)
        self.current = app.client.record_id or ""
        box = self.ids.choices
        box.clear_widgets()
        if len(spaces) < 2:
            return
        for space in spaces:
            own = space.get("kind") == "own"
            button = SpaceButton(space=space, selected=(own and not self.current)
                                 or str(space.get("record_id")) == self.current)
            button.bind(on_release=lambda b: self.choose(b.space))
            box.add_widget(button)

    def choose(self, space: dict) -> None:
        app = App.get_running_app()
        app.open_space(space)
        self.current = app.client.record_id or ""
        for button in self.ids.choices.children:
            button.selected = (str(button.space.get("record_id")) == self.current
                               or (not self.current and button.space.get("kind") == "own"))
        home = app.screen("home")
        home.refresh()

    def start(self, mode: str) -> None:
        open_family_form(mode)

    def reset(self) -> None:
        self.spaces = []
        self.current = ""
        self.ids.choices.clear_widgets()
