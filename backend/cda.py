"""XML and CDA, read safely: every XML the product reads (legacy packages, deposited documents, the viewer,
the profile's extraction from documents) goes through :func:`parse`, and every CDA helper lives here.

lxml is configured so that no entity is ever expanded (internal or external), no DTD is loaded, nothing
is fetched from the network and no "huge tree" is built (libxml2 then caps nesting depth too; ``long_text``
lifts only its 10 MB cap on one text node, for the base64 body of a level-1 CDA, the input size being bounded
by the caller). On top of that, a document that declares entities at all is refused before parsing (that is
how XXE and "billion laughs" arrive), and so is one larger than the given limit. Refusals carry a stable
reason code (the import journal shows it) and a short English explanation that quotes no content.

CDA: the HL7 v3 namespace, the ClinicalDocument also when wrapped in an "auto-presentable" XSLT
stylesheet, and HL7 TS times (``YYYY[MM[DD[HH[MM[SS]]]]][.s][±HHMM]``).
"""
from __future__ import annotations

import datetime as dt
import re

from lxml import etree

MAX_XML_BYTES = 64 * 1024 * 1024  # a CDA with an embedded PDF is a few MB; 64 MB is generous
BOM = b"\xef\xbb\xbf"
HL7 = "urn:hl7-org:v3"
XSL = "http://www.w3.org/1999/XSL/Transform"
CLINICAL_DOCUMENT = f"{{{HL7}}}ClinicalDocument"

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


def _parser(long_text: bool) -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=long_text,
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


def parse(data: bytes, *, max_bytes: int = MAX_XML_BYTES, long_text: bool = False) -> etree._Element:
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
        root = etree.fromstring(body, _parser(long_text))
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


def clinical_document(root: etree._Element) -> etree._Element | None:
    """The ClinicalDocument: the root itself, or the first one inside it (an "auto-presentable" CDA is an
    XSLT stylesheet that embeds it); None if there is none."""
    if root.tag == CLINICAL_DOCUMENT:
        return root
    return next(root.iter(CLINICAL_DOCUMENT), None)


def is_stylesheet(root: etree._Element) -> bool:
    return root.tag in (f"{{{XSL}}}stylesheet", f"{{{XSL}}}transform")


# --- HL7 times ----------------------------------------------------------------------------------------

_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{2}:?\d{2}|Z)?$")


def hl7_time(value: str | None, default_tz: dt.tzinfo = dt.timezone.utc) -> dt.datetime | None:
    """An HL7 TS (``"20241225093000+0100"``, ``"20190526"``) as an aware UTC datetime; None if unreadable.
    A time without an offset is in ``default_tz``: XDS times are UTC by definition, CDA times French."""
    if not value:
        return None
    m = _TS.match(value.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, tz = m.groups()
    try:
        naive = dt.datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0))
    except ValueError:
        return None
    if tz in (None, ""):
        zone = default_tz
    elif tz == "Z":
        zone = dt.timezone.utc
    else:
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        zone = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    return naive.replace(tzinfo=zone).astimezone(dt.timezone.utc)


def hl7_day(value: str | None) -> str | None:
    """The calendar day an HL7 TS is written in (its own, not converted), as an ISO date, or None."""
    m = re.match(r"^(\d{4})(\d{2})?(\d{2})?", value or "")
    if not m:
        return None
    return f"{m.group(1)}-{m.group(2) or '01'}-{m.group(3) or '01'}"
