"""The review of the legacy record's import, before it goes live: progress while it runs (the status is
polled), then the report — imported, merged as duplicates, set aside with the reason, and where each
item came from — and the profile entries two legacy documents disagree on, to keep or hide one by
one."""

from __future__ import annotations

from kivy.clock import Clock
from kivy.factory import Factory
from kivy.properties import BooleanProperty, DictProperty, NumericProperty, StringProperty

from mobile.api import ApiError
from mobile.api.records import MIGRATION_RUNNING
from mobile.background import run_in_background
from mobile.i18n import _

from .profile_entries import entry_lines, entry_source
from .records_common import (EndlessList, RecordsBadge, RecordsCard, RecordsChip, RecordsScreen, load_kv,
                             profile_kinds, records_api, short_date)

load_kv()
POLL_SECONDS = 1.5
PAGE_SIZE = 20


def status_filters() -> list[tuple[str, str]]:
    return [("", _("Tout")), ("imported", _("Importés")), ("duplicate", _("Fusionnés")),
            ("quarantined", _("Mis de côté"))]


def effective_state(status: dict) -> str:
    """The run's state, except that items already imported make a finished import: a later run that
    found no folder (an activation without the legacy source configured) does not undo them."""
    state = status.get("state") or "none"
    if state in ("none", "no_dossier") and status.get("processed"):
        return "done"
    return state


def state_sentence(status: dict) -> str:
    state = effective_state(status)
    if state == "pending":
        return _("L'import de votre ancien dossier va commencer.")
    if state == "running":
        return _("Import de votre ancien dossier en cours : {done} élément(s) sur {total}.").format(
            done=status.get("processed", 0), total=status.get("total", 0))
    if state == "done":
        return _("L'import de votre ancien dossier est terminé ({date}).").format(
            date=short_date(status.get("finished_at")))
    if state == "no_dossier":
        return _("Aucun ancien dossier n'a été trouvé à votre nom.")
    return _("Aucun import de dossier n'est prévu pour votre compte.")


def item_status(item: dict) -> tuple[str, str]:
    return {"imported": (_("Importé"), "success"), "duplicate": (_("Fusionné (doublon)"), "muted"),
            "quarantined": (_("Mis de côté"), "warning")}.get(item.get("status"), (item.get("status") or "", "muted"))


def source_line(item: dict) -> str:
    kind = {"settings": _("les réglages de votre ancien dossier"), "pdf": _("un document PDF"),
            "xdm": _("un envoi de document"), "cda": _("un document médical")}.get(
        (item.get("format") or "").lower(), _("un document"))
    return _("Repris de votre ancien dossier : {kind}").format(kind=kind)


class MigrationItemRow(RecordsCard):
    item = DictProperty({})
    source = StringProperty("")
    title = StringProperty("")
    detail = StringProperty("")

    def show(self, item: dict) -> None:
        self.item = item
        # where it came from in the patient's words (the file names are for the operators' report)
        self.source = source_line(item)
        if item.get("format") == "settings":  # the old DMP's settings.json, not a document: say what it is
            self.title = _("Réglages de votre ancien dossier")
        else:
            self.title = item.get("title") or _("Document {format}").format(format=(item.get("format") or "").upper())
        lines = []
        if item.get("status") == "quarantined":
            lines.append(_("Raison : {reason}").format(reason=item.get("reason_text") or item.get("reason") or ""))
        elif item.get("status") == "duplicate":
            lines.append(_("Déjà présent dans votre dossier : les deux exemplaires ont été fusionnés."))
        entries = item.get("entries") or {}
        if entries:
            lines.append(_("Informations ajoutées au profil : {n}").format(n=sum(entries.values())))
        lines.extend(item.get("warnings_text") or [])  # never the codes
        self.detail = "\n".join(lines)
        badges = self.ids.badges
        badges.clear_widgets()
        text, tone = item_status(item)
        badges.add_widget(RecordsBadge(text=text, tone=tone))


class ConflictEntryRow(RecordsCard):
    entry = DictProperty({})
    kind = StringProperty("")
    title = StringProperty("")
    detail = StringProperty("")


class MigrationReviewScreen(RecordsScreen):
    state = StringProperty("")
    sentence = StringProperty("")
    processed = NumericProperty(0)
    total = NumericProperty(0)
    counts_text = StringProperty("")
    open_conflicts = NumericProperty(0)
    reviewed = BooleanProperty(False)
    status_filter = StringProperty("")
    loaded = BooleanProperty(False)
    has_more = BooleanProperty(False)
    loading_more = BooleanProperty(False)
    notice = StringProperty("")
    shown = NumericProperty(0)
    back_target = StringProperty("home")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._poll = None
        self._kinds: dict = {}
        self.pages = EndlessList(self, self._fetch, self._add)
        self.pages.watch(self.ids.page)

    def on_kv_post(self, base_widget) -> None:
        box = self.ids.filters
        for value, label in status_filters():
            chip = RecordsChip(text=label, value=value, selected=value == self.status_filter)
            chip.bind(on_release=lambda chip: self.choose_filter(chip.value))
            box.add_widget(chip)

    def on_pre_enter(self, *_args) -> None:
        self.notice = ""
        self.load()

    def on_leave(self, *args) -> None:
        super().on_leave(*args)
        self._stop_polling()

    def load(self) -> None:
        def work():
            api = records_api()
            return profile_kinds(), api.migration_status(), api.migration_conflicts()

        self.call(work, self._show)

    def _show(self, result) -> None:
        kinds, status, conflicts = result
        self._kinds = {k["kind"]: k for k in kinds.get("kinds") or []}
        self._status(status)
        self._conflicts(conflicts.get("groups") or [])
        self.loaded = True
        self._reload_items()

    # -- progress -------------------------------------------------------------------------

    def _status(self, status: dict) -> None:
        self.state = effective_state(status)
        self.sentence = state_sentence(status)
        self.processed = status.get("processed", 0)
        self.total = status.get("total", 0)
        counts = status.get("counts") or {}
        self.counts_text = _("{imported} importé(s) · {duplicate} fusionné(s) · {quarantined} mis de côté").format(
            imported=counts.get("imported", 0), duplicate=counts.get("duplicate", 0),
            quarantined=counts.get("quarantined", 0))
        self.open_conflicts = status.get("open_conflicts", 0)
        self.reviewed = bool(status.get("reviewed_at"))
        if self.state in MIGRATION_RUNNING:
            self._start_polling()
        else:
            self._stop_polling()

    def _start_polling(self) -> None:
        if self._poll is None:
            self._poll = Clock.schedule_interval(self._tick, POLL_SECONDS)

    def _stop_polling(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None

    def _tick(self, _dt) -> None:
        # Quietly, without the busy overlay: the patient may read the report meanwhile.
        was_running = self.state in MIGRATION_RUNNING

        def shown(result) -> None:
            status, conflicts = result
            self._status(status)
            if was_running and self.state not in MIGRATION_RUNNING:
                self._conflicts(conflicts.get("groups") or [])
            self._reload_items()

        def failed(error: ApiError) -> None:
            self._stop_polling()
            self.show_error(error)

        if self.app.busy or self.pages.loading:
            return
        run_in_background(lambda: (records_api().migration_status(), records_api().migration_conflicts()),
                          shown, failed)

    # -- report ---------------------------------------------------------------------------

    def choose_filter(self, value: str) -> None:
        self.status_filter = value
        for chip in self.ids.filters.children:
            chip.selected = chip.value == value
        self.pages.reload()

    def _reload_items(self) -> None:
        self.pages.generation += 1
        generation = self.pages.generation

        def shown(page: dict) -> None:
            if generation == self.pages.generation:
                self.pages._take(page, first=True)

        run_in_background(lambda: self._fetch(None), shown, self.show_error)

    def _fetch(self, cursor: str | None) -> dict:
        return records_api().migration_items(self.status_filter or None, cursor=cursor, limit=PAGE_SIZE)

    def _add(self, items: list[dict], first: bool) -> None:
        box = self.ids.report_items
        if first:
            box.clear_widgets()
        for item in items:
            row = MigrationItemRow()
            row.show(item)
            box.add_widget(row)
        self.shown = len(box.children)
        self.pages.check()

    def item_rows(self) -> list[MigrationItemRow]:
        return [w for w in reversed(self.ids.report_items.children) if isinstance(w, MigrationItemRow)]

    # -- conflicts ------------------------------------------------------------------------

    def _conflicts(self, groups: list[dict]) -> None:
        box = self.ids.conflicts
        box.clear_widgets()
        for group in groups:
            spec = self._kinds.get(group.get("kind"), {})
            box.add_widget(Factory.FieldLabel(text=_("{kind} : ces informations ne concordent pas").format(
                kind=spec.get("label") or group.get("kind"))))
            for entry in group.get("entries") or []:
                row = ConflictEntryRow(kind=group["kind"], title=entry.get("title") or "")
                row.entry = entry
                row.detail = "\n".join([*entry_lines(entry, spec), entry_source(entry)])
                row.ids.keep.bind(on_release=lambda _b, row=row: self.decide(row, "confirm"))
                row.ids.hide.bind(on_release=lambda _b, row=row: self.decide(row, "hide"))
                box.add_widget(row)

    def conflict_rows(self) -> list[ConflictEntryRow]:
        return [w for w in reversed(self.ids.conflicts.children) if isinstance(w, ConflictEntryRow)]

    def decide(self, row: ConflictEntryRow, decision: str) -> None:
        kind, entry_id, title = row.kind, row.entry["id"], row.title

        def done(result: dict) -> None:
            groups = result.get("groups") or []
            self.open_conflicts = sum(len(g.get("entries") or []) for g in groups)
            self._conflicts(groups)
            self.notice = (_("« {title} » est gardé dans votre profil.") if decision == "confirm"
                           else _("« {title} » est masqué de votre profil.")).format(title=title)

        self.call(lambda: records_api().decide_conflict(kind, entry_id, decision), done)

    def mark_reviewed(self) -> None:
        def done(status: dict) -> None:
            self._status(status)
            self.notice = _("Merci : votre ancien dossier est vérifié. Vous pourrez revoir ce rapport ici à tout moment.")

        self.call(records_api().mark_reviewed, done)
