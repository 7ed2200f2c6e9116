"""Profile views built from the record's documents, always through the reader's ``Scope``:

- medicines dispensed (the DP view): dispensation documents (classCode 43 / typeCode 60593-1) of the last
  ``months`` months; the CDA's dispensed items when the document is structured (eDISP-MED), else the
  document itself;
- reimbursement history: REMB documents of the Assurance Maladie (CNAM-HR), and their entries as
  "Mon histoire de santé" episodes by kind (consultations, medicines, biology, imaging, hospital, devices,
  vaccines);
- oncology pathway (DCC): the documents of the cancer episode in date order — anatomo-cytopathology and
  RCP sheets, then from shortly before the first of those on the PPS and the after-treatment programme
  (PPAC), the biology, imaging and operative reports — with the care team who wrote them.

Each view costs a fixed number of queries (metadata and encrypted content in one go); parsing is done in
memory with a hardened XML parser (no entities, no network, no DTD).
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any

from lxml import etree
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

import backend.cda
from backend.cda import HL7
from backend.records.crypto import Vault
from backend.records.documents.content import ContentIntegrityError, read_content
from backend.records.documents.models import Document
from backend.records.access.policy import Scope
from backend.records.profile.kinds import PARIS

log = logging.getLogger(__name__)

NS = {"h": HL7, "pharm": "urn:ihe:pharm:medication"}
DISPENSATION_CLASS, DISPENSATION_TYPE = "43", "60593-1"
REIMBURSEMENT_CLASS, REIMBURSEMENT_TYPE = "60", "REMB"
# The cancer pathway (DCC), by typeCode (ANS JDV_J07 XdsTypeCode CI-SIS). The episode opens with the documents
# that sign the diagnosis and decide the treatment (pathology report, RCP sheet); the care plans and the
# biology, imaging and operative reports belong to it from ONCOLOGY_LEAD before the first of them (the
# diagnostic work-up) on. A care plan alone opens nothing: 18776-5 is also the PAERPA elderly-care plan. The
# JDV has no code of its own for the after-treatment programme: it is a personalised care plan (18776-5)
# titled as such (INCa's model: « Programme personnalisé de l'après-cancer »).
# 60568-3 CR d'anatomie et de cytologie pathologiques (11526-1 in legacy documents), 34794-8 CR de RCP,
# 18776-5 Plan personnalisé de soins; 11502-2 CR d'examens biologiques, 51969-4 CR de génétique moléculaire,
# 18748-4 CR d'imagerie médicale, 34874-8 CR opératoire.
ONCOLOGY_CORE_TYPES = {"60568-3": "pathology", "11526-1": "pathology", "34794-8": "rcp"}
ONCOLOGY_RELATED_TYPES = {"18776-5": "pps", "11502-2": "biology", "51969-4": "biology", "18748-4": "imaging",
                          "34874-8": "operative"}
ONCOLOGY_TYPES = {**ONCOLOGY_CORE_TYPES, **ONCOLOGY_RELATED_TYPES}
ONCOLOGY_STEPS = ("pathology", "biology", "imaging", "operative", "rcp", "pps", "ppac")
ONCOLOGY_LEAD = dt.timedelta(days=90)
CARE_TEAM_MAX = 50
_AFTER_TREATMENT = re.compile(r"apr[eè]s[\s-]*(le\s+)?(cancer|traitement)|\bPPAC\b", re.IGNORECASE)
REIMBURSEMENT_DOCUMENTS_PARSED = 24   # the newest current REMB documents read for episodes
REIMBURSEMENT_MONTHS = 24             # the window the patient sees (seeds: « les 24 derniers mois »)
EPISODE_KINDS = ("consultations", "medicines", "biology", "imaging", "hospital", "devices", "vaccines")
MAX_PARSE_BYTES = 20 * 1024 * 1024


def _date_of(doc: Document) -> dt.datetime:
    return doc.service_date or doc.submitted_at


def _months_back(now: dt.datetime, months: int) -> dt.datetime:
    """The same day ``months`` calendar months earlier (clamped to the month's last day), local midnight."""
    local = now.astimezone(PARIS)
    year, month = divmod(local.year * 12 + (local.month - 1) - months, 12)
    month += 1
    day = local.day
    while True:
        try:
            start = dt.datetime(year, month, day, tzinfo=PARIS)
            break
        except ValueError:
            day -= 1
    return start.astimezone(dt.timezone.utc)


def _document_view(doc: Document) -> dict[str, Any]:
    return {"id": doc.id, "title": doc.title, "date": _date_of(doc), "type_code": doc.type_code,
            "class_code": doc.class_code, "category": doc.category, "author_name": doc.author_name,
            "author_organisation": doc.author_organisation, "mime_type": doc.mime_type}


def _with_content(session: Session, vault: Vault, query: Any) -> list[tuple[Document, bytes | None]]:
    """The documents of ``query`` with their bytes (None when they cannot be read: never parsed)."""
    out: list[tuple[Document, bytes | None]] = []
    for doc in session.scalars(query):
        try:
            out.append((doc, read_content(session, vault, doc)))
        except ContentIntegrityError:
            log.warning("document %s: content could not be read", doc.id)
            out.append((doc, None))
    return out


def clinical_document(raw: bytes | None) -> etree._Element | None:
    """The CDA ClinicalDocument in ``raw`` (also when wrapped in an XSLT stylesheet), or None."""
    if not raw or len(raw) > MAX_PARSE_BYTES or b"ClinicalDocument" not in raw:
        return None
    try:
        return backend.cda.clinical_document(backend.cda.parse(raw, max_bytes=MAX_PARSE_BYTES))
    except backend.cda.XmlRefused:
        return None


def hl7_time(value: str | None) -> dt.datetime | None:
    """An HL7 TS as an aware UTC datetime; a document's time without an offset is French time."""
    return backend.cda.hl7_time(value, PARIS)


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    text = " ".join(t.strip() for t in el.itertext() if t.strip())
    return re.sub(r"\s+", " ", text) or None


class _Narrative:
    """Resolves ``<reference value="#id"/>`` to the narrative's text."""

    def __init__(self, cda: etree._Element) -> None:
        self.by_id = {el.get("ID"): el for el in cda.iter() if isinstance(el.tag, str) and el.get("ID")}

    def resolve(self, el: etree._Element | None) -> str | None:
        if el is None:
            return None
        ref = el.find(".//h:reference", NS)
        target = ref.get("value") if ref is not None else None
        if not target or not target.startswith("#"):
            return None
        found = self.by_id.get(target[1:])
        if found is None:
            # Producers sometimes point at a row's id while the narrative only labels its cells
            # ("#med-002" → "med-002-delivre"): take the first cell of that row.
            found = next((el for key, el in self.by_id.items() if key.startswith(target[1:] + "-")), None)
        return _text(found)


def _first_time(el: etree._Element, paths: tuple[str, ...]) -> dt.datetime | None:
    for path in paths:
        for node in el.iterfind(path, NS):
            found = hl7_time(node.get("value"))
            if found is not None:
                return found
    return None


def _instance_id(el: etree._Element | None) -> str | None:
    """An II (root and extension) as one string, or None when absent or null."""
    if el is None or el.get("nullFlavor") or not el.get("root"):
        return None
    return f"{el.get('root')}^{el.get('extension')}" if el.get("extension") else el.get("root")


def document_instance_id(cda: etree._Element) -> str | None:
    return _instance_id(cda.find("h:id", NS))


# --- medicines dispensed ------------------------------------------------------------------------------

def dispensed_items(cda: etree._Element) -> list[dict[str, Any]]:
    """The dispensed items of an eDISP-MED document (IHE PHARM DIS supply entries)."""
    narrative = _Narrative(cda)
    document_time = _first_time(cda, ("h:documentationOf/h:serviceEvent/h:effectiveTime/h:low",
                                      "h:documentationOf/h:serviceEvent/h:effectiveTime", "h:effectiveTime"))
    items = []
    for section in cda.iterfind(".//h:structuredBody/h:component/h:section", NS):
        pharmacy = _text(section.find("h:author/h:assignedAuthor/h:representedOrganization/h:name", NS))
        for supply in section.iterfind("h:entry/h:supply", NS):
            if supply.get("moodCode", "EVN") != "EVN":
                continue
            material = supply.find("h:product/h:manufacturedProduct/h:manufacturedMaterial", NS)
            name = code = generic = form = atc = lot = None
            if material is not None:
                name = _text(material.find("h:name", NS)) or narrative.resolve(material.find("h:code", NS))
                code_el = material.find("h:code", NS)
                if code_el is not None:
                    code = code_el.get("code") or next(
                        (t.get("code") for t in code_el.iterfind("h:translation", NS) if t.get("code")), None)
                generic = _text(material.find("pharm:asSpecializedKind/pharm:generalizedMedicineClass/pharm:name", NS))
                form_el = material.find("pharm:asContent/pharm:containerPackagedMedicine/pharm:formCode", NS)
                form = form_el.get("displayName") if form_el is not None else None
                atc = atc_code(material)
                lot = _text(material.find("h:lotNumberText", NS))
            name = name or narrative.resolve(supply.find("h:text", NS))
            quantity_el = supply.find("h:quantity", NS)
            quantity = None
            if quantity_el is not None and quantity_el.get("value"):
                try:
                    quantity = float(quantity_el.get("value"))
                except ValueError:
                    quantity = None
            entry_id = supply.find("h:id", NS)
            items.append({
                "entry_id": _instance_id(entry_id),
                "name": name, "code": code, "generic": generic, "atc": atc, "lot": lot,
                "quantity": int(quantity) if quantity is not None and quantity.is_integer() else quantity,
                "package": form,
                "dispensed_at": _first_time(supply, ("h:effectiveTime", "h:effectiveTime/h:low")) or document_time,
                "pharmacy": pharmacy,
            })
    return items


# The ATC classification (WHO), under the OIDs the CI-SIS uses: HL7's and the Assurance Maladie's tables.
ATC_SYSTEMS = frozenset({"2.16.840.1.113883.6.73", "1.2.250.1.215.200.1.2.1", "1.2.250.1.215.200.1.2.2"})


def atc_code(material: etree._Element) -> str | None:
    """The ATC code of a manufactured material: the generic class's code (IHE PHARM), else a code or
    translation in an ATC system."""
    for el in material.iter(f"{{{HL7}}}code", "{urn:ihe:pharm:medication}code", f"{{{HL7}}}translation"):
        if el.get("codeSystem") in ATC_SYSTEMS and el.get("code"):
            return el.get("code", "").strip().upper()[:16] or None
    return None


VACCINE_ATC = "J07"   # ATC J07: vaccines
_VACCINE_WORD = re.compile(r"\bvaccin", re.IGNORECASE)


def is_vaccine(item: dict[str, Any]) -> bool:
    """A dispensed item is a vaccine when its ATC class is J07; without an ATC code, when its name says so."""
    if item.get("atc"):
        return str(item["atc"]).startswith(VACCINE_ATC)
    return any(_VACCINE_WORD.search(item.get(k) or "") for k in ("name", "generic"))


def _dispensation_filter() -> Any:
    return or_(Document.class_code == DISPENSATION_CLASS, Document.type_code == DISPENSATION_TYPE)


def dispensed(session: Session, vault: Vault, scope: Scope, *, now: dt.datetime, months: int, limit: int,
              offset: int = 0) -> dict[str, Any]:
    """Dispensations of the last ``months`` months, newest first (by dispensation date)."""
    since = _months_back(now, months)
    date = func.coalesce(Document.service_date, Document.submitted_at)
    query = (select(Document).where(scope.document_filter(), Document.replaced_by_id.is_(None),
                                    _dispensation_filter(), date >= since, date <= now)
             .order_by(date.desc(), Document.id.desc()).offset(offset).limit(limit + 1))
    rows = _with_content(session, vault, query)
    out = []
    for doc, content in rows[:limit]:
        cda = clinical_document(content)
        items = [{**i, "vaccine": is_vaccine(i)} for i in dispensed_items(cda)] if cda is not None else []
        out.append({"document": _document_view(doc), "dispensed_at": _date_of(doc), "structured": bool(items),
                    "pharmacy": doc.author_organisation or next((i["pharmacy"] for i in items if i["pharmacy"]), None),
                    "items": items})
    return {"since": since, "months": months, "items": out,
            "next_offset": offset + limit if len(rows) > limit else None}


# --- reimbursements ("Mon histoire de santé") ---------------------------------------------------------

_SECTION_KINDS = {"10160-0": "medicines", "11369-6": "vaccines", "46264-8": "devices", "46240-8": "hospital"}
_CODE_SYSTEM_KINDS = {"1.2.250.1.215.200.4.1": "biology", "1.2.250.1.215.200.3.4": "imaging",
                      "1.2.250.1.215.200.3.3": "consultations"}


def _section_kind(section: etree._Element) -> str | None:
    code = section.find("h:code", NS)
    if code is not None and code.get("code") in _SECTION_KINDS:
        return _SECTION_KINDS[code.get("code")]
    title = (_text(section.find("h:title", NS)) or "").lower()
    for word, kind in (("radio", "imaging"), ("imagerie", "imaging"), ("biolog", "biology"),
                       ("médicament", "medicines"), ("vaccin", "vaccines"), ("dispositif", "devices"),
                       ("hospitali", "hospital"), ("soins", "consultations"), ("acte", "consultations")):
        if word in title:
            return kind
    return None


def reimbursement_episodes(cda: etree._Element) -> list[dict[str, Any]]:
    """Episodes of a CNAM-HR reimbursement history: one per entry, with its kind, date, label and place."""
    narrative = _Narrative(cda)
    episodes = []
    for section in cda.iterfind(".//h:structuredBody/h:component/h:section", NS):
        section_kind = _section_kind(section)
        for entry in section.iterfind("h:entry", NS):
            act = next((c for c in entry if isinstance(c.tag, str) and not c.tag.endswith("templateId")), None)
            if act is None:
                continue
            code = act.find("h:code", NS)
            kind = section_kind or (_CODE_SYSTEM_KINDS.get(code.get("codeSystem", "")) if code is not None else None)
            if kind is None:
                continue
            label = (_text(act.find(".//h:manufacturedMaterial/h:name", NS))
                     or next((t.get("displayName") for t in act.iterfind(".//h:playingDevice/h:code/h:translation", NS)
                              if t.get("displayName")), None)
                     or (code.get("displayName") if code is not None else None)
                     or narrative.resolve(act.find("h:text", NS)))
            detail = None
            qualifier = act.find("h:code/h:qualifier/h:value", NS)
            if qualifier is not None:
                detail = qualifier.get("displayName")
            start = _first_time(act, ("h:effectiveTime", "h:effectiveTime/h:low", ".//h:performer/h:time",
                                      ".//h:author/h:time"))
            end = _first_time(act, ("h:effectiveTime/h:high",))
            where = _text(act.find(".//h:performer//h:representedOrganization/h:name", NS))
            episodes.append({"kind": kind, "date": start, "end": end, "label": label, "detail": detail,
                             "where": where})
    return episodes


def _reimbursement_filter() -> Any:
    return or_(Document.type_code == REIMBURSEMENT_TYPE, Document.class_code == REIMBURSEMENT_CLASS,
               Document.category == "REMB")


def reimbursements(session: Session, vault: Vault, scope: Scope, *, kind: str | None, limit: int,
                   offset: int = 0, now: dt.datetime | None = None,
                   months: int = REIMBURSEMENT_MONTHS) -> dict[str, Any]:
    """The reimbursement documents and their episodes of the last ``months`` months (24: what the
    Assurance Maladie feeds), newest first, optionally of one kind. The same episode found in two
    cumulative histories is shown once; an undated episode counts at its document's date."""
    date = func.coalesce(Document.service_date, Document.submitted_at)
    since = _months_back(now or dt.datetime.now(dt.timezone.utc), months)
    query = (select(Document).where(scope.document_filter(), Document.replaced_by_id.is_(None),
                                    _reimbursement_filter(), date >= since)
             .order_by(date.desc(), Document.id.desc()).limit(REIMBURSEMENT_DOCUMENTS_PARSED))
    documents, seen, episodes = [], set(), []
    for doc, content in _with_content(session, vault, query):
        cda = clinical_document(content)
        found = reimbursement_episodes(cda) if cda is not None else []
        documents.append({**_document_view(doc), "structured": bool(found)})
        for episode in found:
            if (episode["date"] or _date_of(doc)) < since:
                continue
            key = (episode["kind"], episode["date"], episode["label"], episode["where"])
            if key not in seen:
                seen.add(key)
                episodes.append({**episode, "document_id": doc.id})
    counts = {k: 0 for k in EPISODE_KINDS}
    for episode in episodes:
        counts[episode["kind"]] += 1
    if kind:
        episodes = [e for e in episodes if e["kind"] == kind]
    far_past = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    episodes.sort(key=lambda e: e["date"] or far_past, reverse=True)
    page = episodes[offset: offset + limit]
    return {"since": since, "months": months, "documents": documents, "counts": counts, "episodes": page,
            "next_offset": offset + limit if len(episodes) > offset + limit else None}


# --- oncology pathway ---------------------------------------------------------------------------------

def oncology_step(type_code: str | None, title: str | None) -> str | None:
    step = ONCOLOGY_TYPES.get(type_code or "")
    if step == "pps" and title and _AFTER_TREATMENT.search(title):
        return "ppac"
    return step


def _episode_start(session: Session, scope: Scope) -> dt.datetime | None:
    date = func.coalesce(Document.service_date, Document.submitted_at)
    first = session.scalar(select(func.min(date)).where(
        scope.document_filter(), Document.replaced_by_id.is_(None),
        Document.type_code.in_(sorted(ONCOLOGY_CORE_TYPES))))
    if first is None:
        return None
    if isinstance(first, str):   # SQLite returns an aggregate of a coalesce as text
        first = dt.datetime.fromisoformat(first)
    return (first if first.tzinfo else first.replace(tzinfo=dt.timezone.utc)) - ONCOLOGY_LEAD


def _pathway_filter(scope: Scope, start: dt.datetime) -> Any:
    date = func.coalesce(Document.service_date, Document.submitted_at)
    return and_(scope.document_filter(), Document.replaced_by_id.is_(None),
                or_(Document.type_code.in_(sorted(ONCOLOGY_CORE_TYPES)),
                    and_(Document.type_code.in_(sorted(ONCOLOGY_RELATED_TYPES)), date >= start)))


def oncology_pathway(session: Session, scope: Scope, *, limit: int, offset: int = 0,
                     step: str | None = None) -> dict[str, Any]:
    """The cancer pathway in date order (oldest first: as it unfolded), optionally one kind of step, and
    the care team: the authors of its documents, the latest first. Three queries; one without an episode."""
    start = _episode_start(session, scope)
    if start is None:
        return {"started_on": None, "steps": [], "care_team": [], "next_offset": None}
    date = func.coalesce(Document.service_date, Document.submitted_at)
    condition = _pathway_filter(scope, start)
    if step:
        types = sorted(t for t, s_ in ONCOLOGY_TYPES.items() if s_ == step or (step == "ppac" and s_ == "pps"))
        condition = and_(condition, Document.type_code.in_(types))
    rows = session.scalars(select(Document).where(condition).order_by(date, Document.id)
                           .offset(offset).limit(limit + 1)).all()
    steps = []
    for doc in rows[:limit]:
        kind = oncology_step(doc.type_code, doc.title)
        if step and kind != step:
            continue   # pps vs ppac share a type: the title decides
        steps.append({"step": kind, "date": _date_of(doc), "document": _document_view(doc),
                      "author_professional_id": doc.author_professional_id})
    return {"started_on": start + ONCOLOGY_LEAD, "steps": steps, "care_team": care_team(session, scope, start),
            "next_offset": offset + limit if len(rows) > limit else None}


def care_team(session: Session, scope: Scope, start: dt.datetime) -> list[dict[str, Any]]:
    """Who wrote the pathway's documents: one line per author (the directory's professional when known,
    else the name the document gives), with the kinds of step they wrote and their latest date."""
    date = func.coalesce(Document.service_date, Document.submitted_at)
    rows = session.execute(
        select(Document.author_professional_id, Document.author_rpps, Document.author_name,
               Document.author_organisation, Document.author_profession, Document.type_code, Document.title,
               date.label("at"))
        .where(_pathway_filter(scope, start), or_(Document.author_name.is_not(None), Document.author_rpps.is_not(None)))
        .order_by(date.desc(), Document.id.desc()).limit(CARE_TEAM_MAX * 20)).all()
    team: dict[tuple[Any, ...], dict[str, Any]] = {}
    for pro_id, rpps, name, organisation, profession, type_code, title, at in rows:
        key = ("id", pro_id) if pro_id else ("rpps", rpps) if rpps else ("name", (name or "").lower(), organisation)
        member = team.get(key)
        if member is None:
            if len(team) >= CARE_TEAM_MAX:
                continue
            member = team[key] = {"professional_id": pro_id, "rpps": rpps, "name": name,
                                  "organisation": organisation, "profession": profession, "steps": [],
                                  "last_date": at}
        kind = oncology_step(type_code, title)
        if kind and kind not in member["steps"]:
            member["steps"].append(kind)
    for member in team.values():
        member["steps"].sort(key=ONCOLOGY_STEPS.index)
    return list(team.values())


# --- counters for the profile page --------------------------------------------------------------------

@dataclass(frozen=True)
class ViewCounts:
    dispensed: int
    reimbursements: int
    oncology: int


def view_counts(session: Session, scope: Scope, *, now: dt.datetime, months: int) -> ViewCounts:
    """How many documents feed each view (one query; three with a cancer episode), for the profile page."""
    since = _months_back(now, months)
    date = func.coalesce(Document.service_date, Document.submitted_at)

    def count_if(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = session.execute(select(
        count_if(_dispensation_filter() & (date >= since) & (date <= now)),
        count_if(_reimbursement_filter()),
        count_if(Document.type_code.in_(sorted(ONCOLOGY_CORE_TYPES))),
    ).where(scope.document_filter(), Document.replaced_by_id.is_(None))).one()
    oncology = int(row[2])
    if oncology:   # a cancer episode: its biology, imaging and operative reports count too (one more query)
        start = _episode_start(session, scope)
        assert start is not None
        oncology = int(session.scalar(select(func.count(Document.id)).where(_pathway_filter(scope, start))) or 0)
    return ViewCounts(int(row[0]), int(row[1]), oncology)
