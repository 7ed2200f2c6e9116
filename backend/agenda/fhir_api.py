"""The professional API of the agenda, FHIR R4 JSON under ``/fhir/R4`` (see backend.agenda.fhir).

- ``POST|GET /fhir/R4/Schedule``, ``GET|PUT|DELETE /fhir/R4/Schedule/{id}`` — publish availability
- ``GET /fhir/R4/Slot?schedule=Schedule/{id}&start=ge2026-03-29&start=lt2026-03-30`` — computed slots
- ``GET /fhir/R4/Appointment?date=ge…&date=lt…&_count=…``, ``GET /fhir/R4/Appointment/{id}``
- ``POST /fhir/R4/Appointment`` — an appointment made by the practice for a patient (INS identifier)
- ``POST /fhir/R4/Appointment/{id}/$cancel`` — the practice cancels (the patient is notified)

The documents' FHIR API shares the ``/fhir/R4`` base. Errors, negotiation, the professional's authentication
and this feature's part of the server's CapabilityStatement come from the FHIR layer (``backend.fhir.layer``).
"""
from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from flask import Response, current_app
from sqlalchemy import select

from backend import web
from backend.accounts import service as accounts
from backend.accounts.models import Patient
from backend.agenda import availability, fhir
from backend.agenda import service as agenda
from backend.agenda.models import Appointment
from backend.db import get_session
from backend.errors import DomainError
import backend.fhir.auth as auth
import backend.fhir.layer as layer
from backend.professionals.models import Professional

bp = layer.FhirBlueprint("agenda_fhir", __name__)
fhir_response = layer.fhir_response
UTC = dt.timezone.utc
OPERATIONS = f"{layer.CARNET}/OperationDefinition/"

bp.resource("Schedule", documentation=fhir.SCHEDULE_DOCUMENTATION)
bp.resource("Slot", documentation="Computed from the schedules' opening hours, absences and bookings.")
bp.resource("Appointment", documentation="The practice's appointments: booked by patients in the app, or made by "
                                          "the practice (POST, the patient named by INS).")


def current_professional() -> Professional:
    return auth.current_professional()


def settings() -> agenda.AgendaSettings:
    return current_app.extensions["carnet.agenda_settings"]


def base_url() -> str:
    return layer.base_url().rstrip("/")


def _body() -> Any:
    return layer.json_body(int(current_app.config["MAX_CONTENT_LENGTH"]))


# --- search parameters -------------------------------------------------------------------------------------

def _bounds(name: str, tz: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """FHIR date search: ``ge``/``gt`` give the lower bound, ``lt``/``le`` the upper; a bare date is that
    local day."""
    lower = upper = None
    for raw in layer.params().getlist(name):
        prefix, value = (raw[:2], raw[2:]) if raw[:2] in {"ge", "gt", "le", "lt", "eq"} else ("eq", raw)
        if len(value) == 10:
            day_start, day_end = availability.local_day_bounds(fhir.parse_date(value, name), tz)
            low, high = day_start, day_end
        else:
            low = high = fhir.parse_datetime(value, tz, name, require_offset=False)
        if prefix in {"ge", "gt"}:
            lower = low if prefix == "ge" or len(value) != 10 else high
        elif prefix in {"lt", "le"}:
            upper = low if prefix == "lt" or len(value) != 10 else high
        else:
            lower, upper = low, high
    return lower, upper


# --- Schedule -----------------------------------------------------------------------------------------------

@bp.interaction("create", "/Schedule")
def create_schedule() -> Response:
    session = get_session()
    pro = current_professional()
    data = fhir.schedule_input(_body(), pro, settings().default_tz)
    schedule = agenda.publish_schedule(session, pro, data)
    session.commit()
    return fhir_response(fhir.schedule_resource(schedule, pro), 201,
                         {"Location": f"{base_url()}/Schedule/{schedule.id}"})


@bp.interaction("search-type", "/Schedule", search=(
    layer.SearchParam("_count", "number", "Page size, 1 to 100 (default 100): the professional's own schedules, "
                                          "newest first."),))
def search_schedules() -> Response:
    pro = current_professional()
    schedules = agenda.list_schedules(get_session(), pro, limit=layer.page_size(web.PAGE_MAX))
    return fhir_response(fhir.bundle([fhir.schedule_resource(s, pro) for s in schedules], base_url(),
                                     total=len(schedules)))


@bp.interaction("read", "/Schedule/<int:schedule_id>")
def read_schedule(schedule_id: int) -> Response:
    pro = current_professional()
    return fhir_response(fhir.schedule_resource(agenda.own_schedule(get_session(), pro, schedule_id), pro))


@bp.interaction("update", "/Schedule/<int:schedule_id>")
def update_schedule(schedule_id: int) -> Response:
    session = get_session()
    pro = current_professional()
    data = fhir.schedule_input(_body(), pro, settings().default_tz)
    schedule = agenda.update_schedule(session, pro, schedule_id, data)
    session.commit()
    return fhir_response(fhir.schedule_resource(schedule, pro))


@bp.interaction("delete", "/Schedule/<int:schedule_id>",
                documentation="Withdraws the schedule: it is kept inactive (read answers active=false).")
def delete_schedule(schedule_id: int) -> Response:
    """Withdraw a schedule: its slots are no longer offered; booked appointments stay."""
    session = get_session()
    schedule = agenda.own_schedule(session, current_professional(), schedule_id)
    schedule.active = False
    session.commit()
    return Response(status=204)


# --- Slot ---------------------------------------------------------------------------------------------------

@bp.interaction("search-type", "/Slot", search=(
    layer.SearchParam("schedule", "reference", "Schedule/{id}: one of your schedules (default: all of them).",
                      "http://hl7.org/fhir/SearchParameter/Slot-schedule"),
    layer.SearchParam("start", "date", "ge/gt and lt/le bounds (a bare date is that local day); at most "
                                       "the configured window, 7 days from today by default.",
                      "http://hl7.org/fhir/SearchParameter/Slot-start"),
    layer.SearchParam("status", "token", "free | busy.", "http://hl7.org/fhir/SearchParameter/Slot-status")))
def search_slots() -> Response:
    session = get_session()
    pro = current_professional()
    cfg = settings()
    lower, upper = _bounds("start", cfg.default_tz)
    now = web.now()
    if lower is None:
        lower = availability.local_day_bounds(now.astimezone(availability.zone(cfg.default_tz)).date(),
                                              cfg.default_tz)[0]
    upper = upper or lower + dt.timedelta(days=7)
    if upper - lower > dt.timedelta(days=cfg.search_max_days) or upper <= lower:
        raise DomainError("agenda_search_window", max_days=cfg.search_max_days)
    wanted = layer.params().get("schedule")
    schedules = agenda.list_schedules(session, pro, limit=web.PAGE_MAX)
    if wanted:
        schedule_id = wanted.rsplit("/", 1)[-1]
        schedules = [s for s in schedules if str(s.id) == schedule_id]
        if not schedules:
            raise DomainError("agenda_schedule_not_found", 404)
    status = layer.params().get("status")
    resources: list[tuple[dt.datetime, int, dict[str, Any]]] = []
    for schedule in schedules:
        if not schedule.active:
            continue
        for slot, busy in agenda.schedule_slot_states(session, schedule, lower, upper):
            if status and status != ("busy" if busy else "free"):
                continue
            resources.append((slot.starts_at, schedule.id, fhir.slot_resource(schedule, slot, busy)))
    resources.sort(key=lambda r: r[:2])  # by instant: local ISO strings do not sort on DST nights
    return fhir_response(fhir.bundle([r for _, _, r in resources], base_url(), total=len(resources)))


# --- Appointment --------------------------------------------------------------------------------------------

@bp.interaction("search-type", "/Appointment", search=(
    layer.SearchParam("date", "date", "ge/gt and lt/le bounds on the appointment's time.",
                      "http://hl7.org/fhir/SearchParameter/clinical-date"),
    layer.SearchParam("status", "token", "booked | cancelled …",
                      "http://hl7.org/fhir/SearchParameter/Appointment-status"),
    layer.SearchParam("_count", "number", "Page size, 1 to 100 (default 50); the 'next' link carries _cursor.")))
def search_appointments() -> Response:
    session = get_session()
    pro = current_professional()
    lower, upper = _bounds("date", settings().default_tz)
    limit = layer.page_size(50)
    after = agenda.unpack_position(web.decode_cursor(layer.params().get("_cursor")))
    stmt = (select(Appointment, Patient).join(Patient, Patient.id == Appointment.patient_id)
            .where(Appointment.professional_id == pro.id, Appointment.kind.in_(agenda.PATIENT_CAN_CANCEL_KINDS)))
    if lower is not None:
        stmt = stmt.where(Appointment.ends_at > lower)
    if upper is not None:
        stmt = stmt.where(Appointment.starts_at < upper)
    if layer.params().get("status"):
        stmt = stmt.where(Appointment.status == layer.params()["status"])
    if after is not None:
        stmt = stmt.where((Appointment.starts_at > after[0])
                          | ((Appointment.starts_at == after[0]) & (Appointment.id > after[1])))
    rows = session.execute(stmt.order_by(Appointment.starts_at, Appointment.id).limit(limit + 1)).all()
    page = rows[:limit]
    next_url = None
    if len(rows) > limit:
        last = page[-1][0]
        args = [(k, v) for k, v in layer.params().items(multi=True) if k != "_cursor"]
        args.append(("_cursor", web.encode_cursor(agenda.pack_position(last.starts_at, last.id))))
        next_url = f"{base_url()}/Appointment?{urlencode(args)}"
    return fhir_response(fhir.bundle([fhir.appointment_resource(a, p) for a, p in page], base_url(), next_url))


def _appointment_with_patient(appointment_id: int) -> tuple[Appointment, Patient]:
    session = get_session()
    appointment = agenda.professional_appointment(session, current_professional(), appointment_id)
    patient = session.get(Patient, appointment.patient_id)
    assert patient is not None
    return appointment, patient


@bp.interaction("read", "/Appointment/<int:appointment_id>")
def read_appointment(appointment_id: int) -> Response:
    appointment, patient = _appointment_with_patient(appointment_id)
    return fhir_response(fhir.appointment_resource(appointment, patient))


@bp.interaction("create", "/Appointment")
def create_appointment() -> Response:
    session = get_session()
    pro = current_professional()
    cfg = settings()
    body = _body()
    if not isinstance(body, dict) or body.get("resourceType") != "Appointment":
        raise fhir.invalid("resourceType Appointment attendu")
    nir = accounts.parse_nir(fhir.patient_identifier(body))
    patient = session.scalar(select(Patient).where(Patient.nir == nir))
    if patient is None:
        raise DomainError("agenda_patient_not_found", 404)
    slots = [str(s.get("reference", "")).rsplit("/", 1)[-1] for s in body.get("slot") or [] if isinstance(s, dict)]
    appointment = agenda.book_by_professional(
        session, cfg, pro, patient, raw_slot_id=slots[0] if slots else None,
        starts_at=fhir.parse_datetime(body["start"], cfg.default_tz, "start") if body.get("start") else None,
        ends_at=fhir.parse_datetime(body["end"], cfg.default_tz, "end") if body.get("end") else None,
        visit_type=fhir._visit_type(body), now=web.now())
    session.commit()
    return fhir_response(fhir.appointment_resource(appointment, patient), 201,
                         {"Location": f"{base_url()}/Appointment/{appointment.id}"})


@bp.operation("/Appointment/<int:appointment_id>/$cancel", definition=OPERATIONS + "Appointment-cancel",
              documentation="POST /fhir/R4/Appointment/{id}/$cancel (no body): the practice cancels; the patient "
                            "is notified. Returns the cancelled Appointment.")
def cancel_appointment(appointment_id: int) -> Response:
    session = get_session()
    appointment = agenda.cancel_by_professional(session, settings(), current_professional(), appointment_id,
                                                now=web.now())
    patient = session.get(Patient, appointment.patient_id)
    session.commit()
    return fhir_response(fhir.appointment_resource(appointment, patient))
