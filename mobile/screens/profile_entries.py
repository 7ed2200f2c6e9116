"""One kind of the medical profile (allergies, treatments, contacts…): its entries, and a form built
from the kind's description (``/record/profile/kinds``) to add one or correct one the patient wrote.
The server validates every field and answers in French, field by field; the form shows each
message under its field. Entries recorded by a professional are read-only: the patient may hide
them or ask for their removal."""

from __future__ import annotations

from kivy.factory import Factory
from kivy.properties import BooleanProperty, DictProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from mobile.api import ApiError
from mobile.i18n import _

from .records_common import (EndlessList, RecordsBadge, RecordsCard, RecordsChip, RecordsScreen, load_kv,
                             partial_date, profile_kinds, records_api, iso_partial_date, short_date)

load_kv()
PAGE_SIZE = 20


def entry_source(entry: dict) -> str:
    source = entry.get("source")
    when = short_date(entry.get("created_at"))
    if source == "patient":
        return _("Ajouté par vous le {date}").format(date=when)
    author = (entry.get("author") or {}).get("name") or _("un professionnel de santé")
    if source == "migration":
        return _("Importé de votre ancien dossier (saisi par {author})").format(author=author)
    return _("Saisi par {author} le {date}").format(author=author, date=when)


def entry_badges(entry: dict) -> list[tuple[str, str]]:
    badges = []
    if entry.get("hidden"):
        badges.append((_("Masquée"), "muted"))
    if entry.get("needs_confirmation"):
        badges.append((_("À vérifier"), "warning"))
    if entry.get("removal_requested_at"):
        badges.append((_("Suppression demandée"), "warning"))
    return badges


def entry_lines(entry: dict, spec: dict | None) -> list[str]:
    """'Gravité : Sévère' lines for the fields other than the title, in the kind's order."""
    fields = entry.get("fields") or {}
    described = (spec or {}).get("fields") or [{"name": n, "label": n, "type": "text", "choices": []} for n in fields]
    title = entry.get("title")
    lines = []
    for field in described:
        value = fields.get(field["name"])
        if value in (None, "") or value == title:
            continue
        if field.get("type") == "choice":
            value = next((c["label"] for c in field.get("choices") or [] if c["value"] == value), value)
        elif field.get("type") == "date":
            value = partial_date(value)
        lines.append(f"{field.get('label') or field['name']} : {value}")
    return lines


class EntryRow(RecordsCard):
    entry = DictProperty({})
    title = StringProperty("")
    detail = StringProperty("")
    source = StringProperty("")


class EntryField(BoxLayout):
    """One field of the form: its label, an input (or choices), and the server's message for it."""

    name = StringProperty("")
    label = StringProperty("")
    kind = StringProperty("text")
    required = BooleanProperty(False)
    choice = StringProperty("")
    error = StringProperty("")
    hint = StringProperty("")
    choices = ListProperty([])

    def build(self) -> None:
        box = self.ids.input_box
        box.clear_widgets()
        if self.kind == "choice":
            chips = Factory.RecordsChips()
            for choice in self.choices:
                chip = RecordsChip(text=choice["label"], value=choice["value"], selected=choice["value"] == self.choice)
                chip.bind(on_release=lambda chip: self.pick(chip.value))
                chips.add_widget(chip)
            self.chips = chips
            box.add_widget(chips)
        else:
            multiline = self.name in ("comment", "text", "description")
            field = Factory.RecordsMultiline() if multiline else Factory.FieldInput()
            if multiline:
                field.height = Factory.FieldInput().height * 2
            field.hint_text = self.hint
            if self.kind == "email":
                field.input_type = "mail"
            elif self.kind == "phone":
                field.input_type = "tel"
            self.input = field
            box.add_widget(field)

    def pick(self, value: str) -> None:
        # Tapping the chosen answer again clears it (when the field may stay empty).
        self._mark("" if (value == self.choice and not self.required) else value)

    def _mark(self, value: str) -> None:
        self.choice = value
        for chip in self.chips.children:
            chip.selected = chip.value == value

    @property
    def value(self) -> str | None:
        if self.kind == "choice":
            return self.choice or None
        text = self.input.text.strip()
        if self.kind == "date":
            return iso_partial_date(text)
        return text or None

    def fill(self, value: str | None) -> None:
        if self.kind == "choice":
            self._mark(value or "")
        elif self.kind == "date":
            self.input.text = partial_date(value)
        else:
            self.input.text = value or ""


class ProfileEntriesScreen(RecordsScreen):
    kind = StringProperty("allergy")
    label = StringProperty("")
    loaded = BooleanProperty(False)
    has_more = BooleanProperty(False)
    loading_more = BooleanProperty(False)
    editing = BooleanProperty(False)
    # The entry open in the form ({} for a new one).
    entry = DictProperty({})
    notice = StringProperty("")
    empty = BooleanProperty(False)
    back_target = StringProperty("profile")
    # What the form needs to know of ``entry`` (kv binds to these, not into the dict).
    has_entry = BooleanProperty(False)
    entry_editable = BooleanProperty(False)
    entry_hidden = BooleanProperty(False)
    entry_unconfirmed = BooleanProperty(False)
    entry_removal_requested = BooleanProperty(False)
    entry_document = NumericProperty(0)   # the document the entry was read from (an implant's report)

    def on_entry(self, _instance, entry: dict) -> None:
        self.has_entry = bool(entry)
        self.entry_editable = bool(entry.get("editable"))
        self.entry_hidden = bool(entry.get("hidden"))
        self.entry_unconfirmed = bool(entry.get("needs_confirmation"))
        self.entry_removal_requested = bool(entry.get("removal_requested_at"))
        self.entry_document = int(entry.get("document_id") or 0)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.spec: dict = {}
        self.fields: dict[str, EntryField] = {}
        self._form_kind = ""
        self.pages = EndlessList(self, self._fetch, self._add)
        self.pages.watch(self.ids.page)

    def on_pre_enter(self, *_args) -> None:
        self.notice = ""
        self.editing = False
        self.load()

    def load(self) -> None:
        kind = self.kind

        def work():
            kinds = profile_kinds()
            return kinds, records_api().entries(kind, limit=PAGE_SIZE, include_hidden=True)

        def shown(result) -> None:
            kinds, page = result
            self.spec = next((k for k in kinds.get("kinds") or [] if k["kind"] == kind), {})
            self.label = self.spec.get("label") or kind
            if self._form_kind != kind:
                self._build_form()
                self._form_kind = kind
            self.pages._take(page, first=True)
            self.loaded = True

        self.pages.generation += 1
        self.call(work, shown)

    def _fetch(self, cursor: str | None) -> dict:
        return records_api().entries(self.kind, cursor=cursor, limit=PAGE_SIZE, include_hidden=True)

    def _add(self, items: list[dict], first: bool) -> None:
        box = self.ids.entries
        if first:
            box.clear_widgets()
        for entry in items:
            row = EntryRow()
            self._fill_row(row, entry)
            row.bind(on_release=lambda row: self.edit(row.entry))
            box.add_widget(row)
        self.empty = not box.children
        self.pages.check()

    def _fill_row(self, row: EntryRow, entry: dict) -> None:
        row.entry = entry
        row.title = entry.get("title") or self.label
        row.detail = "\n".join(entry_lines(entry, self.spec))
        row.source = entry_source(entry)
        badges = row.ids.badges
        badges.clear_widgets()
        for text, tone in entry_badges(entry):
            badges.add_widget(RecordsBadge(text=text, tone=tone))

    def rows(self) -> list[EntryRow]:
        return [w for w in reversed(self.ids.entries.children) if isinstance(w, EntryRow)]

    # -- the form -------------------------------------------------------------------------

    def _build_form(self) -> None:
        box = self.ids.form_fields
        box.clear_widgets()
        self.fields = {}
        for spec in self.spec.get("fields") or []:
            field = EntryField(name=spec["name"], label=spec.get("label") or spec["name"], kind=spec.get("type", "text"),
                               required=bool(spec.get("required")), choices=spec.get("choices") or [],
                               hint=_("JJ/MM/AAAA, MM/AAAA ou AAAA") if spec.get("type") == "date" else "")
            field.build()
            self.fields[spec["name"]] = field
            box.add_widget(field)

    def new(self) -> None:
        self.edit({})

    def edit(self, entry: dict) -> None:
        self.entry = entry
        self.notice = ""
        self.error = ""
        values = entry.get("fields") or {}
        for name, field in self.fields.items():
            field.error = ""
            field.fill(values.get(name))
            field.disabled = bool(entry) and not entry.get("editable")
        self.editing = True
        self.ids.page.scroll_y = 1

    def cancel(self) -> None:
        self.editing = False
        self.error = ""

    def save(self) -> None:
        values = {name: field.value for name, field in self.fields.items()}
        for field in self.fields.values():
            field.error = ""
        kind, entry = self.kind, self.entry
        api = records_api()

        def work() -> dict:
            if entry:
                return api.update_entry(kind, entry["id"], values)  # None clears a field
            return api.add_entry(kind, {k: v for k, v in values.items() if v is not None})

        def saved(result: dict) -> None:
            self.editing = False
            self.notice = (_("Modification enregistrée.") if entry else _("« {title} » a été ajouté(e).").format(
                title=result.get("title") or self.label))
            self.load()

        self.call(work, saved, self._refused)

    def _refused(self, error: ApiError) -> None:
        self.show_error(error)
        for problem in error.errors:
            field = self.fields.get(problem.field or "")
            if field is not None:
                field.error = problem.message

    def set_state(self, state: str) -> None:
        kind, entry = self.kind, self.entry

        def done(_result) -> None:
            self.editing = False
            self.notice = {"hide": _("L'information est masquée : elle n'apparaît plus dans votre profil."),
                           "show": _("L'information est de nouveau affichée dans votre profil."),
                           "confirm": _("Merci, l'information est confirmée.")}[state]
            self.load()

        self.call(lambda: records_api().set_entry_state(kind, entry["id"], state), done)

    def delete(self) -> None:
        kind, entry = self.kind, self.entry

        def done(result: dict) -> None:
            self.editing = False
            self.notice = (_("L'information a été supprimée.") if result.get("status") == "deleted"
                           else _("Votre demande de suppression a été transmise au professionnel qui l'a saisie."))
            self.load()

        self.call(lambda: records_api().delete_entry(kind, entry["id"]), done)
