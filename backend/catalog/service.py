"""The catalogue's domain logic: operators' imports and status changes, browsing and search, the
patients' consents (connect, renew, revoke), reports, and what the reminders need.

No Flask: functions take a Session and only flush; the caller commits. Every change a patient or an
operator makes is written to the audit trail in the same transaction (the patient's access history).
"""
from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from backend import cursors
from backend.accounts.hooks import on_account_event
from backend.audit import service as audit
from backend.catalog import messages  # noqa: F401  (registers the texts)
from backend.catalog import search
from backend.catalog.models import (
    AccessToken, CatalogConnection, CatalogReport, CatalogService, ReportReason, ServicePermission, ServiceRegion,
    ServiceStatus, ServiceTheme)
from backend.catalog.vocabulary import NATIONAL, PERMISSIONS, REGIONS, THEMES, expand_ligatures, fold
from backend.db import ROW_ID_MAX, utcnow
from backend.errors import DomainError, NotFound
from backend.i18n import message
from backend.notifications.service import notify
from backend.security import hash_password

LISTED = (ServiceStatus.ONLINE, ServiceStatus.OFFLINE)       # shown in the catalogue
REACHABLE = (ServiceStatus.ONLINE, ServiceStatus.OFFLINE)    # may use their access (tokens)


@dataclass(frozen=True)
class CatalogSettings:
    consent_days: int = 365                 # CARNET_SERVICE_CONSENT_DAYS: access lapses unless renewed
    renewal_notice_days: int = 30           # CARNET_SERVICE_RENEWAL_NOTICE_DAYS: reminder before expiry
    review_days: int = 90                   # CARNET_SERVICE_REVIEW_DAYS: "your connected services" reminder
    code_ttl: dt.timedelta = dt.timedelta(minutes=5)
    access_token_seconds: int = 3600        # CARNET_SERVICE_ACCESS_TOKEN_SECONDS
    refresh_token_days: int = 30            # CARNET_SERVICE_REFRESH_TOKEN_DAYS

    @classmethod
    def from_config(cls, config: Any) -> CatalogSettings:
        return cls(consent_days=int(config["SERVICE_CONSENT_DAYS"]),
                   renewal_notice_days=int(config["SERVICE_RENEWAL_NOTICE_DAYS"]),
                   review_days=int(config["SERVICE_REVIEW_DAYS"]),
                   access_token_seconds=int(config["SERVICE_ACCESS_TOKEN_SECONDS"]),
                   refresh_token_days=int(config["SERVICE_REFRESH_TOKEN_DAYS"]))

    @property
    def consent_period(self) -> dt.timedelta:
        return dt.timedelta(days=self.consent_days)


# --- operators: importing the catalogue ---------------------------------------------------------------

class CatalogFileError(Exception):
    """A catalogue file that cannot be imported; ``problems`` names every fault (nothing was written)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
FIELDS = {"slug", "name", "publisher", "summary", "description", "themes", "regions", "status", "privacy_policy_url",
          "website_url", "referenced_at", "permissions", "client"}
REQUIRED = ("slug", "name", "publisher", "summary", "description", "themes", "regions", "privacy_policy_url",
            "referenced_at", "permissions", "client")


@dataclass
class ServiceSpec:
    slug: str
    name: str
    publisher: str
    summary: str
    description: str
    themes: list[str]
    regions: list[str]
    status: ServiceStatus | None
    privacy_policy_url: str
    website_url: str | None
    referenced_at: dt.date
    permissions: list[tuple[str, str | None]]
    client_id: str
    redirect_uris: list[str]
    confidential: bool


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    client_secrets: dict[str, str] = field(default_factory=dict)   # new confidential clients: shown once

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "client_secrets": self.client_secrets}


def load_file(path: str) -> Any:
    """A catalogue file, JSON or YAML (by extension; YAML is a superset of JSON for anything else)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            raw = handle.read()
    except OSError as exc:
        raise CatalogFileError([f"cannot read {path}: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise CatalogFileError([f"{path} is not UTF-8 text"]) from None
    try:
        if path.lower().endswith(".json"):
            return json.loads(raw)
        return yaml.safe_load(raw)
    except json.JSONDecodeError as exc:
        raise CatalogFileError([f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise CatalogFileError([f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}"]) from None


def _text(problems: list[str], where: str, raw: dict[str, Any], name: str, max_length: int,
          required: bool = True) -> str | None:
    value = raw.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.append(f"{where}: '{name}' is required")
        return None
    if not isinstance(value, str):
        problems.append(f"{where}: '{name}' must be text")
        return None
    value = value.strip()
    if len(value) > max_length:
        problems.append(f"{where}: '{name}' is longer than {max_length} characters")
    return value


def _url(problems: list[str], where: str, name: str, value: str | None) -> None:
    if value is None:
        return
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        problems.append(f"{where}: '{name}' must be an https:// address")


def _redirect_uri_ok(uri: str) -> bool:
    """https, a loopback http address (RFC 8252 §7.3) or a private-use scheme of a native app (§7.1)."""
    parts = urlsplit(uri)
    if parts.fragment:
        return False
    if parts.scheme == "https":
        return bool(parts.netloc)
    if parts.scheme == "http":
        return parts.hostname in ("127.0.0.1", "::1", "localhost")
    return "." in parts.scheme and re.fullmatch(r"[a-z][a-z0-9.+-]*", parts.scheme) is not None


def parse_service(raw: Any, where: str, problems: list[str]) -> ServiceSpec | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: each service must be a mapping")
        return None
    before = len(problems)
    for name in sorted(set(raw) - FIELDS):
        problems.append(f"{where}: unknown field '{name}'")
    for name in REQUIRED:
        if name not in raw:
            problems.append(f"{where}: '{name}' is required")
    slug = raw.get("slug")
    if "slug" in raw and (not isinstance(slug, str) or not SLUG.match(slug)):
        problems.append(f"{where}: 'slug' must be 3–64 lowercase letters, digits or dashes")
    name = _text(problems, where, raw, "name", 120, "name" in raw)
    publisher = _text(problems, where, raw, "publisher", 200, "publisher" in raw)
    summary = _text(problems, where, raw, "summary", 300, "summary" in raw)
    description = _text(problems, where, raw, "description", 5000, "description" in raw)
    privacy = _text(problems, where, raw, "privacy_policy_url", 500, "privacy_policy_url" in raw)
    website = _text(problems, where, raw, "website_url", 500, required=False)
    _url(problems, where, "privacy_policy_url", privacy)
    _url(problems, where, "website_url", website)
    themes = raw.get("themes")
    if "themes" in raw:
        if not isinstance(themes, list) or not themes or not all(isinstance(t, str) for t in themes):
            problems.append(f"{where}: 'themes' must be a non-empty list of themes")
            themes = []
        for theme in themes:
            if theme not in THEMES:
                problems.append(f"{where}: unknown theme '{theme}' (known: {', '.join(THEMES)})")
    regions = raw.get("regions")
    if "regions" in raw:
        if not isinstance(regions, list) or not regions:
            problems.append(f"{where}: 'regions' must be a non-empty list ('national' or INSEE region codes)")
            regions = []
        regions = [str(r) for r in regions]
        for region in regions:
            if region != NATIONAL and region not in REGIONS:
                problems.append(f"{where}: unknown region '{region}' ('national' or one of {', '.join(REGIONS)})")
    status = None
    if raw.get("status") is not None:
        try:
            status = ServiceStatus(raw["status"])
        except ValueError:
            problems.append(f"{where}: 'status' must be one of {', '.join(s.value for s in ServiceStatus)}")
    referenced = raw.get("referenced_at")
    if isinstance(referenced, dt.datetime):
        referenced = referenced.date()
    elif isinstance(referenced, str):
        try:
            referenced = dt.date.fromisoformat(referenced)
        except ValueError:
            referenced = None
    if "referenced_at" in raw and not isinstance(referenced, dt.date):
        problems.append(f"{where}: 'referenced_at' must be a date (YYYY-MM-DD)")
    permissions: list[tuple[str, str | None]] = []
    perms = raw.get("permissions")
    if "permissions" in raw:
        if not isinstance(perms, list) or not perms:
            problems.append(f"{where}: 'permissions' must be a non-empty list")
            perms = []
        for index, item in enumerate(perms):
            if isinstance(item, dict) and set(item) - {"scope", "purpose"}:
                # YAML's flow mapping {scope: …, purpose: a, b} ends the text at the first comma and makes "b" a
                # key: the patient would read half a sentence. Refused, with the way out.
                extra = ", ".join(repr(str(k)) for k in item if k not in ("scope", "purpose"))
                problems.append(f"{where}: permissions[{index}]: unexpected {extra} (a comma in an unquoted "
                                "'purpose' cuts it: put the text in quotes)")
                continue
            scope, purpose = (item, None) if isinstance(item, str) else (
                (item.get("scope"), item.get("purpose")) if isinstance(item, dict) else (None, None))
            if not isinstance(scope, str) or scope not in PERMISSIONS:
                problems.append(f"{where}: permissions[{index}]: unknown permission {scope!r} "
                                "(documents.<CATEGORY>.read, measures.<type>.read|write, profile.<kind>.read)")
                continue
            if purpose is not None and (not isinstance(purpose, str) or len(purpose) > 300):
                problems.append(f"{where}: permissions[{index}]: 'purpose' must be text of at most 300 characters")
                continue
            if any(scope == s for s, _ in permissions):
                problems.append(f"{where}: permission '{scope}' listed twice")
                continue
            permissions.append((scope, purpose.strip() if purpose else None))
    client = raw.get("client")
    client_id, redirect_uris, confidential = "", [], False
    if "client" in raw:
        if not isinstance(client, dict) or set(client) - {"client_id", "redirect_uris", "confidential"}:
            problems.append(f"{where}: 'client' must be {{client_id, redirect_uris, confidential}}")
        else:
            client_id = client.get("client_id")
            if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
                problems.append(f"{where}: 'client.client_id' must be 8–64 letters, digits, dots, dashes or "
                                "underscores")
            redirect_uris = client.get("redirect_uris")
            if not isinstance(redirect_uris, list) or not redirect_uris or not all(
                    isinstance(u, str) and _redirect_uri_ok(u) for u in redirect_uris):
                problems.append(f"{where}: 'client.redirect_uris' must list https://, loopback http:// or "
                                "native-app (reverse domain) addresses, without fragment")
                redirect_uris = []
            confidential = client.get("confidential", False)
            if not isinstance(confidential, bool):
                problems.append(f"{where}: 'client.confidential' must be true or false")
    if len(problems) > before:
        return None
    return ServiceSpec(slug, name or "", publisher or "", summary or "", description or "", list(themes),
                       list(dict.fromkeys(regions)), status, privacy or "", website, referenced, permissions,
                       client_id, list(redirect_uris), confidential)


def parse_catalogue(data: Any) -> list[ServiceSpec]:
    """Every service of a catalogue file, or CatalogFileError listing every fault."""
    if isinstance(data, dict) and set(data) == {"services"}:
        data = data["services"]
    if not isinstance(data, list):
        raise CatalogFileError(["the file must hold a list of services (or {services: [...]})"])
    problems: list[str] = []
    specs: list[ServiceSpec] = []
    for index, raw in enumerate(data):
        label = raw.get("slug") if isinstance(raw, dict) and isinstance(raw.get("slug"), str) else None
        spec = parse_service(raw, f"services[{index}]" + (f" ({label})" if label else ""), problems)
        if spec is not None:
            specs.append(spec)
    for attr in ("slug", "client_id"):
        seen: set[str] = set()
        for spec in specs:
            value = getattr(spec, attr)
            if value in seen:
                problems.append(f"{attr} '{value}' appears twice in the file")
            seen.add(value)
    if problems:
        raise CatalogFileError(problems)
    return specs


def _search_document(spec: ServiceSpec) -> str:
    labels = [message(f"catalog_theme_{t}", "fr") for t in spec.themes]
    labels += [message(f"catalog_region_{r}", "fr") for r in spec.regions]
    return expand_ligatures("\n".join([spec.name, spec.publisher, spec.summary, spec.description, *labels]))


def import_catalogue(session: Session, data: Any, *, now: dt.datetime | None = None) -> ImportReport:
    """Add or update services (by slug). All or nothing: a fault anywhere raises CatalogFileError before
    anything is written; a client_id already used by another service is such a fault."""
    now = now or utcnow()
    specs = parse_catalogue(data)
    existing = {s.slug: s for s in session.scalars(select(CatalogService).where(
        CatalogService.slug.in_([spec.slug for spec in specs])))} if specs else {}
    owners = dict(session.execute(select(CatalogService.client_id, CatalogService.slug).where(
        CatalogService.client_id.in_([spec.client_id for spec in specs]))).all()) if specs else {}
    problems = [f"{spec.slug}: client_id '{spec.client_id}' already belongs to service '{owners[spec.client_id]}'"
                for spec in specs if owners.get(spec.client_id, spec.slug) != spec.slug]
    if problems:
        raise CatalogFileError(problems)
    report = ImportReport()
    ids = [s.id for s in existing.values()]
    themes = _grouped(session, ServiceTheme.service_id, ServiceTheme.theme, ids)
    regions = _grouped(session, ServiceRegion.service_id, ServiceRegion.region, ids)
    perms: dict[int, list[tuple[str, str | None]]] = {}
    for row in session.scalars(select(ServicePermission).where(ServicePermission.service_id.in_(ids))
                               .order_by(ServicePermission.position)) if ids else []:
        perms.setdefault(row.service_id, []).append((row.scope, row.purpose))
    changed: list[CatalogService] = []
    for spec in specs:
        service = existing.get(spec.slug)
        values = {"name": spec.name, "sort_key": fold(spec.name)[:120], "publisher": spec.publisher,
                  "summary": spec.summary, "description": spec.description, "website_url": spec.website_url,
                  "privacy_policy_url": spec.privacy_policy_url, "referenced_at": spec.referenced_at,
                  "national": NATIONAL in spec.regions, "client_id": spec.client_id,
                  "redirect_uris": json.dumps(spec.redirect_uris), "search_document": _search_document(spec)}
        if service is None:
            service = CatalogService(slug=spec.slug, status=spec.status or ServiceStatus.ONLINE, created_at=now,
                                     updated_at=now, status_changed_at=now, revision=1, **values)
            if spec.confidential:
                secret = secrets.token_urlsafe(32)
                service.client_secret_hash = hash_password(secret)
                report.client_secrets[spec.slug] = secret
            session.add(service)
            session.flush()
            report.created.append(spec.slug)
        else:
            same = (all(getattr(service, k) == v for k, v in values.items())
                    and sorted(themes.get(service.id, [])) == sorted(spec.themes)
                    and sorted(regions.get(service.id, [])) == sorted(r for r in spec.regions if r != NATIONAL)
                    and perms.get(service.id, []) == spec.permissions
                    and (spec.status is None or spec.status == service.status)
                    and (service.client_secret_hash is not None) == spec.confidential)
            if same:
                report.unchanged.append(spec.slug)
                continue
            for key, value in values.items():
                setattr(service, key, value)
            if spec.status is not None and spec.status != service.status:
                _set_status(session, service, spec.status, now)
            if spec.confidential and service.client_secret_hash is None:
                secret = secrets.token_urlsafe(32)
                service.client_secret_hash = hash_password(secret)
                report.client_secrets[spec.slug] = secret
            elif not spec.confidential:
                service.client_secret_hash = None
            service.revision += 1
            service.updated_at = now
            for model in (ServiceTheme, ServiceRegion, ServicePermission):
                session.execute(delete(model).where(model.service_id == service.id))
            report.updated.append(spec.slug)
        session.add_all([ServiceTheme(service_id=service.id, theme=t) for t in dict.fromkeys(spec.themes)])
        session.add_all([ServiceRegion(service_id=service.id, region=r) for r in spec.regions if r != NATIONAL])
        session.add_all([ServicePermission(service_id=service.id, scope=scope, purpose=purpose, position=i)
                         for i, (scope, purpose) in enumerate(spec.permissions)])
        changed.append(service)
    session.flush()
    search.refresh_vectors(session, [s.id for s in changed])
    if changed:
        audit.record(session, actor_type="operator", actor_id=None, action="catalog.imported",
                     details={"created": report.created, "updated": report.updated}, at=now)
    return report


def _grouped(session: Session, key: Any, value: Any, ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    if not ids:
        return out
    for k, v in session.execute(select(key, value).where(key.in_(list(ids))).order_by(key, value)):
        out.setdefault(k, []).append(v)
    return out


# --- operators: status ---------------------------------------------------------------------------------

def find_service(session: Session, ref: str) -> CatalogService:
    """A service by slug, client_id or numeric id (operators' commands)."""
    conditions = [CatalogService.slug == ref, CatalogService.client_id == ref]
    if ref.isdigit():
        conditions.append(CatalogService.id == int(ref))
    service = session.scalar(select(CatalogService).where(or_(*conditions)).limit(1))
    if service is None:
        raise NotFound("catalog_service_not_found")
    return service


def _set_status(session: Session, service: CatalogService, status: ServiceStatus, now: dt.datetime) -> int:
    """Returns how many consents were revoked (de-referencing revokes them all)."""
    previous = service.status
    service.status = status
    service.status_changed_at = now
    service.updated_at = now
    service.revision += 1
    revoked = 0
    if status == ServiceStatus.DEREFERENCED:
        rows = session.execute(select(CatalogConnection.id, CatalogConnection.patient_id).where(
            CatalogConnection.service_id == service.id, CatalogConnection.revoked_at.is_(None))).all()
        for connection_id, patient_id in rows:
            audit.record(session, actor_type="operator", actor_id=None, action="catalog.revoked",
                         patient_id=patient_id, details={"service_id": service.id, "reason": "dereferenced"}, at=now)
            notify(session, patient_id, "service", ref_type="service_dereferenced", ref_id=service.id,
                   dedupe_key=f"catalog-dereferenced:{connection_id}:{now.isoformat()}", now=now)
        session.execute(update(CatalogConnection).where(
            CatalogConnection.service_id == service.id, CatalogConnection.revoked_at.is_(None))
            .values(revoked_at=now, revoked_by="operator"))
        session.execute(update(AccessToken).where(AccessToken.service_id == service.id,
                                                  AccessToken.revoked_at.is_(None)).values(revoked_at=now))
        revoked = len(rows)
    audit.record(session, actor_type="operator", actor_id=None, action="catalog.status_changed",
                 details={"service": service.slug, "from": previous.value, "to": status.value}, at=now)
    return revoked


def change_status(session: Session, ref: str, status: ServiceStatus, *, now: dt.datetime | None = None
                  ) -> dict[str, Any]:
    now = now or utcnow()
    service = find_service(session, ref)
    if service.status == status:
        return {"service": service.slug, "status": status.value, "changed": False, "consents_revoked": 0}
    revoked = _set_status(session, service, status, now)
    session.flush()
    return {"service": service.slug, "status": status.value, "changed": True, "consents_revoked": revoked}


def list_services(session: Session) -> list[dict[str, Any]]:
    """Operators' view: every service with its status, connection and report counts (three queries)."""
    connected = dict(session.execute(select(CatalogConnection.service_id, func.count()).where(
        CatalogConnection.revoked_at.is_(None)).group_by(CatalogConnection.service_id)).all())
    reports = dict(session.execute(select(CatalogReport.service_id, func.count())
                                   .group_by(CatalogReport.service_id)).all())
    return [{"slug": s.slug, "name": s.name, "status": s.status.value, "client_id": s.client_id,
             "confidential": s.client_secret_hash is not None, "referenced_at": s.referenced_at.isoformat(),
             "connections": int(connected.get(s.id, 0)), "reports": int(reports.get(s.id, 0))}
            for s in session.scalars(select(CatalogService).order_by(CatalogService.sort_key, CatalogService.id))]


def list_reports(session: Session, ref: str | None = None, *, limit: int = 200) -> list[dict[str, Any]]:
    stmt = select(CatalogReport, CatalogService.slug).join(CatalogService, CatalogService.id == CatalogReport.service_id)
    if ref:
        stmt = stmt.where(CatalogReport.service_id == find_service(session, ref).id)
    return [{"id": r.id, "service": slug, "reason": r.reason.value, "comment": r.comment,
             "created_at": r.created_at.isoformat()}
            for r, slug in session.execute(stmt.order_by(CatalogReport.id.desc()).limit(limit))]


def rotate_secret(session: Session, ref: str, *, now: dt.datetime | None = None) -> dict[str, str]:
    """A new client secret for a confidential client (printed once; only its hash is kept)."""
    now = now or utcnow()
    service = find_service(session, ref)
    secret = secrets.token_urlsafe(32)
    service.client_secret_hash = hash_password(secret)
    service.updated_at = now
    audit.record(session, actor_type="operator", actor_id=None, action="catalog.secret_rotated",
                 details={"service": service.slug}, at=now)
    return {"service": service.slug, "client_id": service.client_id, "client_secret": secret}


# --- patients: browsing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cursor:
    sort_key: str
    id: int


def encode_cursor(cursor: Cursor) -> str:
    return cursors.encode(cursor.sort_key, cursor.id)


def _cursor(key: Any, ident: Any) -> Cursor:
    if not isinstance(key, str):
        raise TypeError("sort key")
    return Cursor(key, cursors.integer(ident))


def decode_cursor(raw: str | None) -> Cursor | None:
    return cursors.decode(raw, _cursor)


@dataclass
class Listing:
    service: CatalogService
    themes: list[str]
    regions: list[str]
    connection: CatalogConnection | None


def _decorate(session: Session, services: list[CatalogService], patient_id: int | None) -> list[Listing]:
    ids = [s.id for s in services]
    themes = _grouped(session, ServiceTheme.service_id, ServiceTheme.theme, ids)
    regions = _grouped(session, ServiceRegion.service_id, ServiceRegion.region, ids)
    connections: dict[int, CatalogConnection] = {}
    if ids and patient_id is not None:
        connections = {c.service_id: c for c in session.scalars(select(CatalogConnection).where(
            CatalogConnection.patient_id == patient_id, CatalogConnection.service_id.in_(ids)))}
    return [Listing(s, themes.get(s.id, []), [NATIONAL] if s.national else regions.get(s.id, []),
                    connections.get(s.id)) for s in services]


def browse(session: Session, patient_id: int, *, query: str | None = None, theme: str | None = None,
           region: str | None = None, limit: int = 20, after: Cursor | None = None
           ) -> tuple[list[Listing], Cursor | None]:
    """One page of the catalogue (services online or offline), alphabetical, filtered by theme, region
    (national services are in every region) and full-text search. A fixed number of queries."""
    if theme is not None and theme not in THEMES:
        raise DomainError("invalid_request", errors=[{"field": "theme", "message_code": "catalog_unknown_theme",
                                                      "params": {"value": theme[:40]}}])
    if region is not None and region != NATIONAL and region not in REGIONS:
        raise DomainError("invalid_request", errors=[{"field": "region", "message_code": "catalog_unknown_region",
                                                      "params": {"value": region[:40]}}])
    stmt = select(CatalogService).where(CatalogService.status.in_(LISTED))
    if theme is not None:
        stmt = stmt.where(CatalogService.id.in_(select(ServiceTheme.service_id).where(ServiceTheme.theme == theme)))
    if region is not None and region != NATIONAL:
        stmt = stmt.where(or_(CatalogService.national.is_(True), CatalogService.id.in_(
            select(ServiceRegion.service_id).where(ServiceRegion.region == region))))
    elif region == NATIONAL:
        stmt = stmt.where(CatalogService.national.is_(True))
    if query:
        condition = search.matching(session, query)
        if condition is not None:
            stmt = stmt.where(condition)
    if after is not None:
        stmt = stmt.where(or_(CatalogService.sort_key > after.sort_key,
                              and_(CatalogService.sort_key == after.sort_key, CatalogService.id > after.id)))
    rows = list(session.scalars(stmt.order_by(CatalogService.sort_key, CatalogService.id).limit(limit + 1)))
    page = rows[:limit]
    cursor = Cursor(page[-1].sort_key, page[-1].id) if len(rows) > limit else None
    return _decorate(session, page, patient_id), cursor


@dataclass
class Detail:
    listing: Listing
    permissions: list[tuple[str, str | None]]


def _known_id(service_id: int) -> int:
    if not 0 < service_id <= ROW_ID_MAX:
        raise NotFound("catalog_service_not_found")
    return service_id


def service_detail(session: Session, patient_id: int, service_id: int) -> Detail:
    """A service as the catalogue shows it. Out of the catalogue (suspended, de-referenced) it is only
    shown to a patient who had connected it (so they can see why it stopped, and disconnect)."""
    service = session.get(CatalogService, _known_id(service_id))
    if service is None:
        raise NotFound("catalog_service_not_found")
    listing = _decorate(session, [service], patient_id)[0]
    if service.status not in LISTED and listing.connection is None:
        raise NotFound("catalog_service_not_found")
    perms = list(session.execute(select(ServicePermission.scope, ServicePermission.purpose).where(
        ServicePermission.service_id == service.id).order_by(ServicePermission.position)))
    return Detail(listing, perms)


def theme_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(ServiceTheme.theme, func.count()).join(
        CatalogService, CatalogService.id == ServiceTheme.service_id).where(
        CatalogService.status.in_(LISTED)).group_by(ServiceTheme.theme)).all()
    return {theme: int(n) for theme, n in rows}


# --- patients: consent ---------------------------------------------------------------------------------

def connection_state(connection: CatalogConnection | None, now: dt.datetime) -> str | None:
    if connection is None:
        return None
    if connection.revoked_at is not None:
        return "revoked"
    if connection.expires_at <= now:
        return "expired"
    return "active"


def granted(connection: CatalogConnection) -> list[str]:
    return list(json.loads(connection.permissions))


def _asked(session: Session, service_id: int) -> list[str]:
    return list(session.scalars(select(ServicePermission.scope).where(ServicePermission.service_id == service_id)
                                .order_by(ServicePermission.position)))


def _listed_service(session: Session, service_id: int) -> CatalogService:
    service = session.get(CatalogService, _known_id(service_id))
    if service is None or service.status not in LISTED:
        raise NotFound("catalog_service_not_found")
    return service


def connect(session: Session, settings: CatalogSettings, patient_id: int, service_id: int,
            permissions: Iterable[str], *, requested: Iterable[str] | None = None,
            now: dt.datetime | None = None) -> CatalogConnection:
    """The patient consents, permission by permission. ``permissions`` are the ones ticked; with
    ``requested`` (an OAuth request asking for some of them), the decision covers those only and the
    patient's earlier choices on the others are kept. Nothing is pre-ticked: an empty choice refuses."""
    now = now or utcnow()
    service = _listed_service(session, service_id)
    if service.status != ServiceStatus.ONLINE:
        raise DomainError("catalog_service_unavailable", 409)
    ticked = list(dict.fromkeys(permissions))
    asked = _asked(session, service.id)
    for scope in ticked:
        if scope not in asked:
            raise DomainError("catalog_permission_not_asked", 422, scope=str(scope)[:64])
    if not ticked:
        raise DomainError("catalog_no_permission", 422)
    connection = session.scalar(select(CatalogConnection).where(CatalogConnection.patient_id == patient_id,
                                                                CatalogConnection.service_id == service.id))
    state = connection_state(connection, now)
    chosen = set(ticked)
    if state == "active" and requested is not None:
        assert connection is not None
        chosen |= set(granted(connection)) - set(requested)
    ordered = [scope for scope in asked if scope in chosen]
    if connection is None:
        connection = CatalogConnection(patient_id=patient_id, service_id=service.id, first_connected_at=now)
        session.add(connection)
    elif state != "active":
        connection.first_connected_at = now
    connection.permissions = json.dumps(ordered)
    connection.granted_at = now
    connection.expires_at = now + settings.consent_period
    connection.revoked_at = None
    connection.revoked_by = None
    session.flush()
    audit.record(session, actor_type="patient", actor_id=str(patient_id), action="catalog.connected",
                 patient_id=patient_id, details={"service_id": service.id, "permissions": ordered}, at=now)
    return connection


def _own_connection(session: Session, patient_id: int, service_id: int) -> CatalogConnection:
    if not 0 < service_id <= ROW_ID_MAX:
        raise NotFound("catalog_not_connected")
    connection = session.scalar(select(CatalogConnection).where(CatalogConnection.patient_id == patient_id,
                                                                CatalogConnection.service_id == service_id))
    if connection is None or connection.revoked_at is not None:
        raise NotFound("catalog_not_connected")
    return connection


def revoke(session: Session, patient_id: int, service_id: int, *, now: dt.datetime | None = None) -> None:
    """The service loses access on its next request; its tokens are revoked too."""
    now = now or utcnow()
    connection = _own_connection(session, patient_id, service_id)
    connection.revoked_at = now
    connection.revoked_by = "patient"
    session.execute(update(AccessToken).where(AccessToken.connection_id == connection.id,
                                              AccessToken.revoked_at.is_(None)).values(revoked_at=now))
    audit.record(session, actor_type="patient", actor_id=str(patient_id), action="catalog.revoked",
                 patient_id=patient_id, details={"service_id": service_id}, at=now)
    session.flush()


@on_account_event("catalog.connections", "closed", "opposed")
def _connections_die_with_the_account(session: Session, patient_id: int, event: str, now: dt.datetime) -> None:
    """Closing (or opposing) ends every consent to a service and every token issued under it; a reactivated
    account connects its services again, consenting anew. Codes not yet exchanged die with their consent
    (the exchange checks it)."""
    rows = session.execute(select(CatalogConnection.id, CatalogConnection.service_id).where(
        CatalogConnection.patient_id == patient_id, CatalogConnection.revoked_at.is_(None))).all()
    if rows:
        session.execute(update(CatalogConnection).where(CatalogConnection.id.in_([r.id for r in rows]))
                        .values(revoked_at=now, revoked_by="account")
                        .execution_options(synchronize_session=False))
    session.execute(update(AccessToken).where(AccessToken.patient_id == patient_id, AccessToken.revoked_at.is_(None))
                    .values(revoked_at=now).execution_options(synchronize_session=False))
    for row in rows:
        audit.record(session, actor_type="patient", actor_id=str(patient_id), action="catalog.revoked",
                     patient_id=patient_id, details={"service_id": row.service_id, "reason": f"account_{event}"},
                     at=now)


def renew(session: Session, settings: CatalogSettings, patient_id: int, service_id: int, *,
          now: dt.datetime | None = None) -> CatalogConnection:
    """Extend the consent, same permissions, for another period (also after it lapsed)."""
    now = now or utcnow()
    connection = _own_connection(session, patient_id, service_id)
    service = session.get(CatalogService, service_id)
    if service is None or service.status not in LISTED:
        raise DomainError("catalog_cannot_renew", 409)
    if connection.expires_at <= now:
        connection.first_connected_at = now
    connection.granted_at = now
    connection.expires_at = now + settings.consent_period
    audit.record(session, actor_type="patient", actor_id=str(patient_id), action="catalog.renewed",
                 patient_id=patient_id, details={"service_id": service_id}, at=now)
    session.flush()
    return connection


def connections_page(session: Session, patient_id: int, *, limit: int, after_id: int | None = None
                     ) -> tuple[list[tuple[CatalogConnection, CatalogService]], int | None]:
    """The patient's connected services (active or lapsed, not revoked), newest consent first."""
    stmt = select(CatalogConnection, CatalogService).join(CatalogService, CatalogService.id == CatalogConnection.service_id
                                                          ).where(CatalogConnection.patient_id == patient_id,
                                                                  CatalogConnection.revoked_at.is_(None))
    if after_id is not None:
        stmt = stmt.where(CatalogConnection.id < after_id)
    rows = list(session.execute(stmt.order_by(CatalogConnection.id.desc()).limit(limit + 1)))
    page = rows[:limit]
    return page, (page[-1][0].id if len(rows) > limit else None)


def report(session: Session, patient_id: int, service_id: int, reason: str, comment: str | None, *,
           now: dt.datetime | None = None) -> CatalogReport:
    now = now or utcnow()
    service = session.get(CatalogService, _known_id(service_id))
    if service is None:
        raise NotFound("catalog_service_not_found")
    row = CatalogReport(service_id=service.id, patient_id=patient_id, reason=ReportReason(reason),
                        comment=(comment or "").strip() or None, created_at=now)
    session.add(row)
    session.flush()
    audit.record(session, actor_type="patient", actor_id=str(patient_id), action="catalog.reported",
                 patient_id=patient_id, details={"service_id": service.id, "report_id": row.id}, at=now)
    return row


# --- what the reminders need ---------------------------------------------------------------------------

def review_anchors(session: Session, now: dt.datetime) -> list[tuple[int, dt.datetime]]:
    """Patients with at least one active consent, and when their oldest running one started."""
    return [(p, a) for p, a in session.execute(
        select(CatalogConnection.patient_id, func.min(CatalogConnection.first_connected_at))
        .join(CatalogService, CatalogService.id == CatalogConnection.service_id)
        .where(CatalogConnection.revoked_at.is_(None), CatalogConnection.expires_at > now,
               CatalogService.status.in_(REACHABLE))
        .group_by(CatalogConnection.patient_id).order_by(CatalogConnection.patient_id))]


def expiring(session: Session, now: dt.datetime, within: dt.timedelta) -> list[CatalogConnection]:
    """Active consents that lapse within ``within`` (the renewal reminder)."""
    return list(session.scalars(
        select(CatalogConnection).join(CatalogService, CatalogService.id == CatalogConnection.service_id)
        .where(CatalogConnection.revoked_at.is_(None), CatalogConnection.expires_at > now,
               CatalogConnection.expires_at <= now + within, CatalogService.status.in_(LISTED))
        .order_by(CatalogConnection.id)))


SEED_FILE = Path(__file__).parent / "seed" / "catalogue.yaml"


def import_seed(session: Session, *, now: dt.datetime | None = None) -> ImportReport:
    """The demonstration catalogue shipped with Carnet (``carnet catalog seed``, ``carnet demo``)."""
    return import_catalogue(session, load_file(str(SEED_FILE)), now=now)
