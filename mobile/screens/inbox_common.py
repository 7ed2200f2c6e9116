"""What the inbox's screens share: the inbox API bound to the app's client, rows, short dates, sizes,
and the labels of the record's categories."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from kivy.app import App
from kivy.lang import Builder
from kivy.properties import BooleanProperty, DictProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout

from mobile.api.inbox import InboxApi
from mobile.i18n import _, format_datetime, local, today_local

KV_FILE = str(Path(__file__).with_name("inbox_common.kv"))


def load_kv() -> None:
    if KV_FILE not in Builder.files:
        Builder.load_file(KV_FILE)


def inbox_api() -> InboxApi:
    """The session's InboxApi (the client is replaced when the app is rebuilt)."""
    return App.get_running_app().client.feature(InboxApi)


def category_labels() -> dict[str, str]:
    """The record's categories an attachment may be saved under, as the documents page names them."""
    return {"CPT_REND": _("Comptes rendus"), "BIOLOGIE": _("Biologie"), "RADIO_SC": _("Imagerie"),
            "ORD_SOIN": _("Ordonnances et soins"), "SYNTHESE": _("Synthèses"),
            "DEPISTAG": _("Prévention et dépistage"), "CERT_MED": _("Certificats"),
            "DOC_ADM": _("Documents administratifs"), "AUTR_DOC": _("Autres documents")}


def short_when(iso_timestamp: str | None) -> str:
    """Today: the time; otherwise the date (the list's right-hand column)."""
    if not iso_timestamp:
        return ""
    moment = local(dt.datetime.fromisoformat(iso_timestamp.replace("Z", "+00:00")))
    if moment.date() == today_local():
        return moment.strftime("%H:%M")
    return moment.strftime("%d/%m/%Y")


def long_when(iso_timestamp: str | None) -> str:
    return format_datetime(iso_timestamp)


def file_size(size: int) -> str:
    if size < 1024:
        return _("{n} o").format(n=size)
    if size < 1024 * 1024:
        return _("{n} Ko").format(n=round(size / 1024))
    return _("{n} Mo").format(n=f"{size / (1024 * 1024):.1f}".replace(".", ","))


KINDS = {"application/pdf": "PDF", "image/jpeg": "JPEG", "image/png": "PNG", "image/tiff": "TIFF",
         "application/rtf": "RTF", "text/rtf": "RTF", "text/plain": "TXT", "text/xml": "XML", "application/xml": "XML",
         "application/hl7-v3+xml": "XML"}


def file_kind(mime_type: str | None) -> str:
    """'application/pdf' → 'PDF' (what a patient calls a file)."""
    mime = (mime_type or "").lower()
    return KINDS.get(mime, mime.rsplit("/", 1)[-1].upper())


def sender_line(sender: dict) -> str:
    parts = [sender.get("name") or ""]
    where = sender.get("establishment") or sender.get("organisation")
    if where:
        parts.append(where)
    return " · ".join(p for p in parts if p)


class ThreadRow(ButtonBehavior, BoxLayout):
    """One conversation in the list: sender, date, subject (bold when unread), the start of the last
    message, attachments and whether one may still answer; tapping opens it."""

    thread = DictProperty({})
    sender = StringProperty("")
    when = StringProperty("")
    subject = StringProperty("")
    preview = StringProperty("")
    status = StringProperty("")
    unread = BooleanProperty(False)

    def on_thread(self, _instance, value: dict) -> None:
        self.sender = sender_line(value.get("sender") or {})
        self.when = short_when(value.get("last_message_at"))
        self.subject = value.get("subject", "")
        prefix = _("Vous : ") if value.get("last_message_from_you") else ""
        self.preview = prefix + value.get("preview", "")
        self.unread = bool(value.get("unread"))
        notes = []
        count = value.get("attachment_count") or 0
        if count:
            notes.append(_("1 pièce jointe") if count == 1 else _("{n} pièces jointes").format(n=count))
        if value.get("ended"):
            notes.append(_("Conversation clôturée"))
        elif not value.get("replies_allowed", True):
            notes.append(_("Réponses désactivées"))
        self.status = " · ".join(notes)


class AttachmentRow(BoxLayout):
    """An attachment of a message, with what the patient may do with it."""

    attachment = DictProperty({})
    name = StringProperty("")
    details = StringProperty("")
    saved = BooleanProperty(False)

    def on_attachment(self, _instance, value: dict) -> None:
        self.name = value.get("filename", "")
        origin = _("de votre dossier") if value.get("from_record") else ""
        self.details = " · ".join(x for x in (file_kind(value.get("mime_type")), file_size(value.get("size") or 0),
                                             origin) if x)
        self.saved = value.get("saved_document_id") is not None


class Collapsible(BoxLayout):
    """A part of a screen shown or not: its widgets are removed rather than hidden (a hidden widget
    would still take room, and a disabled one still swallows the taps that land on it)."""

    shown = BooleanProperty(True)

    def on_kv_post(self, base_widget) -> None:
        self._kept = list(reversed(self.children))
        self._apply()

    def on_shown(self, *_args) -> None:
        self._apply()

    def _apply(self) -> None:
        kept = getattr(self, "_kept", None)
        if kept is None:
            return
        for widget in kept:
            if self.shown and widget.parent is None:
                self.add_widget(widget)
            elif not self.shown and widget.parent is self:
                self.remove_widget(widget)


class ChoiceButton(ButtonBehavior, BoxLayout):
    """A choice among a few (a folder, a recipient, a category): filled when chosen."""

    text = StringProperty("")
    selected = BooleanProperty(False)
    value = StringProperty("")
