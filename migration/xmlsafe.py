"""Hardened XML parsing for legacy documents: everything the importer reads goes through here.

lxml is configured so that no entity is ever expanded (internal or external), no DTD is loaded, nothing
is fetched from the network and no "huge tree" is built (libxml2 then caps nesting depth too). On top of that, a document that declares
entities at all is refused before parsing (that is how XXE and "billion laughs" arrive), and so is one
larger than the configured limit. Refusals carry a stable reason code for the import journal.
"""
from __future__ import annotations

import re

from lxml import etree

MAX_XML_BYTES = 64 * 1024 * 1024  # a CDA with an embedded PDF is a few MB; 64 MB is generous

BOM = b"\xef\xbb\xbf"

# The head of a document that declares a DTD internal subset with entities; we look for it anywhere
# in the prolog (before the root element). Also refused: external entity references in a DOCTYPE.
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)


class XmlRefused(ValueError):
    """An XML input refused, with a stable reason code and a short English explanation (no content)."""

    def __init__(self, reason: str, explanation: str) -> None:
        super().__init__(f"{reason}: {explanation}")
        self.reason = reason
        self.explanation = explanation


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           dtd_validation=False, remove_comments=True, remove_pis=True, recover=False,
                           collect_ids=False)


def strip_bom(data: bytes) -> bytes:
    return data[3:] if data.startswith(BOM) else data


def check_prolog(data: bytes) -> None:
    """Refuse DTDs that declare entities (XXE, billion laughs) or point outside (external subset)."""
    head = data[: 1024 * 1024]
    doctype = _DOCTYPE.search(head)
    if doctype is None:
        if _ENTITY.search(head):
            raise XmlRefused("xml_entities", "entity declaration outside a DOCTYPE")
        return
    if _ENTITY.search(data):
        raise XmlRefused("xml_entities", "the document declares XML entities (possible XXE or entity expansion)")
    end = head.find(b">", doctype.end())
    decl = head[doctype.start(): end + 1 if end >= 0 else len(head)]
    if re.search(rb"\b(SYSTEM|PUBLIC)\b", decl) and b"xhtml" not in decl.lower():
        raise XmlRefused("xml_external_dtd", "the document references an external DTD")


def parse(data: bytes, *, max_bytes: int = MAX_XML_BYTES) -> etree._Element:
    """Parse bytes into an element tree, or raise :class:`XmlRefused`.

    Bytes are given to lxml as they are (after the BOM): the encoding comes from the declaration or
    defaults to UTF-8, CRLF is normalised by the parser, a missing declaration is fine.
    """
    if len(data) > max_bytes:
        raise XmlRefused("xml_too_large", f"{len(data)} bytes, limit {max_bytes}")
    body = strip_bom(data)
    if not body.strip():
        raise XmlRefused("xml_empty", "empty file")
    check_prolog(body)
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        msg = str(exc)
        if "ntity" in msg and ("loop" in msg or "amplification" in msg or "xceeded" in msg):
            raise XmlRefused("xml_entities", "entity expansion refused") from None
        if "huge" in msg.lower() or "depth" in msg.lower():
            raise XmlRefused("xml_too_deep", "the document nests too deeply") from None
        raise XmlRefused("xml_malformed", _short(msg)) from None
    except ValueError as exc:  # e.g. unicode strings with an encoding declaration
        raise XmlRefused("xml_malformed", _short(str(exc))) from None
    for _ in root.iter(etree.Entity):
        raise XmlRefused("xml_entities", "unresolved entity reference")
    return root


def _short(message: str) -> str:
    # lxml messages quote positions, never content beyond a token; keep them short anyway.
    return message.splitlines()[0][:160]


def localname(el: etree._Element) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]
