"""The professional API of the agenda, FHIR R4 JSON under ``/fhir/R4`` (see backend.agenda.fhir).

- ``POST|GET /fhir/R4/Schedule``, ``GET|PUT|DELETE /fhir/R4/Schedule/{id}`` — publish availability
- ``GET /fhir/R4/Slot?schedule=Schedule/{id}&start=ge2026-03-29&start=lt2026-03-30`` — computed slots
- ``GET /fhir/R4/Appointment?date=ge…&date=lt…&_count=…``, ``GET /fhir/R4/Appointment/{id}``
- ``POST /fhir/R4/Appointment`` — an appointment made by the practice for a patient (INS identifier)
- ``POST /fhir/R4/Appointment/{id}/$cancel`` — the practice cancels (the patient is notified)

The documents' FHIR API shares the ``/fhir/R4`` base; ``fhir.capability_resources()`` gives this
feature's part of the server's CapabilityStatement. Every route authenticates the professional's bearer token (``professional_required``). Errors are
``OperationOutcome`` in ``application/fhir+json``, with the same localized sentence as the patient API.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, request
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from backend import web
from backend.accounts import service as accounts
from backend.accounts.models import Patient
from backend.agenda import availability, fhir
from backend.agenda import service as agenda
from backend.agenda.models import Appointment
from backend.db import get_session
from backend.errors import HTTP_CODES, DomainError, Unauthorized
from backend.i18n import message
from backend.professionals.models import Professional
from backend.professionals.service import BearerTokenAuthenticator, ProfessionalAuthenticator

log = logging.getLogger(__name__)
bp = Blueprint("agenda_fhir", __name__, url_prefix="/fhir/R4")
F = TypeVar("F", bound=Callable[..., Any])
UTC = dt.timezone.utc


def _authenticator() -> ProfessionalAuthenticator:
    return current_app.extensions.get("carnet.professional_authenticator") or BearerTokenAuthenticator()


def professional_required(fn: F) -> F:
    """The professional API's door: a valid professional token, then ``current_professional()``."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        credential = web.bearer()
        pro = _authenticator().authenticate(get_session(), credential) if credential else None
        if pro is None:
            raise Unauthorized("agenda_professional_token", headers={"WWW-Authenticate": 'Bearer realm="fhir"'})
        g.professional = pro
        return fn(*args, **kwargs)

    wrapper._carnet_auth = "professional"  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def current_professional() -> Professional:
    return g.professional


def settings() -> agenda.AgendaSettings:
    return current_app.extensions["carnet.agenda_settings"]


def fhir_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=fhir.FHIR_MIME, headers=headers)


def _error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return fhir_response(fhir.operation_outcome(status, code, detail), status, headers)


@bp.errorhandler(DomainError)
def _domain_error(error: DomainError) -> Response:
    session = get_session()
    if error.persist:
        session.commit()
    else:
        session.rollback()
    return _error(error.status, error.code, error.detail(), error.headers)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    code = HTTP_CODES.get(status, "bad_request")
    return _error(status, code, message(code))


def base_url() -> str:
    return request.url_root.rstrip("/") + "/fhir/R4"


def _body() -> Any:
    body = request.get_json(force=True, silent=True)
    if body is None:
        raise DomainError("invalid_json", 400)
    return body


# --- search parameters -------------------------------------------------------------------------------------

def _bounds(name: str, tz: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """FHIR date search: ``ge``/``gt`` give the lower bound, ``lt``/``le`` the upper; a bare date is that
    local day."""
    lower = upper = None
    for raw in request.args.getlist(name):
        prefix, value = (raw[:2], raw[2:]) if raw[:2] in {"ge", "gt", "le", "lt", "eq"} else ("eq", raw)
        if len(value) == 10:
            day_start, day_end = availability.local_day_bounds(fhir.parse_date(value, name), tz)
            low, high = day_start, day_end
        else:
            low = high = fhir.parse_datetime(value, tz, name)
        if prefix in {"ge", "gt"}:
            lower = low if prefix == "ge" or len(value) != 10 else high
        elif prefix in {"lt", "le"}:
            upper = low if prefix == "lt" or len(value) != 10 else high
        else:
            lower, upper = low, high
    return lower, upper


def _count(default: int = 50) -> int:
    try:
        return max(1, min(int(request.args.get("_count", default)), web.PAGE_MAX))
    except ValueError:
        raise fhir.invalid("_count doit être un entier") from None


# --- Schedule -----------------------------------------------------------------------------------------------

@bp.post("/Schedule")
@professional_required
def create_schedule() -> Response:
    session = get_session()
    pro = current_professional()
    data = fhir.schedule_input(_body(), pro, settings().default_tz)
    schedule = agenda.publish_schedule(session, pro, data)
    session.commit()
    return fhir_response(fhir.schedule_resource(schedule, pro), 201,
                         {"Location": f"{base_url()}/Schedule/{schedule.id}"})


@bp.get("/Schedule")
@professional_required
def search_schedules() -> Response:
    pro = current_professional()
    schedules = agenda.list_schedules(get_session(), pro, limit=web.PAGE_MAX)
    return fhir_response(fhir.bundle([fhir.schedule_resource(s, pro) for s in schedules], base_url(),
                                     total=len(schedules)))


@bp.get("/Schedule/<int:schedule_id>")
@professional_required
def read_schedule(schedule_id: int) -> Response:
    pro = current_professional()
    return fhir_response(fhir.schedule_resource(agenda.own_schedule(get_session(), pro, schedule_id), pro))


@bp.put("/Schedule/<int:schedule_id>")
@professional_required
def update_schedule(schedule_id: int) -> Response:
    session = get_session()
    pro = current_professional()
    data = fhir.schedule_input(_body(), pro, settings().default_tz)
    schedule = agenda.update_schedule(session, pro, schedule_id, data)
    session.commit()
    return fhir_response(fhir.schedule_resource(schedule, pro))


@bp.delete("/Schedule/<int:schedule_id>")
@professional_required
def delete_schedule(schedule_id: int) -> Response:
    """Withdraw a schedule: its slots are no longer offered; booked appointments stay."""
    session = get_session()
    schedule = agenda.own_schedule(session, current_professional(), schedule_id)
    schedule.active = False
    session.commit()
    return Response(status=204)


# --- Slot ---------------------------------------------------------------------------------------------------

@bp.get("/Slot")
@professional_required
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
    wanted = request.args.get("schedule")
    schedules = agenda.list_schedules(session, pro, limit=web.PAGE_MAX)
    if wanted:
        schedule_id = wanted.rsplit("/", 1)[-1]
        schedules = [s for s in schedules if str(s.id) == schedule_id]
        if not schedules:
            raise DomainError("agenda_schedule_not_found", 404)
    status = request.args.get("status")
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

@bp.get("/Appointment")
@professional_required
def search_appointments() -> Response:
    session = get_session()
    pro = current_professional()
    lower, upper = _bounds("date", settings().default_tz)
    limit = _count()
    after = agenda.unpack_position(web.decode_cursor(request.args.get("_cursor")))
    stmt = (select(Appointment, Patient).join(Patient, Patient.id == Appointment.patient_id)
            .where(Appointment.professional_id == pro.id, Appointment.kind.in_(agenda.PATIENT_CAN_CANCEL_KINDS)))
    if lower is not None:
        stmt = stmt.where(Appointment.ends_at > lower)
    if upper is not None:
        stmt = stmt.where(Appointment.starts_at < upper)
    if request.args.get("status"):
        stmt = stmt.where(Appointment.status == request.args["status"])
    if after is not None:
        stmt = stmt.where((Appointment.starts_at > after[0])
                          | ((Appointment.starts_at == after[0]) & (Appointment.id > after[1])))
    rows = session.execute(stmt.order_by(Appointment.starts_at, Appointment.id).limit(limit + 1)).all()
    page = rows[:limit]
    next_url = None
    if len(rows) > limit:
        last = page[-1][0]
        args = [(k, v) for k, v in request.args.items(multi=True) if k != "_cursor"]
        args.append(("_cursor", web.encode_cursor(agenda.pack_position(last.starts_at, last.id))))
        next_url = f"{base_url()}/Appointment?{urlencode(args)}"
    return fhir_response(fhir.bundle([fhir.appointment_resource(a, p) for a, p in page], base_url(), next_url))


def _appointment_with_patient(appointment_id: int) -> tuple[Appointment, Patient]:
    session = get_session()
    appointment = agenda.professional_appointment(session, current_professional(), appointment_id)
    patient = session.get(Patient, appointment.patient_id)
    assert patient is not None
    return appointment, patient


@bp.get("/Appointment/<int:appointment_id>")
@professional_required
def read_appointment(appointment_id: int) -> Response:
    appointment, patient = _appointment_with_patient(appointment_id)
    return fhir_response(fhir.appointment_resource(appointment, patient))


@bp.post("/Appointment")
@professional_required
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


@bp.post("/Appointment/<int:appointment_id>/$cancel")
@professional_required
def cancel_appointment(appointment_id: int) -> Response:
    session = get_session()
    appointment, patient = _appointment_with_patient(appointment_id)
    pro = current_professional()
    agenda.cancel(session, settings(), appointment, by="professional", actor_id=pro.rpps, now=web.now())
    session.commit()
    return fhir_response(fhir.appointment_resource(appointment, patient))
