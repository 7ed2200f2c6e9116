"""What the medical profile holds, kind by kind, and how each value is checked (domain.md, "The patient's
medical profile"). One table of specifications serves validation, the form description the app reads
(``GET /record/profile/kinds``), the export and the access category each kind falls under.

Validation collects every problem at once as ``{"field", "message_code", "params"}`` items, raised as one
``DomainError("profile_invalid")``: the error handler renders them in French (English on request).
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any

from backend.errors import DomainError
from backend.identity import FRANCE as PARIS  # the one Europe/Paris (backend/identity.py)

SOURCES = ("patient", "professional", "migration")
EARLIEST = dt.date(1900, 1, 1)
# a measure entered a few minutes "ahead" because of a phone's clock is not refused
CLOCK_SKEW = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class Field:
    name: str
    type: str = "text"          # text | date | choice | email | phone
    required: bool = False
    max_length: int = 200
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Kind:
    name: str
    fields: tuple[Field, ...]
    # the document category whose access rules apply to this kind (policy: profession matrix, services)
    category: str
    single: bool = False                      # one current value (blood group)
    title: str = ""                           # the field shown as the entry's title
    date_pairs: tuple[tuple[str, str], ...] = ()

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


COMMENT = Field("comment", max_length=1000)

KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("disease", (Field("label", required=True), Field("code", max_length=16),
                     Field("onset_date", "date"), Field("end_date", "date"),
                     Field("status", "choice", choices=("active", "resolved")), COMMENT),
         "SYNTHESE", title="label", date_pairs=(("onset_date", "end_date"),)),
    Kind("hospitalisation", (Field("reason", required=True), Field("establishment"),
                             Field("start_date", "date"), Field("end_date", "date"), COMMENT),
         "SYNTHESE", title="reason", date_pairs=(("start_date", "end_date"),)),
    Kind("family_history", (Field("relative", "choice", required=True,
                                  choices=("mother", "father", "sibling", "child", "grandparent", "uncle_aunt",
                                           "other")),
                            Field("condition", required=True), COMMENT),
         "SYNTHESE", title="condition"),
    Kind("allergy", (Field("substance", required=True),
                     Field("category", "choice", choices=("medication", "food", "environment", "biologic", "other")),
                     Field("reaction"), Field("severity", "choice", choices=("mild", "moderate", "severe")),
                     Field("since", "date"), COMMENT),
         "SYNTHESE", title="substance"),
    Kind("treatment", (Field("name", required=True), Field("dosage"), Field("reason"),
                       Field("start_date", "date"), Field("end_date", "date"), COMMENT),
         "SYNTHESE", title="name", date_pairs=(("start_date", "end_date"),)),
    # atc: the vaccine's ATC code (J07…) when known: it lets the prevention calendar follow the entry
    Kind("vaccination", (Field("vaccine", required=True), Field("date", "date", required=True),
                         Field("dose", max_length=100), Field("batch", max_length=50),
                         Field("administered_by"), Field("atc", max_length=16), COMMENT),
         "CAR_VAC", title="vaccine"),
    # an implanted medical device (DP, domain.md): prosthesis, pacemaker, implantable port…; device_code is the
    # device category (EMDN, LPP…) as the document gave it; udi the unique device identifier
    Kind("implant", (Field("device", required=True), Field("brand_model"), Field("lot_serial", max_length=100),
                     Field("udi", max_length=200), Field("implant_date", "date"), Field("site"),
                     Field("implanted_by", max_length=300), Field("device_code", max_length=32), COMMENT),
         "SYNTHESE", title="device"),
    Kind("blood_group", (Field("group", "choice", required=True, choices=("A", "B", "AB", "O")),
                         Field("rhesus", "choice", required=True, choices=("positive", "negative"))),
         "SYNTHESE", single=True, title="group"),
    Kind("disability", (Field("label", required=True), COMMENT), "SYNTHESE", title="label"),
    Kind("lifestyle", (Field("topic", "choice", required=True,
                             choices=("tobacco", "alcohol", "physical_activity", "diet", "sleep", "other")),
                       Field("description", required=True, max_length=500)),
         "SYNTHESE", title="description"),
    Kind("contact", (Field("contact_kind", "choice", required=True,
                           choices=("emergency", "trusted_person", "carer", "helper")),
                     Field("name", required=True), Field("relationship", max_length=100),
                     Field("phone", "phone"), Field("email", "email", max_length=320), COMMENT),
         "VDP", title="name"),
    Kind("wish", (Field("text", required=True, max_length=3000),), "VDP", title="text"),
)}

DIRECTIVE_CONTEXTS = ("good_health", "end_of_life")
DIRECTIVE_CATEGORY = "DIR_ANT"
DIRECTIVE_MAX_LENGTH = 20_000
ORGAN_DONATION_POSITIONS = ("not_stated", "accepts", "refuses", "refuses_partially")
ORGAN_DONATION_CATEGORY = "VDP"
MEASURE_CATEGORY = "SYNTHESE"


@dataclass(frozen=True)
class Unit:
    code: str       # what the app sends and shows
    ucum: str       # for FHIR Quantity
    minimum: float
    maximum: float
    to_canonical: float = 1.0   # factor to the type's first unit (charts use one unit per type)
    loinc: str | None = None    # when the unit changes the LOINC code (glucose mass vs moles)


@dataclass(frozen=True)
class MeasureType:
    code: str
    loinc: str
    units: tuple[Unit, ...]
    integer: bool = False
    # blood pressure: two values, each with its own range and LOINC
    components: tuple[tuple[str, str, float, float], ...] = ()

    @property
    def default_unit(self) -> Unit:
        return self.units[0]

    def unit(self, code: str | None) -> Unit | None:
        if code is None:
            return self.default_unit
        return next((u for u in self.units if u.code == code), None)


MEASURE_TYPES: dict[str, MeasureType] = {m.code: m for m in (
    MeasureType("weight", "29463-7", (Unit("kg", "kg", 0.2, 500),)),
    MeasureType("height", "8302-2", (Unit("cm", "cm", 20, 272),)),
    MeasureType("waist", "8280-0", (Unit("cm", "cm", 20, 300),)),
    MeasureType("temperature", "8310-5", (Unit("°C", "Cel", 25, 45),)),
    MeasureType("glucose", "2339-0", (Unit("g/L", "g/L", 0.1, 10),
                                       Unit("mmol/L", "mmol/L", 0.5, 55.5, to_canonical=0.18016, loinc="15074-8"))),
    MeasureType("blood_pressure", "85354-9", (Unit("mmHg", "mm[Hg]", 20, 300),),
                components=(("systolic", "8480-6", 40, 300), ("diastolic", "8462-4", 20, 200))),
    MeasureType("heart_rate", "8867-4", (Unit("bpm", "/min", 20, 300),)),
    MeasureType("pain", "72514-3", (Unit("/10", "{score}", 0, 10),), integer=True),
    MeasureType("head_circumference", "9843-4", (Unit("cm", "cm", 15, 80),)),
    MeasureType("steps", "41950-7", (Unit("steps", "{steps}/d", 0, 200_000),), integer=True),
    MeasureType("hba1c", "4548-4", (Unit("%", "%", 2, 25),)),
    MeasureType("oxygen_saturation", "59408-5", (Unit("%", "%", 50, 100),)),
)}


# --- validation ---------------------------------------------------------------------------------------

@dataclass
class Problems:
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str | None, code: str, **params: Any) -> None:
        self.items.append({"field": name, "message_code": code, "params": params})

    def raise_if_any(self, code: str = "profile_invalid", **params: Any) -> None:
        if self.items:
            raise DomainError(code, 422, errors=self.items, **params)


def unknown_kind(kind: str) -> DomainError:
    return DomainError("profile_unknown_kind", 422, kind=str(kind)[:40], kinds=", ".join(KINDS))


def get_kind(kind: str) -> Kind:
    spec = KINDS.get(kind)
    if spec is None:
        raise unknown_kind(kind)
    return spec


_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 .()-]{6,20}$")


def date_bounds(text: str) -> tuple[dt.date, dt.date] | None:
    """A full or partial date ("2019", "2019-05", "2019-05-14") as its earliest and latest day."""
    m = _PARTIAL_DATE.match(text)
    if not m:
        return None
    year, month, day = int(m.group(1)), m.group(2), m.group(3)
    try:
        if month is None:
            return dt.date(year, 1, 1), dt.date(year, 12, 31)
        mon = int(month)
        if day is None:
            start = dt.date(year, mon, 1)
            end = (dt.date(year + mon // 12, mon % 12 + 1, 1) - dt.timedelta(days=1))
            return start, end
        d = dt.date(year, mon, int(day))
        return d, d
    except ValueError:
        return None


def _check_date(problems: Problems, name: str, value: Any, today: dt.date,
                birth_date: dt.date | None) -> tuple[dt.date, dt.date] | None:
    bounds = date_bounds(value) if isinstance(value, str) else None
    if bounds is None:
        problems.add(name, "profile_invalid_date")
        return None
    if bounds[0] > today:
        problems.add(name, "profile_future_date")
    elif bounds[1] < (birth_date or EARLIEST):
        problems.add(name, "profile_date_before_birth" if birth_date else "profile_date_too_old")
    return bounds


def clean_entry(kind: Kind, data: Any, *, today: dt.date, birth_date: dt.date | None,
                previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validated, normalised fields of an entry. ``previous``: the stored fields a partial update keeps."""
    problems = Problems()
    if not isinstance(data, dict):
        problems.add(None, "profile_not_an_object")
        problems.raise_if_any()
    merged: dict[str, Any] = dict(previous or {})
    for name, value in data.items():
        spec = kind.field(name)
        if spec is None:
            problems.add(name, "profile_unknown_field")
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            merged.pop(name, None)
            continue
        if not isinstance(value, str):
            problems.add(name, "profile_not_text")
            continue
        value = value.strip()
        if len(value) > spec.max_length:
            problems.add(name, "profile_too_long", max=spec.max_length)
            continue
        if spec.type == "choice" and value not in spec.choices:
            problems.add(name, "profile_invalid_choice", choices=", ".join(spec.choices))
            continue
        if spec.type == "email" and not _EMAIL.match(value):
            problems.add(name, "profile_invalid_email")
            continue
        if spec.type == "phone" and not _PHONE.match(value):
            problems.add(name, "profile_invalid_phone")
            continue
        merged[name] = value
    for spec in kind.fields:
        if spec.required and spec.name not in merged and not any(p["field"] == spec.name for p in problems.items):
            problems.add(spec.name, "profile_required")
    bounds: dict[str, tuple[dt.date, dt.date] | None] = {}
    for spec in kind.fields:
        if spec.type == "date" and spec.name in merged and not any(p["field"] == spec.name for p in problems.items):
            bounds[spec.name] = _check_date(problems, spec.name, merged[spec.name], today, birth_date)
    for start, end in kind.date_pairs:
        b_start, b_end = bounds.get(start), bounds.get(end)
        if b_start and b_end and b_end[1] < b_start[0]:
            problems.add(end, "profile_end_before_start")
    if kind.name == "contact" and merged.get("contact_kind") == "emergency" and "phone" not in merged:
        problems.add("phone", "profile_contact_phone_required")
    problems.raise_if_any()
    return merged


def _number(problems: Problems, name: str, raw: Any, integer: bool) -> float | None:
    if isinstance(raw, bool) or raw is None:
        problems.add(name, "profile_required" if raw is None else "profile_not_a_number")
        return None
    if isinstance(raw, str):
        raw = raw.strip().replace(",", ".")
        try:
            raw = float(raw)
        except ValueError:
            problems.add(name, "profile_not_a_number")
            return None
    if not isinstance(raw, (int, float)) or not math.isfinite(raw):
        problems.add(name, "profile_not_a_number")
        return None
    value = float(raw)
    if integer and value != int(value):
        problems.add(name, "profile_not_an_integer")
        return None
    return value


def _fmt(x: float) -> str:
    return f"{x:g}".replace(".", ",")


def parse_instant(problems: Problems, name: str, raw: Any, now: dt.datetime) -> dt.datetime | None:
    """An ISO date or date-time; without an offset it is French local time. Default: now."""
    if raw is None:
        return now
    if not isinstance(raw, str):
        problems.add(name, "profile_invalid_datetime")
        return None
    text = raw.strip()
    try:
        if len(text) == 10:
            value = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(12, 0), PARIS)
        else:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if value.tzinfo is None:
                value = value.replace(tzinfo=PARIS)
    except ValueError:
        problems.add(name, "profile_invalid_datetime")
        return None
    return value.astimezone(dt.timezone.utc)


def clean_measure(data: Any, *, now: dt.datetime, birth_date: dt.date | None,
                  previous: dict[str, Any] | None = None,
                  previous_at: dt.datetime | None = None) -> tuple[str, dt.datetime, dict[str, Any]]:
    """(type, measured_at, sealed fields) of a measure, every range checked in the unit given."""
    problems = Problems()
    if not isinstance(data, dict):
        problems.add(None, "profile_not_an_object")
        problems.raise_if_any()
    allowed = {"type", "value", "unit", "systolic", "diastolic", "measured_at", "note"}
    for name in data:
        if name not in allowed:
            problems.add(name, "profile_unknown_field")
    merged = {**(previous or {}), **{k: v for k, v in data.items() if k in allowed and k != "measured_at"}}
    mtype = MEASURE_TYPES.get(str(merged.get("type")))
    if mtype is None:
        raise DomainError("profile_unknown_measure", 422, type=str(merged.get("type"))[:40],
                          types=", ".join(MEASURE_TYPES), errors=problems.items or None)
    unit = mtype.unit(merged.get("unit"))
    out: dict[str, Any] = {}
    if unit is None:
        problems.add("unit", "profile_invalid_unit", units=", ".join(u.code for u in mtype.units))
    else:
        out["unit"] = unit.code
        if mtype.components:
            values = {}
            for name, _loinc, low, high in mtype.components:
                value = _number(problems, name, merged.get(name), integer=False)
                if value is not None and not low <= value <= high:
                    problems.add(name, "profile_out_of_range", min=_fmt(low), max=_fmt(high), unit=unit.code)
                elif value is not None:
                    values[name] = value
            if len(values) == 2 and values["systolic"] <= values["diastolic"]:
                problems.add("diastolic", "profile_diastolic_above_systolic")
            out.update(values)
        else:
            value = _number(problems, "value", merged.get("value"), integer=mtype.integer)
            if value is not None and not unit.minimum <= value <= unit.maximum:
                problems.add("value", "profile_out_of_range", min=_fmt(unit.minimum), max=_fmt(unit.maximum),
                             unit=unit.code)
            elif value is not None:
                out["value"] = int(value) if mtype.integer else value
    note = merged.get("note")
    if note is not None:
        if not isinstance(note, str) or len(note) > 500:
            problems.add("note", "profile_too_long", max=500)
        elif note.strip():
            out["note"] = note.strip()
    if "measured_at" in data or previous_at is None:
        measured_at = parse_instant(problems, "measured_at", data.get("measured_at"), now)
    else:
        measured_at = previous_at
    if measured_at is not None:
        if measured_at > now + CLOCK_SKEW:
            problems.add("measured_at", "profile_future_date")
        elif measured_at.astimezone(PARIS).date() < (birth_date or EARLIEST):
            problems.add("measured_at", "profile_date_before_birth" if birth_date else "profile_date_too_old")
    problems.raise_if_any()
    assert measured_at is not None
    return mtype.code, measured_at, out


def canonical_value(mtype: MeasureType, fields: dict[str, Any]) -> float | None:
    """The value in the type's chart unit (glucose in g/L whatever was entered)."""
    if "value" not in fields:
        return None
    unit = mtype.unit(fields.get("unit")) or mtype.default_unit
    return round(fields["value"] * unit.to_canonical, 4)


def describe() -> dict[str, Any]:
    """The form description the app builds its screens from (labels are in the messages)."""
    return {
        "kinds": [{"kind": k.name, "category": k.category, "single": k.single,
                   "fields": [{"name": f.name, "type": f.type, "required": f.required, "max_length": f.max_length,
                               "choices": list(f.choices)} for f in k.fields]} for k in KINDS.values()],
        "measure_types": [{"type": m.code, "loinc": m.loinc, "integer": m.integer,
                           "units": [{"unit": u.code, "min": u.minimum, "max": u.maximum} for u in m.units],
                           "components": [{"name": c[0], "min": c[2], "max": c[3]} for c in m.components]}
                          for m in MEASURE_TYPES.values()],
        "directive_contexts": list(DIRECTIVE_CONTEXTS),
        "organ_donation_positions": list(ORGAN_DONATION_POSITIONS),
    }
