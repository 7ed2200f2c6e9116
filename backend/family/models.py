"""Links between accounts: a minor's legal representatives, an adult's carers.

A link names two accounts (``patient``): the record's holder and the person acting in it. It starts as an
invitation (a code, stored as its keyed digest, that the invited person enters from their own session) and
keeps its history: an ended link is kept (``left``, ``ended`` at majority, ``revoked``) so the access history
can still name who acted.
"""
from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, utcnow


class RepresentationState(str, enum.Enum):
    INVITED = "invited"    # a code was issued to a second representative, not yet accepted
    ACTIVE = "active"
    LEFT = "left"          # the representative left (or the invitation was withdrawn)
    ENDED = "ended"        # the child came of age


class CarerState(str, enum.Enum):
    INVITED = "invited"
    ACCEPTED = "accepted"
    REVOKED = "revoked"    # by the patient, or declined / left by the carer


class CarerScope(str, enum.Enum):
    DOCUMENTS = "documents"  # see documents
    PROFILE = "profile"      # see the medical profile
    AGENDA = "agenda"        # manage the agenda
    MESSAGES = "messages"    # read and write messages


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class LegalRepresentative(Base):
    """A minor's legal representative (one row per representative and child)."""

    __tablename__ = "legal_representative"
    __table_args__ = (Index("ix_legal_representative_child_state", "child_id", "state"),
                      Index("ix_legal_representative_representative_state", "representative_id", "state"))

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    representative_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    state: Mapped[RepresentationState] = mapped_column(_enum(RepresentationState))
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id", ondelete="SET NULL"))
    code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    code_expires_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]


class CarerLink(Base):
    """An adult's carer, with the scope the adult chose (a comma-separated set of ``CarerScope``)."""

    __tablename__ = "carer_link"
    __table_args__ = (Index("ix_carer_link_patient_state", "patient_id", "state"),
                      Index("ix_carer_link_carer_state", "carer_id", "state"))

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    carer_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    scopes: Mapped[str] = mapped_column(String(64))
    state: Mapped[CarerState] = mapped_column(_enum(CarerState))
    code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    code_expires_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    @property
    def scope_set(self) -> frozenset[str]:
        return parse_scopes(self.scopes)


def parse_scopes(raw: str | None) -> frozenset[str]:
    return frozenset(s for s in (raw or "").split(",") if s)
