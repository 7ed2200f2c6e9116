"""The catalogue, the patients' side: browsing and search, consents (connect, renew, revoke), reports,
and what the reminders need. The operators' side (the catalogue file, statuses) is ``operators.py``.

No Flask: functions take a Session and only flush; the caller commits. Every change a patient makes is
written to the audit trail in the same transaction (the patient's access history).
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from backend import cursors
from backend.accounts.hooks import on_account_event
from backend.audit import service as audit
from backend.catalog import messages  # noqa: F401  (registers the texts)
from backend.catalog import search
from backend.catalog.models import (
    AccessToken, CatalogConnection, CatalogReport, CatalogService, ReportReason, ServicePermission, ServiceRegion,
    ServiceStatus, ServiceTheme)
from backend.catalog.vocabulary import NATIONAL, REGIONS, THEMES
from backend.db import ROW_ID_MAX, utcnow
from backend.errors import DomainError, NotFound

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


def grouped(session: Session, key: Any, value: Any, ids: Sequence[int]) -> dict[int, list[str]]:
    """``value``s per ``key`` for the rows whose key is in ``ids`` (themes or regions per service)."""
    out: dict[int, list[str]] = {}
    if not ids:
        return out
    for k, v in session.execute(select(key, value).where(key.in_(list(ids))).order_by(key, value)):
        out.setdefault(k, []).append(v)
    return out


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
    themes = grouped(session, ServiceTheme.service_id, ServiceTheme.theme, ids)
    regions = grouped(session, ServiceRegion.service_id, ServiceRegion.region, ids)
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
