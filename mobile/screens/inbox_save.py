"""Save an attachment into the record: the patient chooses the category (and may retitle it); the
record then holds the very same file, as a document they added."""

from __future__ import annotations

from kivy.properties import BooleanProperty, DictProperty, StringProperty

from mobile.api import ApiError
from mobile.i18n import _

from .base import CarnetScreen
from .inbox_common import ChoiceButton, category_labels, file_kind, file_size, inbox_api, load_kv

load_kv()


class InboxSaveScreen(CarnetScreen):
    attachment = DictProperty({})
    filename = StringProperty("")
    category = StringProperty("")
    details = StringProperty("")
    done = StringProperty("")
    saved = BooleanProperty(False)

    def on_pre_enter(self, *_args) -> None:
        self.error = ""
        self.done = ""
        self.saved = False
        self.category = ""
        attachment = self.attachment
        name = self.filename = attachment.get("filename", "")
        self.details = " · ".join(x for x in (file_kind(attachment.get("mime_type")), file_size(attachment.get("size") or 0))
                                  if x)
        self.ids.title.text = name.rsplit(".", 1)[0] if "." in name else name
        grid = self.ids.categories
        grid.clear_widgets()
        for code, label in category_labels().items():
            choice = ChoiceButton(text=label, value=code)
            choice.bind(on_release=lambda c: self.choose(c.value))
            grid.add_widget(choice)

    def choose(self, code: str) -> None:
        self.category = code
        for choice in self.ids.categories.children:
            if isinstance(choice, ChoiceButton):
                choice.selected = choice.value == code

    def save(self) -> None:
        if self.saved:
            self.app.back("inbox_thread")
            return
        if not self.category:
            self.error = _("Choisissez une catégorie de votre dossier.")
            return
        api, attachment_id = inbox_api(), self.attachment["id"]
        category, title = self.category, self.ids.title.text.strip() or None
        self.call(lambda: api.save_attachment(attachment_id, category, title), self._saved, self._failed)

    def _saved(self, result: dict) -> None:
        self.saved = True
        self.ids.title.focus = False
        if result.get("created"):
            self.done = _("« {title} » est enregistré dans votre dossier, rubrique {category}.").format(
                title=result["title"], category=result["category_label"])
        else:
            self.done = _("Ce fichier est déjà dans votre dossier, rubrique {category}.").format(
                category=result["category_label"])

    def _failed(self, error: ApiError) -> None:
        if not self.session_refused(error):
            self.show_error(error)
