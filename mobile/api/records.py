"""The record's part of the API client, without Kivy: documents, medical profile, directives and
wishes, access and consent, the access history, and the review of the legacy import.

It rides on a :class:`CarnetClient`: JSON calls go through ``CarnetClient._request`` (same base URL,
language, timeout, token and error handling); what JSON cannot carry — page images, downloads and
the multipart upload — goes through :meth:`RecordsApi._bytes`, which shares the client's session and
turns refusals into the same :class:`ApiError`. Every call is blocking: screens run them off the UI
thread.
"""

from __future__ import annotations

import logging
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import requests

from .client import CarnetClient
from .errors import ApiError

log = logging.getLogger(__name__)

# What a patient may file an upload under (backend ``PATIENT_UPLOAD_TYPES``), in the order offered.
UPLOAD_CATEGORIES = ("AUTR_DOC", "CPT_REND", "ORD_SOIN", "BIOLOGIE", "RADIO_SC", "SYNTHESE", "DEPISTAG",
                     "CERT_MED", "DOC_ADM")
UPLOAD_EXTENSIONS = ("pdf", "jpg", "jpeg", "png", "tif", "tiff", "rtf", "txt")
UPLOAD_MAX_BYTES = 10 * 1024 * 1024
COMMENT_MAX = 3000
REMOVAL_REASONS = ("not_mine", "wrong_information", "duplicate", "other")
HISTORY_FORMATS = ("csv", "pdf")
MIGRATION_RUNNING = ("pending", "running")
# An upload may take longer than a JSON call on a phone network.
UPLOAD_TIMEOUT = (5.0, 120.0)


@dataclass(frozen=True)
class Download:
    """A file the server sent as an attachment: its bytes, its name and its type."""

    content: bytes
    filename: str
    content_type: str


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    """Drop what was not chosen; booleans as the API spells them."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None or value == "" or value == [] or value is False:
            continue
        out[key] = "true" if value is True else value
    return out


def _filename(disposition: str | None, fallback: str) -> str:
    """The attachment's name from ``Content-Disposition`` (RFC 6266 ``filename*`` first), made safe
    to write in a folder of ours."""
    name = ""
    if disposition:
        star = re.search(r"filename\*\s*=\s*UTF-8''([^;]+)", disposition, re.IGNORECASE)
        plain = re.search(r'filename\s*=\s*"([^"]*)"', disposition, re.IGNORECASE)
        if star:
            name = unquote(star.group(1).strip())
        elif plain:
            name = plain.group(1)
    name = Path(name.replace("\\", "/")).name.strip(" .")
    return name or fallback


class RecordsApi:
    def __init__(self, client: CarnetClient) -> None:
        self.client = client
        # The profile's kinds as the screens last read them, per language (their labels are translated).
        self.kinds_by_language: dict[str, dict] = {}

    # -- documents ----------------------------------------------------------------------

    def documents(
        self,
        *,
        categories: list[str] | tuple[str, ...] = (),
        q: str | None = None,
        author: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        mine: bool = False,
        sort: str = "submitted",
        order: str = "desc",
        limit: int = 20,
        cursor: str | None = None,
    ) -> dict:
        """The documents page → ``{items, next_cursor, total, categories: [{category, label, count}]}``.
        Dates are ISO (YYYY-MM-DD)."""
        params = {"category": list(categories), "q": q, "author": author, "from": date_from, "to": date_to,
                  "mine": mine, "sort": sort, "order": order, "limit": limit, "cursor": cursor}
        return self._json("GET", "/record/documents", params=params)

    def document(self, document_id: int) -> dict:
        """Metadata, ``viewer`` ({kind: pages|narrative|download, page_count}) and ``actions``."""
        return self._json("GET", f"/record/documents/{document_id}")

    def page_image(self, document_id: int, number: int, width: int | None = None) -> bytes:
        """Page ``number`` (from 1) as PNG or JPEG bytes, rendered by the server."""
        params = {"width": max(100, min(int(width), 2000))} if width else None
        return self._bytes("GET", f"/record/documents/{document_id}/pages/{number}", params=params).content

    def narrative(self, document_id: int) -> dict:
        """A CDA's readable content: ``{title, date, authors, sections: [{title, blocks, sections}]}``."""
        return self._json("GET", f"/record/documents/{document_id}/narrative")

    def content(self, document_id: int) -> Download:
        """The original bytes, as the server names them."""
        return self._bytes("GET", f"/record/documents/{document_id}/content", fallback=f"document-{document_id}")

    def upload(
        self,
        path: str | Path,
        *,
        category: str = "AUTR_DOC",
        title: str | None = None,
        comment: str | None = None,
        service_date: str | None = None,
    ) -> dict:
        """Add a document of the patient's. The server sniffs the content and says why it refuses."""
        path = Path(path)
        declared = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        form = _clean({"category": category, "title": title, "comment": comment, "service_date": service_date})
        with path.open("rb") as stream:
            # Never read more than the limit and a byte: the server refuses the rest anyway.
            content = stream.read(UPLOAD_MAX_BYTES + 1)
        response = self._send("POST", "/record/documents", data=form,
                              files={"file": (path.name, content, declared)}, timeout=UPLOAD_TIMEOUT)
        return self._as_json(response, "POST", "/record/documents")

    def delete_document(self, document_id: int) -> None:
        self._json("DELETE", f"/record/documents/{document_id}")

    def request_removal(self, document_id: int, reason: str) -> dict:
        return self._json("POST", f"/record/documents/{document_id}/removal-request", json={"reason": reason})

    def mask(self, document_id: int) -> dict:
        return self._json("POST", f"/record/documents/{document_id}/mask")

    def unmask(self, document_id: int) -> dict:
        return self._json("POST", f"/record/documents/{document_id}/unmask")

    def document_settings(self) -> dict:
        return self._json("GET", "/record/documents/settings")

    def set_mask_new_documents(self, value: bool) -> dict:
        return self._json("PUT", "/record/documents/settings", json={"mask_new_documents": bool(value)})

    # -- medical profile ----------------------------------------------------------------

    def profile(self) -> dict:
        """The profile page: entries per kind, measures with series, directives, conflicts, views."""
        return self._json("GET", "/record/profile")

    def kinds(self) -> dict:
        """Kinds and their fields (labels, choices), measure types and units, directive contexts."""
        return self._json("GET", "/record/profile/kinds")

    def entries(self, kind: str, *, cursor: str | None = None, limit: int = 20,
                include_hidden: bool = False) -> dict:
        return self._json("GET", f"/record/profile/{kind}",
                          params={"cursor": cursor, "limit": limit, "include_hidden": include_hidden})

    def add_entry(self, kind: str, fields: dict[str, Any]) -> dict:
        return self._json("POST", f"/record/profile/{kind}", json=fields)

    def update_entry(self, kind: str, entry_id: int, fields: dict[str, Any]) -> dict:
        return self._json("PATCH", f"/record/profile/{kind}/{entry_id}", json=fields)

    def delete_entry(self, kind: str, entry_id: int, reason: str | None = None) -> dict:
        """→ ``{status: deleted|removal_requested, entry}``"""
        return self._json("DELETE", f"/record/profile/{kind}/{entry_id}", json={"reason": reason} if reason else None)

    def set_entry_state(self, kind: str, entry_id: int, state: str) -> dict:
        """``state``: hide, show or confirm."""
        if state not in ("hide", "show", "confirm"):
            raise ValueError(f"unknown entry state {state!r}")
        return self._json("POST", f"/record/profile/{kind}/{entry_id}/{state}")

    def add_measure(self, measure: dict[str, Any]) -> dict:
        """``{type, value | systolic+diastolic, unit, measured_at, note}``; ranges checked by the server."""
        return self._json("POST", "/record/profile/measures", json=measure)

    def update_measure(self, measure_id: int, measure: dict[str, Any]) -> dict:
        return self._json("PATCH", f"/record/profile/measures/{measure_id}", json=measure)

    def delete_measure(self, measure_id: int) -> dict:
        return self._json("DELETE", f"/record/profile/measures/{measure_id}")

    def measure_series(self, mtype: str, *, limit: int = 100, cursor: str | None = None) -> dict:
        """One type's history → ``{label, unit, items (newest first), series (time order), next_cursor}``."""
        return self._json("GET", f"/record/profile/measures/{mtype}", params={"limit": limit, "cursor": cursor})

    def dispensed(self, cursor: str | None = None) -> dict:
        return self._json("GET", "/record/profile/dispensed", params={"cursor": cursor})

    def reimbursements(self, kind: str | None = None, cursor: str | None = None, limit: int = 20) -> dict:
        """The last 24 months: ``{since, months, documents, kinds (with counts), episodes, next_cursor}``."""
        return self._json("GET", "/record/profile/reimbursements",
                          params={"kind": kind, "cursor": cursor, "limit": limit})

    def oncology(self, cursor: str | None = None, *, step: str | None = None, limit: int = 20) -> dict:
        """The cancer pathway: ``{started_on, steps (date order), care_team, next_cursor}``."""
        return self._json("GET", "/record/profile/oncology", params={"cursor": cursor, "step": step, "limit": limit})

    def proposals(self, cursor: str | None = None, limit: int = 20) -> dict:
        """Entries documents propose (a vaccination from a dispensed vaccine), to confirm or hide."""
        return self._json("GET", "/record/profile/proposals", params={"cursor": cursor, "limit": limit})

    # -- directives and wishes ----------------------------------------------------------

    def directives(self) -> dict:
        """→ ``{good_health: {label, current, versions}, end_of_life: {…}, organ_donation}``"""
        return self._json("GET", "/record/directives")

    def directive_versions(self, context: str, cursor: str | None = None) -> dict:
        return self._json("GET", f"/record/directives/{context}", params={"cursor": cursor})

    def add_directive(self, context: str, *, text: str | None = None, document_id: int | None = None,
                      withdrawn: bool = False) -> dict:
        body: dict[str, Any] = {"withdrawn": withdrawn}
        if text is not None:
            body["text"] = text
        if document_id is not None:
            body["document_id"] = document_id
        return self._json("POST", f"/record/directives/{context}", json=body)

    def organ_donation_history(self, cursor: str | None = None) -> dict:
        return self._json("GET", "/record/directives/organ-donation", params={"cursor": cursor})

    def set_organ_donation(self, position: str, *, informed_at: str | None = None,
                           comment: str | None = None) -> dict:
        body = {"position": position, **_clean({"informed_at": informed_at, "comment": comment})}
        return self._json("POST", "/record/directives/organ-donation", json=body)

    # -- access and consent -------------------------------------------------------------

    def access(self) -> dict:
        """The access page: switches, médecin traitant, administrator, authorised, blocked, emergencies."""
        return self._json("GET", "/record/access")

    def search_professionals(self, q: str, cursor: str | None = None, limit: int = 20) -> dict:
        """By RPPS (its first digits) or words of the name; each result has its ``standing``."""
        return self._json("GET", "/record/access/professionals",
                          params={"q": q.strip(), "cursor": cursor, "limit": limit})

    def preview(self, professional_id: int) -> dict:
        """What this professional can see: ``{allowed, reason_label, basis, visible, total, categories}``."""
        return self._json("GET", f"/record/access/professionals/{professional_id}/preview")

    def authorise(self, professional_id: int) -> dict:
        return self._json("POST", "/record/access/consents", json={"professional_id": professional_id})

    def revoke(self, professional_id: int) -> None:
        self._json("DELETE", f"/record/access/consents/{professional_id}")

    def consents(self, cursor: str | None = None) -> dict:
        return self._json("GET", "/record/access/consents", params={"cursor": cursor})

    def blocks(self, cursor: str | None = None) -> dict:
        return self._json("GET", "/record/access/blocks", params={"cursor": cursor})

    def block(self, rpps: str) -> dict:
        return self._json("POST", "/record/access/blocks", json={"rpps": rpps.strip()})

    def unblock(self, rpps: str) -> None:
        self._json("DELETE", f"/record/access/blocks/{rpps}")

    def set_medecin_traitant(self, professional_id: int | None) -> dict | None:
        if professional_id is None:
            return self._json("DELETE", "/record/access/medecin-traitant")
        return self._json("PUT", "/record/access/medecin-traitant", json={"professional_id": professional_id})

    def set_administrator(self, professional_id: int | None) -> dict | None:
        if professional_id is None:
            return self._json("DELETE", "/record/access/administrator")
        return self._json("PUT", "/record/access/administrator", json={"professional_id": professional_id})

    def set_emergency_switches(self, password: str, *, samu: bool, btg: bool, masked: bool) -> dict:
        """The three switches, behind the account password (re-entered)."""
        return self._json("PUT", "/record/access/emergency",
                          json={"password": password, "samu": samu, "btg": btg, "masked": masked})

    # -- access history -----------------------------------------------------------------

    @staticmethod
    def _history_params(actors, actions, since, until, emergency) -> dict[str, Any]:
        return {"actor": list(actors), "action": list(actions), "since": since, "until": until,
                "emergency": emergency}

    def history(self, *, actors: list[str] | tuple[str, ...] = (), actions: list[str] | tuple[str, ...] = (),
                since: str | None = None, until: str | None = None, emergency: bool = False,
                cursor: str | None = None, limit: int = 20) -> dict:
        """Every access and action on the record, newest first → ``{items, next_cursor}``."""
        params = {**self._history_params(actors, actions, since, until, emergency), "cursor": cursor, "limit": limit}
        return self._json("GET", "/record/history", params=params)

    def export_history(self, fmt: str, *, actors: list[str] | tuple[str, ...] = (),
                       actions: list[str] | tuple[str, ...] = (), since: str | None = None,
                       until: str | None = None, emergency: bool = False) -> Download:
        """The (filtered) history as CSV or PDF."""
        if fmt not in HISTORY_FORMATS:
            raise ValueError(f"format must be one of {HISTORY_FORMATS}")
        params = {**self._history_params(actors, actions, since, until, emergency), "format": fmt}
        return self._bytes("GET", "/record/history/export", params=params, fallback=f"historique-acces.{fmt}")

    # -- legacy import ------------------------------------------------------------------

    def migration_status(self) -> dict:
        """``{state: none|pending|running|done|no_dossier, total, processed, counts, open_conflicts}``"""
        return self._json("GET", "/migration/status")

    def migration_items(self, status: str | None = None, cursor: str | None = None, limit: int = 20) -> dict:
        """The report: where each item came from and what became of it (imported, duplicate, quarantined)."""
        return self._json("GET", "/migration/items", params={"status": status, "cursor": cursor, "limit": limit})

    def migration_conflicts(self) -> dict:
        return self._json("GET", "/migration/conflicts")

    def decide_conflict(self, kind: str, entry_id: int, decision: str) -> dict:
        """``decision``: confirm (keep it) or hide → the groups still open."""
        return self._json("POST", f"/migration/conflicts/{kind}/{entry_id}", json={"decision": decision})

    def mark_reviewed(self) -> dict:
        return self._json("POST", "/migration/review")

    # -- plumbing -----------------------------------------------------------------------

    def _json(self, method: str, path: str, *, params: dict | None = None, json: dict | None = None) -> Any:
        return self.client.call(method, path, params=_clean(params) if params else None, json=json)

    def _send(self, method: str, path: str, *, params: dict | None = None, data: dict | None = None,
              files: dict | None = None, accept: str = "application/json",
              timeout: Any = None) -> requests.Response:
        return self.client.send(method, path, params=_clean(params or {}) or None, data=data, files=files,
                                accept=accept, timeout=timeout)

    def _as_json(self, response: requests.Response, method: str, path: str) -> Any:
        try:
            return response.json()
        except ValueError:
            log.warning("%s %s answered %s without JSON", method, path, response.status_code)
            raise ApiError.unexpected(self.client.language, response.status_code) from None

    def _bytes(self, method: str, path: str, *, params: dict | None = None, fallback: str = "fichier") -> Download:
        # Offline, a page or a file the patient opened before comes from the device's encrypted copy.
        client = self.client
        if client.offline and isinstance(cached := client.offline_answer(method, path, params), bytes):
            return Download(cached, fallback, "application/octet-stream")
        try:
            response = self._send(method, path, params=params, accept="*/*")
        except ApiError as error:
            if error.is_network and isinstance(cached := client.offline_answer(method, path, params), bytes):
                return Download(cached, fallback, "application/octet-stream")
            raise
        content_type = response.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
        client.offline_keep(method, path, params, response.content)
        return Download(response.content, _filename(response.headers.get("Content-Disposition"), fallback),
                        content_type)


__all__ = ["COMMENT_MAX", "REMOVAL_REASONS", "UPLOAD_CATEGORIES", "Download", "RecordsApi"]
