"""What every part of the profile shares: who wrote it (:class:`Author`, :func:`stamp`, the trace in
the access history), values sealed per patient (AAD ``profile:<kind>:<id>``), the day in France.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from backend.accounts.models import Patient
from backend.audit import service as audit
from backend.professionals.models import Professional
from backend.records.profile import kinds as pk
from backend.records.crypto import Vault
from backend.records.profile.models import ProfileEntry, ProfileMeasure


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


def seal(vault: Vault, patient_id: int, value: dict[str, Any], context: str) -> str:
    return vault.seal_text(patient_id, json.dumps(value, ensure_ascii=False, separators=(",", ":")), context)


def open_sealed(vault: Vault, patient_id: int, sealed: str | None, context: str) -> dict[str, Any]:
    if not sealed:
        return {}
    return json.loads(vault.open_text(patient_id, sealed, context))


def today(now: dt.datetime) -> dt.date:
    return now.astimezone(pk.PARIS).date()


def birth_date(session: Session, patient_id: int) -> dt.date | None:
    patient = session.get(Patient, patient_id)  # usually already in the session (the authenticated patient)
    return patient.birth_date if patient is not None else None


def author_view(row: Any) -> dict[str, Any]:
    return {"kind": row.author_kind, "name": row.author_name, "rpps": row.author_rpps}


def stamp(row: Any, author: Author, source: str) -> None:
    if source not in pk.SOURCES:
        raise ValueError(f"unknown source {source!r}")
    row.source = source
    row.author_kind = author.kind
    row.author_professional_id = author.professional_id
    row.author_rpps = author.rpps
    row.author_name = author.name


def trace(session: Session, author: Author, source: str, patient_id: int, action: str, now: dt.datetime,
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


def request_removal(session: Session, vault: Vault, row: ProfileEntry | ProfileMeasure, context: str,
                     reason: str | None, now: dt.datetime) -> None:
    if row.removal_requested_at is None:
        row.removal_requested_at = now
    if reason and reason.strip():
        row.removal_reason = vault.seal_text(row.patient_id, reason.strip()[:1000], f"{context}:removal")
    session.flush()


def export_meta(row: Any) -> dict[str, Any]:
    return {"id": row.id, "source": row.source, "author": author_view(row), "recorded_at": row.created_at,
            "updated_at": row.updated_at}
