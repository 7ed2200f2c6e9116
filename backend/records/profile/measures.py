"""Measures (weight, blood pressure, glucose…) and their history: add, correct, delete or ask the
removal of a professional's, the series a chart draws, and a measure as the export shapes it.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from backend import cursors
from backend.db import utcnow
from backend.errors import DomainError, Forbidden, NotFound
from backend.records.profile import kinds as pk
from backend.records.crypto import Vault
from backend.records.profile import common
from backend.records.profile.common import PATIENT, Author
from backend.records.profile.models import ProfileMeasure


# --- measures -----------------------------------------------------------------------------------------

def measure_context(measure_id: int) -> str:
    return f"profile:measure:{measure_id}"


def measure_view(m: ProfileMeasure, fields: dict[str, Any]) -> dict[str, Any]:
    mtype = pk.MEASURE_TYPES[m.type]
    return {
        "id": m.id, "type": m.type, "measured_at": m.measured_at, "value": fields.get("value"),
        "unit": fields.get("unit"), "systolic": fields.get("systolic"), "diastolic": fields.get("diastolic"),
        "chart_value": pk.canonical_value(mtype, fields), "note": fields.get("note"), "source": m.source,
        "author": common.author_view(m), "created_at": m.created_at, "updated_at": m.updated_at,
        "editable": m.author_kind == "patient", "removal_requested_at": m.removal_requested_at,
    }


def open_measure(vault: Vault, m: ProfileMeasure) -> dict[str, Any]:
    return common.open_sealed(vault, m.patient_id, m.data, measure_context(m.id))


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
    mtype, measured_at, fields = pk.clean_measure(data, now=now, birth_date=common.birth_date(session, patient_id))
    m = ProfileMeasure(patient_id=patient_id, type=mtype, measured_at=measured_at, data="", created_at=now)
    common.stamp(m, author, source)
    session.add(m)
    session.flush()
    m.data = common.seal(vault, patient_id, fields, measure_context(m.id))
    common.trace(session, author, source, patient_id, "profile.measure_created", now, type=mtype, measure_id=m.id)
    return measure_view(m, fields)


def update_measure(session: Session, vault: Vault, patient_id: int, measure_id: int, data: Any, *,
                   now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    m = _get_measure(session, patient_id, measure_id)
    if m.author_kind != "patient":
        raise Forbidden("profile_not_author")
    if isinstance(data, dict) and "type" in data and data["type"] != m.type:
        raise DomainError("profile_measure_type_fixed", 422)
    previous = {**open_measure(vault, m), "type": m.type}
    mtype, measured_at, fields = pk.clean_measure(data, now=now, birth_date=common.birth_date(session, patient_id),
                                                  previous=previous, previous_at=m.measured_at)
    m.measured_at, m.updated_at = measured_at, now
    m.data = common.seal(vault, patient_id, fields, measure_context(m.id))
    common.trace(session, PATIENT, "patient", patient_id, "profile.measure_updated", now, type=mtype, measure_id=m.id)
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
        common.trace(session, PATIENT, "patient", patient_id, "profile.measure_deleted", now, measure_id=measure_id)
        session.flush()
        return "deleted", None
    common.request_removal(session, vault, m, measure_context(m.id), reason, now)
    common.trace(session, PATIENT, "patient", patient_id, "profile.removal_requested", now, kind="measure",
                 measure_id=measure_id)
    return "removal_requested", measure_view(m, open_measure(vault, m))


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
    items = [measure_view(m, open_measure(vault, m)) for m in page]
    return {"type": mtype, "unit": spec.default_unit.code, "items": items, "series": series_of(spec, items),
            "next_id": page[-1].id if len(rows) > limit else None}


def series_of(spec: pk.MeasureType, items: list[dict[str, Any]]) -> dict[str, list[list[Any]]]:
    ordered = sorted(items, key=lambda i: (i["measured_at"], i["id"]))
    if spec.components:
        return {name: [[i["measured_at"].isoformat(), i[name]] for i in ordered if i.get(name) is not None]
                for name, *_ in spec.components}
    return {"value": [[i["measured_at"].isoformat(), i["chart_value"]] for i in ordered
                      if i.get("chart_value") is not None]}


def measure_for_export(m: ProfileMeasure, fields: dict[str, Any]) -> dict[str, Any]:
    """A measure in the shape ``fhir.profile_resources.measure`` reads (the export's, a service's)."""
    spec = pk.MEASURE_TYPES[m.type]
    unit = spec.unit(fields.get("unit")) or spec.default_unit
    item: dict[str, Any] = {**common.export_meta(m), "type": m.type, "loinc": spec.loinc, "measured_at": m.measured_at,
                            "unit": unit.code, "ucum": unit.ucum, "unit_loinc": unit.loinc, "note": fields.get("note")}
    if spec.components:
        item["components"] = [{"name": name, "loinc": loinc, "value": fields.get(name)}
                              for name, loinc, *_ in spec.components]
    else:
        item["value"] = fields.get("value")
    return item
