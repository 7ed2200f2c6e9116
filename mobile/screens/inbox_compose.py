"""Writing: a reply (to the professional who wrote last, or to all of the conversation) or a new
conversation with a professional who already wrote; with files from the phone and documents of the
record. Refusals (replies off, conversation ended, a file of the wrong type or too large) come back
from the server in French and nothing is sent."""

from __future__ import annotations

from pathlib import Path

from kivy.clock import Clock
from kivy.factory import Factory
from kivy.properties import BooleanProperty, DictProperty, ListProperty, OptionProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.filechooser import FileChooserListView
from kivy.uix.modalview import ModalView

from mobile.api import ApiError
from mobile.api.inbox import OutgoingFile
from mobile.i18n import _

from .base import CarnetScreen
from .inbox_common import ChoiceButton, file_size, inbox_api, load_kv

load_kv()

ACCEPTED = ("*.pdf", "*.jpg", "*.jpeg", "*.png", "*.tif", "*.tiff", "*.rtf", "*.txt",
            "*.PDF", "*.JPG", "*.JPEG", "*.PNG", "*.TIF", "*.TIFF", "*.RTF", "*.TXT")


class AttachedRow(BoxLayout):
    """A file or a record document about to be sent, with a way to take it back."""

    name = StringProperty("")
    details = StringProperty("")


class FilePicker(ModalView):
    """Choose a file on the device (the phone's own picker takes this place on Android). Its look is in
    inbox_compose.kv: a light sheet around Kivy's file list, which draws light text on a dark panel."""

    chosen = StringProperty("")

    def __init__(self, on_chosen, start: str | None = None, **kwargs) -> None:
        super().__init__(size_hint=(0.94, 0.86), auto_dismiss=False, background="",
                         background_color=(0.09, 0.09, 0.09, 0.35), **kwargs)
        self.on_chosen = on_chosen
        self.ids.chooser.path = start or str(Path.home())
        self.ids.chooser.filters = list(ACCEPTED)
        self.ids.chooser.bind(selection=self._selected)

    @property
    def chooser(self) -> FileChooserListView:
        return self.ids.chooser

    @property
    def attach_button(self):
        return self.ids.attach

    def _selected(self, _chooser, selection: list[str]) -> None:
        self.chosen = Path(selection[0]).name if selection else ""

    def choose(self) -> None:
        if self.chooser.selection:
            self.dismiss()
            self.on_chosen(self.chooser.selection[0])


class InboxComposeScreen(CarnetScreen):
    mode = OptionProperty("reply", options=("reply", "reply_all", "new"))
    heading = StringProperty("")
    subject_line = StringProperty("")
    thread = DictProperty({})
    recipient_id = StringProperty("")
    files = ListProperty([])          # OutgoingFile
    documents = ListProperty([])      # {"id", "title", "size"}
    picking_document = BooleanProperty(False)
    sent = BooleanProperty(False)

    # -- starting ----------------------------------------------------------------------

    def start_reply(self, thread: dict, to_all: bool = False) -> None:
        self._clear()
        self.mode = "reply_all" if to_all else "reply"
        self.thread = thread
        last_pro = next((m["author"]["name"] for m in reversed(thread["messages"]) if not m["from_you"]),
                        thread["sender"]["name"])
        names = ", ".join(p["name"] for p in thread["participants"])
        self.heading = _("Répondre à tous") if to_all else _("Répondre à {name}").format(name=last_pro)
        self.subject_line = _("Objet : {subject}").format(subject=thread["subject"]) + (
            "\n" + _("Destinataires : {names}").format(names=names) if to_all else "")

    def start_new(self, recipient_id: int | None = None, subject: str = "") -> None:
        """A new conversation; ``recipient_id`` and ``subject`` prefill it (the cancer pathway's care team)."""
        self._clear()
        self.mode = "new"
        self.heading = _("Nouveau message")
        self.subject_line = ""
        self._preset = str(recipient_id) if recipient_id else ""
        if subject and "subject" in self.ids:
            self.ids.subject.text = subject
        api = inbox_api()
        self.call(api.correspondents, self._show_correspondents, self._failed)

    def _clear(self) -> None:
        self.error = ""
        self.thread = {}
        self.recipient_id = ""
        self.files = []
        self.documents = []
        self.picking_document = False
        self.sent = False
        if "body" in self.ids:
            self.ids.body.text = ""
            self.ids.subject.text = ""
            self.ids.recipients.clear_widgets()
            self.ids.record_documents.clear_widgets()
            self._show_attached()

    def _show_correspondents(self, page: dict) -> None:
        container = self.ids.recipients
        container.clear_widgets()
        for pro in page["items"]:
            label = pro["name"] + (f" — {pro['profession']}" if pro.get("profession") else "")
            choice = ChoiceButton(text=label, value=str(pro["professional_id"]))
            choice.bind(on_release=lambda c: self.choose_recipient(c.value))
            container.add_widget(choice)
        if not page["items"]:
            container.add_widget(Factory.MutedText(
                text=_("Aucun professionnel ne vous a encore écrit : vous ne pouvez pas commencer de conversation.")))
        elif getattr(self, "_preset", "") and any(str(p["professional_id"]) == self._preset for p in page["items"]):
            self.choose_recipient(self._preset)
        elif len(page["items"]) == 1:
            self.choose_recipient(str(page["items"][0]["professional_id"]))

    def choose_recipient(self, value: str) -> None:
        self.recipient_id = value
        for choice in self.ids.recipients.children:
            if isinstance(choice, ChoiceButton):
                choice.selected = choice.value == value

    # -- attachments -------------------------------------------------------------------

    def pick_file(self, start: str | None = None) -> FilePicker:
        picker = FilePicker(self.attach_file, start=start)
        picker.open()
        return picker

    def attach_file(self, path: str) -> None:
        try:
            self.files = [*self.files, OutgoingFile.from_path(path)]
        except OSError:
            self._show_attached()
            self.error = _("Ce fichier ne peut pas être lu.")
            return
        self._show_attached()

    def pick_document(self) -> None:
        api = inbox_api()
        self.call(lambda: api.record_documents(limit=30), self._show_record_documents, self._failed)

    def _show_record_documents(self, page: dict) -> None:
        container = self.ids.record_documents
        container.clear_widgets()
        for doc in page["items"]:
            choice = ChoiceButton(text=doc["title"], value=str(doc["id"]))
            choice.bind(on_release=lambda c, d=doc: self.attach_document(d))
            container.add_widget(choice)
        if not page["items"]:
            container.add_widget(Factory.MutedText(text=_("Votre dossier ne contient aucun document.")))
        self.picking_document = True

    def attach_document(self, doc: dict) -> None:
        if all(d["id"] != doc["id"] for d in self.documents):
            self.documents = [*self.documents, {"id": doc["id"], "title": doc["title"], "size": doc.get("size", 0)}]
        self.picking_document = False
        self.ids.record_documents.clear_widgets()
        self._show_attached()

    def remove(self, kind: str, index: int) -> None:
        if kind == "file":
            self.files = [f for i, f in enumerate(self.files) if i != index]
        else:
            self.documents = [d for i, d in enumerate(self.documents) if i != index]
        self._show_attached()

    def _show_attached(self) -> None:
        self.error = ""  # what was refused is gone, or about to be tried again
        Clock.schedule_once(self._top_if_it_fits)
        container = self.ids.attached
        container.clear_widgets()
        entries = [("file", i, f.name, file_size(len(f.content))) for i, f in enumerate(self.files)]
        entries += [("document", i, d["title"], _("de votre dossier")) for i, d in enumerate(self.documents)]
        for kind, index, name, details in entries:
            row = AttachedRow(name=name, details=details)
            row.ids.remove_button.bind(on_release=lambda _b, k=kind, i=index: self.remove(k, i))
            container.add_widget(row)

    def _top_if_it_fits(self, *_args) -> None:
        # A scroll view scrolled down to a banner that is now gone would leave a blank band on top.
        page = self.ids.page
        if page.children and page.children[0].height <= page.height:
            page.scroll_y = 1

    # -- sending -----------------------------------------------------------------------

    def send(self) -> None:
        body = self.ids.body.text.strip()
        files, document_ids = list(self.files), [d["id"] for d in self.documents]
        api = inbox_api()
        if self.mode == "new":
            subject = self.ids.subject.text.strip()
            if not self.recipient_id:
                self.error = _("Choisissez le professionnel à qui écrire.")
                return
            if not subject:
                self.error = _("Indiquez l'objet du message.")
                return
            recipient = int(self.recipient_id)
            work = lambda: api.start_thread(recipient, subject, body, files=files, document_ids=document_ids)  # noqa: E731
        else:
            if not body and not files and not document_ids:
                self.error = _("Écrivez un message ou joignez un fichier.")
                return
            thread_id, to_all = self.thread["id"], self.mode == "reply_all"
            work = lambda: api.reply(thread_id, body, reply_all=to_all, files=files, document_ids=document_ids)  # noqa: E731
        self.call(work, self._sent, self._failed)

    def _sent(self, result: dict) -> None:
        self.sent = True
        thread = self.app.screen("inbox_thread")
        thread.thread_id = result["thread_id"]
        self.app.back("inbox_thread")
        if self.app.manager.current == "inbox_thread":
            thread.refresh()

    def cancel(self) -> None:
        self.app.back("inbox_thread" if self.mode != "new" else "inbox")

    def _failed(self, error: ApiError) -> None:
        if not self.session_refused(error):
            self.show_error(error)
