"""One conversation: its messages oldest first (opening it reads it: the professional sees when), the
attachments with "save into my record", and what the patient may do: reply, reply to all, archive,
delete. When replies are off or the conversation was ended, the screen says so instead."""

from __future__ import annotations

from kivy.factory import Factory
from kivy.properties import BooleanProperty, DictProperty, NumericProperty, ObjectProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from mobile import theme
from mobile.api import ApiError
from mobile.i18n import _

from .base import CarnetScreen
from .inbox_common import AttachmentRow, inbox_api, load_kv, long_when

load_kv()


class MessageCard(BoxLayout):
    """A message: who and when, the text, the attachments, and for the patient's own, whether it was read."""

    message = DictProperty({})
    author = StringProperty("")
    when = StringProperty("")
    body = StringProperty("")
    receipt = StringProperty("")
    from_you = BooleanProperty(False)

    def on_message(self, _instance, value: dict) -> None:
        self.from_you = bool(value.get("from_you"))
        recipients = ", ".join(value.get("recipients") or [])
        self.author = _("Vous, à {names}").format(names=recipients) if self.from_you and recipients \
            else (value.get("author") or {}).get("name", "")
        self.when = long_when(value.get("sent_at"))
        self.body = value.get("body", "")
        if self.from_you:
            read_at = value.get("read_at")
            self.receipt = _("Lu {when}").format(when=long_when(read_at)) if read_at else _("Envoyé, pas encore lu")
        else:
            self.receipt = ""


class InboxThreadScreen(CarnetScreen):
    thread_id = NumericProperty(0)
    thread = DictProperty({})
    subject = StringProperty("")
    people = StringProperty("")
    notice = StringProperty("")
    can_reply = BooleanProperty(False)
    can_reply_all = BooleanProperty(False)
    archived = BooleanProperty(False)
    confirm_delete = BooleanProperty(False)
    loaded = BooleanProperty(False)
    ready = ObjectProperty(None, allownone=True)  # an attachment kept on the device (mobile.share.KeptFile)

    def on_pre_enter(self, *_args) -> None:
        self.confirm_delete = False
        self.ready = None
        self.refresh()

    def refresh(self) -> None:
        api, thread_id = inbox_api(), self.thread_id
        self.loaded = False
        self.call(lambda: api.thread(thread_id), self._show, self._failed)

    def _show(self, thread: dict) -> None:
        self.thread = thread
        self.subject = thread["subject"]
        names = [p["name"] + (f" ({p['profession']})" if p.get("profession") else "") for p in thread["participants"]]
        establishment = thread["sender"].get("establishment")
        self.people = _("Avec {names}").format(names=", ".join(names)) + (f" · {establishment}" if establishment else "")
        self.notice = thread.get("notice") or ""
        actions = thread["actions"]
        self.can_reply, self.can_reply_all = actions["reply"], actions["reply_all"]
        self.archived = thread["archived"]
        container = self.ids.messages
        container.clear_widgets()
        for message in thread["messages"]:
            card = MessageCard(message=message)
            for attachment in message["attachments"]:
                row = AttachmentRow(attachment=attachment)
                opener = Factory.LinkButton(text=_("Ouvrir"), size_hint_x=1)
                opener.bind(on_release=lambda _b, a=attachment: self.open_attachment(a))
                row.add_widget(opener)
                if attachment.get("saved_document_id") is not None:
                    row.add_widget(Factory.MutedText(text=_("Enregistré dans votre dossier"), color=theme.SUCCESS,
                                                     bold=True))
                elif not attachment.get("from_record"):
                    button = Factory.LinkButton(text=_("Enregistrer dans mon dossier"), size_hint_x=1)
                    button.bind(on_release=lambda _b, a=attachment: self.save(a))
                    row.add_widget(button)
                card.ids.attachments.add_widget(row)
            container.add_widget(card)
        self.loaded = True

    def cards(self) -> list[MessageCard]:
        return [w for w in reversed(self.ids.messages.children) if isinstance(w, MessageCard)]

    # -- actions -----------------------------------------------------------------------

    def reply(self, to_all: bool = False) -> None:
        self.app.screen("inbox_compose").start_reply(self.thread, to_all)
        self.app.show("inbox_compose")

    def open_attachment(self, attachment: dict) -> None:
        """Fetch the file, keep it on the device, and hand it to the platform's viewer (open-with); the card
        under the messages offers to share it too."""
        api, attachment_id = inbox_api(), attachment["id"]
        name, mime = attachment.get("filename") or "piece-jointe", attachment.get("mime_type")

        def fetched(data: bytes) -> None:
            from mobile import share
            from .records_common import saved_file

            self.ready = saved_file("messagerie", name, data, mime)
            share.open_file(self.ready)

        self.call(lambda: api.attachment(attachment_id), fetched, self._failed)

    def save(self, attachment: dict) -> None:
        self.app.screen("inbox_save").attachment = attachment
        self.app.show("inbox_save")

    def toggle_archive(self) -> None:
        api, thread_id, archived = inbox_api(), self.thread_id, self.archived

        def done(item: dict) -> None:
            self.archived = item["archived"]
            self.app.back("inbox")

        self.call(lambda: api.unarchive(thread_id) if archived else api.archive(thread_id), done, self._failed)

    def delete(self) -> None:
        if not self.confirm_delete:
            self.confirm_delete = True
            return
        api, thread_id = inbox_api(), self.thread_id
        self.call(lambda: api.delete(thread_id), lambda _none: self.app.back("inbox"), self._failed)

    def _failed(self, error: ApiError) -> None:
        if not self.session_refused(error):
            self.show_error(error)
