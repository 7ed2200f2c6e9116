"""The loader: one patient's legacy dossier into their record, item by item, through the record services.

Each item is one transaction: the document (or the settings), its profile entries and its journal row
commit together, or not at all. The journal (``legacy_import_item``, unique on patient and source)
is what makes a re-run add nothing and a run killed at any moment resume where it stopped: an item is
done exactly when its row exists. A concurrent second run on the same dossier trips the unique
constraint and simply moves on.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import Patient
from backend.db import utcnow
from backend.errors import DomainError
from backend.records.crypto import Vault
from backend.records.documents.models import Document
from migration import mapping, services
from migration import settings as legacy_settings
from migration.extraction import LIST_KINDS, extract_entries, list_signature
from migration.models import ImportItem, ImportRun
from migration.readers import cda as cda_reader
from migration.readers import xdm as xdm_reader
from migration.readers.archive import ArchiveRefused
from migration.readers.dossier import SourceItem, scan
from backend.cda import XmlRefused

log = logging.getLogger(__name__)


class Quarantine(Exception):
    def __init__(self, reason: str, detail: str | None = None, **extra: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail
        self.extra = extra


@dataclass
class Outcome:
    source: str
    status: str
    reason: str | None = None
    detail: str | None = None
    document_id: int | None = None
    sha256: str | None = None


@dataclass
class RunResult:
    patient_id: int
    state: str
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: int = 0  # already in the journal


def dossier_path(legacy_dir: str | Path | None, nir: str) -> Path | None:
    if not legacy_dir:
        return None
    path = Path(legacy_dir) / nir
    return path if path.is_dir() else None


def counts(session: Session, patient_id: int) -> dict[str, int]:
    rows = session.execute(select(ImportItem.status, func.count()).where(ImportItem.patient_id == patient_id)
                           .group_by(ImportItem.status)).all()
    out = {"imported": 0, "duplicate": 0, "quarantined": 0}
    out.update({status: n for status, n in rows})
    return out


def ensure_run(session: Session, patient_id: int, trigger: str, now: dt.datetime) -> ImportRun:
    run = session.scalar(select(ImportRun).where(ImportRun.patient_id == patient_id))
    if run is None:
        run = ImportRun(patient_id=patient_id, trigger=trigger, state="pending", created_at=now)
        session.add(run)
        session.flush()
    return run


def _vault_for(session: Session, keyring: Any) -> Vault:
    return Vault(session, keyring)


def import_dossier(session: Session, keyring: Any, patient_id: int, legacy_dir: str | Path | None, *,
                   trigger: str = "activation", on_item: Callable[[Outcome | None], None] | None = None,
                   clock: Callable[[], dt.datetime] = utcnow) -> RunResult:
    """Import (or resume) the dossier of one patient. Commits after every item: call it only where a
    transaction boundary belongs (a task, a CLI command)."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        return RunResult(patient_id, "no_patient")
    nir = patient.nir
    now = clock()
    run = ensure_run(session, patient_id, trigger, now)
    folder = dossier_path(legacy_dir, nir)
    if folder is None:
        run.state, run.finished_at, run.total = "no_dossier", now, 0
        session.commit()
        return RunResult(patient_id, "no_dossier")
    items = scan(folder)
    run.state, run.started_at, run.total = "running", run.started_at or now, len(items)
    run.attempts += 1
    run.finished_at = None
    session.commit()

    done = set(session.scalars(select(ImportItem.source).where(ImportItem.patient_id == patient_id)))
    holder = _holder(nir, items)
    result = RunResult(patient_id, "running")
    vault = _vault_for(session, keyring)
    for item in items:
        source = _source_key(item.source)
        if source in done:
            result.skipped += 1
            if on_item:
                on_item(None)
            continue
        outcome = _import_one(session, vault, patient_id, holder, item, source, clock)
        if outcome is None:  # a concurrent run did it first
            result.skipped += 1
        else:
            result.outcomes.append(outcome)
            # no NIR, no content, no file name (names may carry a patient's name): ids and outcome only
            log.info("legacy import patient %s item %s: %s %s", patient_id, _log_key(outcome.source),
                     outcome.status, outcome.reason or "")
        if on_item:
            on_item(outcome)
    run = session.scalar(select(ImportRun).where(ImportRun.patient_id == patient_id))
    assert run is not None
    run.state, run.finished_at = "done", clock()
    c = counts(session, patient_id)
    if result.outcomes and c["imported"]:
        from backend.notifications.service import notify

        notify(session, patient_id, "document", ref_type="legacy_import", ref_id=run.id,
               dedupe_key=f"legacy-import:{patient_id}:{run.attempts}", now=run.finished_at)
    session.commit()
    result.state = "done"
    return result


def _log_key(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def _source_key(source: str) -> str:
    return source if len(source) <= 512 else source[:440] + "…sha256:" + hashlib.sha256(source.encode()).hexdigest()


def _holder(nir: str, items: list[SourceItem]) -> mapping.Holder:
    """The holder's identifiers, with those listed in a valid settings.json (read again on every run)."""
    listed: frozenset[tuple[str, str]] = frozenset()
    for item in items:
        if item.kind == "settings":
            try:
                listed = legacy_settings.parse(item.read()).identifiers
            except (legacy_settings.SettingsInvalid, ArchiveRefused, OSError):
                listed = frozenset()
    return mapping.Holder(nir, listed)


def _import_one(session: Session, vault: Vault, patient_id: int, holder: mapping.Holder, item: SourceItem,
                source: str, clock: Callable[[], dt.datetime]) -> Outcome | None:
    now = clock()
    try:
        row = _process(session, vault, patient_id, holder, item, source, now)
        session.add(row)
        session.commit()
        return Outcome(source, row.status, row.reason, row.reason_detail, row.document_id, row.sha256)
    except IntegrityError:
        session.rollback()
        return None
    except Quarantine as q:
        session.rollback()
        row = ImportItem(patient_id=patient_id, source=source, kind=_kind(item), status="quarantined",
                         reason=q.reason, reason_detail=(q.detail or "")[:300] or None,
                         sha256=q.extra.get("sha256"), size=q.extra.get("size"), unique_id=q.extra.get("unique_id"),
                         provenance=_json(q.extra.get("provenance")), created_at=now)
    except Exception as exc:  # an unexpected failure quarantines this item, never the whole dossier
        session.rollback()
        log.error("legacy import patient %s item %s failed: %s", patient_id, _log_key(source), type(exc).__name__)
        row = ImportItem(patient_id=patient_id, source=source, kind=_kind(item), status="quarantined",
                         reason="internal_error", reason_detail=type(exc).__name__, created_at=now)
    try:
        session.add(row)
        session.commit()
    except IntegrityError:
        session.rollback()
        return None
    return Outcome(source, row.status, row.reason, row.reason_detail, row.document_id, row.sha256)


def _kind(item: SourceItem) -> str:
    return {"settings": "settings", "xdm": "document", "cda": "document"}.get(item.kind, "file")


def _json(value: Any) -> str | None:
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else None


def _process(session: Session, vault: Vault, patient_id: int, holder: mapping.Holder, item: SourceItem,
             source: str, now: dt.datetime) -> ImportItem:
    if item.refusal is not None:
        provenance = _provenance(item)
        raise Quarantine(item.refusal[0], item.refusal[1], provenance=provenance)
    try:
        data = item.read()
    except ArchiveRefused as exc:
        raise Quarantine(exc.reason, exc.explanation) from None
    except OSError as exc:
        raise Quarantine("unreadable_file", type(exc).__name__) from None
    sha256 = hashlib.sha256(data).hexdigest()
    base = {"sha256": sha256, "size": len(data)}
    if item.kind == "settings":
        return _settings_item(session, patient_id, data, source, now, base)
    return _document_item(session, vault, patient_id, holder, item, data, source, now, base)


def _settings_item(session: Session, patient_id: int, data: bytes, source: str, now: dt.datetime,
                   base: dict[str, Any]) -> ImportItem:
    try:
        parsed = legacy_settings.parse(data)
        applied = services.apply_settings(session, patient_id, parsed, now)
    except legacy_settings.SettingsInvalid as exc:
        raise Quarantine("settings_invalid", f"{exc.pointer}: {exc.rule}", **base) from None
    except services.SettingsNotApplicable as exc:
        raise Quarantine("settings_not_applicable", f"{exc.pointer}: {exc.rule}", **base) from None
    return ImportItem(patient_id=patient_id, source=source, kind="settings", status="imported",
                      sha256=base["sha256"], size=base["size"], provenance=_json({"applied": applied}),
                      created_at=now)


def _provenance(item: SourceItem, xds: xdm_reader.XdsEntry | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"format": "xdm" if item.entry is not None else item.kind}
    if "!/" in item.source:
        out["package"] = item.source.split("!/", 1)[0]
    if item.entry is not None:
        out["entry_id"] = item.entry.entry.entry_id[:128]
        out["problems"] = list(item.entry.problems)
        if item.submission is not None and item.submission.unique_id:
            out["submission_set"] = item.submission.unique_id[:128]
    return out


def _document_item(session: Session, vault: Vault, patient_id: int, holder: mapping.Holder, item: SourceItem,
                   data: bytes, source: str, now: dt.datetime, base: dict[str, Any]) -> ImportItem:
    xds = item.entry.entry if item.entry is not None else None
    if item.entry is not None:
        xdm_reader.check_integrity(item.entry, data)
    provenance = _provenance(item)
    base = {**base, "provenance": provenance}
    header = doc_el = None
    looks_xml = data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")
    if xds is not None and xds.is_signature:
        raise Quarantine("technical_signature", "a signature of the submission set, not a document", **base)
    if item.kind == "cda" or (looks_xml and (xds is None or "xml" in (xds.mime_type or "xml"))):
        try:
            header, doc_el = cda_reader.parse(data)
        except XmlRefused as exc:
            raise Quarantine(exc.reason, exc.explanation, **base) from None
        except cda_reader.NotCda as exc:
            if xds is None:
                raise Quarantine(exc.reason, exc.explanation, **base) from None
            provenance.setdefault("warnings", []).append(exc.reason)
    elif xds is None:
        raise Quarantine("unsupported_file", "not XML", **base)

    submission_patient = item.submission.patient_id if item.submission else None
    ids = mapping.item_patient_ids(xds, header, submission_patient)
    refusal = mapping.check_identity(holder, ids)
    if refusal is not None:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(refusal.params.items()))
        raise Quarantine(refusal.reason, detail, **base)
    if header is not None:
        refusal = mapping.check_body(header)
        if refusal is not None:
            raise Quarantine(refusal.reason, None, **base)
    mapped = mapping.map_document(xds=xds, cda=header, submission_time=item.submission.submission_time
                                  if item.submission else None, file_name=item.name or source,
                                  data_head=data[:512], sha256=base["sha256"])
    if isinstance(mapped, mapping.Refusal):
        detail = ", ".join(f"{k}={v}" for k, v in sorted(mapped.params.items()))
        raise Quarantine(mapped.reason, detail or None, **base)
    warnings = list(mapped.warnings) + list(item.entry.problems if item.entry else [])
    if header is not None and header.wrapped_in_xslt:
        warnings.append("cda_in_xslt")
    provenance["warnings"] = sorted(set(warnings + provenance.get("warnings", [])))
    base["unique_id"] = mapped.unique_id

    # duplicates: the same uniqueId, or the same bytes under another id, are merged into what is there
    existing = session.scalar(select(Document).where(Document.patient_id == patient_id,
                                                     Document.unique_id == mapped.unique_id))
    if existing is None:
        existing = session.scalar(select(Document).where(Document.patient_id == patient_id,
                                                         Document.sha256 == base["sha256"],
                                                         Document.deleted_at.is_(None)).limit(1))
    if existing is not None:
        if existing.sha256 != base["sha256"]:
            provenance["warnings"].append("same_id_different_bytes")
        provenance["merged_into"] = existing.id
        return ImportItem(patient_id=patient_id, source=source, kind="document", status="duplicate",
                          reason="duplicate_unique_id" if existing.unique_id == mapped.unique_id
                          else "duplicate_content", sha256=base["sha256"], size=base["size"],
                          unique_id=mapped.unique_id, document_id=existing.id, provenance=_json(provenance),
                          created_at=now)
    try:
        doc = services.store(session, vault, patient_id, data, mapped, now)
    except DomainError as exc:
        raise Quarantine("store_refused", exc.code, **base) from None
    attachments = _store_companions(session, vault, patient_id, item, header, mapped, now)
    if attachments:
        provenance["attachments"] = attachments
    row = ImportItem(patient_id=patient_id, source=source, kind="document", status="imported",
                     sha256=base["sha256"], size=base["size"], unique_id=mapped.unique_id, document_id=doc.id,
                     created_at=now)
    if doc_el is not None and header is not None:
        entries = extract_entries(doc_el, mapped.type_code)
        if entries:
            _profile(session, vault, patient_id, row, entries, mapped, doc.id, provenance, now)
    row.provenance = _json(provenance)
    return row


def _store_companions(session: Session, vault: Vault, patient_id: int, item: SourceItem,
                      header: cda_reader.CdaHeader | None, mapped: mapping.MappedDocument,
                      now: dt.datetime) -> list[dict[str, Any]]:
    """A level-1 CDA whose body is a reference to a file next to it: that file is stored too."""
    out: list[dict[str, Any]] = []
    if header is None or header.body.reference is None or item.package is None:
        if header is not None and header.body.reference is not None:
            mapped.warnings.append("external_reference_missing")
        return out
    for name in item.companions:
        try:
            content = item.package.read(name)
        except (ArchiveRefused, OSError):
            continue
        uid = mapping.unique_key(f"{mapped.unique_id}#ref")
        mime = mapping.guess_mime(name, content[:512])
        doc = services.store(session, vault, patient_id, content, mapped, now, unique_id=uid,
                             mime_type=mime, title=mapped.title)
        out.append({"file": name.rsplit("/", 1)[-1][:120], "document_id": doc.id,
                    "sha256": hashlib.sha256(content).hexdigest()})
    if not out:
        mapped.warnings.append("external_reference_missing")
    return out


# --- profile entries -----------------------------------------------------------------------------------

def _profile_items(kind: str, entries: list[dict[str, Any]], mapped: mapping.MappedDocument,
                   uid: str) -> tuple[str | None, list[dict[str, Any]]]:
    """Entries of one extraction kind → (profile kind, items for add_entries)."""
    from migration.profile_map import to_profile

    return to_profile(kind, entries, mapped, uid)


def _item_context(patient_id: int, source: str) -> str:
    return f"legacy-import:{patient_id}:{hashlib.sha256(source.encode()).hexdigest()}"


def _profile(session: Session, vault: Vault, patient_id: int, row: ImportItem, entries: list[dict[str, Any]],
             mapped: mapping.MappedDocument, document_id: int, provenance: dict[str, Any], now: dt.datetime) -> None:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_kind.setdefault(e["kind"], []).append(e)
    provenance["entries"] = {k: len(v) for k, v in sorted(by_kind.items())}
    lists = {k: sorted(list_signature(v, k)) for k, v in by_kind.items() if k in LIST_KINDS}
    # what the document said is health data: sealed with the patient's key, bound to this item
    row.entries_sealed = vault.seal_text(patient_id, json.dumps({"entries": entries, "lists": lists},
                                                                ensure_ascii=False),
                                         _item_context(patient_id, row.source))
    if not services.profile_available(session):
        provenance["profile"] = "unavailable"
        return
    previous = _previous_lists(session, vault, patient_id)
    created: dict[str, int] = {}
    conflicts: list[str] = []
    for kind, items in sorted(by_kind.items()):
        profile_kind, payload = _profile_items(kind, items, mapped, mapped.unique_id)
        if profile_kind is None or not payload:
            continue
        group = None
        if kind in LIST_KINDS:
            theirs = previous.get(kind)
            if theirs is not None and theirs[0] and frozenset(lists.get(kind, [])) != theirs[0]:
                group = f"legacy:{kind}:{document_id}"
                conflicts.append(kind)
        ids = services.add_entries(session, vault, patient_id, profile_kind, payload, group, now)
        created[kind] = len(ids)
        if group is not None and previous[kind][1]:
            services.flag_conflict(session, patient_id, previous[kind][1], group)
    provenance["profile_created"] = created
    if conflicts:
        provenance["conflicts"] = conflicts


def _previous_lists(session: Session, vault: Vault, patient_id: int) -> dict[str, tuple[frozenset[str], list[int]]]:
    """Per list kind: what earlier imported documents said, and the profile entries they created."""
    from backend.records.profile.models import ProfileEntry

    rows = session.execute(select(ImportItem.source, ImportItem.entries_sealed).where(
        ImportItem.patient_id == patient_id, ImportItem.status == "imported",
        ImportItem.entries_sealed.is_not(None)).order_by(ImportItem.id)).all()
    sigs: dict[str, set[str]] = {}
    for source, sealed in rows:
        data = json.loads(vault.open_text(patient_id, sealed, _item_context(patient_id, source)))
        for kind, sig in data.get("lists", {}).items():
            sigs.setdefault(kind, set()).update(sig)
    out: dict[str, tuple[frozenset[str], list[int]]] = {}
    for kind, sig in sigs.items():
        ids = list(session.scalars(select(ProfileEntry.id).where(
            ProfileEntry.patient_id == patient_id, ProfileEntry.source_key.like(f"legacy:{kind}:%"),
            ProfileEntry.deleted_at.is_(None))))
        out[kind] = (frozenset(sig), ids)
    return out
