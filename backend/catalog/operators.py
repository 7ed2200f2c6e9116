"""Operators' side of the catalogue: importing the catalogue file (all or nothing), changing a service's
status (de-referencing revokes every consent), the operators' listings, and rotating a client secret.

No Flask: functions take a Session and only flush; the caller commits. Every change is written to the audit
trail in the same transaction; patients whose consent ends are notified.
"""
from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from backend.audit import service as audit
from backend.catalog import search
from backend.catalog import service as catalog
from backend.catalog.catalogue_file import SEED_FILE, CatalogFileError, ServiceSpec, load_file, parse_catalogue
from backend.catalog.models import (AccessToken, CatalogConnection, CatalogReport, CatalogService, ServicePermission,
                                    ServiceRegion, ServiceStatus, ServiceTheme)
from backend.catalog.vocabulary import NATIONAL, expand_ligatures, fold
from backend.db import utcnow
from backend.errors import NotFound
from backend.i18n import message
from backend.notifications.service import notify
from backend.security import hash_password


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    client_secrets: dict[str, str] = field(default_factory=dict)   # new confidential clients: shown once

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "client_secrets": self.client_secrets}


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
    themes = catalog.grouped(session, ServiceTheme.service_id, ServiceTheme.theme, ids)
    regions = catalog.grouped(session, ServiceRegion.service_id, ServiceRegion.region, ids)
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



def import_seed(session: Session, *, now: dt.datetime | None = None) -> ImportReport:
    """The demonstration catalogue shipped with Carnet (``carnet catalog seed``, ``carnet demo``)."""
    return import_catalogue(session, load_file(str(SEED_FILE)), now=now)
