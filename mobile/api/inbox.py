"""The secure inbox's part of the API client (``/api/v1/inbox``), without Kivy.

It rides on a :class:`CarnetClient` (base URL, language, timeout, the patient's access token) and adds
what the inbox needs beyond JSON: multipart messages with files, and attachment downloads. Every call
is blocking: screens run them off the UI thread.
"""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from .client import CarnetClient

log = logging.getLogger(__name__)

# What a document may be filed under when the patient saves an attachment (the server's list).
SAVE_CATEGORIES = ("CPT_REND", "BIOLOGIE", "RADIO_SC", "ORD_SOIN", "SYNTHESE", "DEPISTAG", "CERT_MED",
                   "DOC_ADM", "AUTR_DOC")


@dataclass(frozen=True)
class OutgoingFile:
    """A file the patient attaches: its name, bytes and (optional) content type."""

    name: str
    content: bytes
    content_type: str | None = None

    @classmethod
    def from_path(cls, path: str | Path) -> OutgoingFile:
        path = Path(path)
        return cls(path.name, path.read_bytes(), mimetypes.guess_type(path.name)[0])


class InboxApi:
    def __init__(self, client: CarnetClient) -> None:
        self.client = client

    # -- threads -----------------------------------------------------------------------

    def threads(self, *, q: str | None = None, archived: bool = False, unread: bool = False, limit: int = 20,
                cursor: str | None = None) -> dict:
        """Unread first, then the latest → ``{items, next_cursor, unread_threads}``."""
        params = {"q": q, "archived": "true" if archived else None, "unread": "true" if unread else None,
                  "limit": limit, "cursor": cursor}
        return self._call("GET", "/inbox/threads", params=params)

    def thread(self, thread_id: int, *, limit: int = 50, cursor: str | None = None) -> dict:
        """A thread with its messages, oldest first; opening it marks it read."""
        return self._call("GET", f"/inbox/threads/{thread_id}", params={"limit": limit, "cursor": cursor})

    def reply(self, thread_id: int, body: str, *, reply_all: bool = False, in_reply_to: int | None = None,
              files: list[OutgoingFile] = (), document_ids: list[int] = ()) -> dict:
        fields = [("body", body), ("reply_all", "true" if reply_all else "false")]
        if in_reply_to is not None:
            fields.append(("in_reply_to", str(in_reply_to)))
        return self._multipart(f"/inbox/threads/{thread_id}/messages", fields, files, document_ids)

    def start_thread(self, professional_id: int, subject: str, body: str, *, files: list[OutgoingFile] = (),
                     document_ids: list[int] = ()) -> dict:
        fields = [("professional_id", str(professional_id)), ("subject", subject), ("body", body)]
        return self._multipart("/inbox/threads", fields, files, document_ids)

    def archive(self, thread_id: int) -> dict:
        return self._call("POST", f"/inbox/threads/{thread_id}/archive")

    def unarchive(self, thread_id: int) -> dict:
        return self._call("POST", f"/inbox/threads/{thread_id}/unarchive")

    def delete(self, thread_id: int) -> None:
        self._call("DELETE", f"/inbox/threads/{thread_id}")

    def correspondents(self, *, limit: int = 50, cursor: str | None = None) -> dict:
        """The professionals the patient may write to (they wrote first)."""
        return self._call("GET", "/inbox/correspondents", params={"limit": limit, "cursor": cursor})

    # -- attachments -------------------------------------------------------------------

    def attachment(self, attachment_id: int) -> bytes:
        return self._call("GET", f"/inbox/attachments/{attachment_id}/content", raw=True)

    def save_attachment(self, attachment_id: int, category: str, title: str | None = None) -> dict:
        """Into the record → ``{document_id, created, title, category, category_label, …}``."""
        body: dict[str, Any] = {"category": category}
        if title:
            body["title"] = title
        return self._call("POST", f"/inbox/attachments/{attachment_id}/save", json=body)

    def record_documents(self, *, limit: int = 30, cursor: str | None = None) -> dict:
        """Documents of the patient's record, to attach one to a message."""
        return self._call("GET", "/record/documents", params={"limit": limit, "cursor": cursor})

    # -- plumbing ----------------------------------------------------------------------

    def _multipart(self, path: str, fields: list[tuple[str, str]], files: list[OutgoingFile],
                   document_ids: list[int]) -> dict:
        # Every part as a file tuple: requests then always sends multipart/form-data (the server
        # refuses a form that is not), even without any attachment.
        parts: list[tuple[str, tuple]] = [(name, (None, value)) for name, value in fields]
        parts += [("document_id", (None, str(doc_id))) for doc_id in document_ids]
        parts += [("file", (f.name, f.content, f.content_type or "application/octet-stream")) for f in files]
        return self._call("POST", path, files=parts)

    def _call(self, method: str, path: str, *, params: dict | None = None, json: dict | None = None,
              files: list | None = None, raw: bool = False) -> Any:
        if raw:
            return self.client.send(method, path, params=params, json=json, accept="*/*").content
        return self.client.call(method, path, params=params, json=json, files=files)
