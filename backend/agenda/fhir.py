"""FHIR R4 JSON for the professional API: Schedule, Slot, Appointment, Bundle, OperationOutcome.

FHIR R4 has no element for recurring opening hours, so a Schedule carries them in documented
extensions (all URLs below ``EXT``):

- ``schedule-timezone`` (valueCode, IANA name, default Europe/Paris)
- ``schedule-slot-minutes`` (valueInteger, 5–240)
- ``schedule-opening-hours`` (repeatable; sub-extensions ``start`` and ``end`` = the first occurrence as
  valueDateTime, ``rrule`` = an RFC 5545 RRULE as valueString, DAILY to YEARLY)
- ``schedule-unavailable`` (repeatable valuePeriod: an absence) and ``schedule-closed-day`` (repeatable
  valueDate: a whole local day closed); both come back as ``schedule-unavailable`` periods.

The place is a contained ``Location`` referenced from ``actor``; the visit type is ``serviceType`` in
the code system ``VISIT_TYPE_SYSTEM`` (``in-person`` | ``teleconsultation``); the specialty is
``specialty`` (any code system, e.g. TRE-R38: the system, code and display come back as sent). Every
date-time with a time carries its offset (FHIR dateTime): one without is refused; search parameters
without an offset are wall times of the schedule's zone (FHIR search); output always carries the offset.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from backend.accounts.models import Patient
from backend.agenda import availability
from backend.agenda.models import Appointment, Schedule
from backend.agenda.service import Place, ScheduleInput
from backend.errors import DomainError
from backend.identity import INS_OIDS
from backend.professionals.models import Professional

UTC = dt.timezone.utc
FHIR_MIME = "application/fhir+json"
BASE = "https://carnet.example/fhir"
EXT = f"{BASE}/StructureDefinition/"
EXT_TZ = EXT + "schedule-timezone"
EXT_SLOT_MINUTES = EXT + "schedule-slot-minutes"
EXT_OPENING = EXT + "schedule-opening-hours"
EXT_UNAVAILABLE = EXT + "schedule-unavailable"
EXT_CLOSED_DAY = EXT + "schedule-closed-day"
VISIT_TYPE_SYSTEM = f"{BASE}/CodeSystem/visit-type"
VISIT_CODES = {"in-person": "in_person", "teleconsultation": "teleconsultation"}
VISIT_DISPLAY = {"in_person": "Au cabinet", "teleconsultation": "Téléconsultation"}
INS_SYSTEMS = {f"urn:oid:{oid}" for oid in INS_OIDS}

SCHEDULE_DOCUMENTATION = (
    "A professional's published availability. FHIR R4 has no element for recurring opening hours, so they are "
    f"extensions: {EXT_TZ} (valueCode, IANA zone, default Europe/Paris), {EXT_SLOT_MINUTES} (valueInteger 5–240, "
    f"required), {EXT_OPENING} (repeatable; sub-extensions start and end = the first occurrence as valueDateTime "
    f"with its offset, rrule = an RFC 5545 RRULE as valueString, DAILY to YEARLY), {EXT_UNAVAILABLE} (repeatable "
    f"valuePeriod: an absence) and {EXT_CLOSED_DAY} (repeatable valueDate). The place is a contained Location "
    f"referenced from actor; the visit type is serviceType in {VISIT_TYPE_SYSTEM} (in-person | teleconsultation); "
    "specialty keeps its code system. Date-times without an offset are refused.")


def invalid(reason: str) -> DomainError:
    return DomainError("agenda_invalid_resource", 422, reason=reason)


# --- reading --------------------------------------------------------------------------------------------

def parse_datetime(value: Any, tz_name: str, field: str, *, require_offset: bool = True) -> dt.datetime:
    """A FHIR dateTime with a time: its offset is required (``require_offset=False``: a search value, read as a
    wall time of ``tz_name`` without one)."""
    if not isinstance(value, str) or not value:
        raise invalid(f"{field} : date-heure attendue")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"{field} : date-heure illisible ({value[:40]})") from None
    if parsed.tzinfo is None and require_offset:
        raise invalid(f"{field} : le décalage horaire est obligatoire en FHIR (par exemple {value[:19]}+01:00 "
                      "ou Z)")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=availability.zone(tz_name))
    return parsed.astimezone(UTC)


def parse_date(value: Any, field: str) -> dt.date:
    if not isinstance(value, str):
        raise invalid(f"{field} : date attendue")
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise invalid(f"{field} : date illisible ({value[:40]})") from None


def _extensions(resource: dict[str, Any], url: str) -> list[dict[str, Any]]:
    exts = resource.get("extension") or []
    if not isinstance(exts, list):
        raise invalid("extension doit être une liste")
    return [e for e in exts if isinstance(e, dict) and e.get("url") == url]


def _codings(concepts: Any) -> list[dict[str, Any]]:
    out = []
    for concept in concepts or []:
        if isinstance(concept, dict):
            out.extend(c for c in concept.get("coding") or [] if isinstance(c, dict))
    return out


def _visit_type(resource: dict[str, Any]) -> str | None:
    for coding in _codings(resource.get("serviceType")):
        if coding.get("system") == VISIT_TYPE_SYSTEM:
            if coding.get("code") not in VISIT_CODES:
                raise invalid(f"serviceType : code inconnu {str(coding.get('code'))[:40]}")
            return VISIT_CODES[coding["code"]]
    return None


def _place(resource: dict[str, Any]) -> Place:
    contained = [c for c in resource.get("contained") or [] if isinstance(c, dict)
                 and c.get("resourceType") == "Location"]
    refs = {str(a.get("reference", ""))[1:] for a in resource.get("actor") or []
            if isinstance(a, dict) and str(a.get("reference", "")).startswith("#")}
    location = next((c for c in contained if c.get("id") in refs), contained[0] if contained else None)
    if location is None:
        return Place()
    address = location.get("address") or {}
    lines = address.get("line") or []
    return Place(name=_clip(location.get("name"), 200), address=_clip(", ".join(str(x) for x in lines), 300),
                 postcode=_clip(address.get("postalCode"), 10), city=_clip(address.get("city"), 120))


def _clip(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:limit] or None


def schedule_input(resource: Any, pro: Professional, default_tz: str) -> ScheduleInput:
    if not isinstance(resource, dict) or resource.get("resourceType") != "Schedule":
        raise invalid("resourceType Schedule attendu")
    tz_ext = _extensions(resource, EXT_TZ)
    tz = str(tz_ext[0].get("valueCode")) if tz_ext else default_tz
    availability.zone(tz)
    slot_ext = _extensions(resource, EXT_SLOT_MINUTES)
    if not slot_ext or not isinstance(slot_ext[0].get("valueInteger"), int):
        raise invalid("l'extension schedule-slot-minutes (valueInteger) est obligatoire")
    specialty = _codings(resource.get("specialty"))
    openings = []
    for ext in _extensions(resource, EXT_OPENING):
        parts = {p.get("url"): p for p in ext.get("extension") or [] if isinstance(p, dict)}
        if "start" not in parts or "end" not in parts:
            raise invalid("schedule-opening-hours : start et end sont obligatoires")
        start = parse_datetime(parts["start"].get("valueDateTime"), tz, "opening-hours.start")
        end = parse_datetime(parts["end"].get("valueDateTime"), tz, "opening-hours.end")
        rule = parts.get("rrule", {}).get("valueString")
        openings.append((start, end, str(rule) if rule else None))
    exceptions = []
    for ext in _extensions(resource, EXT_UNAVAILABLE):
        period = ext.get("valuePeriod") or {}
        exceptions.append((parse_datetime(period.get("start"), tz, "unavailable.start"),
                           parse_datetime(period.get("end"), tz, "unavailable.end")))
    for ext in _extensions(resource, EXT_CLOSED_DAY):
        exceptions.append(availability.local_day_bounds(parse_date(ext.get("valueDate"), "closed-day"), tz))
    horizon = resource.get("planningHorizon") or {}
    active = resource.get("active", True)
    if not isinstance(active, bool):
        raise invalid("active doit être un booléen")
    return ScheduleInput(
        visit_type=_visit_type(resource) or "in_person", slot_minutes=slot_ext[0]["valueInteger"], tz=tz,
        specialty_code=_clip(specialty[0].get("code"), 32) if specialty else pro.specialty_code,
        specialty_label=_clip(specialty[0].get("display"), 200) if specialty else None,
        specialty_system=_clip(specialty[0].get("system"), 128) if specialty else None,
        place=_place(resource), openings=openings, exceptions=exceptions,
        valid_from=parse_date(horizon["start"], "planningHorizon.start") if horizon.get("start") else None,
        valid_until=parse_date(horizon["end"], "planningHorizon.end") if horizon.get("end") else None,
        active=active, comment=_clip(resource.get("comment"), 500))


def patient_identifier(resource: dict[str, Any]) -> str:
    """The patient's INS (NIR) from Appointment.participant.actor.identifier."""
    for participant in resource.get("participant") or []:
        actor = (participant or {}).get("actor") or {}
        identifier = actor.get("identifier") or {}
        if identifier.get("system") in INS_SYSTEMS and identifier.get("value"):
            return str(identifier["value"])
    raise invalid("participant.actor.identifier : INS du patient (urn:oid:1.2.250.1.213.1.4.8) attendu")


# --- writing ---------------------------------------------------------------------------------------------

def _iso(instant: dt.datetime, tz_name: str) -> str:
    return instant.astimezone(availability.zone(tz_name)).isoformat()


def _visit_concept(visit_type: str | None) -> list[dict[str, Any]]:
    if not visit_type:
        return []
    code = next(k for k, v in VISIT_CODES.items() if v == visit_type)
    return [{"coding": [{"system": VISIT_TYPE_SYSTEM, "code": code, "display": VISIT_DISPLAY[visit_type]}]}]


def _specialty_concept(code: str | None, label: str | None, system: str | None = None) -> list[dict[str, Any]]:
    """The specialty as the practice sent it: system, code and display (text alone without a code)."""
    if not code:
        return [{"text": label}] if label else []
    coding: dict[str, Any] = {}
    if system:
        coding["system"] = system
    coding["code"] = code
    if label:
        coding["display"] = label
    return [{"coding": [coding], "text": label or code}]


def schedule_resource(schedule: Schedule, pro: Professional) -> dict[str, Any]:
    ext: list[dict[str, Any]] = [{"url": EXT_TZ, "valueCode": schedule.tz},
                                 {"url": EXT_SLOT_MINUTES, "valueInteger": schedule.slot_minutes}]
    for opening in schedule.openings:
        parts = [{"url": "start", "valueDateTime": _iso(opening.starts_at, schedule.tz)},
                 {"url": "end", "valueDateTime": _iso(opening.ends_at, schedule.tz)}]
        if opening.rrule:
            parts.append({"url": "rrule", "valueString": opening.rrule})
        ext.append({"url": EXT_OPENING, "extension": parts})
    for x in schedule.exceptions:
        ext.append({"url": EXT_UNAVAILABLE, "valuePeriod": {"start": _iso(x.starts_at, schedule.tz),
                                                            "end": _iso(x.ends_at, schedule.tz)}})
    resource: dict[str, Any] = {"resourceType": "Schedule", "id": str(schedule.id), "extension": ext,
                                "active": schedule.active, "serviceType": _visit_concept(schedule.visit_type),
                                "specialty": _specialty_concept(schedule.specialty_code, schedule.specialty_label,
                                                                schedule.specialty_system),
                                "actor": [{"reference": f"Practitioner/{pro.id}", "display": pro.display_name,
                                           "identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1",
                                                          "value": "8" + pro.rpps}}]}
    if schedule.place_name or schedule.place_city or schedule.place_address:
        address = {k: v for k, v in (("line", [schedule.place_address] if schedule.place_address else None),
                                     ("postalCode", schedule.place_postcode), ("city", schedule.place_city)) if v}
        resource["contained"] = [{"resourceType": "Location", "id": "place", "name": schedule.place_name,
                                  "address": address}]
        resource["actor"].append({"reference": "#place"})
    if schedule.valid_from or schedule.valid_until:
        resource["planningHorizon"] = {k: v.isoformat() for k, v in (("start", schedule.valid_from),
                                                                    ("end", schedule.valid_until)) if v}
    if schedule.comment:
        resource["comment"] = schedule.comment
    return {k: v for k, v in resource.items() if v != []}


def slot_resource(schedule: Schedule, slot: availability.SlotTime, busy: bool) -> dict[str, Any]:
    resource = {"resourceType": "Slot", "id": slot.id, "schedule": {"reference": f"Schedule/{schedule.id}"},
                "status": "busy" if busy else "free", "start": _iso(slot.starts_at, schedule.tz),
                "end": _iso(slot.ends_at, schedule.tz), "serviceType": _visit_concept(schedule.visit_type),
                "specialty": _specialty_concept(schedule.specialty_code, schedule.specialty_label,
                                                schedule.specialty_system)}
    return {k: v for k, v in resource.items() if v != []}


def appointment_resource(appointment: Appointment, patient: Patient | None) -> dict[str, Any]:
    a = appointment
    participants: list[dict[str, Any]] = []
    if patient is not None:
        # The practice knows the patient by the INS it sent; their names only when the patient booked online
        # with it (they gave them): an appointment made from a bare INS must not disclose identity traits.
        actor: dict[str, Any] = {"reference": f"Patient/{patient.id}",
                                 "identifier": {"system": f"urn:oid:{patient.ins_oid}", "value": patient.nir}}
        if a.kind == "booking":
            actor["display"] = f"{patient.given_names} {patient.family_name}"
        participants.append({"actor": actor, "status": "accepted"})
    if a.professional_id:
        participants.append({"actor": {"reference": f"Practitioner/{a.professional_id}",
                                       "display": a.professional_name}, "status": "accepted"})
    resource: dict[str, Any] = {
        "resourceType": "Appointment", "id": str(a.id), "status": a.status,
        "serviceType": _visit_concept(a.visit_type), "specialty": _specialty_concept(None, a.specialty_label),
        "start": _iso(a.starts_at, a.tz), "end": _iso(a.ends_at, a.tz),
        "minutesDuration": int((a.ends_at - a.starts_at).total_seconds() // 60),
        "created": a.created_at.astimezone(UTC).isoformat(), "participant": participants,
    }
    if a.schedule_id:
        resource["slot"] = [{"reference": f"Slot/{availability.slot_id(a.schedule_id, a.starts_at)}"}]
    if a.status == "cancelled":
        resource["cancelationReason"] = {"text": "Annulé par le patient" if a.cancelled_by == "patient"
                                         else "Annulé par le professionnel"}
    return {k: v for k, v in resource.items() if v != []}


def bundle(resources: list[dict[str, Any]], base_url: str, next_url: str | None = None,
           total: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if resources:  # FHIR JSON never holds an empty array
        out["entry"] = [{"fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}", "resource": r,
                         "search": {"mode": "match"}} for r in resources]
    if total is not None:
        out["total"] = total
    if next_url:
        out["link"] = [{"relation": "next", "url": next_url}]
    return out
