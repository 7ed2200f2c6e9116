"""The patient's agenda under /api/v1/agenda: slot search and booking, the agenda itself, the patient's
own entries, prevention, calendar export, subscription feed and import."""
from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, current_app, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from backend import web
from backend.agenda import availability, prevention
from backend.agenda import calendar as ics
from backend.agenda import schemas as s
from backend.agenda import service as agenda
from backend.agenda.models import Appointment, Schedule
from backend.db import get_session
from backend.errors import DomainError
from backend.identity import age_on
from backend.i18n import language, message
from backend.records.access.policy import Action

blp = Blueprint("agenda", __name__, url_prefix="/api/v1/agenda", description="Health agenda")
ICS_MIME = "text/calendar"
ICS_DOC = {"200": {"description": "An iCalendar file (RFC 5545)",
                   "content": {ICS_MIME: {"schema": {"type": "string"}}}}}
VISIT_LABELS = {"in_person": "agenda_visit_in_person", "teleconsultation": "agenda_visit_teleconsultation"}


def settings() -> agenda.AgendaSettings:
    return current_app.extensions["carnet.agenda_settings"]


def _visit_label(visit_type: str | None) -> str | None:
    return message(VISIT_LABELS[visit_type]) if visit_type in VISIT_LABELS else None


def _aware(value: dt.datetime) -> dt.datetime:
    """An incoming date-time without offset is a wall time in the agenda's zone."""
    if value.tzinfo is None:
        return value.replace(tzinfo=availability.zone(settings().default_tz))
    return value


def _clamp(day: dt.date) -> dt.date:
    """List bounds far in the past or future mean "everything" (and must not overflow)."""
    return min(max(day, dt.date(1970, 1, 2)), dt.date(2199, 12, 30))


def _slot_out(found: agenda.FoundSlot) -> dict[str, Any]:
    schedule, pro = found.schedule, found.professional
    tz = availability.zone(schedule.tz)
    local = found.starts_at.astimezone(tz)
    return {"slot_id": found.id, "schedule_id": schedule.id, "professional_id": pro.id,
            "professional_name": pro.display_name, "specialty_code": schedule.specialty_code,
            "specialty_label": schedule.specialty_label, "visit_type": schedule.visit_type,
            "visit_type_label": _visit_label(schedule.visit_type),
            "place": {"name": schedule.place_name, "address": schedule.place_address,
                      "postcode": schedule.place_postcode, "city": schedule.place_city},
            "starts_at": local, "ends_at": found.ends_at.astimezone(tz), "timezone": schedule.tz,
            "local_date": local.date().isoformat(), "local_time": local.strftime("%H:%M"),
            # booked, it can be cancelled or moved until then (the app warns when that is already past)
            "cancel_until": (found.starts_at - settings().cancel_cutoff).astimezone(tz)}


def _appointment_out(a: Appointment, now: dt.datetime, reminders: list[dt.datetime] | None = None) -> dict[str, Any]:
    tz = availability.zone(a.tz)
    local, local_end = a.starts_at.astimezone(tz), a.ends_at.astimezone(tz)
    return {"id": a.id, "kind": a.kind, "status": a.status, "title": agenda.appointment_title(a),
            "starts_at": local, "ends_at": local_end, "all_day": a.all_day, "timezone": a.tz,
            "local_date": local.date().isoformat(), "local_time": local.strftime("%H:%M"),
            "local_end_time": local_end.strftime("%H:%M"), "professional_id": a.professional_id,
            "professional_name": a.professional_name, "specialty_label": a.specialty_label,
            "visit_type": a.visit_type, "visit_type_label": _visit_label(a.visit_type),
            "place": {"name": a.place_name, "address": a.place_address, "postcode": a.place_postcode,
                      "city": a.place_city},
            "notes": a.notes, "created_by": a.created_by, "cancelled_at": a.cancelled_at,
            "cancelled_by": a.cancelled_by, "can_cancel": a.kind in agenda.PATIENT_CAN_CANCEL_KINDS
            and agenda.can_change(settings(), a, now),
            "cancel_deadline": agenda.cancel_deadline(settings(), a), "reminders": reminders or []}


def _detail(a: Appointment) -> dict[str, Any]:
    reminders = agenda.pending_reminders(get_session(), [a.id])[a.id]
    return _appointment_out(a, web.now(), reminders)


def _uid_domain() -> str:
    return str(current_app.config["AGENDA_UID_DOMAIN"])


def _ics_response(body: bytes, filename: str) -> Response:
    response = Response(body, mimetype=ICS_MIME)
    response.headers["Content-Disposition"] = web.disposition(filename)
    response.charset = "utf-8"
    return response


# --- search and booking --------------------------------------------------------------------------------------

@blp.route("/specialties")
@blp.response(200, s.AgendaSpecialtyListOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def specialties() -> dict[str, Any]:
    """The specialties that have published availability (for the search form)."""
    rows = get_session().execute(
        select(Schedule.specialty_code, Schedule.specialty_label).where(Schedule.active.is_(True))
        .distinct().order_by(Schedule.specialty_label).limit(200)).all()
    return {"items": [{"code": code, "label": label or code} for code, label in rows if code or label]}


@blp.route("/slots")
@blp.arguments(s.AgendaSlotSearchArgs, location="query")
@blp.response(200, s.AgendaSlotPageOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def search_slots(args: dict[str, Any]) -> dict[str, Any]:
    """Free slots by professional, specialty, place and date, earliest first (paginated)."""
    after = agenda.unpack_position(web.decode_cursor(args["cursor"]))
    found, more = agenda.search_slots(
        get_session(), settings(), now=web.now(), date_from=args.get("date"), days=args["days"],
        professional_id=args.get("professional_id"), name=args.get("name"), specialty=args.get("specialty"),
        place=args.get("place"), visit_type=args.get("visit_type"), after=after, limit=args["limit"])
    next_cursor = None
    if more and found:
        last = found[-1]
        next_cursor = web.encode_cursor(agenda.pack_position(last.starts_at, last.schedule.id))
    return {"items": [_slot_out(f) for f in found], "next_cursor": next_cursor}


@blp.route("/appointments")
class Appointments(MethodView):
    @blp.arguments(s.AgendaAppointmentListArgs, location="query")
    @blp.response(200, s.AgendaAppointmentPageOut)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The agenda: booked appointments, the practices' ones and the patient's own entries, by start."""
        tz_name = settings().default_tz
        start = availability.local_day_bounds(_clamp(args["date_from"]), tz_name)[0] if args.get("date_from") else None
        end = availability.local_day_bounds(_clamp(args["date_to"]), tz_name)[1] if args.get("date_to") else None
        rows = agenda.list_appointments(get_session(), web.current_patient().id, start=start, end=end,
                                        include_cancelled=args["include_cancelled"],
                                        after=agenda.unpack_position(web.decode_cursor(args["cursor"])),
                                        limit=args["limit"] + 1)
        page, more = rows[: args["limit"]], len(rows) > args["limit"]
        now = web.now()
        return {"items": [_appointment_out(a, now) for a in page],
                "next_cursor": web.encode_cursor(agenda.pack_position(page[-1].starts_at, page[-1].id))
                if more else None}

    @blp.arguments(s.AgendaBookIn)
    @blp.response(201, s.AgendaAppointmentOut)
    @blp.alt_response(409, description="The slot was taken meanwhile, or is past")
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    @web.writes(Action.APPOINTMENT_CREATE)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Book a slot. Two patients booking the same slot at once: one gets it, the other a 409."""
        session = get_session()
        now = web.now()
        appointment = agenda.book(session, settings(), web.current_patient(), body["slot_id"],
                                  notes=body.get("notes"), now=now)
        session.commit()
        # the reminders just scheduled, without reading them back
        reminders = sorted(due for _, due in agenda.reminder_times(settings(), appointment, now))
        return _appointment_out(appointment, web.now(), reminders)


@blp.route("/appointments/<int:appointment_id>")
@blp.response(200, s.AgendaAppointmentOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def appointment_detail(appointment_id: int) -> dict[str, Any]:
    """One appointment, with its pending reminders and whether it can still be changed online."""
    return _detail(agenda.patient_appointment(get_session(), web.current_patient().id, appointment_id))


@blp.route("/appointments/<int:appointment_id>/cancel", methods=["POST"])
@blp.response(200, s.AgendaAppointmentOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.APPOINTMENT_CANCEL)
def cancel(appointment_id: int) -> dict[str, Any]:
    """Cancel before the cut-off (CARNET_AGENDA_CANCEL_CUTOFF_HOURS); the slot is freed, reminders removed."""
    session = get_session()
    patient = web.current_patient()
    appointment = agenda.patient_appointment(session, patient.id, appointment_id)
    agenda.cancel(session, settings(), appointment, by="patient", actor_id=patient.id, now=web.now())
    session.commit()
    return _detail(appointment)


@blp.route("/appointments/<int:appointment_id>/reschedule", methods=["POST"])
@blp.arguments(s.AgendaRescheduleIn)
@blp.response(200, s.AgendaAppointmentOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.APPOINTMENT_RESCHEDULE)
def reschedule(body: dict[str, Any], appointment_id: int) -> dict[str, Any]:
    """Move to another slot of the same professional before the cut-off (all or nothing)."""
    session = get_session()
    patient = web.current_patient()
    appointment = agenda.patient_appointment(session, patient.id, appointment_id)
    agenda.reschedule(session, settings(), patient, appointment, body["slot_id"], now=web.now())
    session.commit()
    return _detail(appointment)


# --- the patient's own entries ----------------------------------------------------------------------------------

def _entry_times(body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    for key in ("starts_at", "ends_at"):
        if key in out:
            out[key] = _aware(out[key])
    if out.get("all_day") and "starts_at" in out and "ends_at" in out:
        tz_name = settings().default_tz
        tz = availability.zone(tz_name)
        first, last = out["starts_at"].astimezone(tz).date(), out["ends_at"].astimezone(tz).date()
        out["starts_at"] = availability.local_day_bounds(first, tz_name)[0]
        out["ends_at"] = availability.local_day_bounds(max(first, last - dt.timedelta(days=1))
                                                       if last > first else first, tz_name)[1]
    return out


@blp.route("/entries", methods=["POST"])
@blp.arguments(s.AgendaEntryIn)
@blp.response(201, s.AgendaAppointmentOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.AGENDA_ENTRIES)
def add_entry(body: dict[str, Any]) -> dict[str, Any]:
    """Add an entry of the patient's own (an appointment made elsewhere, a reminder to self)."""
    session = get_session()
    data = _entry_times(body)
    entry = agenda.add_entry(session, settings(), web.current_patient(), agenda.EntryInput(**data), now=web.now())
    session.commit()
    return _detail(entry)


@blp.route("/entries/<int:entry_id>")
class Entry(MethodView):
    @blp.arguments(s.AgendaEntryPatchIn)
    @blp.response(200, s.AgendaAppointmentOut)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    @web.writes(Action.AGENDA_ENTRIES)
    def patch(self, body: dict[str, Any], entry_id: int) -> dict[str, Any]:
        """Edit one of the patient's own entries."""
        session = get_session()
        entry = agenda.patient_appointment(session, web.current_patient().id, entry_id)
        agenda.update_entry(session, settings(), entry, _entry_times(body), now=web.now())
        session.commit()
        return _detail(entry)

    @blp.response(204)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    @web.writes(Action.AGENDA_ENTRIES)
    def delete(self, entry_id: int) -> None:
        """Delete one of the patient's own entries."""
        session = get_session()
        agenda.delete_entry(session, agenda.patient_appointment(session, web.current_patient().id, entry_id))
        session.commit()


# --- prevention ------------------------------------------------------------------------------------------------

def _today() -> dt.date:
    return web.now().astimezone(availability.zone(settings().default_tz)).date()


def _item_out(item: prevention.Item, lang: str) -> dict[str, Any]:
    return {"code": item.rule.code, "category": item.rule.category, "label": item.rule.label(lang),
            "status": item.status, "status_label": message(f"agenda_status_{item.status}", lang),
            "due_from": item.due_from, "due_until": item.due_until, "every_months": item.rule.every_months,
            "done_on": item.done_on, "next_due_on": item.next_due_on, "planned_on": item.planned_on,
            "appointment_id": item.appointment_id, "vaccination_entry_id": item.vaccination_entry_id}


def _vaccinations(patient: Any) -> tuple[prevention.Vaccination, ...]:
    """The profile's confirmed vaccinations: the calendar follows them (a dispensed vaccine once confirmed)."""
    from backend.records.profile import service as profile
    from backend.records import vault

    session = get_session()
    return prevention.vaccinations_from(profile.confirmed_vaccinations(session, vault(session), patient.id))


@blp.route("/prevention")
@blp.response(200, s.AgendaPreventionOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def prevention_list() -> dict[str, Any]:
    """Recommended exams and vaccinations for the patient's age and sex, with their status
    (a short computed list: not paginated)."""
    patient = web.current_patient()
    today = _today()
    lang = language()
    return {"age": age_on(patient.birth_date, today),
            "items": [_item_out(i, lang) for i in prevention.items_for(get_session(), patient, today,
                                                                       _vaccinations(patient))]}


@blp.route("/prevention/<code>", methods=["PUT"])
@blp.arguments(s.AgendaPreventionMarkIn)
@blp.response(200, s.AgendaPreventionItemOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.AGENDA_ENTRIES)
def prevention_mark(body: dict[str, Any], code: str) -> dict[str, Any]:
    """Mark an item Done / Not done / To plan; plan it on a date (optionally as an agenda entry)."""
    session = get_session()
    patient = web.current_patient()
    today = _today()
    lang = language()
    prevention.mark(session, patient, code, body["status"], today=today, now=web.now(), done_on=body.get("done_on"),
                    planned_on=body.get("planned_on"), lang=lang,
                    add_to_agenda=settings() if body["add_to_agenda"] else None)
    session.commit()
    items = {i.rule.code: i for i in prevention.items_for(session, patient, today, _vaccinations(patient))}
    if code in items:
        return _item_out(items[code], lang)
    rule = prevention.RULES_BY_CODE[code]
    mark = prevention.marks_for(session, patient.id)[code]
    return {"code": code, "category": rule.category, "label": rule.label(lang), "status": mark.status,
            "status_label": message(f"agenda_status_{mark.status}", lang), "due_from": None, "due_until": None,
            "every_months": rule.every_months, "done_on": mark.done_on, "next_due_on": None,
            "planned_on": mark.planned_on, "appointment_id": mark.appointment_id, "vaccination_entry_id": None}


# --- calendar export, feed and import ----------------------------------------------------------------------------

@blp.route("/appointments/<int:appointment_id>/calendar.ics")
@blp.arguments(s.AgendaExportArgs, location="query")
@blp.doc(security=[{"bearer": []}], responses=ICS_DOC)
@web.patient_required
def export_one(args: dict[str, Any], appointment_id: int) -> Response:
    """One appointment as an .ics file, to add to another calendar."""
    appointment = agenda.patient_appointment(get_session(), web.current_patient().id, appointment_id)
    body = ics.export_calendar([appointment], domain=_uid_domain(), discreet=args["discreet"], lang=language())
    return _ics_response(body, f"rendez-vous-{appointment.id}.ics")


@blp.route("/calendar.ics")
@blp.arguments(s.AgendaExportArgs, location="query")
@blp.doc(security=[{"bearer": []}], responses=ICS_DOC)
@web.patient_required
def export_all(args: dict[str, Any]) -> Response:
    """The whole agenda (booked entries, a year back and ahead) as one .ics file."""
    now = web.now()
    rows = agenda.list_appointments(get_session(), web.current_patient().id, start=now - dt.timedelta(days=365),
                                    end=now + dt.timedelta(days=730), limit=5000)
    body = ics.export_calendar(rows, domain=_uid_domain(), discreet=args["discreet"], lang=language())
    return _ics_response(body, "agenda-carnet.ics")


def _feed_out(feed: Any, token: str | None = None) -> dict[str, Any]:
    if feed is None:
        return {"active": False, "show_details": False, "created_at": None, "last_fetched_at": None,
                "fetch_count": 0, "url": None, "webcal_url": None}
    url = url_for("agenda.feed_ics", token=token, _external=True) if token else None
    return {"active": feed.revoked_at is None, "show_details": feed.show_details, "created_at": feed.created_at,
            "last_fetched_at": feed.last_fetched_at, "fetch_count": feed.fetch_count, "url": url,
            "webcal_url": "webcal://" + url.split("://", 1)[1] if url else None}


@blp.route("/feed")
class Feed(MethodView):
    @blp.response(200, s.AgendaFeedOut)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    def get(self) -> dict[str, Any]:
        """Whether a subscription link exists (its secret is shown only once, when created)."""
        return _feed_out(agenda.active_feed(get_session(), web.current_patient().id))

    @blp.arguments(s.AgendaFeedIn)
    @blp.response(201, s.AgendaFeedOut)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    @web.writes(Action.AGENDA_FEED)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a subscription link (replacing any previous one). Titles are discreet unless
        ``show_details`` is true."""
        session = get_session()
        feed, token = agenda.create_feed(session, web.current_patient(), show_details=body["show_details"],
                                         now=web.now())
        session.commit()
        return _feed_out(feed, token)

    @blp.arguments(s.AgendaFeedPatchIn)
    @blp.response(200, s.AgendaFeedOut)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    @web.writes(Action.AGENDA_FEED)
    def patch(self, body: dict[str, Any]) -> dict[str, Any]:
        """Choose discreet titles or full details for the existing link."""
        session = get_session()
        feed = agenda.set_feed_details(session, web.current_patient(), body["show_details"], now=web.now())
        session.commit()
        return _feed_out(feed)

    @blp.response(204)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    @web.writes(Action.AGENDA_FEED)
    def delete(self) -> None:
        """Revoke the link: the next fetch by the other calendar fails."""
        session = get_session()
        agenda.revoke_feed(session, web.current_patient(), now=web.now())
        session.commit()


@blp.route("/feed/<token>.ics")
@blp.doc(responses={**ICS_DOC, "404": {"description": "Unknown or revoked link"}})
@web.public
def feed_ics(token: str) -> Response:
    """The subscription feed read by other calendars: the secret in the URL is the credential.
    Every fetch is recorded in the patient's access history."""
    session = get_session()
    feed, rows = agenda.fetch_feed(session, token, now=web.now())
    body = ics.export_calendar(rows, domain=_uid_domain(), discreet=not feed.show_details, with_notes=False,
                               lang="fr", feed=True)
    session.commit()
    return _ics_response(body, "agenda-carnet.ics")


@blp.route("/import", methods=["POST"])
@blp.arguments(s.AgendaImportIn, location="files")
@blp.response(201, s.AgendaImportOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.AGENDA_ENTRIES)
def import_ics(files: dict[str, Any]) -> dict[str, Any]:
    """Import an .ics file from another calendar: all its events or none (size-limited; a file that is not
    a calendar is refused with the reason)."""
    cfg = settings()
    upload = files.get("file")
    if upload is None:
        raise DomainError("agenda_ics_missing_file")
    try:
        data = upload.stream.read(cfg.import_max_bytes + 1)
    finally:
        upload.close()
    now = web.now()
    events = ics.parse_ics(data, cfg, now=now)
    session = get_session()
    imported, skipped = ics.import_events(session, cfg, web.current_patient(), events, now=now)
    session.commit()
    return {"imported": imported, "skipped": skipped}

