"""Structured extraction from level-3 CDA bodies: pure functions from a ClinicalDocument element to
profile entries (plain dicts), by section code.

Covered: vaccinations (11369-6), allergies (48765-2), problems and history (11450-4, 11348-0, 46612-8,
10157-6), treatments (10160-0, 10183-2), vital signs (8716-3), and, by document type, reimbursement
history (REMB) and dispensations (60593-1). Entries keep the code, label, date, value and unit; the
label falls back to the narrative the entry points to. Negated statements are skipped.
"""
from __future__ import annotations

from typing import Any

from lxml import etree

from backend.cda import hl7_time
from migration.mapping import PARIS
from migration.readers.cda import NS

SECTION_KIND = {
    "11369-6": "vaccination",
    "48765-2": "allergy",
    "11450-4": "problem", "46612-8": "problem",
    "11348-0": "history", "10157-6": "family_history",
    "10160-0": "treatment", "10183-2": "treatment",
    "8716-3": "measure",
}
DOCUMENT_KIND = {"REMB": "reimbursement", "60593-1": "dispensation"}
LIST_KINDS = ("allergy", "problem", "treatment", "history", "family_history")
MAX_ENTRIES = 2000


def _narrative(section: etree._Element) -> dict[str, str]:
    out: dict[str, str] = {}
    text = section.find("h:text", NS)
    if text is None:
        return out
    for el in text.iter():
        ident = el.get("ID") if isinstance(el.tag, str) else None
        if ident:
            out[ident] = " ".join("".join(el.itertext()).split())
    return out


def _ref_text(el: etree._Element | None, narrative: dict[str, str]) -> str | None:
    if el is None:
        return None
    ref = el.find("h:originalText/h:reference", NS)
    if ref is None:
        ref = el.find("h:reference", NS)
    if ref is not None:
        value = (ref.get("value") or "").lstrip("#")
        return narrative.get(value) or None
    value = " ".join("".join(el.itertext()).split())
    return value or None


def _coded(el: etree._Element | None, narrative: dict[str, str]) -> tuple[str | None, str | None, str | None]:
    if el is None:
        return None, None, None
    code = (el.get("code") or "").strip() or None
    system = (el.get("codeSystem") or "").strip() or None
    label = " ".join((el.get("displayName") or "").split()) or _ref_text(el, narrative)
    return code, system, label


def _date(stmt: etree._Element) -> str | None:
    eff = stmt.find("h:effectiveTime", NS)
    if eff is None:
        return None
    value = eff.get("value")
    if not value:
        low = eff.find("h:low", NS)
        value = low.get("value") if low is not None else None
    if value and len(value.strip()) <= 8:
        when = hl7_time(value.strip()[:8], PARIS)
        # a date without a time stays a date (no shift across midnight by the time zone)
        return f"{value.strip()[:4]}-{value.strip()[4:6] or '01'}-{value.strip()[6:8] or '01'}" if when else None
    when = hl7_time(value, PARIS)
    return when.isoformat() if when else None


def _statements(entry: etree._Element) -> list[etree._Element]:
    """The clinical statements of an entry, unwrapping concern acts and organizers."""
    out = []
    for stmt in entry:
        if not isinstance(stmt.tag, str):
            continue
        name = etree.QName(stmt).localname
        if name in ("act", "organizer"):
            inner = [s for rel in stmt.findall("h:entryRelationship", NS) + stmt.findall("h:component", NS)
                     for s in rel if isinstance(s.tag, str)]
            out.extend(inner or [stmt])
        else:
            out.append(stmt)
    return out


def _material(stmt: etree._Element, narrative: dict[str, str]) -> tuple[str | None, str | None, str | None]:
    for path in ("h:consumable/h:manufacturedProduct/h:manufacturedMaterial", "h:product/h:manufacturedProduct/h:manufacturedMaterial"):
        mat = stmt.find(path, NS)
        if mat is not None:
            code, system, label = _coded(mat.find("h:code", NS), narrative)
            name = " ".join("".join(mat.findtext("h:name", default="", namespaces=NS)).split())
            return code, system, label or name or None
    return None, None, None


def _entry(kind: str, stmt: etree._Element, narrative: dict[str, str]) -> dict[str, Any] | None:
    if (stmt.get("negationInd") or "").lower() == "true":
        return None
    name = etree.QName(stmt).localname
    code = system = label = value = unit = None
    if kind in ("vaccination", "treatment", "dispensation") or name in ("substanceAdministration", "supply"):
        code, system, label = _material(stmt, narrative)
        if label is None:
            code, system, label = _coded(stmt.find("h:code", NS), narrative)
    elif kind == "allergy":
        agent = stmt.find("h:participant/h:participantRole/h:playingEntity", NS)
        if agent is not None:
            code, system, label = _coded(agent.find("h:code", NS), narrative)
            label = label or " ".join(agent.findtext("h:name", default="", namespaces=NS).split()) or None
        if label is None:
            code, system, label = _coded(stmt.find("h:value", NS), narrative)
    elif kind == "measure":
        code, system, label = _coded(stmt.find("h:code", NS), narrative)
        val = stmt.find("h:value", NS)
        if val is not None:
            value = val.get("value")
            unit = val.get("unit")
            if value is None:
                _, _, value = _coded(val, narrative)
    else:
        code, system, label = _coded(stmt.find("h:value", NS), narrative)
        if label is None:
            code, system, label = _coded(stmt.find("h:code", NS), narrative)
        if label is None:
            label = _ref_text(stmt.find("h:text", NS), narrative)
    if not (label or code):
        return None
    return {"kind": kind, "code": code, "system": system, "label": (label or code or "")[:300],
            "date": _date(stmt), "value": value[:64] if value else None, "unit": unit[:32] if unit else None}


def extract_entries(doc: etree._Element, type_code: str | None) -> list[dict[str, Any]]:
    body = doc.find("h:component/h:structuredBody", NS)
    if body is None:
        return []
    whole_kind = DOCUMENT_KIND.get(type_code or "")
    entries: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for section in body.iter("{urn:hl7-org:v3}section"):
        code_el = section.find("h:code", NS)
        section_code = code_el.get("code") if code_el is not None else None
        kind = whole_kind or SECTION_KIND.get(section_code or "")
        if whole_kind == "reimbursement" and section_code == "55112-7":
            continue  # "usage et responsabilités": text only
        if kind is None:
            continue
        narrative = _narrative(section)
        for entry in section.findall("h:entry", NS):
            for stmt in _statements(entry):
                item = _entry(kind, stmt, narrative)
                if item is None:
                    continue
                key = (item["kind"], item["code"], item["label"], item["date"], item["value"])
                if key in seen:
                    continue
                seen.add(key)
                entries.append(item)
                if len(entries) >= MAX_ENTRIES:
                    return entries
    return entries


def list_signature(entries: list[dict[str, Any]], kind: str) -> frozenset[str]:
    """What a document says the patient's list of ``kind`` is (codes, else labels)."""
    return frozenset((e["code"] or e["label"].lower()) for e in entries if e["kind"] == kind)
