"""The access history the patient reads: every access and action on their record by a professional, a
service, a carer or themselves (who, when, what, why, emergency reason), filtered, paginated, and as CSV
or PDF. It is a reading of the audit trail (``audit_entry`` rows of this patient), nothing else.

What is shown is a whitelist of the entry's details (decision, document id and category, emergency
reason, count): details never hold health data, and a document still hidden from the patient
(INVISIBLE_PATIENT, not released) is not named, so the history cannot reveal it.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from backend.accounts.models import Patient
from backend.audit.models import AuditEntry
from backend.i18n import MESSAGES, message
from backend.professionals.models import Professional
from backend.professionals.service import profession_label
from backend.records.documents.models import Document
from backend.records.access.policy import ACTING_KINDS
from backend.identity import FRANCE as LOCAL_TZ  # the one Europe/Paris (backend/identity.py)

ACTOR_KINDS = ("patient", "professional", "service", "representative", "carer", "insurer", "system", "operator",
               "anonymous")
EMERGENCY = ("ETREAT", "BTG")
EXPORT_MAX_ROWS = 5000


@dataclass(frozen=True)
class HistoryFilter:
    actor_kinds: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()        # an action code ("document.read") or a family ("document")
    since: dt.datetime | None = None     # inclusive
    until: dt.datetime | None = None     # exclusive
    emergency_only: bool = False
    # read by a minor's legal representative: nothing about a document flagged INVISIBLE_REPRESENTANTS_LEGAUX
    hide_legal_secret: bool = False

    def conditions(self, patient_id: int) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = [AuditEntry.patient_id == patient_id]
        if self.actor_kinds:
            conds.append(AuditEntry.actor_type.in_(sorted(set(self.actor_kinds))))
        if self.actions:
            conds.append(or_(*[or_(AuditEntry.action == a, AuditEntry.action.startswith(f"{a}.", autoescape=True))
                               for a in self.actions]))
        if self.since is not None:
            conds.append(AuditEntry.at >= self.since)
        if self.until is not None:
            conds.append(AuditEntry.at < self.until)
        if self.emergency_only:
            conds.append(AuditEntry.purpose.in_(EMERGENCY))
        return conds


def local_day_bounds(since: dt.date | None, until: dt.date | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Calendar days as the patient lives them (Europe/Paris), ``until`` included, as UTC instants."""
    def start(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), LOCAL_TZ).astimezone(dt.timezone.utc)

    return (start(since) if since else None, start(until + dt.timedelta(days=1)) if until else None)


@dataclass
class HistoryItem:
    seq: int
    at: dt.datetime
    actor_kind: str
    actor_name: str
    actor_profession: str | None
    actor_rpps: str | None
    action: str
    label: str
    outcome: str               # granted | refused | done
    outcome_label: str
    purpose: str | None
    purpose_label: str | None
    reason: str | None         # the policy's reason for an access (consent, blocked…)
    reason_label: str | None
    emergency: bool
    emergency_reason: str | None
    document_id: int | None
    category: str | None
    category_label: str | None
    count: int | None


def _label(code: str, lang: str, **params: Any) -> str | None:
    return message(code, lang, **params) if code in MESSAGES else None


def action_label(action: str, lang: str) -> str:
    base = action.removesuffix(".refused")
    found = _label("history_action_" + base.replace(".", "_"), lang)
    if found is None:
        found = _label("history_family_" + base.split(".", 1)[0], lang) or message("history_action_other", lang)
    return found


def _details(entry: AuditEntry) -> dict[str, Any]:
    if not entry.details:
        return {}
    try:
        value = json.loads(entry.details)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _decorate(session: Session, patient_id: int, entries: list[AuditEntry], lang: str,
              hide_legal_secret: bool = False) -> list[HistoryItem]:
    """Entries → items: two queries per page (professionals named, documents still hidden; one more
    when the insurer appears)."""
    details = {e.seq: _details(e) for e in entries}
    pro_refs = {e.actor_id for e in entries if e.actor_type == "professional" and e.actor_id}
    # RPPS (11 digits) is the convention; some writers store the professional's id: accept both.
    rpps = {r for r in pro_refs if len(r) == 11 and r.isdigit()}
    ids = {int(r) for r in pro_refs - rpps if r.isdigit()}
    pros_by_ref: dict[str, Professional] = {}
    if rpps or ids:
        for pro in session.scalars(select(Professional).where(or_(Professional.rpps.in_(sorted(rpps)),
                                                                  Professional.id.in_(sorted(ids))))):
            pros_by_ref[pro.rpps] = pro
            pros_by_ref[str(pro.id)] = pro
    insurer_ids = {int(e.actor_id) for e in entries if e.actor_type == "insurer" and (e.actor_id or "").isdigit()}
    insurers: dict[str, str] = {}
    if insurer_ids:
        from backend.insurer.models import Insurer

        insurers = {str(i): name for i, name in session.execute(
            select(Insurer.id, Insurer.name).where(Insurer.id.in_(sorted(insurer_ids))))}
    people: dict[str, Patient] = {}
    person_ids = {int(e.actor_id) for e in entries if e.actor_type in ACTING_KINDS and (e.actor_id or "").isdigit()}
    if person_ids:
        people = {str(p.id): p for p in session.scalars(select(Patient).where(Patient.id.in_(sorted(person_ids))))}
    doc_ids = {d for d in (_int(v.get("document_id")) for v in details.values()) if d is not None}
    hidden: set[int] = set()
    if doc_ids:
        hidden = set(session.scalars(select(Document.id).where(
            Document.patient_id == patient_id, Document.id.in_(sorted(doc_ids)),
            Document.invisible_patient.is_(True), Document.released_at.is_(None))))
    secret: set[int] = set()
    if doc_ids and hide_legal_secret:
        secret = set(session.scalars(select(Document.id).where(
            Document.patient_id == patient_id, Document.id.in_(sorted(doc_ids)),
            Document.invisible_legal_representatives.is_(True))))
    items = []
    for e in entries:
        d = details[e.seq]
        if secret and _int(d.get("document_id")) in secret:
            continue  # the minor's secret care: the entry does not exist for their representatives
        name, profession, rpps_shown = _who(e, patient_id, pros_by_ref, lang, insurers, people)
        refused = e.action.endswith(".refused")
        decision = d.get("decision") if isinstance(d.get("decision"), str) else None
        # a failed attempt (a wrong password, code…) did not happen: never "Effectué"
        failed = e.action.endswith((".failed", "_failed", ".throttled"))
        outcome = "refused" if refused else ("failed" if failed else ("granted" if decision else "done"))
        doc_id = _int(d.get("document_id"))
        category = d.get("category") if isinstance(d.get("category"), str) else None
        if doc_id in hidden:
            doc_id, category = None, None
        emergency_reason = d.get("emergency_reason") if isinstance(d.get("emergency_reason"), str) else None
        items.append(HistoryItem(
            seq=e.seq, at=e.at, actor_kind=e.actor_type, actor_name=name, actor_profession=profession,
            actor_rpps=rpps_shown, action=e.action, label=action_label(e.action, lang), outcome=outcome,
            outcome_label=message(f"history_outcome_{outcome}", lang), purpose=e.purpose,
            purpose_label=_label(f"history_purpose_{e.purpose}", lang) if e.purpose else None,
            reason=decision, reason_label=_label(f"history_reason_{decision}", lang) if decision else None,
            emergency=e.purpose in EMERGENCY, emergency_reason=emergency_reason, document_id=doc_id,
            category=category, category_label=_label(f"access_category_{category}", lang) if category else None,
            count=_int(d.get("count"))))
    return items


def _who(e: AuditEntry, patient_id: int, pros: dict[str, Professional], lang: str,
         insurers: dict[str, str] | None = None,
         people: dict[str, Patient] | None = None) -> tuple[str, str | None, str | None]:
    if e.actor_type == "professional":
        pro = pros.get(e.actor_id or "")
        if pro is not None:
            return pro.display_name, profession_label(pro.profession_code, lang), pro.rpps
        shown = e.actor_id if e.actor_id and len(e.actor_id) == 11 else "?"
        return message("history_actor_unknown_professional", lang, rpps=shown), None, None
    if e.actor_type == "patient":
        # Never the identity of someone else: the holder is "you", anyone else a generic label.
        mine = e.actor_id == str(patient_id)
        return message("history_actor_you" if mine else "history_actor_patient", lang), None, None
    if e.actor_type in ACTING_KINDS:
        # a legal representative or a carer, as themselves: "Marie DUPONT, représentante légale"
        person = (people or {}).get(e.actor_id or "")
        if person is not None:
            name = f"{person.first_given_name} {person.family_name}".strip()
            gender = "F" if person.sex == "F" else "M"
            return message(f"history_actor_{e.actor_type}_{gender}", lang, name=name), \
                message(f"history_actor_{e.actor_type}", lang), None
    if e.actor_type == "insurer":
        # the insurer as itself: its name (e.g. "Assurance Maladie"), and what it is
        return (insurers or {}).get(e.actor_id or "") or message("history_actor_insurer", lang), \
            message("history_actor_insurer", lang), None
    return (_label(f"history_actor_{e.actor_type}", lang) or message("history_actor_system", lang)), None, None


def page(session: Session, patient_id: int, flt: HistoryFilter, *, limit: int, before_seq: int | None = None,
         lang: str = "fr") -> tuple[list[HistoryItem], int | None]:
    """One page, newest first, and the cursor (a sequence number) of the next page."""
    stmt = select(AuditEntry).where(*flt.conditions(patient_id))
    if before_seq is not None:
        stmt = stmt.where(AuditEntry.seq < before_seq)
    rows = list(session.scalars(stmt.order_by(AuditEntry.seq.desc()).limit(limit + 1)))
    entries, more = rows[:limit], len(rows) > limit
    return _decorate(session, patient_id, entries, lang, flt.hide_legal_secret), (entries[-1].seq if more else None)


def count(session: Session, patient_id: int, flt: HistoryFilter) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditEntry).where(*flt.conditions(patient_id))) or 0)


def iterate(session: Session, patient_id: int, flt: HistoryFilter, *, lang: str = "fr",
            batch: int = 500) -> Iterator[HistoryItem]:
    """Every matching entry, newest first, a batch at a time (for the downloads)."""
    before: int | None = None
    while True:
        items, before = page(session, patient_id, flt, limit=batch, before_seq=before, lang=lang)
        yield from items
        if before is None:
            return


# --- downloads ------------------------------------------------------------------------------------------------

COLUMNS = ("date", "who", "profession", "what", "outcome", "why", "purpose", "emergency_reason", "document")


def local_time(at: dt.datetime) -> str:
    return at.astimezone(LOCAL_TZ).strftime("%d/%m/%Y %H:%M:%S")


def _row(item: HistoryItem, lang: str) -> list[str]:
    document = ""
    if item.document_id is not None:
        document = message("history_document", lang, id=item.document_id,
                           category=item.category_label or item.category or "?")
    return [local_time(item.at), item.actor_name, item.actor_profession or "", item.label, item.outcome_label,
            item.reason_label or "", item.purpose_label or "", item.emergency_reason or "", document]


def _cell(value: str) -> str:
    # Spreadsheet formula injection: a professional types the emergency reason.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def to_csv(items: Iterator[HistoryItem] | list[HistoryItem], lang: str = "fr") -> str:
    """Semicolon-separated, UTF-8 with a BOM: what French spreadsheets open without asking."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([message(f"history_col_{c}", lang) for c in COLUMNS])
    for item in items:
        writer.writerow([_cell(v) for v in _row(item, lang)])
    return "\ufeff" + out.getvalue()


def to_pdf(items: Iterator[HistoryItem] | list[HistoryItem], *, holder: str, lang: str = "fr",
           now: dt.datetime) -> bytes:
    """An A4 landscape table with the same columns as the CSV (fpdf2, standard fonts in cp1252)."""
    from fpdf import FPDF

    def text(value: str) -> str:
        return value.encode("cp1252", "replace").decode("cp1252")

    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.core_fonts_encoding = "windows-1252"
    pdf.set_title(text(message("history_title", lang)))
    pdf.set_creator("Carnet")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=14)
    pdf.cell(text=text(message("history_title", lang)), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    pdf.cell(text=text(message("history_generated", lang, date=local_time(now), name=holder)),
             new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", size=7)
    rows = [_row(item, lang) for item in items]
    if not rows:
        pdf.cell(text=text(message("history_empty", lang)))
        return bytes(pdf.output())
    widths = (26, 36, 24, 42, 16, 34, 26, 40, 29)
    with pdf.table(col_widths=widths, text_align="LEFT", line_height=3.6, repeat_headings=1) as table:
        header = table.row()
        for c in COLUMNS:
            header.cell(text(message(f"history_col_{c}", lang)))
        for values in rows:
            row = table.row()
            for value in values:
                row.cell(text(value))
    return bytes(pdf.output())
