"""The reimbursement history fed by the Assurance Maladie: the last 24 months as episodes (consultations
and care, medicines, biology, imaging, hospital stays, devices, vaccines), filtered by kind, newest first;
each episode opens the history document it comes from."""

from __future__ import annotations

from kivy.properties import BooleanProperty, DictProperty, StringProperty

from mobile.i18n import _

from .records_common import EndlessList, RecordsCard, RecordsChip, RecordsScreen, load_kv, records_api, short_date

load_kv()
PAGE_SIZE = 20


class EpisodeRow(RecordsCard):
    episode = DictProperty({})
    heading = StringProperty("")
    title = StringProperty("")
    detail = StringProperty("")

    def on_episode(self, _instance, episode: dict) -> None:
        when = short_date(episode.get("date"))
        if episode.get("end") and short_date(episode["end"]) != when:
            when = _("du {start} au {end}").format(start=when, end=short_date(episode["end"]))
        self.heading = " · ".join(p for p in (when, episode.get("kind_label")) if p)
        self.title = episode.get("label") or ""
        self.detail = " · ".join(p for p in (episode.get("detail"), episode.get("where")) if p)


class ReimbursementsScreen(RecordsScreen):
    loaded = BooleanProperty(False)
    empty = BooleanProperty(False)
    has_more = BooleanProperty(False)
    loading_more = BooleanProperty(False)
    kind = StringProperty("")
    since = StringProperty("")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.labels: dict[str, str] = {}
        self.pages = EndlessList(self, self._fetch, self._add)
        self.pages.on_page = self._header
        self.pages.watch(self.ids.page)

    def on_pre_enter(self, *_args) -> None:
        self.pages.reload()

    def _fetch(self, cursor: str | None) -> dict:
        page = records_api().reimbursements(self.kind or None, cursor, limit=PAGE_SIZE)
        self.labels = {k["kind"]: k["label"] for k in page.get("kinds") or []}   # before the rows are made
        return {**page, "items": page.get("episodes") or []}

    def _header(self, page: dict) -> None:
        if page.get("since"):
            self.since = _("Les {months} derniers mois, depuis le {date}, transmis par l'Assurance Maladie.").format(
                months=page.get("months", 24), date=short_date(page["since"]))
        kinds = page.get("kinds") or []
        box = self.ids.kinds
        box.clear_widgets()
        total = sum(k.get("count", 0) for k in kinds)
        for value, text in (("", _("Tout ({n})").format(n=total)),
                            *((k["kind"], f"{k['label']} ({k['count']})") for k in kinds if k.get("count"))):
            chip = RecordsChip(text=text, value=value, selected=value == self.kind)
            chip.bind(on_release=lambda chip: self.filter(chip.value))
            box.add_widget(chip)
        self.loaded = True

    def filter(self, kind: str) -> None:
        self.kind = kind
        self.pages.reload()

    def _add(self, items: list[dict], first: bool) -> None:
        box = self.ids.episodes
        if first:
            box.clear_widgets()
        for episode in items:
            row = EpisodeRow(episode={**episode, "kind_label": self.labels.get(episode.get("kind"), "")})
            row.bind(on_release=lambda row: self.open("document_viewer", document_id=row.episode["document_id"]))
            box.add_widget(row)
        self.empty = not box.children
        self.pages.check()

    def rows(self) -> list[EpisodeRow]:
        return [w for w in reversed(self.ids.episodes.children) if isinstance(w, EpisodeRow)]
