"""The catalogue of referenced services and the patients' consents to them.

``CatalogService`` is one referenced health service: what the catalogue shows (name, publisher,
description, themes, regions, privacy policy, referencing date), its status, the permissions it asks,
and its OAuth client (client_id, redirect URIs, the client secret as an argon2 hash when it is a
confidential client). ``CatalogConnection`` is a patient's consent to one service: the permissions the
patient ticked, when it lapses unless renewed, and its revocation. Authorization codes and access/refresh
tokens are stored as SHA-256 digests only. ``CatalogReport`` keeps what patients report about a service.

Search: ``search_document`` is the text the full-text index is built from (name, publisher, description,
theme and region labels). On PostgreSQL ``search_vector`` holds ``to_tsvector('french', unaccent(...))``
of it, under a GIN index; on SQLite it stays empty and an FTS5 index is kept per connection (see
``search.py``).
"""
from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, utcnow

# a tsvector on PostgreSQL; plain (unused) text on SQLite
SearchVector = Text().with_variant(postgresql.TSVECTOR(), "postgresql")


class ServiceStatus(str, enum.Enum):
    ONLINE = "online"              # in the catalogue, may be connected
    OFFLINE = "offline"            # in the catalogue, temporarily unavailable: no new connection
    SUSPENDED = "suspended"        # out of the catalogue by the operator, access cut until reinstated
    DEREFERENCED = "dereferenced"  # out of the catalogue for good: access cut, consents revoked


def _enum(cls: type[enum.Enum], length: int = 16) -> Enum:
    return Enum(cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class CatalogService(Base):
    __tablename__ = "catalog_service"
    __table_args__ = (
        Index("ix_catalog_service_listing", "status", "sort_key", "id"),
        Index("ix_catalog_service_search_vector", "search_vector", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)           # the operators' name for it
    name: Mapped[str] = mapped_column(String(120))
    sort_key: Mapped[str] = mapped_column(String(120))                   # name folded: accent- and case-free
    publisher: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text)
    website_url: Mapped[str | None] = mapped_column(String(500))
    privacy_policy_url: Mapped[str] = mapped_column(String(500))
    referenced_at: Mapped[dt.date]
    status: Mapped[ServiceStatus] = mapped_column(_enum(ServiceStatus), default=ServiceStatus.ONLINE)
    status_changed_at: Mapped[dt.datetime | None]
    national: Mapped[bool] = mapped_column(default=True)                # available in every region
    # OAuth 2.0 client
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_secret_hash: Mapped[str | None] = mapped_column(String(255))  # None: a public client (PKCE only)
    redirect_uris: Mapped[str] = mapped_column(Text)                     # JSON list
    # search
    search_document: Mapped[str] = mapped_column(Text, default="")
    search_vector: Mapped[str | None] = mapped_column(SearchVector)
    revision: Mapped[int] = mapped_column(default=1)                    # bumped on every change
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ServiceTheme(Base):
    __tablename__ = "catalog_service_theme"
    __table_args__ = (Index("ix_catalog_service_theme_theme", "theme", "service_id"),)

    service_id: Mapped[int] = mapped_column(ForeignKey("catalog_service.id", ondelete="CASCADE"), primary_key=True)
    theme: Mapped[str] = mapped_column(String(32), primary_key=True)


class ServiceRegion(Base):
    __tablename__ = "catalog_service_region"
    __table_args__ = (Index("ix_catalog_service_region_region", "region", "service_id"),)

    service_id: Mapped[int] = mapped_column(ForeignKey("catalog_service.id", ondelete="CASCADE"), primary_key=True)
    region: Mapped[str] = mapped_column(String(8), primary_key=True)   # INSEE region code


class ServicePermission(Base):
    """One permission a service asks: a scope (``documents.BIOLOGIE.read``, ``measures.glucose.write``…)
    and why the service needs it, in the publisher's words."""

    __tablename__ = "catalog_service_permission"

    service_id: Mapped[int] = mapped_column(ForeignKey("catalog_service.id", ondelete="CASCADE"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str | None] = mapped_column(String(300))
    position: Mapped[int] = mapped_column(default=0)


class CatalogConnection(Base):
    """A patient's consent to one service (one row per patient and service, reused when reconnecting)."""

    __tablename__ = "catalog_connection"
    __table_args__ = (
        UniqueConstraint("patient_id", "service_id", name="uq_catalog_connection_patient_service"),
        Index("ix_catalog_connection_expiry", "revoked_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    service_id: Mapped[int] = mapped_column(ForeignKey("catalog_service.id", ondelete="CASCADE"), index=True)
    permissions: Mapped[str] = mapped_column(Text)         # JSON list of the scopes the patient ticked
    first_connected_at: Mapped[dt.datetime]                # of this run of consent (the 90-day review)
    granted_at: Mapped[dt.datetime]                        # last explicit consent (connect or renew)
    expires_at: Mapped[dt.datetime]                        # access lapses then unless renewed
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(16))  # patient | operator


class AuthorizationCode(Base):
    __tablename__ = "catalog_authorization_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("catalog_service.id", ondelete="CASCADE"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("catalog_connection.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    scope: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class AccessToken(Base):
    __tablename__ = "catalog_access_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("catalog_service.id", ondelete="CASCADE"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("catalog_connection.id", ondelete="CASCADE"), index=True)
    authorization_code_id: Mapped[int | None] = mapped_column(
        ForeignKey("catalog_authorization_code.id", ondelete="SET NULL"), index=True)
    scope: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    refresh_expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class ReportReason(str, enum.Enum):
    NOT_WORKING = "not_working"
    MISLEADING = "misleading"
    PRIVACY = "privacy"
    SECURITY = "security"
    INAPPROPRIATE = "inappropriate"
    OTHER = "other"


class CatalogReport(Base):
    __tablename__ = "catalog_report"
    __table_args__ = (Index("ix_catalog_report_service", "service_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("catalog_service.id", ondelete="CASCADE"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id", ondelete="SET NULL"), index=True)
    reason: Mapped[ReportReason] = mapped_column(_enum(ReportReason))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
