"""The patient's documents under /api/v1/record/documents: the documents page (items, category counts,
next cursor), detail, download, page images, CDA narrative, upload, delete, removal request, masking,
and the "mask new documents by default" setting; plus the records part of the home summary.

Every read asks ``authorize`` (the one decision point) for the patient's scope, and every lookup goes
through that scope: a document of another patient, or an INVISIBLE_PATIENT one not yet released, is
"not found" — the same answer as a document that does not exist.
"""
from __future__ import annotations

import unicodedata
from typing import Any

from flask import Response, current_app, url_for
from flask.views import MethodView
from sqlalchemy.orm import Session

from backend import web
from backend.db import get_session
from backend.i18n import message
from backend.records.documents import service as docs
from backend.records.documents import schemas as s
from backend.records import vault
from backend.records.documents import viewer
from backend.records.access.authorize import authorize, authorize_document
from backend.records.documents.models import Document
from backend.records.access.policy import Action, Actor, Scope

blp = web.Blueprint("record_documents", __name__, url_prefix="/api/v1/record/documents",
                    description="The patient's documents: list, view, download, upload, masking")

BINARY = web.binary("The document's bytes, as received", docs.SERVED_TYPES | {docs.OPAQUE})
IMAGE = web.binary("The page as an image", ("image/png", "image/jpeg"))

def _scope(session: Session, patient_id: int, action: str) -> Scope:
    return authorize(session, web.current_actor(), patient_id, action)


def _document(session: Session, document_id: int, action: str) -> Document:
    """A document of the record the reader is in, under its decision (a refusal is a 403, a document out of
    their scope the same 404 as a missing one)."""
    return authorize_document(session, web.current_actor(), document_id, action, patient_id=web.current_patient().id)


def upload_max_bytes() -> int:
    return int(current_app.config.get("UPLOAD_MAX_BYTES") or docs.DEFAULT_UPLOAD_MAX_BYTES)


def _item(doc: Document) -> dict[str, Any]:
    author = None
    if doc.author_name or doc.author_rpps or doc.author_organisation:
        author = {"name": doc.author_name, "rpps": doc.author_rpps, "profession": doc.author_profession,
                  "specialty": doc.author_specialty, "organisation": doc.author_organisation}
    return {"id": doc.id, "title": doc.title, "category": doc.category,
            "category_label": message(f"document_category_{doc.category}"), "type_code": doc.type_code,
            "type_label": docs.type_label(doc.type_code), "class_code": doc.class_code, "author": author,
            "service_date": doc.service_date, "submitted_at": doc.submitted_at, "mime_type": doc.mime_type,
            "size": doc.size, "source": doc.source, "own_upload": doc.source == "patient", "masked": doc.masked,
            "removal_requested_at": doc.removal_requested_at}


_ITEM_TIMES = ("service_date", "submitted_at", "removal_requested_at")


def _listed(doc: Document) -> dict[str, Any]:
    """An item of the documents page in its JSON form (``DocumentOut``'s dump, its date-times in ISO 8601)."""
    item = _item(doc)
    for name in _ITEM_TIMES:
        if item[name] is not None:
            item[name] = item[name].isoformat()
    return item


def _view(content: bytes) -> viewer.View:
    try:
        return viewer.inspect(content)
    except viewer.NotViewable:
        return viewer.View("download", "damaged")


def _coded(code: str | None, display: str | None) -> dict[str, str | None] | None:
    return {"code": code, "display": display} if code else None


def _detail(doc: Document, content: bytes) -> dict[str, Any]:
    view = _view(content)
    own = doc.source == "patient"
    return {**_item(doc), "comment": doc.patient_comment, "format_code": doc.format_code,
            "confidentiality": doc.confidentiality, "sha256": doc.sha256,
            # where the care took place (XDS healthcareFacilityTypeCode, practiceSettingCode), as the sender said
            "facility_type": _coded(doc.facility_type_code, doc.facility_type_display),
            "practice_setting": _coded(doc.practice_setting_code, doc.practice_setting_display),
            "viewer": {"kind": view.kind, "source": view.source, "page_count": view.page_count,
                       "page_type": view.page_type},
            "actions": {"delete": own, "request_removal": not own and doc.removal_requested_at is None,
                        "mask": not doc.masked, "unmask": doc.masked}}


def _filters(args: dict[str, Any]) -> docs.ListFilters:
    return docs.ListFilters(categories=frozenset(args["category"]), date_from=args["date_from"],
                            date_to=args["date_to"], author=args["author"], text=args["q"],
                            source="patient" if args["mine"] else None, sort=args["sort"], order=args["order"])


@blp.route("")
class Documents(MethodView):
    @blp.arguments(s.DocumentListArgs, location="query")
    @blp.response(200, s.DocumentPageOut)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    def get(self, args: dict[str, Any]) -> Response:
        """The documents page: one page of documents, counts per category and the next cursor.

        Filters: category (repeatable), from/to (dates), author, q (title or author), mine; sorted by the
        date added (``submitted``) or the date of care (``service``), ``desc`` or ``asc``."""
        session = get_session()
        pid = web.current_patient().id
        filters = _filters(args)
        after = docs.decode_cursor(args["cursor"], filters)
        scope = _scope(session, pid, "document.list")
        page = docs.list_documents(session, scope, filters, limit=args["limit"], after=after)
        counts = docs.category_counts(session, scope, filters)
        # The hottest page of the app answers in its JSON form directly: marshmallow's dump of twenty items
        # cost more than the page's statements. DocumentPageOut still documents it, and
        # tests/test_records_documents.py holds the answer to it.
        return web.json_answer({
            "items": [_listed(d) for d in page.items],
            "next_cursor": docs.encode_cursor(filters, page.next_cursor) if page.next_cursor else None,
            "total": sum(counts.values()),
            "categories": [{"category": c, "label": message(f"document_category_{c}"), "count": counts[c]}
                           for c in docs.CATEGORIES if counts.get(c)]})

    @blp.arguments(s.DocumentUploadIn, location="multipart")
    @blp.response(201, s.DocumentDetailOut)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    @web.writes(Action.DOCUMENT_UPLOAD)
    def post(self, form: dict[str, Any]) -> dict[str, Any]:
        """Add a document (multipart: ``file``; optional ``category``, ``title``, ``comment``, ``service_date``).

        PDF, JPG/JPEG, PNG, TIF/TIFF, RTF or TXT, at most 10 MB (``CARNET_UPLOAD_MAX_BYTES``); the content
        must be what the extension says. A refusal says why, in French, and stores nothing."""
        session = get_session()
        pid = web.current_patient().id
        storage = form["file"]
        limit = upload_max_bytes()
        content = storage.stream.read(limit + 1)
        upload = docs.Upload(filename=storage.filename or "", content=content, declared_type=storage.mimetype,
                             category=form["category"], title=form["title"], comment=form["comment"],
                             service_date=form["service_date"])
        doc = docs.upload_document(session, vault(session), pid, upload, max_bytes=limit)
        session.commit()
        return _detail(doc, content)


@blp.route("/settings")
class Settings(MethodView):
    @blp.response(200, s.DocumentSettings)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    def get(self) -> dict[str, Any]:
        """The documents settings ("mask new documents by default")."""
        return {"mask_new_documents": docs.get_mask_new_documents(get_session(), web.current_patient().id)}

    @blp.arguments(s.DocumentSettings)
    @blp.response(200, s.DocumentSettings)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    @web.writes(Action.DOCUMENT_MASK)
    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Mask new documents by default: every new professional document arrives masked (MASQUE_PS)."""
        session = get_session()
        value = docs.set_mask_new_documents(session, web.current_patient().id, body["mask_new_documents"])
        session.commit()
        return {"mask_new_documents": value}


@blp.route("/<int:document_id>")
class DocumentDetail(MethodView):
    @blp.response(200, s.DocumentDetailOut)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    def get(self, document_id: int) -> dict[str, Any]:
        """One document: metadata, how the app can show it (viewer), what the patient may do with it."""
        session = get_session()
        doc = _document(session, document_id, "document.read")
        return _detail(doc, docs.read_content(session, vault(session), doc))

    @blp.response(204)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    @web.writes(Action.DOCUMENT_DELETE)
    def delete(self, document_id: int) -> None:
        """Delete a document the patient added (others' documents: ask for their removal)."""
        session = get_session()
        docs.delete_upload(session, web.current_patient().id, document_id, actor=web.current_actor())
        session.commit()


@blp.route("/<int:document_id>/content")
@blp.doc(security=[{"bearer": []}], responses={"200": BINARY})
@web.patient_required
def download(document_id: int) -> Response:
    """The original bytes, as an attachment, byte-for-byte as received."""
    session = get_session()
    doc = _document(session, document_id, "document.download")
    content = docs.read_content(session, vault(session), doc)
    response = Response(content, status=200, content_type=docs.served_type(doc.mime_type))
    response.headers["Content-Disposition"] = web.disposition(_filename(doc))
    return _guarded(response)


@blp.route("/<int:document_id>/pages")
@blp.response(200, s.PagesOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def pages(document_id: int) -> dict[str, Any]:
    """How many page images the document has (PDF, CDA level 1 carrying a PDF, images) and their URLs."""
    session = get_session()
    doc = _document(session, document_id, "document.read")
    view = _view(docs.read_content(session, vault(session), doc))
    if view.kind != "pages" or not view.page_count:
        raise viewer.NotViewable()
    return {"page_count": view.page_count, "page_type": view.page_type,
            "pages": [{"number": n, "url": url_for("record_documents.page_image", document_id=doc.id, number=n)}
                      for n in range(1, view.page_count + 1)]}


@blp.route("/<int:document_id>/pages/<int:number>")
@blp.arguments(s.PageImageArgs, location="query")
@blp.doc(security=[{"bearer": []}], responses={"200": IMAGE})
@web.patient_required
def page_image(args: dict[str, Any], document_id: int, number: int) -> Response:
    """Page ``number`` (from 1) as an image: PDF pages rendered as PNG (width capped), images as they are."""
    session = get_session()
    doc = _document(session, document_id, "document.read")
    content = docs.read_content(session, vault(session), doc)
    image, mime = viewer.render_page(content, number, args["width"])
    response = Response(image, status=200, content_type=mime)
    response.headers["Content-Disposition"] = web.disposition(f"page-{number}.{docs.file_extension(mime)}", inline=True)
    return _guarded(response)


@blp.route("/<int:document_id>/narrative")
@blp.response(200, s.NarrativeOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def narrative(document_id: int) -> dict[str, Any]:
    """The readable content of a CDA level 3 (or of a text document): sections of plain-text blocks."""
    session = get_session()
    doc = _document(session, document_id, "document.read")
    result = viewer.narrative(docs.read_content(session, vault(session), doc))
    return {**result.as_dict(), "text": result.plain_text()}


@blp.route("/<int:document_id>/removal-request", methods=["POST"])
@blp.arguments(s.RemovalIn)
@blp.response(200, s.DocumentOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.DOCUMENT_REMOVAL_REQUEST)
def removal_request(body: dict[str, Any], document_id: int) -> dict[str, Any]:
    """Ask for the removal of a document a professional recorded (a request, not a deletion)."""
    session = get_session()
    doc = docs.request_removal(session, web.current_patient().id, document_id, body["reason"],
                             actor=web.current_actor())
    session.commit()
    return _item(doc)


@blp.route("/<int:document_id>/mask", methods=["POST"])
@blp.response(200, s.DocumentOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.DOCUMENT_MASK)
def mask(document_id: int) -> dict[str, Any]:
    """Mask the document from professionals (MASQUE_PS): only its author and the administrator still see it."""
    session = get_session()
    doc = docs.set_masked(session, web.current_patient().id, document_id, True, actor=web.current_actor())
    session.commit()
    return _item(doc)


@blp.route("/<int:document_id>/unmask", methods=["POST"])
@blp.response(200, s.DocumentOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.DOCUMENT_MASK)
def unmask(document_id: int) -> dict[str, Any]:
    """Make a masked document visible again to the professionals who may read the record."""
    session = get_session()
    doc = docs.set_masked(session, web.current_patient().id, document_id, False, actor=web.current_actor())
    session.commit()
    return _item(doc)


def _guarded(response: Response) -> Response:
    # Bytes from others: never sniffed, never run as a page, never cached.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "no-store"
    return response


def _filename(doc: Document) -> str:
    ext = docs.file_extension(doc.mime_type)
    stem = "".join(ch for ch in doc.title if unicodedata.category(ch)[0] not in "CZ" or ch == " ")
    stem = "".join("-" if ch in '\\/:*?"<>|;' else ch for ch in stem).strip(" .-")[:100] or "document"
    return f"{stem}.{ext}"


# --- home ----------------------------------------------------------------------------------------------

def home_section(session: Session, patient_id: int, actor: Actor | None = None) -> dict[str, Any]:
    """The records part of the home summary: documents others added recently (constant query count), as the
    acting person may see them."""
    count, latest = docs.new_documents(session, patient_id, actor=actor)
    return {"new_documents_count": count,
            "new_documents_label": message("home_new_documents", count=count) if count else None,
            "new_documents": [{"id": d.id, "title": d.title, "category": d.category,
                               "category_label": message(f"document_category_{d.category}"),
                               "author_name": d.author_name, "submitted_at": d.submitted_at} for d in latest]}
