"""Extracted entries → the fields of the record's profile kinds (``backend/records/profile/kinds.py``):
pure functions. Measures go to the measure types by LOINC code, with the unit converted when the
document uses another one (g → kg, Cel → °C); entries the profile cannot hold stay in the journal."""
from __future__ import annotations

from typing import Any

from migration.mapping import MappedDocument

# extraction kind → profile kind
PROFILE_KIND = {"allergy": "allergy", "problem": "disease", "history": "disease", "family_history": "family_history",
                "treatment": "treatment", "vaccination": "vaccination", "measure": "measure"}
UNIT_FACTORS = {("g", "kg"): 0.001, ("kg", "kg"): 1.0, ("cm", "cm"): 1.0, ("m", "cm"): 100.0, ("mm", "cm"): 0.1,
                ("Cel", "°C"): 1.0, ("°C", "°C"): 1.0, ("/min", "bpm"): 1.0, ("{beats}/min", "bpm"): 1.0,
                ("%", "%"): 1.0, ("mm[Hg]", "mmHg"): 1.0, ("g/L", "g/L"): 1.0, ("{score}", "/10"): 1.0}


def _date_only(value: str | None) -> str | None:
    return value[:10] if value else None


def _measure(entry: dict[str, Any], measured_at: str | None) -> dict[str, Any] | None:
    try:
        from backend.records.profile.kinds import MEASURE_TYPES
    except ImportError:
        return None
    mtype = next((m for m in MEASURE_TYPES.values() if m.loinc == entry.get("code")), None)
    if mtype is None or mtype.components or entry.get("value") is None:
        return None
    for unit in mtype.units:
        factor = UNIT_FACTORS.get((entry.get("unit") or unit.ucum, unit.code))
        if factor is None and (entry.get("unit") or "") == unit.ucum:
            factor = 1.0
        if factor is None:
            continue
        try:
            value = float(entry["value"]) * factor
        except (TypeError, ValueError):
            return None
        item: dict[str, Any] = {"type": mtype.code, "value": round(value, 3), "unit": unit.code}
        when = entry.get("date") or measured_at
        if when:
            item["measured_at"] = when if "T" in when else f"{when}T12:00:00+00:00"
        return item
    return None


def to_profile(kind: str, entries: list[dict[str, Any]], mapped: MappedDocument,
               uid: str) -> tuple[str | None, list[dict[str, Any]]]:
    profile_kind = PROFILE_KIND.get(kind)
    if profile_kind is None:
        return None, []
    author = {"kind": "professional", "rpps": mapped.author.rpps, "name": mapped.author.name} \
        if (mapped.author.rpps or mapped.author.name) else None
    doc_date = mapped.service_date.date().isoformat() if mapped.service_date else None
    out: list[dict[str, Any]] = []
    for index, e in enumerate(entries):
        label = (e.get("label") or "").strip()
        key = f"legacy:{kind}:{uid}:{index}"[:128]
        if profile_kind == "measure":
            item = _measure(e, e.get("date") or (mapped.service_date.isoformat() if mapped.service_date else None))
            if item is None:
                continue
        elif profile_kind == "allergy":
            item = {"substance": label[:200]}
        elif profile_kind == "disease":
            item = {"label": label[:200]}
            if e.get("code") and len(e["code"]) <= 16:
                item["code"] = e["code"]
            if e.get("date"):
                item["onset_date"] = _date_only(e["date"])
        elif profile_kind == "family_history":
            item = {"relative": "other", "condition": label[:200]}
        elif profile_kind == "treatment":
            item = {"name": label[:200]}
            if e.get("date"):
                item["start_date"] = _date_only(e["date"])
        elif profile_kind == "vaccination":
            date = _date_only(e.get("date")) or doc_date
            if not date:
                continue
            item = {"vaccine": label[:200], "date": date}
        else:
            continue
        item["source_key"] = key
        if author:
            item["author"] = author
        out.append(item)
    return profile_kind, out
