"""What the app needs to show a document: PDF pages as PNG images, the narrative of a CDA level 3 as
plain text in a small block structure, the PDF or text inside a CDA level 1, images as they are.

Everything here works on bytes the caller has already decrypted, and trusts nothing in them: the kind
is sniffed from the content (never from the declared type), XML is parsed with entities, DTDs and the
network off, and every output is bounded (page images at a capped size, narrative text capped). No
markup passes through: the narrative comes out as plain strings (an element outside the CDA narrative
vocabulary, a ``<script>`` say, is dropped with its text), and the app lays out paragraphs, lists and
tables itself. No Flask, no database.
"""
from __future__ import annotations

import base64
import binascii
import io
import math
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from backend.cda import HL7, XmlRefused, clinical_document, hl7_day
from backend.cda import parse as parse_xml
from backend.errors import DomainError

PDF, PNG, JPEG, TIFF, RTF, XML, TEXT = ("application/pdf", "image/png", "image/jpeg", "image/tiff",
                                        "application/rtf", "text/xml", "text/plain")

# Bounds: a CDA level 1 carrying a 10 MB PDF is ~14 MB of base64; nothing legitimate is bigger than this.
MAX_XML_BYTES = 40 * 1024 * 1024
MAX_TEXT_BYTES = 5 * 1024 * 1024
MAX_NARRATIVE_CHARS = 400_000
MAX_BLOCKS = 4000
MAX_SECTION_DEPTH = 12
# Page images: the width the app asks for is capped, and so is the pixel count (a poster-sized page).
DEFAULT_WIDTH = 1200
MAX_WIDTH = 2000
MAX_PIXELS = 2000 * 2900
MAX_SCALE = 4.0
MAX_IMAGE_PIXELS = 60_000_000  # what a TIFF may declare before we refuse to decode it

# pdfium is not thread-safe: one call at a time per process (web threads share it).
_PDFIUM_LOCK = threading.Lock()


class NotViewable(DomainError):
    """The document cannot be shown in the app (it can still be downloaded)."""

    status = 409

    def __init__(self) -> None:
        super().__init__("document_not_viewable")


class PageNotFound(DomainError):
    status = 404

    def __init__(self, page_count: int) -> None:
        super().__init__("document_page_not_found", page_count=page_count)


# --- sniffing ---------------------------------------------------------------------------------------

def sniff(content: bytes) -> str | None:
    """The type the bytes really are (magic numbers), or None. Text is UTF-8 (or Windows-1252) with no NUL."""
    head = content[:16]
    if content[:5] == b"%PDF-":
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"II*\x00") or head.startswith(b"MM\x00*"):
        return TIFF
    if head.startswith(b"{\\rtf"):
        return RTF
    stripped = content.lstrip(b"\xef\xbb\xbf").lstrip()
    if stripped.startswith(b"<") and _looks_like_text(content[:65536]):
        return XML
    if _looks_like_text(content[:65536]):
        return TEXT
    return None


def _looks_like_text(sample: bytes) -> bool:
    if b"\x00" in sample:
        return False
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut by the sample's end is still UTF-8
        if exc.start < len(sample) - 3:
            try:
                text = sample.decode("cp1252")
            except UnicodeDecodeError:
                return False
        else:
            text = sample[:exc.start].decode("utf-8")
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\r\n\t\f")
    return controls <= max(2, len(text) // 200)


def decode_text(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")


# --- what the viewer will show -----------------------------------------------------------------------

@dataclass(frozen=True)
class View:
    """How the app shows a document.

    kind: ``pages`` (PDF, or images: page images), ``narrative`` (CDA level 3 or text: sections),
    ``download`` (anything else: the app offers the download). ``source`` says what was found
    (pdf, image, tiff, cda1-pdf, cda1-text, cda3, text, rtf, xml, unknown).
    """

    kind: str
    source: str
    page_count: int | None = None
    page_type: str | None = None  # the content type of page images
    title: str | None = None      # from a CDA header


def inspect(content: bytes) -> View:
    kind = sniff(content)
    if kind == PDF:
        return View("pages", "pdf", _pdf_page_count(content), PNG)
    if kind in (PNG, JPEG):
        return View("pages", "image", 1, kind)
    if kind == TIFF:
        return View("pages", "tiff", _tiff_frame_count(content), PNG)
    if kind == TEXT:
        return View("narrative", "text")
    if kind == RTF:
        return View("download", "rtf")
    if kind == XML:
        try:
            cda = parse_cda(content)
        except NotViewable:
            return View("download", "xml")
        title = _text(cda.find(f"{{{HL7}}}title"))
        body = cda.find(f"{{{HL7}}}component/{{{HL7}}}nonXMLBody")
        if body is None:
            return View("narrative", "cda3", title=title or None)
        try:
            mime, data = _nonxml_content(body)
        except NotViewable:
            return View("download", "cda1", title=title or None)
        inner = sniff(data)
        if inner == PDF:
            return View("pages", "cda1-pdf", _pdf_page_count(data), PNG, title or None)
        if inner in (PNG, JPEG):
            return View("pages", "cda1-image", 1, inner, title or None)
        if inner == TIFF:
            return View("pages", "cda1-tiff", _tiff_frame_count(data), PNG, title or None)
        if inner == TEXT and mime in (TEXT, None):
            return View("narrative", "cda1-text", title=title or None)
        return View("download", "cda1", title=title or None)
    return View("download", "unknown")


def viewable_payload(content: bytes) -> tuple[str | None, bytes]:
    """The bytes the viewer works on: the document itself, or what a CDA level 1 carries."""
    kind = sniff(content)
    if kind != XML:
        return kind, content
    cda = parse_cda(content)
    body = cda.find(f"{{{HL7}}}component/{{{HL7}}}nonXMLBody")
    if body is None:
        return XML, content
    _mime, data = _nonxml_content(body)
    return sniff(data), data


def page_count(content: bytes) -> int:
    view = inspect(content)
    if view.kind != "pages" or view.page_count is None:
        raise NotViewable()
    return view.page_count


def render_page(content: bytes, number: int, width: int | None = None) -> tuple[bytes, str]:
    """Page ``number`` (1-based) as an image: (bytes, content type). PNG/JPEG images come back as they are."""
    width = max(100, min(int(width or DEFAULT_WIDTH), MAX_WIDTH))
    kind, data = viewable_payload(content)
    if kind == PDF:
        return _render_pdf_page(data, number, width), PNG
    if kind in (PNG, JPEG):
        if number != 1:
            raise PageNotFound(1)
        return data, kind
    if kind == TIFF:
        return _render_tiff_frame(data, number, width), PNG
    raise NotViewable()


# --- PDF (pypdfium2) ---------------------------------------------------------------------------------

def _open_pdf(data: bytes) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        raise NotViewable() from None


def _pdf_page_count(data: bytes) -> int:
    with _PDFIUM_LOCK:
        pdf = _open_pdf(data)
        try:
            return len(pdf)
        finally:
            pdf.close()


def _render_pdf_page(data: bytes, number: int, width: int) -> bytes:
    with _PDFIUM_LOCK:
        pdf = _open_pdf(data)
        try:
            count = len(pdf)
            if not 1 <= number <= count:
                raise PageNotFound(count)
            page = pdf[number - 1]
            try:
                w, h = page.get_size()
                if w <= 0 or h <= 0:
                    raise NotViewable()
                scale = min(width / w, math.sqrt(MAX_PIXELS / (w * h)), MAX_SCALE)
                image = page.render(scale=scale, may_draw_forms=True).to_pil()
            finally:
                page.close()
        finally:
            pdf.close()
    return _png(image)


def pdf_is_readable(data: bytes) -> bool:
    """A PDF that opens (not damaged, not password-protected) and has at least one page."""
    try:
        return _pdf_page_count(data) >= 1
    except NotViewable:
        return False


# --- images (Pillow) ---------------------------------------------------------------------------------

def _open_image(data: bytes) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError):
        raise NotViewable() from None
    if image.width * image.height > MAX_IMAGE_PIXELS:
        raise NotViewable()
    return image


def image_is_readable(data: bytes) -> bool:
    from PIL import Image

    try:
        image = _open_image(data)
        image.verify()
    except (NotViewable, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False
    return True


def _tiff_frame_count(data: bytes) -> int:
    image = _open_image(data)
    return int(getattr(image, "n_frames", 1))


def _render_tiff_frame(data: bytes, number: int, width: int) -> bytes:
    image = _open_image(data)
    count = int(getattr(image, "n_frames", 1))
    if not 1 <= number <= count:
        raise PageNotFound(count)
    try:
        image.seek(number - 1)
        frame = image.convert("RGB")
    except (OSError, ValueError):
        raise NotViewable() from None
    if frame.width > width:
        frame = frame.resize((width, max(1, round(frame.height * width / frame.width))))
    return _png(frame)


def _png(image: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# --- CDA ---------------------------------------------------------------------------------------------

def parse_cda(content: bytes) -> etree._Element:
    """The ClinicalDocument element (also when wrapped in an "auto-presentable" XSLT stylesheet), read by the
    one hardened parser (``backend.cda``) with one text node allowed past 10 MB (the base64 of a level 1)."""
    try:
        root = parse_xml(content, max_bytes=MAX_XML_BYTES, long_text=True)
    except XmlRefused:
        raise NotViewable() from None
    if root.getroottree().docinfo.doctype:
        raise NotViewable()  # a CDA never declares a DTD: such a file is not one we read
    found = clinical_document(root)
    if found is None:
        raise NotViewable()
    return found


def _nonxml_content(body: etree._Element) -> tuple[str | None, bytes]:
    text = body.find(f"{{{HL7}}}text")
    if text is None:
        raise NotViewable()
    mime = (text.get("mediaType") or "").strip().lower() or None
    raw = "".join(text.itertext()) if text.find(f"{{{HL7}}}reference") is None else ""
    if not raw.strip():
        raise NotViewable()  # an external reference: we never fetch it
    if (text.get("representation") or "TXT").upper() == "B64":
        compact = "".join(raw.split())
        compact += "=" * (-len(compact) % 4)  # some producers drop the padding
        try:
            return mime, base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise NotViewable() from None
    return mime, raw.encode("utf-8")


def cda_embedded(content: bytes) -> tuple[str | None, bytes] | None:
    """A CDA level 1's payload as (sniffed type, bytes), or None for a level 3."""
    cda = parse_cda(content)
    body = cda.find(f"{{{HL7}}}component/{{{HL7}}}nonXMLBody")
    if body is None:
        return None
    _mime, data = _nonxml_content(body)
    return sniff(data), data


# --- narrative -------------------------------------------------------------------------------------

_INLINE = {"content", "linkHtml", "sub", "sup", "footnote", "caption", "br", "footnoteRef"}
_BLOCK = {"paragraph", "list", "table"}
_NARRATIVE = _INLINE | _BLOCK | {"item", "thead", "tbody", "tfoot", "tr", "th", "td", "col", "colgroup",
                                 "renderMultiMedia", "text"}
_BR = "\u2028"
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0]+")


@dataclass
class _Budget:
    chars: int = MAX_NARRATIVE_CHARS
    blocks: int = MAX_BLOCKS
    truncated: bool = False

    def take(self, text: str) -> str:
        if self.chars <= 0:
            self.truncated = True
            return ""
        if len(text) > self.chars:
            self.truncated = True
            text = text[: self.chars]
        self.chars -= len(text)
        return text

    def block(self) -> bool:
        if self.blocks <= 0:
            self.truncated = True
            return False
        self.blocks -= 1
        return True


def _local(el: Any) -> str | None:
    tag = el.tag
    if not isinstance(tag, str):
        return None  # comments, processing instructions
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return name if ns == HL7 else None  # another namespace (xhtml, svg…) is not narrative
    return tag


def _clean(text: str) -> str:
    """Plain text: whitespace collapsed (explicit line breaks kept), control characters removed."""
    text = "".join(ch for ch in text if ch == _BR or unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs")
                   or ch in "\t\n\r")
    text = _SPACES.sub(" ", text)
    lines = [line.strip() for line in text.split(_BR)]
    return "\n".join(lines).strip("\n ").strip()


def _inline_parts(el: Any, out: list[str], depth: int = 0) -> None:
    if depth > 64:
        return
    if el.text:
        out.append(el.text)
    for child in el:
        name = _local(child)
        if name == "br":
            out.append(_BR)
        elif name == "list":
            for item in child:
                if _local(item) == "item":
                    out.append(_BR + "• ")
                    _inline_parts(item, out, depth + 1)
            out.append(_BR)
        elif name in ("paragraph", "tr", "item"):
            out.append(_BR)
            _inline_parts(child, out, depth + 1)
            out.append(_BR)
        elif name in ("td", "th"):
            _inline_parts(child, out, depth + 1)
            out.append(" ")
        elif name in ("renderMultiMedia", "footnoteRef") or name is None or name not in _NARRATIVE:
            pass  # media, references and anything outside the narrative vocabulary: not shown
        else:
            _inline_parts(child, out, depth + 1)
        if child.tail:
            out.append(child.tail)


def _inline(el: Any) -> str:
    parts: list[str] = []
    _inline_parts(el, parts)
    return _clean("".join(parts))


def _table(el: Any, budget: _Budget) -> dict[str, Any] | None:
    header: list[list[str]] = []
    rows: list[list[str]] = []
    caption = None

    def row_cells(tr: Any) -> list[str]:
        return [budget.take(_inline(cell)) for cell in tr if _local(cell) in ("td", "th")]

    for child in el:
        name = _local(child)
        if name == "caption":
            caption = budget.take(_inline(child)) or None
        elif name == "thead":
            header.extend(row_cells(tr) for tr in child if _local(tr) == "tr")
        elif name in ("tbody", "tfoot"):
            rows.extend(row_cells(tr) for tr in child if _local(tr) == "tr")
        elif name == "tr":
            cells = [c for c in child if _local(c) in ("td", "th")]
            if not rows and cells and all(_local(c) == "th" for c in cells):
                header.append(row_cells(child))
            else:
                rows.append(row_cells(child))
    if not header and not rows:
        return None
    return {"type": "table", "caption": caption, "header": header, "rows": rows}


def _blocks(el: Any, budget: _Budget) -> list[dict[str, Any]]:
    """A ``<text>`` (or ``<item>``) element as blocks: paragraph, list, table."""
    blocks: list[dict[str, Any]] = []
    pending: list[str] = []

    def flush() -> None:
        text = _clean("".join(pending))
        pending.clear()
        if text and budget.block():
            blocks.append({"type": "paragraph", "text": budget.take(text)})

    if el.text:
        pending.append(el.text)
    for child in el:
        name = _local(child)
        if name == "paragraph":
            flush()
            text = _inline(child)
            if text and budget.block():
                blocks.append({"type": "paragraph", "text": budget.take(text)})
        elif name == "list":
            flush()
            items = [budget.take(_inline(item)) for item in child if _local(item) == "item"]
            caption = next((_inline(c) for c in child if _local(c) == "caption"), None)
            items = [i for i in items if i]
            if items and budget.block():
                blocks.append({"type": "list", "ordered": child.get("listType") == "ordered",
                               "caption": caption or None, "items": items})
        elif name == "table":
            flush()
            table = _table(child, budget)
            if table and budget.block():
                blocks.append(table)
        elif name == "br":
            pending.append(_BR)
        elif name in _INLINE and name != "footnoteRef":
            parts: list[str] = []
            _inline_parts(child, parts)
            pending.append("".join(parts))
        # renderMultiMedia, footnoteRef and foreign elements are not shown
        if child.tail:
            pending.append(child.tail)
    flush()
    return blocks


def _section(el: Any, budget: _Budget, depth: int) -> dict[str, Any] | None:
    if depth > MAX_SECTION_DEPTH:
        budget.truncated = True
        return None
    title_el = el.find(f"{{{HL7}}}title")
    code_el = el.find(f"{{{HL7}}}code")
    text_el = el.find(f"{{{HL7}}}text")
    title = budget.take(_inline(title_el)) if title_el is not None else ""
    if not title and code_el is not None:
        title = budget.take(_clean(code_el.get("displayName") or ""))
    blocks = _blocks(text_el, budget) if text_el is not None else []
    subsections = []
    for comp in el.findall(f"{{{HL7}}}component"):
        sub = comp.find(f"{{{HL7}}}section")
        if sub is not None:
            rendered = _section(sub, budget, depth + 1)
            if rendered is not None:
                subsections.append(rendered)
    if not title and not blocks and not subsections:
        return None
    return {"title": title or None, "code": code_el.get("code") if code_el is not None else None,
            "blocks": blocks, "sections": subsections}


def _text(el: Any) -> str:
    return _inline(el) if el is not None else ""


def _person(el: Any) -> str:
    if el is None:
        return ""
    name = el.find(f"{{{HL7}}}name")
    if name is None:
        return ""
    parts = [_inline(p) for kind in ("prefix", "given", "family") for p in name if _local(p) == kind]
    return _clean(" ".join(p for p in parts if p)) or _inline(name)


@dataclass
class Narrative:
    title: str | None
    date: str | None
    document_type: str | None
    authors: list[dict[str, str | None]] = field(default_factory=list)
    custodian: str | None = None
    sections: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "date": self.date, "document_type": self.document_type,
                "authors": self.authors, "custodian": self.custodian, "sections": self.sections,
                "truncated": self.truncated}

    def plain_text(self) -> str:
        lines: list[str] = []

        def walk(section: dict[str, Any], level: int) -> None:
            if section.get("title"):
                lines.append(section["title"].upper() if level == 0 else section["title"])
            for block in section["blocks"]:
                if block["type"] == "paragraph":
                    lines.append(block["text"])
                elif block["type"] == "list":
                    lines.extend(f"• {item}" for item in block["items"])
                else:
                    for row in block["header"] + block["rows"]:
                        lines.append(" | ".join(row))
            for sub in section["sections"]:
                walk(sub, level + 1)
            lines.append("")

        for section in self.sections:
            walk(section, 0)
        return "\n".join(lines).strip()


def narrative(content: bytes) -> Narrative:
    """The readable text of a CDA level 3 (or of a CDA level 1 carrying text, or of a text file)."""
    budget = _Budget()
    kind = sniff(content)
    if kind == TEXT:
        return _text_narrative(content, budget, None)
    if kind != XML:
        raise NotViewable()
    cda = parse_cda(content)
    title = _text(cda.find(f"{{{HL7}}}title")) or None
    code = cda.find(f"{{{HL7}}}code")
    effective = cda.find(f"{{{HL7}}}effectiveTime")
    authors = []
    for author in cda.findall(f"{{{HL7}}}author")[:10]:
        assigned = author.find(f"{{{HL7}}}assignedAuthor")
        if assigned is None:
            continue
        org = assigned.find(f"{{{HL7}}}representedOrganization/{{{HL7}}}name")
        name = _person(assigned.find(f"{{{HL7}}}assignedPerson"))
        if name or org is not None:
            authors.append({"name": name or None, "organisation": _text(org) or None})
    custodian = cda.find(f"{{{HL7}}}custodian/{{{HL7}}}assignedCustodian/"
                         f"{{{HL7}}}representedCustodianOrganization/{{{HL7}}}name")
    result = Narrative(title=title, date=hl7_day(effective.get("value") if effective is not None else None),
                       document_type=(code.get("displayName") if code is not None else None) or None,
                       authors=authors, custodian=_text(custodian) or None)
    body = cda.find(f"{{{HL7}}}component/{{{HL7}}}nonXMLBody")
    if body is not None:
        _mime, data = _nonxml_content(body)
        if sniff(data) != TEXT:
            raise NotViewable()
        inner = _text_narrative(data, budget, title)
        result.sections, result.truncated = inner.sections, inner.truncated
        return result
    structured = cda.find(f"{{{HL7}}}component/{{{HL7}}}structuredBody")
    if structured is None:
        raise NotViewable()
    for comp in structured.findall(f"{{{HL7}}}component"):
        section = comp.find(f"{{{HL7}}}section")
        if section is not None:
            rendered = _section(section, budget, 0)
            if rendered is not None:
                result.sections.append(rendered)
    result.truncated = budget.truncated
    return result


def _text_narrative(content: bytes, budget: _Budget, title: str | None) -> Narrative:
    if len(content) > MAX_TEXT_BYTES:
        content = content[:MAX_TEXT_BYTES]
        budget.truncated = True
    text = decode_text(content).replace("\r\n", "\n").replace("\r", "\n")
    blocks = []
    for chunk in re.split(r"\n\s*\n", text):
        cleaned = "\n".join(_clean(line) for line in chunk.split("\n")).strip()
        if cleaned and budget.block():
            blocks.append({"type": "paragraph", "text": budget.take(cleaned)})
    sections = [{"title": None, "code": None, "blocks": blocks, "sections": []}] if blocks else []
    return Narrative(title=title, date=None, document_type=None, sections=sections, truncated=budget.truncated)
