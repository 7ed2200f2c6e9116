"""The medical profile's domain logic: entries of every kind, measures and their history, advance directives
in dated versions, the organ-donation position, the profile page, the export, imports and conflicts.

Services take a Session and a Vault (values are sealed per patient, AAD ``profile:<kind>:<id>``) and only
``flush()``. The patient edits and deletes only what they wrote; a professional's entry can only be the
object of a removal request (domain.md). Professionals read the profile through :func:`read_profile_as`,
which goes through the one access decision (``access.authorize``) and filters with the scope it returns.

Functions other features call:

- :func:`profile_for_export` — plain dicts per kind (FHIR export, "take my data with me");
- :func:`read_profile_as` — the same, for a professional or service, after the access decision;
- :func:`add_entries` — the legacy importer (idempotent by ``source_key``), with ``conflict_group`` to ask
  the patient to confirm or hide what disagrees; :func:`flag_conflict` and :func:`conflicts`.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, func, or_, select, true
from sqlalchemy.orm import Session

from backend import cursors
from backend.accounts.models import Patient
from backend.audit import service as audit
from backend.db import utcnow
from backend.errors import DomainError, Forbidden, NotFound
from backend.professionals.models import Professional
from backend.records.profile import kinds as pk
from backend.records.crypto import Vault
from backend.records.documents.models import Document
from backend.records.models import Record
from backend.records.access.policy import Actor, Purpose, Scope
from backend.records.profile.models import AdvanceDirective, OrganDonation, ProfileEntry, ProfileMeasure

PER_KIND_ON_PAGE = 50     # the profile page shows at most this many entries per kind (then "see all")
RECENT_POINTS = 12        # points per measure type on the profile page (sparklines)


@dataclass(frozen=True)
class Author:
    """Who writes: the patient, or a professional (named, with RPPS)."""

    kind: str = "patient"
    professional_id: int | None = None
    rpps: str | None = None
    name: str | None = None

    @classmethod
    def of_professional(cls, pro: Professional) -> Author:
        return cls("professional", pro.id, pro.rpps, pro.display_name)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Author:
        """For importers: ``{"kind": "professional", "rpps": "...", "name": "..."}`` (default: the patient)."""
        if not raw:
            return cls()
        kind = raw.get("kind", "patient")
        if kind not in ("patient", "professional"):
            raise ValueError(f"unknown author kind {kind!r}")
        return cls(kind, raw.get("professional_id"), raw.get("rpps"), raw.get("name"))


PATIENT = Author()


def entry_context(kind: str, entry_id: int) -> str:
    return f"profile:{kind}:{entry_id}"


def _seal(vault: Vault, patient_id: int, value: dict[str, Any], context: str) -> str:
    return vault.seal_text(patient_id, json.dumps(value, ensure_ascii=False, separators=(",", ":")), context)


def _open(vault: Vault, patient_id: int, sealed: str | None, context: str) -> dict[str, Any]:
    if not sealed:
        return {}
    return json.loads(vault.open_text(patient_id, sealed, context))


def _today(now: dt.datetime) -> dt.date:
    return now.astimezone(pk.PARIS).date()


def _birth_date(session: Session, patient_id: int) -> dt.date | None:
    patient = session.get(Patient, patient_id)  # usually already in the session (the authenticated patient)
    return patient.birth_date if patient is not None else None


def _author_view(row: Any) -> dict[str, Any]:
    return {"kind": row.author_kind, "name": row.author_name, "rpps": row.author_rpps}


def _stamp(row: Any, author: Author, source: str) -> None:
    if source not in pk.SOURCES:
        raise ValueError(f"unknown source {source!r}")
    row.source = source
    row.author_kind = author.kind
    row.author_professional_id = author.professional_id
    row.author_rpps = author.rpps
    row.author_name = author.name


def _trace(session: Session, author: Author, source: str, patient_id: int, action: str, now: dt.datetime,
           **details: Any) -> None:
    """The action in the access history: identifiers and kinds only, never the values."""
    if source == "migration":
        actor_type, actor_id = "system", None
    elif author.kind == "professional":
        actor_type, actor_id = "professional", author.rpps
    else:
        actor_type, actor_id = "patient", str(patient_id)
    audit.record(session, actor_type=actor_type, actor_id=actor_id, action=action, patient_id=patient_id,
                 details=details, at=now)


# --- entries ------------------------------------------------------------------------------------------

def entry_view(entry: ProfileEntry, fields: dict[str, Any]) -> dict[str, Any]:
    spec = pk.KINDS[entry.kind]
    return {
        "id": entry.id, "kind": entry.kind, "title": fields.get(spec.title), "fields": fields,
        "source": entry.source, "author": _author_view(entry), "created_at": entry.created_at,
        "updated_at": entry.updated_at, "editable": entry.author_kind == "patient",
        "hidden": entry.hidden_at is not None, "needs_confirmation": entry.needs_confirmation,
        "conflict_group": entry.conflict_group, "removal_requested_at": entry.removal_requested_at,
        "document_id": entry.document_id, "proposal": is_proposal(entry.conflict_group),
    }


def _open_entry(vault: Vault, entry: ProfileEntry) -> dict[str, Any]:
    return _open(vault, entry.patient_id, entry.data, entry_context(entry.kind, entry.id))


def readable_entries(scope: Scope | None) -> Any:
    """Entries read from a document the reader may not see are not theirs either: for a minor's legal
    representative, none read from a document under the minor's secrecy (INVISIBLE_REPRESENTANTS_LEGAUX)."""
    if scope is None or not scope.hide_from_legal_representatives:
        return true()
    secret = select(Document.id).where(Document.patient_id == scope.patient_id,
                                       Document.invisible_legal_representatives.is_(True))
    return or_(ProfileEntry.document_id.is_(None), ProfileEntry.document_id.not_in(secret))


def _get_entry(session: Session, patient_id: int, kind: str, entry_id: int,
               scope: Scope | None = None) -> ProfileEntry:
    entry = session.scalar(select(ProfileEntry).where(
        ProfileEntry.id == entry_id, ProfileEntry.patient_id == patient_id, ProfileEntry.kind == kind,
        ProfileEntry.deleted_at.is_(None), readable_entries(scope)))
    if entry is None:
        raise NotFound("profile_entry_not_found")
    return entry


def _new_entry(session: Session, patient_id: int, kind: str, author: Author, source: str, now: dt.datetime,
               source_key: str | None = None, conflict_group: str | None = None,
               document_id: int | None = None) -> ProfileEntry:
    entry = ProfileEntry(patient_id=patient_id, kind=kind, data="", created_at=now, source_key=source_key,
                         needs_confirmation=conflict_group is not None, conflict_group=conflict_group,
                         document_id=document_id)
    _stamp(entry, author, source)
    session.add(entry)
    return entry


def _single_taken(session: Session, patient_id: int, kind: str) -> bool:
    return session.scalar(select(ProfileEntry.id).where(
        ProfileEntry.patient_id == patient_id, ProfileEntry.kind == kind, ProfileEntry.deleted_at.is_(None),
        ProfileEntry.hidden_at.is_(None)).limit(1)) is not None


def create_entry(session: Session, vault: Vault, patient_id: int, kind: str, data: Any, *,
                 author: Author = PATIENT, source: str = "patient", now: dt.datetime | None = None) -> dict[str, Any]:
    """Add one entry after validating it; nothing is written when a field is wrong."""
    spec = pk.get_kind(kind)
    now = now or utcnow()
    fields = pk.clean_entry(spec, data, today=_today(now), birth_date=_birth_date(session, patient_id))
    if spec.single and _single_taken(session, patient_id, kind):
        raise DomainError("profile_single_exists", 409)
    entry = _new_entry(session, patient_id, kind, author, source, now)
    session.flush()
    entry.data = _seal(vault, patient_id, fields, entry_context(kind, entry.id))
    _trace(session, author, source, patient_id, "profile.entry_created", now, kind=kind, entry_id=entry.id)
    return entry_view(entry, fields)


def get_entry(session: Session, vault: Vault, patient_id: int, kind: str, entry_id: int,
              scope: Scope | None = None) -> dict[str, Any]:
    pk.get_kind(kind)
    entry = _get_entry(session, patient_id, kind, entry_id, scope)
    return entry_view(entry, _open_entry(vault, entry))


def list_entries(session: Session, vault: Vault, patient_id: int, kind: str, *, limit: int,
                 after_id: int | None = None, include_hidden: bool = False,
                 scope: Scope | None = None) -> tuple[list[dict[str, Any]], bool]:
    """One kind's entries, newest first, keyset-paginated on the id; (page, more)."""
    pk.get_kind(kind)
    query = select(ProfileEntry).where(ProfileEntry.patient_id == patient_id, ProfileEntry.kind == kind,
                                       ProfileEntry.deleted_at.is_(None), readable_entries(scope))
    if not include_hidden:
        query = query.where(ProfileEntry.hidden_at.is_(None))
    if after_id is not None:
        query = query.where(ProfileEntry.id < after_id)
    rows = session.scalars(query.order_by(ProfileEntry.id.desc()).limit(limit + 1)).all()
    return [entry_view(e, _open_entry(vault, e)) for e in rows[:limit]], len(rows) > limit


def update_entry(session: Session, vault: Vault, patient_id: int, kind: str, entry_id: int, data: Any, *,
                 now: dt.datetime | None = None) -> dict[str, Any]:
    """The patient corrects what they wrote (given fields replace, null clears); never a professional's entry."""
    spec = pk.get_kind(kind)
    now = now or utcnow()
    entry = _get_entry(session, patient_id, kind, entry_id)
    if entry.author_kind != "patient":
        raise Forbidden("profile_not_author")
    fields = pk.clean_entry(spec, data, today=_today(now), birth_date=_birth_date(session, patient_id),
                            previous=_open_entry(vault, entry))
    entry.data = _seal(vault, patient_id, fields, entry_context(kind, entry.id))
    entry.updated_at = now
    _trace(session, PATIENT, "patient", patient_id, "profile.entry_updated", now, kind=kind, entry_id=entry.id)
    return entry_view(entry, fields)


def delete_entry(session: Session, vault: Vault, patient_id: int, kind: str, entry_id: int, *,
                 reason: str | None = None, now: dt.datetime | None = None) -> tuple[str, dict[str, Any] | None]:
    """The patient deletes what they wrote ("deleted"); for a professional's entry the deletion becomes a
    removal request ("removal_requested", the entry is kept and shown with the request)."""
    pk.get_kind(kind)
    now = now or utcnow()
    entry = _get_entry(session, patient_id, kind, entry_id)
    if entry.author_kind == "patient":
        if entry.source_key is not None:
            # imported: keep a tombstone without data, so a re-import does not bring it back
            entry.data, entry.deleted_at, entry.removal_reason = "", now, None
        else:
            session.delete(entry)
        _trace(session, PATIENT, "patient", patient_id, "profile.entry_deleted", now, kind=kind, entry_id=entry_id)
        session.flush()
        return "deleted", None
    _request_removal(session, vault, entry, entry_context(kind, entry.id), reason, now)
    _trace(session, PATIENT, "patient", patient_id, "profile.removal_requested", now, kind=kind, entry_id=entry_id)
    return "removal_requested", entry_view(entry, _open_entry(vault, entry))


def _request_removal(session: Session, vault: Vault, row: ProfileEntry | ProfileMeasure, context: str,
                     reason: str | None, now: dt.datetime) -> None:
    if row.removal_requested_at is None:
        row.removal_requested_at = now
    if reason and reason.strip():
        row.removal_reason = vault.seal_text(row.patient_id, reason.strip()[:1000], f"{context}:removal")
    session.flush()


def set_entry_state(session: Session, vault: Vault, patient_id: int, kind: str, entry_id: int, *,
                    hidden: bool | None = None, confirmed: bool | None = None,
                    now: dt.datetime | None = None) -> dict[str, Any]:
    """Hide or show an entry (any author: it is the patient's view, like masking a document), or confirm
    an entry an importer flagged. Hiding also settles a pending confirmation."""
    pk.get_kind(kind)
    now = now or utcnow()
    entry = _get_entry(session, patient_id, kind, entry_id)
    if hidden is not None:
        entry.hidden_at = now if hidden else None
        if hidden:
            entry.needs_confirmation = False
    if confirmed:
        entry.needs_confirmation = False
        if is_proposal(entry.conflict_group):
            entry.hidden_at = None   # the patient adopts what a (masked) document proposed: it is theirs to see
    if hidden is None:
        action = "profile.entry_confirmed"
    else:
        action = "profile.entry_hidden" if hidden else "profile.entry_shown"
    _trace(session, PATIENT, "patient", patient_id, action, now, kind=kind, entry_id=entry_id)
    return entry_view(entry, _open_entry(vault, entry))


# --- imports and conflicts ----------------------------------------------------------------------------

# A conflict group under this prefix is not a disagreement between imports but something a document
# proposes (a vaccination from a dispensed vaccine): the patient confirms it, or hides it.
PROPOSAL_PREFIX = "proposal:"
ITEM_META = ("source_key", "author", "recorded_at", "document_id")


def is_proposal(group: str | None) -> bool:
    return bool(group) and str(group).startswith(PROPOSAL_PREFIX)


@dataclass
class ImportResult:
    created: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)           # source keys already present
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"index", "source_key", "errors"}


def add_entries(session: Session, vault: Vault, patient_id: int, kind: str, items: Iterable[dict[str, Any]], *,
                source: str = "migration", author: Author | None = None, conflict_group: str | None = None,
                now: dt.datetime | None = None) -> ImportResult:
    """Bulk add for importers (legacy DMP, professional software). Each item holds the kind's fields plus
    optional ``source_key`` (idempotency: an item whose key is already there, even deleted by the patient,
    is skipped), ``author`` (``{"kind", "rpps", "name"}``, default ``author``), ``recorded_at`` and
    ``document_id`` (the document the entry was read from). ``kind`` may also be ``"measure"`` (fields as
    for :func:`add_measure`).

    An invalid item is rejected with its errors, the others go in. ``conflict_group`` marks the created
    entries as needing the patient's confirmation (two disagreeing lists); adding to a single-valued kind
    (blood group) that already has a value does the same. A constant number of statements per call.
    """
    now = now or utcnow()
    items = list(items)
    result = ImportResult()
    birth_date = _birth_date(session, patient_id)
    if kind == "measure":
        return _add_measures(session, vault, patient_id, items, source, author, now, birth_date, result)
    spec = pk.get_kind(kind)
    keys = [str(i["source_key"]) for i in items if isinstance(i, dict) and i.get("source_key")]
    existing = set(session.scalars(select(ProfileEntry.source_key).where(
        ProfileEntry.patient_id == patient_id, ProfileEntry.kind == kind,
        ProfileEntry.source_key.in_(keys)))) if keys else set()
    group = conflict_group
    if spec.single and group is None and _single_taken(session, patient_id, kind):
        group = f"{kind}:{now.date().isoformat()}"
    pending: list[tuple[ProfileEntry, dict[str, Any]]] = []
    clean = functools.partial(pk.clean_entry, spec, today=_today(now), birth_date=birth_date)
    for item, key, who, fields in _each_new(items, existing, result, author, clean):
        recorded = item.get("recorded_at") if isinstance(item.get("recorded_at"), dt.datetime) else now
        document_id = item.get("document_id") if isinstance(item.get("document_id"), int) else None
        entry = _new_entry(session, patient_id, kind, who, source, recorded, key, group, document_id)
        pending.append((entry, fields))
    return _imported(session, vault, patient_id, kind, pending, author, source, now, result)


def _each_new(items: list[Any], existing: set[str], result: ImportResult, author: Author | None,
              clean: Callable[[dict[str, Any]], Any]) -> Iterator[tuple[dict[str, Any], str | None, Author, Any]]:
    """The import loop of entries and measures alike: an item whose source key is known is skipped, one that
    ``clean`` refuses is rejected with its errors; → (item, source key, author, what ``clean`` gave) for each
    item to create (its key then counts as known)."""
    for index, item in enumerate(items):
        key = str(item["source_key"]) if isinstance(item, dict) and item.get("source_key") else None
        if key is not None and key in existing:
            result.skipped.append(key)
            continue
        try:
            cleaned = clean({k: v for k, v in item.items() if k not in ITEM_META})
            who = Author.from_dict(item.get("author")) if item.get("author") else (author or PATIENT)
        except (DomainError, ValueError, AttributeError) as refused:
            result.rejected.append({"index": index, "source_key": key, "errors": _errors_of(refused)})
            continue
        yield item, key, who, cleaned
        if key is not None:
            existing.add(key)


def _imported(session: Session, vault: Vault, patient_id: int, kind: str, pending: Sequence[tuple[Any, dict[str, Any]]],
              author: Author | None, source: str, now: dt.datetime, result: ImportResult) -> ImportResult:
    _seal_pending(session, vault, patient_id, pending, kind)
    result.created = [row.id for row, _ in pending]
    if pending:
        _trace(session, author or PATIENT, source, patient_id, "profile.imported", now, kind=kind,
               created=len(pending), skipped=len(result.skipped), rejected=len(result.rejected))
    return result


def _errors_of(refused: Exception) -> list[dict[str, Any]]:
    if isinstance(refused, DomainError):
        return refused.errors or [{"field": None, "message_code": refused.code, "params": refused.params}]
    return [{"field": None, "message_code": "profile_invalid", "params": {}}]


def _seal_pending(session: Session, vault: Vault, patient_id: int, pending: Sequence[tuple[Any, dict[str, Any]]],
                  kind: str) -> None:
    """One INSERT (ids come back), then the sealed values (bound to those ids) in one UPDATE batch."""
    if not pending:
        return
    session.flush()
    for row, fields in pending:
        context = f"profile:measure:{row.id}" if kind == "measure" else entry_context(kind, row.id)
        row.data = _seal(vault, patient_id, fields, context)
    session.flush()


def hide_entries(session: Session, patient_id: int, entry_ids: Iterable[int], *, now: dt.datetime) -> int:
    """Hide entries as they are created (read from a masked document): kept, shown among hidden ones."""
    ids = list(entry_ids)
    rows = session.scalars(select(ProfileEntry).where(ProfileEntry.patient_id == patient_id,
                                                      ProfileEntry.id.in_(ids))).all() if ids else []
    for row in rows:
        row.hidden_at = now
    session.flush()
    return len(rows)


def flag_conflict(session: Session, patient_id: int, entry_ids: Iterable[int], group: str) -> int:
    """Ask the patient to confirm or hide these entries (e.g. the patient's allergy list and an imported
    one disagree). Returns how many entries were flagged."""
    ids = list(entry_ids)
    rows = session.scalars(select(ProfileEntry).where(ProfileEntry.patient_id == patient_id,
                                                      ProfileEntry.id.in_(ids),
                                                      ProfileEntry.deleted_at.is_(None))).all()
    for row in rows:
        row.needs_confirmation, row.conflict_group = True, group[:64]
    session.flush()
    return len(rows)


def _not_proposal() -> Any:
    return or_(ProfileEntry.conflict_group.is_(None),
               ProfileEntry.conflict_group.not_like(f"{PROPOSAL_PREFIX}%"))


def conflicts(session: Session, vault: Vault, patient_id: int, scope: Scope | None = None) -> list[dict[str, Any]]:
    """Groups of entries waiting for the patient's confirmation: ``[{group, kind, entries: [...]}]``.
    Proposals (:func:`proposals`) are not conflicts."""
    rows = session.scalars(select(ProfileEntry).where(
        ProfileEntry.patient_id == patient_id, ProfileEntry.needs_confirmation.is_(True),
        ProfileEntry.deleted_at.is_(None), _not_proposal(), readable_entries(scope))
        .order_by(ProfileEntry.conflict_group, ProfileEntry.id)).all()
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row.conflict_group or "", row.kind), []).append(entry_view(row, _open_entry(vault, row)))
    return [{"group": g, "kind": k, "entries": entries} for (g, k), entries in groups.items()]


def proposals(session: Session, vault: Vault, patient_id: int, *, limit: int,
              after_id: int | None = None, scope: Scope | None = None) -> tuple[list[dict[str, Any]], bool]:
    """Entries a document proposes and the patient has not settled yet (a vaccination read from a
    dispensed vaccine), newest first, each with the document it came from: two queries."""
    query = (select(ProfileEntry, Document.title, Document.service_date, Document.submitted_at,
                    Document.author_organisation)
             .outerjoin(Document, and_(Document.id == ProfileEntry.document_id, Document.deleted_at.is_(None)))
             .where(ProfileEntry.patient_id == patient_id, ProfileEntry.needs_confirmation.is_(True),
                    ProfileEntry.deleted_at.is_(None), readable_entries(scope),
                    ProfileEntry.conflict_group.like(f"{PROPOSAL_PREFIX}%")))
    if after_id is not None:
        query = query.where(ProfileEntry.id < after_id)
    rows = session.execute(query.order_by(ProfileEntry.id.desc()).limit(limit + 1)).all()
    out = []
    for entry, title, service_date, submitted_at, organisation in rows[:limit]:
        view = entry_view(entry, _open_entry(vault, entry))
        view["document"] = ({"id": entry.document_id, "title": title, "date": service_date or submitted_at,
                             "organisation": organisation} if title is not None else None)
        out.append(view)
    return out, len(rows) > limit


def confirmed_vaccinations(session: Session, vault: Vault, patient_id: int) -> list[dict[str, Any]]:
    """The vaccinations the record holds as facts (not hidden, not waiting for confirmation), oldest
    first: ``{"id", "vaccine", "atc", "date"}``. The prevention calendar follows them."""
    rows = session.scalars(select(ProfileEntry).where(
        ProfileEntry.patient_id == patient_id, ProfileEntry.kind == "vaccination",
        ProfileEntry.deleted_at.is_(None), ProfileEntry.hidden_at.is_(None),
        ProfileEntry.needs_confirmation.is_(False)).order_by(ProfileEntry.id)).all()
    out = []
    for row in rows:
        fields = _open_entry(vault, row)
        out.append({"id": row.id, "vaccine": fields.get("vaccine"), "atc": fields.get("atc"),
                    "date": fields.get("date")})
    return out


# --- measures -----------------------------------------------------------------------------------------

def measure_context(measure_id: int) -> str:
    return f"profile:measure:{measure_id}"


def measure_view(m: ProfileMeasure, fields: dict[str, Any]) -> dict[str, Any]:
    mtype = pk.MEASURE_TYPES[m.type]
    return {
        "id": m.id, "type": m.type, "measured_at": m.measured_at, "value": fields.get("value"),
        "unit": fields.get("unit"), "systolic": fields.get("systolic"), "diastolic": fields.get("diastolic"),
        "chart_value": pk.canonical_value(mtype, fields), "note": fields.get("note"), "source": m.source,
        "author": _author_view(m), "created_at": m.created_at, "updated_at": m.updated_at,
        "editable": m.author_kind == "patient", "removal_requested_at": m.removal_requested_at,
    }


def _open_measure(vault: Vault, m: ProfileMeasure) -> dict[str, Any]:
    return _open(vault, m.patient_id, m.data, measure_context(m.id))


def _get_measure(session: Session, patient_id: int, measure_id: int) -> ProfileMeasure:
    m = session.scalar(select(ProfileMeasure).where(ProfileMeasure.id == measure_id,
                                                    ProfileMeasure.patient_id == patient_id,
                                                    ProfileMeasure.deleted_at.is_(None)))
    if m is None:
        raise NotFound("profile_entry_not_found")
    return m


def add_measure(session: Session, vault: Vault, patient_id: int, data: Any, *, author: Author = PATIENT,
                source: str = "patient", now: dt.datetime | None = None) -> dict[str, Any]:
    """Record one measurement, its range checked for its type and unit."""
    now = now or utcnow()
    mtype, measured_at, fields = pk.clean_measure(data, now=now, birth_date=_birth_date(session, patient_id))
    m = ProfileMeasure(patient_id=patient_id, type=mtype, measured_at=measured_at, data="", created_at=now)
    _stamp(m, author, source)
    session.add(m)
    session.flush()
    m.data = _seal(vault, patient_id, fields, measure_context(m.id))
    _trace(session, author, source, patient_id, "profile.measure_created", now, type=mtype, measure_id=m.id)
    return measure_view(m, fields)


def _add_measures(session: Session, vault: Vault, patient_id: int, items: list[dict[str, Any]], source: str,
                  author: Author | None, now: dt.datetime, birth_date: dt.date | None,
                  result: ImportResult) -> ImportResult:
    keys = [str(i["source_key"]) for i in items if isinstance(i, dict) and i.get("source_key")]
    existing = set(session.scalars(select(ProfileMeasure.source_key).where(
        ProfileMeasure.patient_id == patient_id, ProfileMeasure.source_key.in_(keys)))) if keys else set()
    pending: list[tuple[ProfileMeasure, dict[str, Any]]] = []
    clean = functools.partial(pk.clean_measure, now=now, birth_date=birth_date)
    for _item, key, who, (mtype, measured_at, fields) in _each_new(items, existing, result, author, clean):
        m = ProfileMeasure(patient_id=patient_id, type=mtype, measured_at=measured_at, data="", created_at=now,
                           source_key=key)
        _stamp(m, who, source)
        session.add(m)
        pending.append((m, fields))
    return _imported(session, vault, patient_id, "measure", pending, author, source, now, result)


def update_measure(session: Session, vault: Vault, patient_id: int, measure_id: int, data: Any, *,
                   now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    m = _get_measure(session, patient_id, measure_id)
    if m.author_kind != "patient":
        raise Forbidden("profile_not_author")
    if isinstance(data, dict) and "type" in data and data["type"] != m.type:
        raise DomainError("profile_measure_type_fixed", 422)
    previous = {**_open_measure(vault, m), "type": m.type}
    mtype, measured_at, fields = pk.clean_measure(data, now=now, birth_date=_birth_date(session, patient_id),
                                                  previous=previous, previous_at=m.measured_at)
    m.measured_at, m.updated_at = measured_at, now
    m.data = _seal(vault, patient_id, fields, measure_context(m.id))
    _trace(session, PATIENT, "patient", patient_id, "profile.measure_updated", now, type=mtype, measure_id=m.id)
    return measure_view(m, fields)


def delete_measure(session: Session, vault: Vault, patient_id: int, measure_id: int, *, reason: str | None = None,
                   now: dt.datetime | None = None) -> tuple[str, dict[str, Any] | None]:
    now = now or utcnow()
    m = _get_measure(session, patient_id, measure_id)
    if m.author_kind == "patient":
        if m.source_key is not None:
            m.data, m.deleted_at = "", now
        else:
            session.delete(m)
        _trace(session, PATIENT, "patient", patient_id, "profile.measure_deleted", now, measure_id=measure_id)
        session.flush()
        return "deleted", None
    _request_removal(session, vault, m, measure_context(m.id), reason, now)
    _trace(session, PATIENT, "patient", patient_id, "profile.removal_requested", now, kind="measure",
           measure_id=measure_id)
    return "removal_requested", measure_view(m, _open_measure(vault, m))


def measure_series(session: Session, vault: Vault, patient_id: int, mtype: str, *, limit: int,
                   after_id: int | None = None, since: dt.datetime | None = None,
                   until: dt.datetime | None = None) -> dict[str, Any]:
    """One type's history, newest first, keyset-paginated on (measured_at, id). ``series`` gives the page
    as (date, value) pairs in time order in the type's chart unit, ready for a chart."""
    spec = pk.MEASURE_TYPES.get(mtype)
    if spec is None:
        raise DomainError("profile_unknown_measure", 422, type=str(mtype)[:40], types=", ".join(pk.MEASURE_TYPES))
    query = select(ProfileMeasure).where(ProfileMeasure.patient_id == patient_id, ProfileMeasure.type == mtype,
                                         ProfileMeasure.deleted_at.is_(None))
    if since is not None:
        query = query.where(ProfileMeasure.measured_at >= since)
    if until is not None:
        query = query.where(ProfileMeasure.measured_at <= until)
    if after_id is not None:
        anchor = session.scalar(select(ProfileMeasure.measured_at).where(
            ProfileMeasure.id == after_id, ProfileMeasure.patient_id == patient_id, ProfileMeasure.type == mtype))
        if anchor is None:
            raise cursors.refused()
        query = query.where(or_(ProfileMeasure.measured_at < anchor,
                                and_(ProfileMeasure.measured_at == anchor, ProfileMeasure.id < after_id)))
    rows = session.scalars(query.order_by(ProfileMeasure.measured_at.desc(), ProfileMeasure.id.desc())
                           .limit(limit + 1)).all()
    page = rows[:limit]
    items = [measure_view(m, _open_measure(vault, m)) for m in page]
    return {"type": mtype, "unit": spec.default_unit.code, "items": items, "series": _series(spec, items),
            "next_id": page[-1].id if len(rows) > limit else None}


def _series(spec: pk.MeasureType, items: list[dict[str, Any]]) -> dict[str, list[list[Any]]]:
    ordered = sorted(items, key=lambda i: (i["measured_at"], i["id"]))
    if spec.components:
        return {name: [[i["measured_at"].isoformat(), i[name]] for i in ordered if i.get(name) is not None]
                for name, *_ in spec.components}
    return {"value": [[i["measured_at"].isoformat(), i["chart_value"]] for i in ordered
                      if i.get("chart_value") is not None]}


# --- advance directives and organ donation ------------------------------------------------------------

def directive_context(directive_id: int) -> str:
    return f"profile:directive:{directive_id}"


def _check_context(context: str) -> None:
    if context not in pk.DIRECTIVE_CONTEXTS:
        raise DomainError("directive_unknown_context", 422, context=str(context)[:40],
                          contexts=", ".join(pk.DIRECTIVE_CONTEXTS))


def _directive_document(scope: Scope | None) -> Any:
    """The document a directive version points to, if the reader may see it (a minor's legal representative
    never sees one under the minor's secrecy; nobody a deleted one): the join condition of its title."""
    on = Document.id == AdvanceDirective.document_id
    return and_(on, scope.document_filter()) if scope is not None else on


def directive_view(d: AdvanceDirective, text: str | None, document_title: str | None) -> dict[str, Any]:
    return {"id": d.id, "context": d.context, "version": d.version, "text": text,
            "document": {"id": d.document_id, "title": document_title} if d.document_id and document_title is not None
            else None,
            "withdrawn": d.withdrawn, "created_at": d.created_at, "source": d.source, "author": _author_view(d)}


def _open_directive(vault: Vault, d: AdvanceDirective) -> str | None:
    return vault.open_text(d.patient_id, d.text, directive_context(d.id)) if d.text else None


def add_directive_version(session: Session, vault: Vault, scope: Scope, context: str, *, text: str | None = None,
                          document_id: int | None = None, withdrawn: bool = False, author: Author = PATIENT,
                          source: str = "patient", now: dt.datetime | None = None) -> dict[str, Any]:
    """A new dated version of the directives for a context (text and/or a document of the record the
    scope can see). Earlier versions are kept as they were. ``withdrawn`` records a withdrawal."""
    _check_context(context)
    now = now or utcnow()
    patient_id = scope.patient_id
    text = text.strip() if isinstance(text, str) and text.strip() else None
    problems = pk.Problems()
    if text is not None and len(text) > pk.DIRECTIVE_MAX_LENGTH:
        problems.add("text", "profile_too_long", max=pk.DIRECTIVE_MAX_LENGTH)
    problems.raise_if_any()
    if withdrawn and (text or document_id):
        raise DomainError("directive_withdrawn_with_content", 422)
    if not withdrawn and not text and document_id is None:
        raise DomainError("directive_empty", 422)
    title = None
    if document_id is not None:
        title = session.scalar(select(Document.title).where(Document.id == document_id, scope.document_filter()))
        if title is None:
            raise NotFound("directive_document_not_found")
    # Serialise versions of one record (PostgreSQL row lock; SQLite has one writer anyway).
    session.scalar(select(Record.id).where(Record.patient_id == patient_id).with_for_update())
    last = session.scalars(select(AdvanceDirective).where(
        AdvanceDirective.patient_id == patient_id, AdvanceDirective.context == context)
        .order_by(AdvanceDirective.version.desc()).limit(1)).first()
    if withdrawn and (last is None or last.withdrawn):
        raise DomainError("directive_nothing_to_withdraw", 409)
    d = AdvanceDirective(patient_id=patient_id, context=context, version=(last.version + 1) if last else 1,
                         document_id=document_id, withdrawn=withdrawn, created_at=now)
    _stamp(d, author, source)
    session.add(d)
    session.flush()
    if text:
        d.text = vault.seal_text(patient_id, text, directive_context(d.id))
    _trace(session, author, source, patient_id, "profile.directive_version_added", now, context=context,
           version=d.version, directive_id=d.id, document_id=document_id)
    return directive_view(d, text, title)


def current_directives(session: Session, vault: Vault, patient_id: int, *,
                       scope: Scope | None = None) -> dict[str, Any]:
    """The version in force per context (or None) and how many versions exist; the document of each only if
    ``scope`` lets its reader see it. One query."""
    latest = (select(AdvanceDirective.context, func.max(AdvanceDirective.version).label("version"),
                     func.count().label("versions"))
              .where(AdvanceDirective.patient_id == patient_id).group_by(AdvanceDirective.context).subquery())
    rows = session.execute(
        select(AdvanceDirective, Document.title, latest.c.versions)
        .join(latest, and_(latest.c.context == AdvanceDirective.context, latest.c.version == AdvanceDirective.version))
        .outerjoin(Document, _directive_document(scope))
        .where(AdvanceDirective.patient_id == patient_id)).all()
    out: dict[str, Any] = {c: {"current": None, "versions": 0} for c in pk.DIRECTIVE_CONTEXTS}
    for d, title, versions in rows:
        out[d.context] = {"current": directive_view(d, _open_directive(vault, d), title), "versions": versions}
    return out


def directive_versions(session: Session, vault: Vault, patient_id: int, context: str, *, limit: int,
                       after_version: int | None = None,
                       scope: Scope | None = None) -> tuple[list[dict[str, Any]], bool]:
    """Every version of a context, newest first."""
    _check_context(context)
    query = (select(AdvanceDirective, Document.title).outerjoin(Document, _directive_document(scope))
             .where(AdvanceDirective.patient_id == patient_id, AdvanceDirective.context == context))
    if after_version is not None:
        query = query.where(AdvanceDirective.version < after_version)
    rows = session.execute(query.order_by(AdvanceDirective.version.desc()).limit(limit + 1)).all()
    return [directive_view(d, _open_directive(vault, d), title) for d, title in rows[:limit]], len(rows) > limit


def organ_donation_context(row_id: int) -> str:
    return f"profile:organ_donation:{row_id}"


def organ_donation_view(row: OrganDonation, fields: dict[str, Any]) -> dict[str, Any]:
    return {"id": row.id, "position": fields.get("position"), "informed_at": fields.get("informed_at"),
            "comment": fields.get("comment"), "created_at": row.created_at, "source": row.source,
            "author": _author_view(row)}


def set_organ_donation(session: Session, vault: Vault, patient_id: int, data: Any, *, author: Author = PATIENT,
                       source: str = "patient", now: dt.datetime | None = None) -> dict[str, Any]:
    """Record the patient's stated position and when they were informed (a new row: the history is kept)."""
    now = now or utcnow()
    problems = pk.Problems()
    if not isinstance(data, dict):
        problems.add(None, "profile_not_an_object")
        problems.raise_if_any()
    for name in data:
        if name not in ("position", "informed_at", "comment"):
            problems.add(name, "profile_unknown_field")
    position = data.get("position")
    if position not in pk.ORGAN_DONATION_POSITIONS:
        problems.add("position", "profile_required" if position is None else "profile_invalid_choice",
                     choices=", ".join(pk.ORGAN_DONATION_POSITIONS))
    fields: dict[str, Any] = {"position": position}
    informed = data.get("informed_at")
    if informed is not None:
        if not isinstance(informed, str) or len(informed) != 10 or pk.date_bounds(informed) is None:
            problems.add("informed_at", "profile_invalid_date")
        else:
            day = dt.date.fromisoformat(informed)
            birth = _birth_date(session, patient_id)
            if day > _today(now):
                problems.add("informed_at", "profile_future_date")
            elif birth is not None and day < birth:
                problems.add("informed_at", "profile_date_before_birth")
            fields["informed_at"] = informed
    comment = data.get("comment")
    if comment is not None:
        if not isinstance(comment, str) or len(comment) > 1000:
            problems.add("comment", "profile_too_long", max=1000)
        elif comment.strip():
            fields["comment"] = comment.strip()
    problems.raise_if_any()
    row = OrganDonation(patient_id=patient_id, data="", created_at=now)
    _stamp(row, author, source)
    session.add(row)
    session.flush()
    row.data = _seal(vault, patient_id, fields, organ_donation_context(row.id))
    _trace(session, author, source, patient_id, "profile.organ_donation_stated", now, organ_donation_id=row.id)
    return organ_donation_view(row, fields)


def organ_donation_history(session: Session, vault: Vault, patient_id: int, *, limit: int,
                           after_id: int | None = None) -> tuple[list[dict[str, Any]], bool]:
    query = select(OrganDonation).where(OrganDonation.patient_id == patient_id)
    if after_id is not None:
        query = query.where(OrganDonation.id < after_id)
    rows = session.scalars(query.order_by(OrganDonation.id.desc()).limit(limit + 1)).all()
    return [organ_donation_view(r, _open(vault, patient_id, r.data, organ_donation_context(r.id)))
            for r in rows[:limit]], len(rows) > limit


def current_organ_donation(session: Session, vault: Vault, patient_id: int) -> dict[str, Any] | None:
    row = session.scalars(select(OrganDonation).where(OrganDonation.patient_id == patient_id)
                          .order_by(OrganDonation.id.desc()).limit(1)).first()
    if row is None:
        return None
    return organ_donation_view(row, _open(vault, patient_id, row.data, organ_donation_context(row.id)))


# --- the profile page (BFF) ---------------------------------------------------------------------------

def profile_page(session: Session, vault: Vault, patient_id: int, *, per_kind: int = PER_KIND_ON_PAGE,
                 recent_points: int = RECENT_POINTS, scope: Scope | None = None) -> dict[str, Any]:
    """Everything the profile screen shows, in a fixed number of queries whatever the record holds:
    entries per kind (newest ``per_kind``, with totals), latest measures with a few recent points per type,
    directives in force, the organ-donation position, conflicts to settle and counters."""
    # 1. entries, capped per kind by a window function
    ranked = (select(ProfileEntry.id,
                     func.row_number().over(partition_by=ProfileEntry.kind,
                                            order_by=ProfileEntry.id.desc()).label("rn"),
                     func.count().over(partition_by=ProfileEntry.kind).label("total"))
              .where(ProfileEntry.patient_id == patient_id, ProfileEntry.deleted_at.is_(None),
                     ProfileEntry.hidden_at.is_(None), readable_entries(scope)).subquery())
    rows = session.execute(select(ProfileEntry, ranked.c.total).join(ranked, ranked.c.id == ProfileEntry.id)
                           .where(ranked.c.rn <= per_kind).order_by(ProfileEntry.kind, ProfileEntry.id.desc())).all()
    entries: dict[str, dict[str, Any]] = {k: {"items": [], "total": 0} for k in pk.KINDS}
    for entry, total in rows:
        bucket = entries[entry.kind]
        bucket["total"] = total
        bucket["items"].append(entry_view(entry, _open_entry(vault, entry)))
    for bucket in entries.values():
        bucket["has_more"] = bucket["total"] > len(bucket["items"])

    # 2. measures: the last few points of every type, and how many there are
    mranked = (select(ProfileMeasure.id,
                      func.row_number().over(partition_by=ProfileMeasure.type,
                                             order_by=(ProfileMeasure.measured_at.desc(), ProfileMeasure.id.desc()))
                      .label("rn"),
                      func.count().over(partition_by=ProfileMeasure.type).label("total"))
               .where(ProfileMeasure.patient_id == patient_id, ProfileMeasure.deleted_at.is_(None)).subquery())
    mrows = session.execute(select(ProfileMeasure, mranked.c.total).join(mranked, mranked.c.id == ProfileMeasure.id)
                            .where(mranked.c.rn <= recent_points)
                            .order_by(ProfileMeasure.type, ProfileMeasure.measured_at.desc(),
                                      ProfileMeasure.id.desc())).all()
    by_type: dict[str, dict[str, Any]] = {}
    for m, total in mrows:
        view = measure_view(m, _open_measure(vault, m))
        slot = by_type.setdefault(m.type, {"type": m.type, "unit": pk.MEASURE_TYPES[m.type].default_unit.code,
                                           "count": total, "latest": view, "recent": []})
        slot["recent"].append(view)
    measures = []
    for code, spec in pk.MEASURE_TYPES.items():
        slot = by_type.get(code, {"type": code, "unit": spec.default_unit.code, "count": 0, "latest": None,
                                  "recent": []})
        slot["series"] = _series(spec, slot.pop("recent"))
        measures.append(slot)

    # 3. counters: hidden entries, removal requests, entries awaiting confirmation by group
    counters = session.execute(select(
        func.coalesce(func.sum(case((ProfileEntry.hidden_at.is_not(None), 1), else_=0)), 0),
        func.coalesce(func.sum(case((ProfileEntry.removal_requested_at.is_not(None), 1), else_=0)), 0),
    ).where(ProfileEntry.patient_id == patient_id, ProfileEntry.deleted_at.is_(None))).one()
    groups = session.execute(select(ProfileEntry.conflict_group, ProfileEntry.kind, func.count())
                             .where(ProfileEntry.patient_id == patient_id, ProfileEntry.needs_confirmation.is_(True),
                                    ProfileEntry.deleted_at.is_(None))
                             .group_by(ProfileEntry.conflict_group, ProfileEntry.kind)
                             .order_by(ProfileEntry.conflict_group)).all()
    proposed = sum(n for g, _k, n in groups if is_proposal(g))
    return {
        "entries": entries,
        "measures": measures,
        "directives": current_directives(session, vault, patient_id, scope=scope),   # 4.
        "organ_donation": current_organ_donation(session, vault, patient_id),  # 5.
        "hidden_count": int(counters[0]),
        "removal_requests": int(counters[1]),
        "conflicts": [{"group": g, "kind": k, "count": n} for g, k, n in groups if not is_proposal(g)],
        "proposals": proposed,
    }


# --- export and professional reads --------------------------------------------------------------------

def _category_allowed(scope: Scope | None, category: str) -> bool:
    # Mirrors Scope.permits for a category (the profession matrix and services' granted categories).
    if scope is None:
        return True
    if category in scope.denied_categories:
        return False
    return scope.only_categories is None or category in scope.only_categories


def _row_visible(scope: Scope | None, hidden: bool, author_professional_id: int | None) -> bool:
    # An entry the patient hid is treated like a masked document: the patient, the administrator (and
    # emergencies with the MASKED switch on), and its own author still see it.
    if scope is None or not hidden or scope.see_masked:
        return True
    return scope.author_professional_id is not None and author_professional_id == scope.author_professional_id


def _export_meta(row: Any) -> dict[str, Any]:
    return {"id": row.id, "source": row.source, "author": _author_view(row), "recorded_at": row.created_at,
            "updated_at": row.updated_at}


def profile_for_export(session: Session, vault: Vault, patient_id: int, *,
                       scope: Scope | None = None) -> dict[str, list[dict[str, Any]]]:
    """The whole profile as plain dicts per kind, for the FHIR export and "take my data with me".

    Keys: every entry kind (``allergy``, ``disease``, ``hospitalisation``, ``family_history``, ``treatment``,
    ``vaccination``, ``implant``, ``blood_group``, ``disability``, ``lifestyle``, ``contact``, ``wish``), plus
    ``measure``, ``directive`` (every version) and ``organ_donation`` (every statement, newest first). Entries
    carry ``fields`` (the kind's fields, dates as ISO strings, possibly partial "2019" / "2019-05"),
    ``document_id`` (the document it was read from, or None), ``needs_confirmation`` (→ verificationStatus
    unconfirmed) and ``hidden``. Measures carry ``loinc``,
    ``value`` + ``unit`` + ``ucum`` (``unit_loinc`` when the unit changes the code, e.g. glucose in mmol/L),
    or ``components`` for blood pressure.

    ``scope`` (from ``access.authorize``) filters kinds by the profession matrix and hidden entries like
    masked documents; None means the patient's own complete export. Five queries whatever the size.
    """
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in pk.KINDS}
    out.update({"measure": [], "directive": [], "organ_donation": []})
    allowed_kinds = [k for k, spec in pk.KINDS.items() if _category_allowed(scope, spec.category)]
    if allowed_kinds:
        for e in session.scalars(select(ProfileEntry).where(
                ProfileEntry.patient_id == patient_id, ProfileEntry.deleted_at.is_(None),
                ProfileEntry.kind.in_(allowed_kinds)).order_by(ProfileEntry.kind, ProfileEntry.id)):
            if not _row_visible(scope, e.hidden_at is not None, e.author_professional_id):
                continue
            out[e.kind].append({**_export_meta(e), "kind": e.kind, "fields": _open_entry(vault, e),
                                "needs_confirmation": e.needs_confirmation, "hidden": e.hidden_at is not None,
                                "removal_requested_at": e.removal_requested_at, "document_id": e.document_id})
    if _category_allowed(scope, pk.MEASURE_CATEGORY):
        for m in session.scalars(select(ProfileMeasure).where(
                ProfileMeasure.patient_id == patient_id, ProfileMeasure.deleted_at.is_(None))
                .order_by(ProfileMeasure.type, ProfileMeasure.measured_at, ProfileMeasure.id)):
            out["measure"].append(measure_for_export(m, _open_measure(vault, m)))
    if _category_allowed(scope, pk.DIRECTIVE_CATEGORY):
        for d, title in session.execute(
                select(AdvanceDirective, Document.title)
                .outerjoin(Document, _directive_document(scope))
                .where(AdvanceDirective.patient_id == patient_id)
                .order_by(AdvanceDirective.context, AdvanceDirective.version)):
            out["directive"].append({**directive_view(d, _open_directive(vault, d), title),
                                     "recorded_at": d.created_at})
    if _category_allowed(scope, pk.ORGAN_DONATION_CATEGORY):
        for r in session.scalars(select(OrganDonation).where(OrganDonation.patient_id == patient_id)
                                 .order_by(OrganDonation.id.desc())):
            out["organ_donation"].append(
                {**_export_meta(r), **organ_donation_view(r, _open(vault, patient_id, r.data,
                                                                   organ_donation_context(r.id)))})
    return out


def measure_for_export(m: ProfileMeasure, fields: dict[str, Any]) -> dict[str, Any]:
    """A measure in the shape ``fhir.profile_resources.measure`` reads (the export's, a service's)."""
    spec = pk.MEASURE_TYPES[m.type]
    unit = spec.unit(fields.get("unit")) or spec.default_unit
    item: dict[str, Any] = {**_export_meta(m), "type": m.type, "loinc": spec.loinc, "measured_at": m.measured_at,
                            "unit": unit.code, "ucum": unit.ucum, "unit_loinc": unit.loinc, "note": fields.get("note")}
    if spec.components:
        item["components"] = [{"name": name, "loinc": loinc, "value": fields.get(name)}
                              for name, loinc, *_ in spec.components]
    else:
        item["value"] = fields.get("value")
    return item


def read_profile_as(session: Session, vault: Vault, actor: Actor, patient_id: int, *,
                    purpose: Purpose = Purpose.TREAT, reason: str | None = None,
                    now: dt.datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """A professional's (or service's) read of the profile: the access decision, its trace in the audit
    trail (and an emergency's notification), then :func:`profile_for_export` within the granted scope.
    Raises ``AccessRefused`` (403, trace kept) when the policy says no."""
    from backend.records.access.authorize import authorize

    scope = authorize(session, actor, patient_id, "profile.read", purpose=purpose, reason=reason, now=now)
    return profile_for_export(session, vault, patient_id, scope=scope)
