"""The medical profile's domain logic: entries of every kind, imports and conflicts, the profile page and
the export. Measures live in ``measures.py``, advance directives and organ donation in ``directives.py``,
what all of them share (who wrote, sealing, the day) in ``common.py``.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, func, or_, select, true
from sqlalchemy.orm import Session

from backend.db import utcnow
from backend.errors import DomainError, Forbidden, NotFound
from backend.records.profile import kinds as pk
from backend.records.crypto import Vault
from backend.records.documents.models import Document
from backend.records.access.policy import Actor, Purpose, Scope
from backend.records.profile import common, directives, measures
from backend.records.profile.common import PATIENT, Author
from backend.records.profile.models import AdvanceDirective, OrganDonation, ProfileEntry, ProfileMeasure

PER_KIND_ON_PAGE = 50     # the profile page shows at most this many entries per kind (then "see all")
RECENT_POINTS = 12        # points per measure type on the profile page (sparklines)


def entry_context(kind: str, entry_id: int) -> str:
    return f"profile:{kind}:{entry_id}"


# --- entries ------------------------------------------------------------------------------------------

def entry_view(entry: ProfileEntry, fields: dict[str, Any]) -> dict[str, Any]:
    spec = pk.KINDS[entry.kind]
    return {
        "id": entry.id, "kind": entry.kind, "title": fields.get(spec.title), "fields": fields,
        "source": entry.source, "author": common.author_view(entry), "created_at": entry.created_at,
        "updated_at": entry.updated_at, "editable": entry.author_kind == "patient",
        "hidden": entry.hidden_at is not None, "needs_confirmation": entry.needs_confirmation,
        "conflict_group": entry.conflict_group, "removal_requested_at": entry.removal_requested_at,
        "document_id": entry.document_id, "proposal": is_proposal(entry.conflict_group),
    }


def _open_entry(vault: Vault, entry: ProfileEntry) -> dict[str, Any]:
    return common.open_sealed(vault, entry.patient_id, entry.data, entry_context(entry.kind, entry.id))


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
    common.stamp(entry, author, source)
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
    fields = pk.clean_entry(spec, data, today=common.today(now), birth_date=common.birth_date(session, patient_id))
    if spec.single and _single_taken(session, patient_id, kind):
        raise DomainError("profile_single_exists", 409)
    entry = _new_entry(session, patient_id, kind, author, source, now)
    session.flush()
    entry.data = common.seal(vault, patient_id, fields, entry_context(kind, entry.id))
    common.trace(session, author, source, patient_id, "profile.entry_created", now, kind=kind, entry_id=entry.id)
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
    fields = pk.clean_entry(spec, data, today=common.today(now), birth_date=common.birth_date(session, patient_id),
                            previous=_open_entry(vault, entry))
    entry.data = common.seal(vault, patient_id, fields, entry_context(kind, entry.id))
    entry.updated_at = now
    common.trace(session, PATIENT, "patient", patient_id, "profile.entry_updated", now, kind=kind, entry_id=entry.id)
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
        common.trace(session, PATIENT, "patient", patient_id, "profile.entry_deleted", now, kind=kind,
                     entry_id=entry_id)
        session.flush()
        return "deleted", None
    common.request_removal(session, vault, entry, entry_context(kind, entry.id), reason, now)
    common.trace(session, PATIENT, "patient", patient_id, "profile.removal_requested", now, kind=kind,
                 entry_id=entry_id)
    return "removal_requested", entry_view(entry, _open_entry(vault, entry))


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
    common.trace(session, PATIENT, "patient", patient_id, action, now, kind=kind, entry_id=entry_id)
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
    for :func:`measures.add_measure`).

    An invalid item is rejected with its errors, the others go in. ``conflict_group`` marks the created
    entries as needing the patient's confirmation (two disagreeing lists); adding to a single-valued kind
    (blood group) that already has a value does the same. A constant number of statements per call.
    """
    now = now or utcnow()
    items = list(items)
    result = ImportResult()
    birth_date = common.birth_date(session, patient_id)
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
    clean = functools.partial(pk.clean_entry, spec, today=common.today(now), birth_date=birth_date)
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
        common.trace(session, author or PATIENT, source, patient_id, "profile.imported", now, kind=kind,
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
        row.data = common.seal(vault, patient_id, fields, context)
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
        common.stamp(m, who, source)
        session.add(m)
        pending.append((m, fields))
    return _imported(session, vault, patient_id, "measure", pending, author, source, now, result)


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
        view = measures.measure_view(m, measures.open_measure(vault, m))
        slot = by_type.setdefault(m.type, {"type": m.type, "unit": pk.MEASURE_TYPES[m.type].default_unit.code,
                                           "count": total, "latest": view, "recent": []})
        slot["recent"].append(view)
    measure_slots = []
    for code, spec in pk.MEASURE_TYPES.items():
        slot = by_type.get(code, {"type": code, "unit": spec.default_unit.code, "count": 0, "latest": None,
                                  "recent": []})
        slot["series"] = measures.series_of(spec, slot.pop("recent"))
        measure_slots.append(slot)

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
        "measures": measure_slots,
        "directives": directives.current_directives(session, vault, patient_id, scope=scope),   # 4.
        "organ_donation": directives.current_organ_donation(session, vault, patient_id),  # 5.
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
            out[e.kind].append({**common.export_meta(e), "kind": e.kind, "fields": _open_entry(vault, e),
                                "needs_confirmation": e.needs_confirmation, "hidden": e.hidden_at is not None,
                                "removal_requested_at": e.removal_requested_at, "document_id": e.document_id})
    if _category_allowed(scope, pk.MEASURE_CATEGORY):
        for m in session.scalars(select(ProfileMeasure).where(
                ProfileMeasure.patient_id == patient_id, ProfileMeasure.deleted_at.is_(None))
                .order_by(ProfileMeasure.type, ProfileMeasure.measured_at, ProfileMeasure.id)):
            out["measure"].append(measures.measure_for_export(m, measures.open_measure(vault, m)))
    if _category_allowed(scope, pk.DIRECTIVE_CATEGORY):
        for d, title in session.execute(
                select(AdvanceDirective, Document.title)
                .outerjoin(Document, directives.directive_document(scope))
                .where(AdvanceDirective.patient_id == patient_id)
                .order_by(AdvanceDirective.context, AdvanceDirective.version)):
            out["directive"].append({**directives.directive_view(d, directives.open_directive(vault, d), title),
                                     "recorded_at": d.created_at})
    if _category_allowed(scope, pk.ORGAN_DONATION_CATEGORY):
        for r in session.scalars(select(OrganDonation).where(OrganDonation.patient_id == patient_id)
                                 .order_by(OrganDonation.id.desc())):
            out["organ_donation"].append(
                {**common.export_meta(r), **directives.organ_donation_view(
                    r, common.open_sealed(vault, patient_id, r.data, directives.organ_donation_context(r.id)))})
    return out


def read_profile_as(session: Session, vault: Vault, actor: Actor, patient_id: int, *,
                    purpose: Purpose = Purpose.TREAT, reason: str | None = None,
                    now: dt.datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """A professional's (or service's) read of the profile: the access decision, its trace in the audit
    trail (and an emergency's notification), then :func:`profile_for_export` within the granted scope.
    Raises ``AccessRefused`` (403, trace kept) when the policy says no."""
    from backend.records.access.authorize import authorize

    scope = authorize(session, actor, patient_id, "profile.read", purpose=purpose, reason=reason, now=now)
    return profile_for_export(session, vault, patient_id, scope=scope)
