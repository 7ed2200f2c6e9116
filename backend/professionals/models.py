"""Health professionals (identified by RPPS) and their API credentials."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.db import Base, utcnow


class Professional(Base):
    __tablename__ = "professional"

    id: Mapped[int] = mapped_column(primary_key=True)
    rpps: Mapped[str] = mapped_column(String(11), unique=True)
    family_name: Mapped[str] = mapped_column(String(200))
    given_name: Mapped[str] = mapped_column(String(200))
    profession_code: Mapped[str] = mapped_column(String(8))
    specialty_code: Mapped[str | None] = mapped_column(String(32))
    organisation: Mapped[str | None] = mapped_column(String(300))
    # The structure the professional acts for (national structure identifier, idNat_Struct: "1" + FINESS,
    # "3" + SIRET…), as their identity provider states it: what "the author's structure" is compared with.
    structure_id: Mapped[str | None] = mapped_column(String(32))
    samu_regulator: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    tokens: Mapped[list[ProfessionalToken]] = relationship(
        back_populates="professional", lazy="raise", cascade="all, delete-orphan", passive_deletes=True)

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


class ProfessionalToken(Base):
    """A bearer token for the professional API (stands in for Pro Santé Connect here)."""

    __tablename__ = "professional_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    professional_id: Mapped[int] = mapped_column(ForeignKey("professional.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]

    professional: Mapped[Professional] = relationship(back_populates="tokens", lazy="raise")
