"""Add a document to the record: choose a file (Kivy's file chooser on a desktop), a category, an
optional title, date of care and comment. The server checks the type, the content and the size and
says in French what is wrong; what it accepts opens in the viewer."""

from __future__ import annotations

from pathlib import Path

from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.filechooser import FileChooserController, FileChooserLayout

from mobile.api.records import COMMENT_MAX, UPLOAD_CATEGORIES, UPLOAD_EXTENSIONS
from mobile.i18n import _

from .records_common import RecordsChip, RecordsScreen, file_size, iso_day, load_kv, records_api

load_kv()


def category_label(category: str) -> str:
    return {
        "AUTR_DOC": _("Autre document"),
        "CPT_REND": _("Compte rendu"),
        "ORD_SOIN": _("Ordonnance ou soins"),
        "BIOLOGIE": _("Biologie"),
        "RADIO_SC": _("Imagerie"),
        "SYNTHESE": _("Synthèse"),
        "DEPISTAG": _("Prévention, dépistage"),
        "CERT_MED": _("Certificat"),
        "DOC_ADM": _("Document administratif"),
    }.get(category, category)


class RecordsFileLayout(FileChooserLayout):
    """Kivy's list of files, drawn for this app: dark text on white, rows a finger can hit."""

    VIEWNAME = "list"
    _ENTRY_TEMPLATE = "RecordsFileEntry"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fbind("on_entries_cleared", self.scroll_to_top)

    def scroll_to_top(self, *_args) -> None:
        self.ids.scrollview.scroll_y = 1.0


class RecordsFileChooser(FileChooserController):
    """Kivy's file chooser (desktop) with :class:`RecordsFileLayout`: tap a folder to open it,
    a file to select it."""

    _ENTRY_TEMPLATE = "RecordsFileEntry"


class DocumentUploadScreen(RecordsScreen):
    choosing = BooleanProperty(False)
    chosen = StringProperty("")
    chosen_text = StringProperty("")
    category = StringProperty("AUTR_DOC")
    comment_count = StringProperty("")
    back_target = StringProperty("documents")
    # Where the chooser opens; the patient browses from there.
    start_folder = StringProperty(str(Path.home()))

    def on_kv_post(self, base_widget) -> None:
        box = self.ids.categories
        for category in UPLOAD_CATEGORIES:
            chip = RecordsChip(text=category_label(category), value=category, selected=category == self.category)
            chip.bind(on_release=lambda chip: self.choose_category(chip.value))
            box.add_widget(chip)
        self.ids.chooser.filters = [f"*.{ext}" for ext in UPLOAD_EXTENSIONS] + [
            f"*.{ext.upper()}" for ext in UPLOAD_EXTENSIONS]
        self.ids.chooser.path = self.start_folder
        self.update_count()
        self._layout()

    def on_choosing(self, *_args) -> None:
        self._layout()

    def _layout(self) -> None:
        # The chooser scrolls by itself: it takes the form's place rather than nesting in it.
        body = self.ids.body
        form, picker = self.ids.page, self.ids.picker
        wanted, other = (picker, form) if self.choosing else (form, picker)
        if other.parent is not None:
            body.remove_widget(other)
        if wanted.parent is None:
            body.add_widget(wanted)

    def choose_category(self, category: str) -> None:
        self.category = category
        for chip in self.ids.categories.children:
            chip.selected = chip.value == category

    def on_start_folder(self, *_args) -> None:
        self.ids.chooser.path = self.start_folder

    def open_chooser(self) -> None:
        if self._system_picker():
            return
        chooser = self.ids.chooser
        if not Path(chooser.path).is_dir():
            chooser.path = self.start_folder
        self.error = ""
        self.choosing = True

    def _system_picker(self) -> bool:
        """On a phone, the system's own document picker (Android's, iOS's: the patient's files, Drive, the
        camera roll…) through plyer; the desktop keeps the chooser of this screen."""
        from kivy.utils import platform

        if platform not in ("android", "ios"):
            return False
        try:
            from plyer import filechooser
        except ImportError:
            return False
        from kivy.clock import mainthread

        @mainthread
        def picked(selection) -> None:
            if selection:
                self.choose_file(selection[0])

        try:
            filechooser.open_file(on_selection=picked, multiple=False,
                                  filters=[["Documents", *[f"*.{ext}" for ext in UPLOAD_EXTENSIONS]]])
        except Exception:  # noqa: BLE001 - no picker on this phone: the built-in chooser does the job
            return False
        return True

    def cancel_chooser(self) -> None:
        self.choosing = False

    def take_selection(self) -> None:
        selection = self.ids.chooser.selection
        if not selection or Path(selection[0]).is_dir():
            self.error = _("Touchez un fichier pour le choisir.")
            return
        self.choose_file(selection[0])

    def choose_file(self, path: str) -> None:
        chosen = Path(path)
        self.chosen = str(chosen)
        try:
            size = file_size(chosen.stat().st_size)
        except OSError:
            size = ""
        self.chosen_text = f"{chosen.name} ({size})" if size else chosen.name
        if not self.ids.title.text.strip():
            self.ids.title.text = chosen.stem.replace("_", " ")[:255]
        self.error = ""
        self.choosing = False

    def update_count(self, *_args) -> None:
        self.comment_count = _("{n} / {max} caractères").format(n=len(self.ids.comment.text), max=COMMENT_MAX)

    def send(self) -> None:
        if not self.chosen:
            self.error = _("Choisissez d'abord le fichier à ajouter.")
            return
        try:
            service_date = iso_day(self.ids.service_date.text)
        except ValueError:
            self.error = _("Saisissez la date des soins au format JJ/MM/AAAA.")
            return
        path, category = self.chosen, self.category
        title = self.ids.title.text.strip() or None
        comment = self.ids.comment.text.strip() or None
        self.call(lambda: records_api().upload(path, category=category, title=title, comment=comment,
                                              service_date=service_date), self._sent)

    def _sent(self, document: dict) -> None:
        documents = self.app.screen("documents")
        documents.refresh()
        documents.notice = _("Le document « {title} » a été ajouté à votre dossier.").format(
            title=document.get("title"))
        self.reset()
        self.open("document_viewer", document_id=document["id"], back_target="documents")

    def reset(self) -> None:
        super().reset()
        self.chosen = self.chosen_text = ""
        self.choosing = False
        for name in ("title", "service_date", "comment"):
            self.ids[name].text = ""
        self.choose_category("AUTR_DOC")
