"""What the record's screens share: the records API bound to the app's client, a screen base with
a back target (also for the Android back key), endless lists, French dates, saved files, and the
small widgets (chips, tappable cards, toggles, badges) styled in ``records_common.kv``.
"""

from __future__ import annotations

import datetime as dt
import re
from email.utils import parsedate_to_datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.clock import Clock
from kivy.lang import Builder
from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label

from mobile.api import ApiError
from mobile.api.records import RecordsApi
from mobile.background import run_in_background
from mobile.i18n import _, get_language, local

from mobile.widgets import Reveal, RevealingLabel, ToggleRow  # noqa: F401  (shared; the record's screens import Reveal from here)

from .base import CarnetScreen

KV_FILE = str(Path(__file__).with_name("records_common.kv"))
# How close to the end of a list (as a fraction of its scroll range) the next page is asked for.
LOAD_MORE_AT = 0.08


def load_kv(*also: str) -> None:
    """Load the shared rules, then ``also`` (paths of .kv files of helpers that are not screens)."""
    for kv_file in (KV_FILE, *also):
        if kv_file not in Builder.files:
            Builder.load_file(kv_file)


def records_api() -> RecordsApi:
    """The session's RecordsApi (the client is replaced when the app is rebuilt)."""
    return App.get_running_app().client.feature(RecordsApi)


def profile_kinds() -> dict:
    """The profile's kinds, fields, choices and measure types (labels in the app's language), asked once
    per session and language: they change only with a new server version, but their labels follow the
    language the patient picks. Blocking: call it in background work."""
    api = records_api()
    language = api.client.language
    if language not in api.kinds_by_language:
        api.kinds_by_language[language] = api.kinds()
    return api.kinds_by_language[language]


# -- dates --------------------------------------------------------------------------------


def _moment(iso: str | None) -> dt.datetime | None:
    if not iso:
        return None
    try:
        moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        # Some lists pass entries through as plain JSON, whose dates are HTTP dates (RFC 1123).
        try:
            moment = parsedate_to_datetime(iso)
        except (TypeError, ValueError):
            return None
    return local(moment) if moment.tzinfo else moment


def short_date(iso: str | None) -> str:
    """'2026-11-01T11:00:00+00:00' → '01/11/2026' (local day); '' when absent or unreadable."""
    moment = _moment(iso)
    if moment is None:
        return ""
    return moment.strftime("%d %b %Y") if get_language() == "en" else moment.strftime("%d/%m/%Y")


def date_time(iso: str | None) -> str:
    """'…' → '01/11/2026 12:00' (local time)."""
    moment = _moment(iso)
    if moment is None:
        return ""
    return f"{short_date(iso)} {moment.strftime('%H:%M')}"


def partial_date(value: str | None) -> str:
    """A profile date as the patient reads it: '2012' → '2012', '2019-05' → '05/2019',
    '2019-05-14' → '14/05/2019'."""
    if not value:
        return ""
    parts = value.split("-")
    return "/".join(reversed(parts))


_FRENCH_DATE = re.compile(r"^\s*(?:(?:(\d{1,2})/)?(\d{1,2})/)?(\d{4})\s*$")


def iso_partial_date(text: str) -> str | None:
    """'14/05/2019' → '2019-05-14', '05/2019' → '2019-05', '2019' → '2019', '' → None.
    Anything else is returned as typed: the server says what is wrong with it, in French."""
    text = (text or "").strip()
    if not text:
        return None
    match = _FRENCH_DATE.match(text)
    if not match:
        return text
    day, month, year = match.groups()
    return "-".join(p for p in (year, month and f"{int(month):02d}", day and f"{int(day):02d}") if p)


def iso_day(text: str) -> str | None:
    """A full day typed as JJ/MM/AAAA → 'AAAA-MM-JJ'; None if empty; ValueError if not a real day."""
    text = (text or "").strip()
    if not text:
        return None
    day, month, year = text.split("/")
    return dt.date(int(year), int(month), int(day)).isoformat()


def file_size(size: int | None) -> str:
    if not size:
        return ""
    if size < 1024:
        return _("{n} octets").format(n=size)
    if size < 1024 * 1024:
        return _("{n} Ko").format(n=round(size / 1024))
    return _("{n} Mo").format(n=f"{size / 1024 / 1024:.1f}".replace(".", ","))


def saved_file(folder: str, name: str, data: bytes, mime: str | None = None):
    """Keep a download where the app keeps its files (``mobile.share.keep``): a ``KeptFile`` for the
    screen's ``FileReadyCard`` ("Ouvrir", "Partager"), never a path to show."""
    from mobile import share

    return share.keep(Path(App.get_running_app().user_data_dir) / folder, name, data, mime)


# -- screens ------------------------------------------------------------------------------


class RecordsScreen(CarnetScreen):
    """A screen of the record: a back target (the back link, and the app's Android back key, go
    there) and a way to open another screen with what it should show."""

    back_target = StringProperty("home")

    def go_back(self) -> None:
        self.app.back(self.back_target)

    def open(self, name: str, **attributes: Any):
        """Show the screen ``name`` after setting ``attributes`` on it (what it should show)."""
        screen = self.app.screen(name)
        for key, value in attributes.items():
            setattr(screen, key, value)
        if hasattr(screen, "back_target") and "back_target" not in attributes:
            screen.back_target = self.name
        return self.app.show(name)


class FilteredList:
    """A screen whose list (``pages``, an :class:`EndlessList`) is filtered by criteria the patient types:
    ``_criteria()`` reads them (None when they are not valid: it says why), ``applied`` keeps them."""

    def reload(self) -> None:
        """The list again from its first page, with the criteria as typed now."""
        criteria = self._criteria()
        if criteria is None:
            return
        self.applied = criteria
        self.pages.reload()


class EndlessList:
    """Pages of a cursor-paginated list, asked for when the patient scrolls near the end.

    The first page goes through the screen's ``call`` (the busy overlay); the next ones load
    quietly under the list (``loading`` shows a line there), so scrolling is never interrupted.
    """

    def __init__(self, screen: RecordsScreen, fetch: Callable[[str | None], dict],
                 add_items: Callable[[list[dict], bool], None]) -> None:
        self.screen = screen
        self.fetch = fetch
        self.add_items = add_items
        self.cursor: str | None = None
        self.loading = False
        self.generation = 0
        self.on_page: Callable[[dict], None] | None = None

    def reload(self) -> None:
        self.generation += 1
        generation = self.generation

        def shown(page: dict) -> None:
            if generation == self.generation:
                self._take(page, first=True)

        self.screen.call(lambda: self.fetch(None), shown)

    def more(self) -> bool:
        if self.loading or not self.cursor:
            return False
        self.loading = True
        self.screen.loading_more = True
        generation, cursor = self.generation, self.cursor

        def shown(page: dict) -> None:
            self.loading = False
            self.screen.loading_more = False
            if generation == self.generation:
                self._take(page, first=False)

        def failed(error: ApiError) -> None:
            self.loading = False
            self.screen.loading_more = False
            self.screen.show_error(error)

        run_in_background(lambda: self.fetch(cursor), shown, failed)
        return True

    def _take(self, page: dict, first: bool) -> None:
        self.cursor = page.get("next_cursor")
        self.screen.has_more = bool(self.cursor)
        view = getattr(self, "scroll_view", None)
        anchor = None if first or view is None else _distance_from_top(view)
        self.add_items(page.get("items") or [], first)
        if anchor is not None:
            # Rows added below must not move the rows the patient is reading (or about to tap):
            # ScrollView keeps a fraction, so the distance from the top is put back as the list grows.
            _keep_distance_from_top(view, anchor)
        if self.on_page is not None:
            self.on_page(page)

    def watch(self, scroll_view) -> None:
        """Ask for the next page when ``scroll_view`` nears its end, or when the list is too short
        to scroll at all."""

        def check(*_args) -> None:
            if not self.cursor or self.loading:
                return
            scrollable = scroll_view.children and scroll_view.children[0].height > scroll_view.height
            if not scrollable or scroll_view.scroll_y <= LOAD_MORE_AT:
                self.more()

        trigger = Clock.create_trigger(check, 0.1)
        scroll_view.bind(scroll_y=trigger, height=trigger)
        self.check = trigger
        self.scroll_view = scroll_view


def _distance_from_top(view) -> float:
    content = view.children[0] if view.children else None
    if content is None:
        return 0.0
    return (1 - view.scroll_y) * max(0.0, content.height - view.height)


def _keep_distance_from_top(view, distance: float, settle: float = 0.3) -> None:
    content = view.children[0] if view.children else None
    if content is None:
        return

    def restore(*_args) -> None:
        _restore_distance_from_top(view, distance)

    content.fbind("height", restore)

    def done(_dt) -> None:
        content.funbind("height", restore)

    Clock.schedule_once(done, settle)


def _restore_distance_from_top(view, distance: float) -> None:
    content = view.children[0] if view.children else None
    if content is None:
        return
    room = content.height - view.height
    if room > 0:
        view.scroll_y = max(0.0, min(1.0, 1 - distance / room))


# -- widgets ------------------------------------------------------------------------------


class RecordsChip(ButtonBehavior, Label):
    """One choice among a few (a category, a filter): filled when chosen."""

    selected = BooleanProperty(False)
    value = StringProperty("")


class RecordsOption(ButtonBehavior, Label):
    """One answer among a few, written as a sentence (a reason, a position): a whole line with a
    radio mark."""

    selected = BooleanProperty(False)
    value = StringProperty("")


class RecordsCard(ButtonBehavior, BoxLayout):
    """A card of a list that opens something when tapped."""


class RecordsToggle(ToggleRow):
    """The record's settings (emergency switches, masking new documents): the app's one switch style."""


class RecordsTile(ButtonBehavior, BoxLayout):
    """An entry point on the home screen."""

    title = StringProperty("")
    subtitle = StringProperty("")
    symbol = StringProperty("")


class RecordsBadge(Label):
    """A short status next to an item (masqué, ajouté par vous…)."""

    tone = StringProperty("info")


class RecordsNotice(RevealingLabel):
    """What an action did, in blue. Like the error banner, it scrolls itself into view when it
    appears: the patient tapped something further down and must see the outcome."""


