"""The cancer pathway as one timeline (DCC): pathology, biology, imaging and operative reports of the
episode, RCP sheets, the personalised care plan (PPS) and the after-treatment programme (PPAC), in date
order; each step opens its document. Below, the care team (who wrote them): a tap writes to those who
already wrote to the patient — the inbox's rule: a patient starts a conversation only with a professional
who wrote first — and the others are named with the reason."""

from __future__ import annotations

from kivy.properties import BooleanProperty, DictProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from mobile.i18n import _

from .inbox_common import inbox_api
from .records_common import EndlessList, RecordsCard, RecordsChip, RecordsScreen, load_kv, records_api, short_date

load_kv()
PAGE_SIZE = 20
# The kinds of step, in the order the filter chips show them.
STEPS = ("pathology", "imaging", "biology", "rcp", "pps", "operative", "ppac")


def step_names() -> dict[str, str]:
    return {"pathology": _("Anatomopathologie"), "imaging": _("Imagerie"), "biology": _("Biologie"),
            "rcp": _("RCP"), "pps": _("PPS"), "operative": _("Opération"), "ppac": _("Après-cancer")}


class PathwayStep(RecordsCard):
    step = DictProperty({})
    heading = StringProperty("")
    title = StringProperty("")
    detail = StringProperty("")

    def on_step(self, _instance, step: dict) -> None:
        document = step.get("document") or {}
        self.heading = f"{short_date(step.get('date'))} · {step.get('label') or ''}"
        self.title = document.get("title") or ""
        self.detail = " · ".join(p for p in (document.get("author_name"), document.get("author_organisation")) if p)


class CareTeamMember(BoxLayout):
    member = DictProperty({})
    name = StringProperty("")
    detail = StringProperty("")
    writable = BooleanProperty(False)
    note = StringProperty("")


def member_note(writable: bool) -> str:
    if writable:
        return ""
    return _("Ne vous a pas encore écrit : seul un professionnel qui vous a déjà écrit peut recevoir un "
             "nouveau message de votre part. Vous pourrez lui répondre dès son premier message.")


class OncologyPathwayScreen(RecordsScreen):
    loaded = BooleanProperty(False)
    empty = BooleanProperty(False)
    has_more = BooleanProperty(False)
    loading_more = BooleanProperty(False)
    started = StringProperty("")
    step_filter = StringProperty("")
    has_team = BooleanProperty(False)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pages = EndlessList(self, self._fetch, self._add)
        self.pages.watch(self.ids.page)
        self.writers: set[int] = set()

    def on_pre_enter(self, *_args) -> None:
        self.load()

    def _fetch(self, cursor: str | None) -> dict:
        page = records_api().oncology(cursor, step=self.step_filter or None, limit=PAGE_SIZE)
        return {**page, "items": page.get("steps") or []}

    def load(self) -> None:
        self._build_chips()
        step = self.step_filter or None

        def work() -> tuple[dict, set[int]]:
            page = records_api().oncology(None, step=step, limit=PAGE_SIZE)
            # whom the patient may write to: the inbox decides (GET /inbox/correspondents)
            writers = {p["professional_id"] for p in inbox_api().correspondents(limit=100).get("items") or []}
            return {**page, "items": page.get("steps") or []}, writers

        def shown(result) -> None:
            page, self.writers = result
            self.started = (_("Parcours commencé le {date}").format(date=short_date(page["started_on"]))
                            if page.get("started_on") else "")
            self._team(page.get("care_team") or [])
            self.pages._take(page, first=True)
            self.loaded = True

        self.pages.generation += 1
        self.call(work, shown)

    def _build_chips(self) -> None:
        box = self.ids.steps_filter
        if box.children:
            for chip in box.children:
                chip.selected = chip.value == self.step_filter
            return
        names = {"": _("Tout"), **step_names()}
        for value in ("", *STEPS):
            chip = RecordsChip(text=names[value], value=value, selected=value == self.step_filter)
            chip.bind(on_release=lambda chip: self.filter(chip.value))
            box.add_widget(chip)

    def filter(self, value: str) -> None:
        self.step_filter = value
        self.load()

    def _add(self, items: list[dict], first: bool) -> None:
        box = self.ids.steps
        if first:
            box.clear_widgets()
        for step in items:
            row = PathwayStep(step=step)
            row.bind(on_release=lambda row: self.open_document(row.step["document"]["id"]))
            box.add_widget(row)
        self.empty = not box.children
        self.pages.check()

    def _team(self, team: list[dict]) -> None:
        box = self.ids.team
        box.clear_widgets()
        self.has_team = bool(team)
        names = step_names()
        for member in team:
            writable = member.get("professional_id") in self.writers
            detail = " · ".join(p for p in (member.get("organisation"),
                                            ", ".join(names.get(s, s) for s in member.get("steps") or [])) if p)
            box.add_widget(CareTeamMember(member=member, name=member.get("name") or "", detail=detail,
                                          writable=writable, note=member_note(writable)))

    def open_document(self, document_id: int) -> None:
        self.open("document_viewer", document_id=document_id)

    def write_to(self, member: dict) -> None:
        """One tap: a new conversation with this member, already addressed and titled."""
        compose = self.app.screen("inbox_compose")
        compose.start_new(recipient_id=member["professional_id"], subject=_("Mon parcours de soins"))
        self.app.show("inbox_compose")

    def step_rows(self) -> list[PathwayStep]:
        return [w for w in reversed(self.ids.steps.children) if isinstance(w, PathwayStep)]

    def team_rows(self) -> list[CareTeamMember]:
        return [w for w in reversed(self.ids.team.children) if isinstance(w, CareTeamMember)]
