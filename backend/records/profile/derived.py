"""Profile entries read from the documents that carry them, as the documents enter the record.

``store_document`` calls :func:`derive_from_document` for every new professional or legacy document, so
an ITI-65 deposit and the legacy import of the same document give the same entries:

- **implanted medical devices** (DP, domain.md) from the CI-SIS entry FR-Dispositif-medical
  (templateId ``1.2.250.1.213.1.1.3.20``, a ``supply`` in EVN mood, in the section 46264-8
  "Dispositifs médicaux") and its legacy form (organizer ``1.2.250.1.213.1.1.3.2`` of the 2.x volets).
  In an operative report, a discharge letter, a hospital report or an implant card the section lists what
  was implanted; in a summary (IPS, VSM) it lists every device, and only implantable ones are taken (EMDN
  categories J "active implantable" and P "implantable prosthetic and osteosynthesis", or a legacy
  "implantable" type). A prescription's devices (INT mood) and the insurer's reimbursed devices are not
  implants. Each becomes an ``implant`` entry authored by the document's author, linked to the document.
- **vaccinations proposed from dispensing**: an eDISP-MED item whose product is a vaccine (ATC J07, or by
  name when the item has no ATC code) proposes a ``vaccination`` entry (conflict group ``proposal:…``)
  that the patient confirms or hides; only confirmed ones count for the prevention calendar.

An entry follows its document's visibility: nothing is derived from a document still hidden from the
patient (INVISIBLE_PATIENT: on its release) or from one hidden from legal representatives (profile entries
cannot be); an entry read from a masked document (MASQUE_PS) is hidden (the patient sees it among hidden
entries and may show it), so professionals who may not see the document do not read it in the profile.

Entries are idempotent by ``source_key``: a device is identified by its category and implant date (and
its unique identifier, lot or serial when the document gives one), so the same implant told by two
documents is one entry; a re-deposit or a re-import adds nothing. Parsing uses the hardened parser of
``profile/documents.py``; only the few document types that carry such entries are parsed.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from typing import Any

from lxml import etree
from sqlalchemy.orm import Session

from backend.records.profile import service as profile
from backend.records.profile.common import Author
from backend.records.crypto import Vault
from backend.records.documents.models import Document
from backend.records.profile.documents import (DISPENSATION_CLASS, DISPENSATION_TYPE, NS, _Narrative, _text,
                                               clinical_document, dispensed_items, document_instance_id, hl7_time,
                                               is_vaccine)
from backend.records.profile.kinds import PARIS

log = logging.getLogger(__name__)

DEVICE_SECTION = "46264-8"
DEVICE_ENTRY = "1.2.250.1.213.1.1.3.20"            # FR-Dispositif-medical
LEGACY_DEVICE_ORGANIZER = "1.2.250.1.213.1.1.3.2"  # CI-SIS 2.x "Dispositif médical" organizer (code GEN-115)
EMDN = "1.2.250.1.213.2.68"
LPP = "1.2.250.1.215.200.2.1"
IMPLANTABLE_EMDN = ("J", "P")
# Documents whose device section is, by the volet's definition, what was implanted during the care.
IMPLANT_DOCUMENT_TYPES = frozenset({
    "34874-8",   # CR opératoire
    "11490-0",   # lettre de liaison à la sortie (LDL-SES: "dispositifs médicaux implantés")
    "34112-3",   # CR hospitalier (séjour)
    "101881-1",  # carte d'implant
})
# Summaries list every device the patient uses: only implantable ones are taken.
SUMMARY_DOCUMENT_TYPES = frozenset({"60591-5", "34133-9", "SYNTH"})
DERIVING_SOURCES = ("professional", "migration")
_GS1 = re.compile(r"[({](\d{2})[)}]([^({]+)")


def _wants(doc: Document) -> bool:
    return (doc.type_code in IMPLANT_DOCUMENT_TYPES or doc.type_code in SUMMARY_DOCUMENT_TYPES
            or _is_dispensation(doc))


def _is_dispensation(doc: Document) -> bool:
    return doc.type_code == DISPENSATION_TYPE or doc.class_code == DISPENSATION_CLASS


def derive_from_document(session: Session, vault: Vault, doc: Document, content: bytes, *, source: str,
                         now: dt.datetime) -> dict[str, list[int]]:
    """Add the entries a new document carries; returns the created entry ids per kind. Never raises on
    what the document holds: a document we cannot read simply adds nothing."""
    if source not in DERIVING_SOURCES or not _wants(doc) or "xml" not in (doc.mime_type or ""):
        return {}
    if (doc.invisible_patient and doc.released_at is None) or doc.invisible_legal_representatives:
        return {}
    cda = clinical_document(content)
    if cda is None:
        return {}
    author = (Author("professional", doc.author_professional_id, doc.author_rpps, doc.author_name)
              if (doc.author_rpps or doc.author_name) else None)
    created: dict[str, list[int]] = {}
    if _is_dispensation(doc):
        items = vaccination_proposals(cda, doc)
        if items:
            result = profile.add_entries(session, vault, doc.patient_id, "vaccination", items, source=source,
                                         author=author, conflict_group=f"{profile.PROPOSAL_PREFIX}vaccination:{doc.id}",
                                         now=now)
            created["vaccination"] = result.created
    else:
        items = implants(cda, doc)
        if items:
            result = profile.add_entries(session, vault, doc.patient_id, "implant", items, source=source,
                                         author=author, now=now)
            created["implant"] = result.created
            for refused in result.rejected:
                log.info("document %s: implant entry %s not kept", doc.id, refused["index"])
    if doc.masked and any(created.values()):
        profile.hide_entries(session, doc.patient_id, [i for ids in created.values() for i in ids], now=now)
    return created


def _key(*parts: Any) -> str:
    digest = hashlib.sha256("\x1f".join(str(p or "").strip().lower() for p in parts).encode()).hexdigest()
    return digest[:48]


def _day(value: dt.datetime | None) -> str | None:
    return value.astimezone(PARIS).date().isoformat() if value else None


def _clip(value: str | None, limit: int) -> str | None:
    if not value:
        return None
    value = re.sub(r"\s+", " ", value).strip()
    return value[:limit] or None


# --- implanted devices -----------------------------------------------------------------------------------

def _templates(el: etree._Element) -> set[str]:
    return {t.get("root") or "" for t in el.iterfind("h:templateId", NS)}


def _udi_parts(udi: str | None) -> tuple[str | None, str | None]:
    """Lot (AI 10) and serial (AI 21) from a GS1 UDI in human-readable form ("(01)…(10)LOT(21)SN")."""
    if not udi:
        return None, None
    found = dict(_GS1.findall(udi))
    return found.get("10"), found.get("21")


def _who(el: etree._Element) -> str | None:
    """A performer's or author's name, with their organisation."""
    person = el.find(".//h:assignedPerson/h:name", NS)
    name = None
    if person is not None:
        given = " ".join(t.strip() for t in person.itertext() if t.strip() and t.getparent().tag.endswith("given"))
        family = " ".join(t.strip() for t in person.itertext() if t.strip() and t.getparent().tag.endswith("family"))
        name = " ".join(p for p in (given, family) if p) or _text(person)
    organisation = _text(el.find(".//h:representedOrganization/h:name", NS))
    return ", ".join(p for p in (name, organisation) if p) or None


def _document_author(doc: Document) -> str | None:
    return ", ".join(p for p in (doc.author_name, doc.author_organisation) if p) or None


def _supply_implant(supply: etree._Element, narrative: _Narrative, doc: Document,
                    implant_section: bool) -> dict[str, Any] | None:
    if supply.get("moodCode", "EVN") != "EVN" or (supply.get("negationInd") or "").lower() == "true":
        return None
    role = supply.find("h:participant[@typeCode='DEV']/h:participantRole", NS)
    if role is None:
        role = supply.find("h:participant/h:participantRole", NS)
    if role is None:
        return None
    device = role.find("h:playingDevice", NS)
    code_el = device.find("h:code", NS) if device is not None else None
    code = label = None
    translations: list[etree._Element] = []
    if code_el is not None:
        code = code_el.get("code")
        label = narrative.resolve(code_el.find("h:originalText", NS)) or code_el.get("displayName")
        translations = list(code_el.iter(f"{{{NS['h']}}}translation"))
    label = label or next((t.get("displayName") for t in translations if t.get("displayName")), None)
    label = label or narrative.resolve(supply.find("h:text", NS))
    emdn = code if code_el is not None and code_el.get("codeSystem") == EMDN else None
    if not implant_section and not (emdn and emdn.upper().startswith(IMPLANTABLE_EMDN)):
        return None
    if not label:
        return None
    model = _text(device.find("h:manufacturerModelName", NS)) if device is not None else None
    lpp = next((t.get("displayName") for t in translations if t.get("codeSystem") == LPP and t.get("displayName")),
               None)
    if not model and lpp and lpp.strip().lower() != label.strip().lower():
        model = lpp
    id_el = role.find("h:id", NS)
    udi = id_el.get("extension") if id_el is not None and id_el.get("nullFlavor") is None else None
    lot, serial = _udi_parts(udi)
    lot_serial = ", ".join(p for p in ((f"lot {lot}" if lot else None), (f"n° de série {serial}" if serial else None))
                           if p) or None
    when = None
    for path in ("h:effectiveTime/h:low", "h:effectiveTime"):
        found = supply.find(path, NS)
        if found is not None and found.get("value"):
            when = hl7_time(found.get("value"))
            break
    performer = supply.find("h:performer", NS)
    implanted_by = (_who(performer) if performer is not None else None) or \
        (_document_author(doc) if implant_section else None)
    comment = narrative.resolve(supply.find("h:entryRelationship/h:act/h:text", NS))
    return {"device": _clip(label, 200), "device_code": _clip(code, 32), "brand_model": _clip(model, 200),
            "udi": _clip(udi, 200), "lot_serial": _clip(lot_serial, 100), "implant_date": _day(when),
            "implanted_by": _clip(implanted_by, 300), "comment": _clip(comment, 1000)}


_LEGACY_FIELDS = {"L0051": "brand_model", "L0059": "lot_serial", "GEN-111": "udi", "GEN-112": "manufacturer",
                  "GEN-113": "implanted_by", "GEN-114": "comment"}


def _legacy_implant(organizer: etree._Element, doc: Document, implant_section: bool) -> dict[str, Any] | None:
    """The CI-SIS 2.x organizer: one observation per property (TA_PRC / TA_ASIP codes)."""
    values: dict[str, str] = {}
    kind = None
    when = None
    for obs in organizer.iterfind("h:component/h:observation", NS):
        code = (obs.find("h:code", NS).get("code") if obs.find("h:code", NS) is not None else None) or ""
        value = obs.find("h:value", NS)
        if value is None:
            continue
        if code == "L0056":
            kind = value.get("displayName") or value.get("code")
        elif code == "L0055":
            when = hl7_time(value.get("value"))
        elif code in _LEGACY_FIELDS:
            text = _text(value) or value.get("value")
            if text and text.strip() not in ("-", ""):
                values[_LEGACY_FIELDS[code]] = text
    if not implant_section and "implant" not in (kind or "").lower():
        return None
    if when is None:
        eff = organizer.find("h:effectiveTime", NS)
        when = hl7_time(eff.get("value")) if eff is not None else None
    model = values.get("brand_model")
    if values.get("manufacturer"):
        model = ", ".join(p for p in (values["manufacturer"], model) if p)
    label = model or (f"Dispositif médical {kind}" if kind else "Dispositif médical")
    return {"device": _clip(label, 200), "brand_model": _clip(model, 200), "udi": _clip(values.get("udi"), 200),
            "lot_serial": _clip(values.get("lot_serial"), 100), "implant_date": _day(when),
            "implanted_by": _clip(values.get("implanted_by") or (_document_author(doc) if implant_section else None),
                                  300),
            "comment": _clip(values.get("comment"), 1000)}


def implants(cda: etree._Element, doc: Document) -> list[dict[str, Any]]:
    """The implanted devices a document states, as items for ``profile.add_entries`` (with source keys)."""
    implant_section = doc.type_code in IMPLANT_DOCUMENT_TYPES
    narrative = _Narrative(cda)
    found: list[dict[str, Any]] = []
    for section in cda.iterfind(".//h:structuredBody//h:section", NS):
        code = section.find("h:code", NS)
        if code is None or code.get("code") != DEVICE_SECTION:
            continue
        for entry in section.iterfind("h:entry", NS):
            for statement in entry:
                if not isinstance(statement.tag, str):
                    continue
                item = None
                if statement.tag.endswith("supply") and DEVICE_ENTRY in _templates(statement):
                    item = _supply_implant(statement, narrative, doc, implant_section)
                elif statement.tag.endswith("organizer") and LEGACY_DEVICE_ORGANIZER in _templates(statement):
                    item = _legacy_implant(statement, doc, implant_section)
                if item is not None:
                    found.append({k: v for k, v in item.items() if v})
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for item in found:
        identity = _key("implant", item.get("device_code") or item["device"], item.get("implant_date"),
                        item.get("udi") or item.get("lot_serial"))
        seen[identity] = seen.get(identity, 0) + 1
        suffix = f"#{seen[identity]}" if seen[identity] > 1 else ""  # two identical implants in one document
        out.append({**item, "source_key": f"implant:{identity}{suffix}", "document_id": doc.id})
    return out


# --- vaccinations proposed from dispensing -----------------------------------------------------------------

def vaccination_proposals(cda: etree._Element, doc: Document) -> list[dict[str, Any]]:
    """The vaccines of a dispensation, as vaccination entries to confirm."""
    out = []
    document_id = document_instance_id(cda) or doc.unique_id
    for index, item in enumerate(dispensed_items(cda)):
        if not is_vaccine(item) or not item.get("name"):
            continue
        # the dispensed item's own id (the same dispensation deposited twice proposes once), else its place
        identity = item.get("entry_id") or f"{document_id}#{index}"
        when = item.get("dispensed_at") or doc.service_date or doc.submitted_at
        proposal = {"vaccine": _clip(item["name"], 200), "date": _day(when),
                    "atc": item["atc"] if (item.get("atc") or "").startswith("J07") else None,
                    "batch": _clip(item.get("lot"), 50),
                    "source_key": f"dispensed:{_key(identity)}", "document_id": doc.id}
        out.append({k: v for k, v in proposal.items() if v})
    return out
