"""The health agenda's rules: publishing availability, searching and booking slots, cancelling and
rescheduling within the cut-off, the patient's own entries, reminders and the calendar feed.

No Flask here: callers pass a Session and :class:`AgendaSettings`, and commit.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, bindparam, delete, exists, select, update
from sqlalchemy.orm import Session, selectinload

from backend import cursors
from backend.accounts.hooks import on_account_event
from backend.accounts.models import AccountState, Patient
from backend.agenda import availability
from backend.agenda.models import (
    DEFAULT_TZ,
    Appointment,
    CalendarFeed,
    OpeningRule,
    Reminder,
    Schedule,
    ScheduleException,
    SlotHold,
)
from backend.audit import service as audit
from backend.db import utcnow
from backend.errors import DomainError, NotFound
from backend.i18n import message
from backend.notifications.service import notify
from backend.professionals.models import Professional
from backend.records.access.authorize import authorize_write
from backend.records.access.policy import Action, Actor
from backend.security import new_token, token_digest

UTC = dt.timezone.utc
VISIT_TYPES = ("in_person", "teleconsultation")
PATIENT_CAN_CANCEL_KINDS = ("booking", "professional")


# --- settings ------------------------------------------------------------------------------------------

def parse_offsets(raw: Any) -> tuple[dt.timedelta, ...]:
    """``"24h,2h"``, ``"90m"``, ``[24, 2]`` (hours) → durations, longest first."""
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    out = []
    for item in items:
        text = str(item).strip().lower()
        if not text:
            continue
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([hm]?)", text)
        if not match:
            raise ValueError(f"invalid reminder offset {text!r} (use e.g. 24h, 2h, 30m)")
        value = float(match.group(1))
        out.append(dt.timedelta(minutes=value) if match.group(2) == "m" else dt.timedelta(hours=value))
    return tuple(sorted(set(out), reverse=True))


@dataclass(frozen=True)
class AgendaSettings:
    cancel_cutoff: dt.timedelta = dt.timedelta(hours=24)
    reminder_offsets: tuple[dt.timedelta, ...] = (dt.timedelta(hours=24), dt.timedelta(hours=2))
    booking_horizon_days: int = 90
    search_max_days: int = 31
    import_max_bytes: int = 1024 * 1024
    import_max_events: int = 1000
    default_tz: str = DEFAULT_TZ

    @classmethod
    def from_config(cls, config: Any) -> AgendaSettings:
        return cls(
            cancel_cutoff=dt.timedelta(hours=float(config["AGENDA_CANCEL_CUTOFF_HOURS"])),
            reminder_offsets=parse_offsets(config["AGENDA_REMINDER_OFFSETS"]),
            booking_horizon_days=int(config["AGENDA_BOOKING_HORIZON_DAYS"]),
            search_max_days=int(config["AGENDA_SEARCH_MAX_DAYS"]),
            import_max_bytes=int(config["AGENDA_IMPORT_MAX_BYTES"]),
            import_max_events=int(config["AGENDA_IMPORT_MAX_EVENTS"]),
            default_tz=str(config["AGENDA_TIMEZONE"]),
        )


CONFIG_DEFAULTS: dict[str, object] = {
    "AGENDA_CANCEL_CUTOFF_HOURS": 24,
    "AGENDA_REMINDER_OFFSETS": "24h,2h",
    "AGENDA_BOOKING_HORIZON_DAYS": 90,
    "AGENDA_SEARCH_MAX_DAYS": 31,
    "AGENDA_IMPORT_MAX_BYTES": 1024 * 1024,
    "AGENDA_IMPORT_MAX_EVENTS": 1000,
    "AGENDA_TIMEZONE": DEFAULT_TZ,
}


# --- availability (professionals) ------------------------------------------------------------------------

@dataclass
class Place:
    name: str | None = None
    address: str | None = None
    postcode: str | None = None
    city: str | None = None


@dataclass
class ScheduleInput:
    """What a professional publishes; built from a FHIR Schedule by backend.agenda.fhir."""

    visit_type: str
    slot_minutes: int
    tz: str = DEFAULT_TZ
    specialty_code: str | None = None
    specialty_label: str | None = None
    specialty_system: str | None = None
    place: Place = field(default_factory=Place)
    openings: list[tuple[dt.datetime, dt.datetime, str | None]] = field(default_factory=list)
    exceptions: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    active: bool = True
    comment: str | None = None


def _check_schedule_input(data: ScheduleInput) -> None:
    availability.zone(data.tz)
    if data.visit_type not in VISIT_TYPES:
        raise DomainError("agenda_invalid_schedule", reason="type de consultation inconnu")
    if not 5 <= data.slot_minutes <= 240:
        raise DomainError("agenda_invalid_schedule", reason="durée de créneau entre 5 et 240 minutes")
    if not data.openings:
        raise DomainError("agenda_invalid_schedule", reason="au moins une plage d'ouverture est nécessaire")
    if len(data.openings) > 50 or len(data.exceptions) > 500:
        raise DomainError("agenda_invalid_schedule", reason="trop de plages ou d'exceptions")
    for start, end, _rule in data.openings:
        if not start < end <= start + dt.timedelta(hours=24):
            raise DomainError("agenda_invalid_schedule", reason="une plage d'ouverture dure de 1 minute à 24 heures")
    for start, end in data.exceptions:
        if not start < end:
            raise DomainError("agenda_invalid_schedule", reason="une exception finit avant de commencer")
    if data.valid_from and data.valid_until and data.valid_until < data.valid_from:
        raise DomainError("agenda_invalid_schedule", reason="planningHorizon.end précède planningHorizon.start")


def _apply_schedule(schedule: Schedule, data: ScheduleInput, now: dt.datetime) -> None:
    schedule.visit_type = data.visit_type
    schedule.slot_minutes = data.slot_minutes
    schedule.tz = data.tz
    schedule.specialty_code = data.specialty_code
    schedule.specialty_label = data.specialty_label
    schedule.specialty_system = data.specialty_system
    schedule.place_name, schedule.place_address = data.place.name, data.place.address
    schedule.place_postcode, schedule.place_city = data.place.postcode, data.place.city
    schedule.valid_from, schedule.valid_until = data.valid_from, data.valid_until
    schedule.active = data.active
    schedule.comment = data.comment
    schedule.updated_at = now
    openings = [OpeningRule(starts_at=s.astimezone(UTC), ends_at=e.astimezone(UTC),
                            rrule=availability.validate_rrule(r) if r else None) for s, e, r in data.openings]
    availability.check_openings(data.tz, openings)
    schedule.openings = openings
    schedule.exceptions = [ScheduleException(starts_at=s.astimezone(UTC), ends_at=e.astimezone(UTC))
                           for s, e in data.exceptions]


def publish_schedule(session: Session, pro: Professional, data: ScheduleInput, *,
                     now: dt.datetime | None = None) -> Schedule:
    now = now or utcnow()
    _check_schedule_input(data)
    schedule = Schedule(professional_id=pro.id, created_at=now, openings=[], exceptions=[])
    _apply_schedule(schedule, data, now)
    session.add(schedule)
    session.flush()
    audit.record(session, actor_type="professional", actor_id=pro.rpps, action="agenda.schedule_published",
                 details={"schedule_id": schedule.id}, at=now)
    return schedule


def update_schedule(session: Session, pro: Professional, schedule_id: int, data: ScheduleInput, *,
                    now: dt.datetime | None = None) -> Schedule:
    """Replace a schedule's availability. Booked appointments stay booked (they are not slots)."""
    now = now or utcnow()
    _check_schedule_input(data)
    schedule = own_schedule(session, pro, schedule_id)
    _apply_schedule(schedule, data, now)
    session.flush()
    audit.record(session, actor_type="professional", actor_id=pro.rpps, action="agenda.schedule_updated",
                 details={"schedule_id": schedule.id}, at=now)
    return schedule


def own_schedule(session: Session, pro: Professional, schedule_id: int) -> Schedule:
    schedule = session.scalar(
        select(Schedule).where(Schedule.id == schedule_id, Schedule.professional_id == pro.id)
        .options(selectinload(Schedule.openings), selectinload(Schedule.exceptions)))
    if schedule is None:
        raise NotFound("agenda_schedule_not_found")
    return schedule


def list_schedules(session: Session, pro: Professional, *, limit: int = 100) -> list[Schedule]:
    return list(session.scalars(
        select(Schedule).where(Schedule.professional_id == pro.id).order_by(Schedule.id).limit(limit)
        .options(selectinload(Schedule.openings), selectinload(Schedule.exceptions))))


# --- slots -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FoundSlot:
    schedule: Schedule
    professional: Professional
    starts_at: dt.datetime
    ends_at: dt.datetime
    busy: bool = False

    @property
    def id(self) -> str:
        return availability.slot_id(self.schedule.id, self.starts_at)


def _like(text: str) -> str:
    escaped = text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _busy_periods(session: Session, professional_ids: Sequence[int], start: dt.datetime, end: dt.datetime,
                  ) -> dict[int, list[tuple[dt.datetime, dt.datetime]]]:
    busy: dict[int, list[tuple[dt.datetime, dt.datetime]]] = {}
    if not professional_ids:
        return busy
    rows = session.execute(
        select(SlotHold.professional_id, SlotHold.starts_at, SlotHold.ends_at)
        .where(SlotHold.professional_id.in_(professional_ids), SlotHold.starts_at < end, SlotHold.ends_at > start))
    for pro_id, s, e in rows:
        busy.setdefault(pro_id, []).append((s, e))
    return busy


def _is_busy(busy: list[tuple[dt.datetime, dt.datetime]], start: dt.datetime, end: dt.datetime) -> bool:
    return any(s < end and start < e for s, e in busy)


def search_slots(session: Session, settings: AgendaSettings, *, now: dt.datetime, date_from: dt.date | None = None,
                 days: int = 7, professional_id: int | None = None, name: str | None = None,
                 specialty: str | None = None, place: str | None = None, visit_type: str | None = None,
                 after: tuple[dt.datetime, int] | None = None, limit: int = 20) -> tuple[list[FoundSlot], bool]:
    """Free slots matching the filters, ordered by start then schedule, ``limit`` at a time after the cursor.

    Four queries whatever the number of schedules or slots: schedules with their professional, their
    openings, their exceptions (select-in), and the holds of those professionals in the window.
    """
    if not 1 <= days <= settings.search_max_days:
        raise DomainError("agenda_search_window", max_days=settings.search_max_days)
    tz = availability.zone(settings.default_tz)
    today = now.astimezone(tz).date()
    date_from = max(date_from or today, today)
    if date_from > today + dt.timedelta(days=settings.booking_horizon_days):
        return [], False
    start, _ = availability.local_day_bounds(date_from, settings.default_tz)
    _, end = availability.local_day_bounds(date_from + dt.timedelta(days=days - 1), settings.default_tz)
    start = max(start, now)
    end = min(end, now + dt.timedelta(days=settings.booking_horizon_days))
    if start >= end:
        return [], False

    stmt = (select(Schedule, Professional).join(Professional, Professional.id == Schedule.professional_id)
            .where(Schedule.active.is_(True))
            .options(selectinload(Schedule.openings), selectinload(Schedule.exceptions))
            .order_by(Schedule.id).limit(500))
    if professional_id is not None:
        stmt = stmt.where(Schedule.professional_id == professional_id)
    if name:
        stmt = stmt.where(Professional.family_name.ilike(_like(name), escape="\\")
                          | Professional.given_name.ilike(_like(name), escape="\\"))
    if specialty:
        stmt = stmt.where((Schedule.specialty_code == specialty.strip())
                          | Schedule.specialty_label.ilike(_like(specialty), escape="\\"))
    if place:
        stmt = stmt.where(Schedule.place_city.ilike(_like(place), escape="\\")
                          | Schedule.place_name.ilike(_like(place), escape="\\")
                          | Schedule.place_postcode.ilike(place.strip().replace("%", "") + "%"))
    if visit_type:
        stmt = stmt.where(Schedule.visit_type == visit_type)
    rows = session.execute(stmt).all()
    busy = _busy_periods(session, sorted({pro.id for _, pro in rows}), start, end)

    found: list[FoundSlot] = []
    for schedule, pro in rows:
        for slot in availability.schedule_slots(schedule, start, end):
            if _is_busy(busy.get(pro.id, []), slot.starts_at, slot.ends_at):
                continue
            if after is not None and (slot.starts_at, schedule.id) <= after:
                continue
            found.append(FoundSlot(schedule, pro, slot.starts_at, slot.ends_at))
    found.sort(key=lambda f: (f.starts_at, f.schedule.id))
    return found[:limit], len(found) > limit


def schedule_slot_states(session: Session, schedule: Schedule, start: dt.datetime, end: dt.datetime,
                         ) -> list[tuple[availability.SlotTime, bool]]:
    """Every slot of one schedule in the window with whether it is taken (the professional's view)."""
    busy = _busy_periods(session, [schedule.professional_id], start, end).get(schedule.professional_id, [])
    return [(slot, _is_busy(busy, slot.starts_at, slot.ends_at))
            for slot in availability.schedule_slots(schedule, start, end)]


# built once: every booking resolves its slot (only the schedule's id changes)
_SLOT_SCHEDULE = (select(Schedule, Professional).join(Professional, Professional.id == Schedule.professional_id)
                  .where(Schedule.id == bindparam("schedule_id"), Schedule.active.is_(True))
                  .options(selectinload(Schedule.openings), selectinload(Schedule.exceptions)))


def resolve_slot(session: Session, settings: AgendaSettings, raw_slot_id: str, *, now: dt.datetime,
                 ) -> tuple[Schedule, Professional, availability.SlotTime]:
    """The slot a patient (or professional) names must really be offered by an active schedule now."""
    schedule_id, start = availability.parse_slot_id(raw_slot_id)
    row = session.execute(_SLOT_SCHEDULE, {"schedule_id": schedule_id}).one_or_none()
    if row is None:
        raise NotFound("agenda_slot_not_found")
    schedule, pro = row
    if start <= now:
        raise DomainError("agenda_slot_past", 409)
    if start > now + dt.timedelta(days=settings.booking_horizon_days):
        raise DomainError("agenda_slot_too_far", 409, days=settings.booking_horizon_days)
    slots = availability.schedule_slots(schedule, start, start + dt.timedelta(minutes=1))
    if not slots or slots[0].starts_at != start:
        raise NotFound("agenda_slot_not_found")
    return schedule, pro, slots[0]


# --- booking ---------------------------------------------------------------------------------------------

def _hold_statement(dialect: str) -> Any:
    """INSERT the hold unless a hold of the professional overlaps it, and do nothing on a conflict of the
    unique (professional, start): one statement, built once per dialect, answering the hold's id or nothing."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    hold = SlotHold.__table__
    starts, ends = bindparam("starts_at", type_=hold.c.starts_at.type), bindparam("ends_at", type_=hold.c.ends_at.type)
    pro, appointment = bindparam("professional_id", type_=Integer()), bindparam("appointment_id", type_=Integer())
    overlapping = select(hold.c.id).where(hold.c.professional_id == pro, hold.c.starts_at < ends,
                                          hold.c.ends_at > starts)
    row = select(pro, starts, ends, appointment).where(~exists(overlapping))
    return (insert(hold).from_select(["professional_id", "starts_at", "ends_at", "appointment_id"], row)
            .on_conflict_do_nothing().returning(hold.c.id))


_HOLD: dict[str, Any] = {}


def _hold(session: Session, pro_id: int, appointment: Appointment) -> None:
    """Take the slot, in one statement: no hold of this professional may overlap it (another schedule's
    slot), and the unique constraint decides between concurrent bookings of one start: the second waits on
    the first's row, inserts nothing and gets a 409."""
    dialect = session.get_bind().dialect.name
    statement = _HOLD.get(dialect)
    if statement is None:
        statement = _HOLD[dialect] = _hold_statement(dialect)
    taken = session.execute(statement, {"professional_id": pro_id, "starts_at": appointment.starts_at,
                                        "ends_at": appointment.ends_at, "appointment_id": appointment.id}).first()
    if taken is None:
        raise DomainError("agenda_slot_taken", 409)


def _release(session: Session, appointment: Appointment) -> None:
    session.execute(delete(SlotHold).where(SlotHold.appointment_id == appointment.id))


def _copy_schedule(appointment: Appointment, schedule: Schedule, pro: Professional) -> None:
    appointment.schedule_id = schedule.id
    appointment.professional_id = pro.id
    appointment.professional_name = pro.display_name
    appointment.specialty_label = schedule.specialty_label
    appointment.visit_type = schedule.visit_type
    appointment.place_name, appointment.place_address = schedule.place_name, schedule.place_address
    appointment.place_postcode, appointment.place_city = schedule.place_postcode, schedule.place_city
    appointment.tz = schedule.tz


def book(session: Session, settings: AgendaSettings, patient: Patient, raw_slot_id: str, *,
         notes: str | None = None, now: dt.datetime | None = None) -> Appointment:
    now = now or utcnow()
    schedule, pro, slot = resolve_slot(session, settings, raw_slot_id, now=now)
    appointment = Appointment(patient_id=patient.id, kind="booking", status="booked", starts_at=slot.starts_at,
                              ends_at=slot.ends_at, notes=notes, created_by="patient", created_at=now,
                              updated_at=now)
    _copy_schedule(appointment, schedule, pro)
    session.add(appointment)
    session.flush()
    _hold(session, pro.id, appointment)
    schedule_reminders(session, settings, appointment, now)
    audit.record(session, actor_type="patient", actor_id=patient.id, action="agenda.appointment_booked",
                 patient_id=patient.id, details={"appointment_id": appointment.id, "professional_id": pro.id}, at=now)
    return appointment


def book_by_professional(session: Session, settings: AgendaSettings, pro: Professional, patient: Patient, *,
                         raw_slot_id: str | None = None, starts_at: dt.datetime | None = None,
                         ends_at: dt.datetime | None = None, visit_type: str | None = None,
                         now: dt.datetime | None = None) -> Appointment:
    """An appointment made by the practice (phone, desk): it appears in the patient's agenda, and the
    patient is notified. The policy decides (APPOINTMENT_CREATE): no consent needed (it feeds the agenda,
    and reveals nothing of the patient), refused to a professional the patient blocked; an opposed or
    closed account answers as an unknown patient."""
    now = now or utcnow()
    authorize_write(session, Actor.of_professional(pro), patient.id, Action.APPOINTMENT_CREATE,
                    concealed=NotFound("agenda_patient_not_found"), now=now)
    appointment = Appointment(patient_id=patient.id, kind="professional", status="booked", created_by="professional",
                              created_at=now, updated_at=now)
    if raw_slot_id:
        schedule, slot_pro, slot = resolve_slot(session, settings, raw_slot_id, now=now)
        if slot_pro.id != pro.id:
            raise NotFound("agenda_slot_not_found")
        appointment.starts_at, appointment.ends_at = slot.starts_at, slot.ends_at
        _copy_schedule(appointment, schedule, pro)
    else:
        if starts_at is None or ends_at is None:
            raise DomainError("agenda_invalid_resource", reason="start et end, ou slot, sont nécessaires")
        if ends_at <= starts_at:
            raise DomainError("agenda_end_before_start")
        if starts_at <= now:
            raise DomainError("agenda_slot_past", 409)
        if visit_type is not None and visit_type not in VISIT_TYPES:
            raise DomainError("agenda_invalid_resource", reason="serviceType inconnu")
        appointment.starts_at, appointment.ends_at = starts_at.astimezone(UTC), ends_at.astimezone(UTC)
        appointment.professional_id = pro.id
        appointment.professional_name = pro.display_name
        appointment.visit_type = visit_type or "in_person"
        appointment.place_name = pro.organisation
        appointment.tz = settings.default_tz
    session.add(appointment)
    session.flush()
    _hold(session, pro.id, appointment)
    schedule_reminders(session, settings, appointment, now)
    notify(session, patient.id, "appointment", ref_type="appointment", ref_id=appointment.id,
           dedupe_key=f"agenda-new:{appointment.id}", now=now)
    audit.record(session, actor_type="professional", actor_id=pro.rpps, action="agenda.appointment_created",
                 patient_id=patient.id, details={"appointment_id": appointment.id}, at=now)
    return appointment


def patient_appointment(session: Session, patient_id: int, appointment_id: int) -> Appointment:
    appointment = session.scalar(select(Appointment).where(Appointment.id == appointment_id,
                                                           Appointment.patient_id == patient_id))
    if appointment is None:
        raise NotFound("agenda_appointment_not_found")
    return appointment


def professional_appointment(session: Session, pro: Professional, appointment_id: int) -> Appointment:
    appointment = session.scalar(select(Appointment).where(Appointment.id == appointment_id,
                                                           Appointment.professional_id == pro.id,
                                                           Appointment.kind.in_(PATIENT_CAN_CANCEL_KINDS)))
    if appointment is None:
        raise NotFound("agenda_appointment_not_found")
    return appointment


def cancel_by_professional(session: Session, settings: AgendaSettings, pro: Professional, appointment_id: int,
                           *, now: dt.datetime | None = None) -> Appointment:
    """The practice cancels one of its appointments (APPOINTMENT_CANCEL: not when the patient blocked it,
    nor on a closed record, which answers "not found")."""
    now = now or utcnow()
    appointment = professional_appointment(session, pro, appointment_id)
    authorize_write(session, Actor.of_professional(pro), appointment.patient_id, Action.APPOINTMENT_CANCEL,
                    target=appointment.professional_id, details={"appointment_id": appointment.id},
                    concealed=NotFound("agenda_appointment_not_found"), now=now)
    return cancel(session, settings, appointment, by="professional", actor_id=pro.rpps, now=now)


def cancel_deadline(settings: AgendaSettings, appointment: Appointment) -> dt.datetime | None:
    if appointment.kind not in PATIENT_CAN_CANCEL_KINDS:
        return None
    return appointment.starts_at - settings.cancel_cutoff


def can_change(settings: AgendaSettings, appointment: Appointment, now: dt.datetime) -> bool:
    if appointment.status != "booked":
        return False
    deadline = cancel_deadline(settings, appointment)
    return deadline is None or now <= deadline


def _check_cutoff(settings: AgendaSettings, appointment: Appointment, now: dt.datetime) -> None:
    if appointment.status != "booked":
        raise DomainError("agenda_already_cancelled", 409)
    if not can_change(settings, appointment, now):
        hours = settings.cancel_cutoff.total_seconds() / 3600
        raise DomainError("agenda_cutoff_passed", 409, hours=f"{hours:g}")


def cancel(session: Session, settings: AgendaSettings, appointment: Appointment, *, by: str,
           actor_id: int | str, now: dt.datetime | None = None) -> Appointment:
    """Cancel: the slot is freed and pending reminders are deleted in the same transaction. A patient
    must do it before the cut-off; the practice may cancel at any time (and the patient is told)."""
    now = now or utcnow()
    if by == "patient":
        _check_cutoff(settings, appointment, now)
    elif appointment.status != "booked":
        raise DomainError("agenda_already_cancelled", 409)
    appointment.status = "cancelled"
    appointment.cancelled_at = now
    appointment.cancelled_by = by
    appointment.updated_at = now
    appointment.sequence += 1
    _release(session, appointment)
    drop_pending_reminders(session, appointment)
    session.flush()
    if by == "professional":
        notify(session, appointment.patient_id, "appointment", ref_type="appointment", ref_id=appointment.id,
               dedupe_key=f"agenda-cancelled:{appointment.id}", now=now)
    audit.record(session, actor_type=by, actor_id=actor_id, action="agenda.appointment_cancelled",
                 patient_id=appointment.patient_id, details={"appointment_id": appointment.id}, at=now)
    return appointment


def reschedule(session: Session, settings: AgendaSettings, patient: Patient, appointment: Appointment,
               raw_slot_id: str, *, now: dt.datetime | None = None) -> Appointment:
    """Move a booking to another slot of the same professional, atomically: either the new slot is
    taken and the old one freed, or nothing changes."""
    now = now or utcnow()
    if appointment.kind not in PATIENT_CAN_CANCEL_KINDS:
        raise DomainError("agenda_not_a_personal_entry", 409)
    _check_cutoff(settings, appointment, now)
    schedule, pro, slot = resolve_slot(session, settings, raw_slot_id, now=now)
    if appointment.professional_id != pro.id:
        raise DomainError("agenda_reschedule_other_professional", 409)
    _release(session, appointment)
    session.flush()
    appointment.starts_at, appointment.ends_at = slot.starts_at, slot.ends_at
    _copy_schedule(appointment, schedule, pro)
    appointment.sequence += 1
    appointment.updated_at = now
    session.flush()
    _hold(session, pro.id, appointment)
    drop_pending_reminders(session, appointment)
    schedule_reminders(session, settings, appointment, now)
    audit.record(session, actor_type="patient", actor_id=patient.id, action="agenda.appointment_rescheduled",
                 patient_id=patient.id, details={"appointment_id": appointment.id}, at=now)
    return appointment


# --- the patient's own entries -----------------------------------------------------------------------------

@dataclass
class EntryInput:
    title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    all_day: bool = False
    place_name: str | None = None
    notes: str | None = None
    reminders: bool = True


EARLIEST = dt.datetime(1970, 1, 1, tzinfo=UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=UTC)


def _second(value: dt.datetime) -> dt.datetime:
    """Entries start on a whole second (keeps the list's keyset cursor exact), between 1970 and 2200
    (before that, zone rules are local mean times no calendar shares)."""
    value = value.astimezone(UTC).replace(microsecond=0)
    if not EARLIEST <= value < LATEST:
        raise DomainError("agenda_date_out_of_range")
    return value


def add_entry(session: Session, settings: AgendaSettings, patient: Patient, data: EntryInput, *,
              now: dt.datetime | None = None) -> Appointment:
    now = now or utcnow()
    if data.ends_at <= data.starts_at:
        raise DomainError("agenda_end_before_start")
    entry = Appointment(patient_id=patient.id, kind="personal", status="booked", title=data.title.strip(),
                        starts_at=_second(data.starts_at), ends_at=_second(data.ends_at),
                        all_day=data.all_day, place_name=data.place_name, notes=data.notes,
                        tz=settings.default_tz, created_by="patient", created_at=now, updated_at=now)
    session.add(entry)
    session.flush()
    if data.reminders and not data.all_day:
        schedule_reminders(session, settings, entry, now)
    return entry


def update_entry(session: Session, settings: AgendaSettings, entry: Appointment, changes: dict[str, Any], *,
                 now: dt.datetime | None = None) -> Appointment:
    now = now or utcnow()
    if entry.kind not in ("personal", "imported"):
        raise DomainError("agenda_not_a_personal_entry", 409)
    for key in ("title", "place_name", "notes", "all_day"):
        if key in changes:
            setattr(entry, key, changes[key])
    moved = False
    for key in ("starts_at", "ends_at"):
        if key in changes:
            setattr(entry, key, _second(changes[key]))
            moved = True
    if entry.ends_at <= entry.starts_at:
        raise DomainError("agenda_end_before_start")
    entry.updated_at = now
    entry.sequence += 1
    session.flush()
    if moved:
        drop_pending_reminders(session, entry)
        if not entry.all_day:
            schedule_reminders(session, settings, entry, now)
    return entry


def delete_entry(session: Session, entry: Appointment) -> None:
    if entry.kind not in ("personal", "imported"):
        raise DomainError("agenda_not_a_personal_entry", 409)
    session.delete(entry)
    session.flush()


def list_appointments(session: Session, patient_id: int, *, start: dt.datetime | None = None,
                      end: dt.datetime | None = None, include_cancelled: bool = False,
                      after: tuple[dt.datetime, int] | None = None, limit: int = 20) -> list[Appointment]:
    """One query, whatever the number of appointments (everything shown is on the row)."""
    stmt = select(Appointment).where(Appointment.patient_id == patient_id)
    if start is not None:
        stmt = stmt.where(Appointment.ends_at > start)
    if end is not None:
        stmt = stmt.where(Appointment.starts_at < end)
    if not include_cancelled:
        stmt = stmt.where(Appointment.status == "booked")
    if after is not None:
        at, last_id = after
        stmt = stmt.where((Appointment.starts_at > at) | ((Appointment.starts_at == at) & (Appointment.id > last_id)))
    return list(session.scalars(stmt.order_by(Appointment.starts_at, Appointment.id).limit(limit)))


def pack_position(at: dt.datetime, row_id: int) -> int:
    """A keyset position (start second, id) as one integer for ``web.encode_cursor``."""
    return (int(at.timestamp()) << 32) | row_id


def unpack_position(value: int | None) -> tuple[dt.datetime, int] | None:
    if value is None:
        return None
    try:
        return dt.datetime.fromtimestamp(value >> 32, UTC), value & 0xFFFFFFFF
    except (OverflowError, OSError, ValueError):
        raise cursors.refused() from None


def appointment_title(appointment: Appointment, lang: str | None = None) -> str:
    if appointment.title:
        return appointment.title
    if appointment.professional_name:
        return message("agenda_consultation_with", lang, name=appointment.professional_name)
    return message("agenda_discreet_title", lang)


# --- reminders ----------------------------------------------------------------------------------------------

def schedule_reminders(session: Session, settings: AgendaSettings, appointment: Appointment,
                       now: dt.datetime) -> list[Reminder]:
    """One pending row per offset, due at start − offset (elapsed time, so right across DST)."""
    out = []
    for offset, due in reminder_times(settings, appointment, now):
        reminder = Reminder(appointment_id=appointment.id, patient_id=appointment.patient_id,
                            offset_minutes=int(offset.total_seconds() // 60), due_at=due)
        session.add(reminder)
        out.append(reminder)
    session.flush()
    return out


def reminder_times(settings: AgendaSettings, appointment: Appointment, now: dt.datetime,
                   ) -> list[tuple[dt.timedelta, dt.datetime]]:
    """(offset, due time) of the reminders an appointment gets when scheduled now: those still ahead."""
    return [(offset, appointment.starts_at - offset) for offset in settings.reminder_offsets
            if appointment.starts_at - offset > now]


def drop_pending_reminders(session: Session, appointment: Appointment) -> None:
    session.execute(delete(Reminder).where(Reminder.appointment_id == appointment.id, Reminder.sent_at.is_(None)))


def reminder_dedupe_key(appointment: Appointment, offset_minutes: int) -> str:
    # The start is part of the key: a rescheduled appointment gets its own reminders.
    return f"agenda-reminder:{appointment.id}:{offset_minutes}:{int(appointment.starts_at.timestamp())}"


def send_due_reminders(session: Session, *, now: dt.datetime | None = None, batch: int = 500) -> int:
    """Turn due reminders into notification records (no health data: kind + appointment id only).

    Idempotent: a reminder is marked sent in the same transaction, and the notification's dedupe key
    makes a second run (another worker, a retry) a no-op. Rows are locked SKIP LOCKED on PostgreSQL so
    concurrent workers share the work. A reminder whose appointment was cancelled, or has already begun
    (the worker was down), is closed without notifying.
    """
    now = now or utcnow()
    rows = session.execute(
        select(Reminder, Appointment).join(Appointment, Appointment.id == Reminder.appointment_id)
        .where(Reminder.sent_at.is_(None), Reminder.due_at <= now)
        .order_by(Reminder.due_at, Reminder.id).limit(batch)
        .with_for_update(skip_locked=True, of=Reminder)).all()
    sent = 0
    for reminder, appointment in rows:
        reminder.sent_at = now
        if appointment.status != "booked" or appointment.starts_at <= now:
            continue
        notify(session, appointment.patient_id, "appointment", ref_type="appointment", ref_id=appointment.id,
               dedupe_key=reminder_dedupe_key(appointment, reminder.offset_minutes), now=now)
        sent += 1
    session.flush()
    return sent


def pending_reminders(session: Session, appointment_ids: Sequence[int]) -> dict[int, list[dt.datetime]]:
    out: dict[int, list[dt.datetime]] = {i: [] for i in appointment_ids}
    if not appointment_ids:
        return out
    for appointment_id, due in session.execute(
            select(Reminder.appointment_id, Reminder.due_at)
            .where(Reminder.appointment_id.in_(appointment_ids), Reminder.sent_at.is_(None))
            .order_by(Reminder.due_at)):
        out[appointment_id].append(due)
    return out


# --- calendar feed --------------------------------------------------------------------------------------------

def active_feed(session: Session, patient_id: int) -> CalendarFeed | None:
    return session.scalar(select(CalendarFeed).where(CalendarFeed.patient_id == patient_id,
                                                     CalendarFeed.revoked_at.is_(None)))


def create_feed(session: Session, patient: Patient, *, show_details: bool = False,
                now: dt.datetime | None = None) -> tuple[CalendarFeed, str]:
    """A new secret link (256 random bits, only its hash kept); any previous link stops working."""
    now = now or utcnow()
    revoke_feed(session, patient, now=now, record=False)
    token = new_token()
    feed = CalendarFeed(patient_id=patient.id, token_hash=token_digest(token), show_details=show_details,
                        created_at=now)
    session.add(feed)
    session.flush()
    audit.record(session, actor_type="patient", actor_id=patient.id, action="agenda.feed_created",
                 patient_id=patient.id, details={"feed_id": feed.id, "show_details": show_details}, at=now)
    return feed, token


def set_feed_details(session: Session, patient: Patient, show_details: bool, *,
                     now: dt.datetime | None = None) -> CalendarFeed:
    feed = active_feed(session, patient.id)
    if feed is None:
        raise NotFound("agenda_feed_not_found")
    feed.show_details = show_details
    session.flush()
    audit.record(session, actor_type="patient", actor_id=patient.id, action="agenda.feed_changed",
                 patient_id=patient.id, details={"feed_id": feed.id, "show_details": show_details}, at=now)
    return feed


def revoke_feed(session: Session, patient: Patient, *, now: dt.datetime | None = None, record: bool = True,
                reason: str | None = None) -> bool:
    return _revoke_feed(session, patient.id, now=now or utcnow(), record=record, reason=reason)


def _revoke_feed(session: Session, patient_id: int, *, now: dt.datetime, record: bool = True,
                 reason: str | None = None) -> bool:
    feed = active_feed(session, patient_id)
    if feed is None:
        return False
    feed.revoked_at = now
    session.flush()
    if record:
        details: dict[str, Any] = {"feed_id": feed.id}
        if reason:
            details["reason"] = reason
        audit.record(session, actor_type="patient", actor_id=patient_id, action="agenda.feed_revoked",
                     patient_id=patient_id, details=details, at=now)
    return True


@on_account_event("agenda.calendar_feed", "closed", "opposed", "password_changed")
def _feed_dies_with_the_account(session: Session, patient_id: int, event: str, now: dt.datetime) -> None:
    """The link is a credential of its own (whoever holds it reads the agenda): it ends with the account,
    and with a password change (the patient suspects someone else got in, and may have made a link)."""
    _revoke_feed(session, patient_id, now=now, reason=event)


def fetch_feed(session: Session, token: str, *, now: dt.datetime | None = None, horizon_days: int = 400,
               past_days: int = 90, limit: int = 2000) -> tuple[CalendarFeed, list[Appointment]]:
    """What a subscribed calendar reads. Every fetch is in the patient's access history."""
    now = now or utcnow()
    found = session.execute(select(CalendarFeed, Patient.state).join(Patient, Patient.id == CalendarFeed.patient_id)
                            .where(CalendarFeed.token_hash == token_digest(token or ""))).one_or_none()
    # an account that is not active serves nothing, whatever became of its link
    if found is None or found[0].revoked_at is not None or found[1] != AccountState.ACTIVE:
        raise NotFound("agenda_feed_not_found")
    feed = found[0]
    session.execute(update(CalendarFeed).where(CalendarFeed.id == feed.id)
                    .values(last_fetched_at=now, fetch_count=CalendarFeed.fetch_count + 1))
    appointments = list_appointments(session, feed.patient_id, start=now - dt.timedelta(days=past_days),
                                     end=now + dt.timedelta(days=horizon_days), limit=limit)
    audit.record(session, actor_type="service", actor_id=f"calendar-feed:{feed.id}", action="agenda.feed_fetched",
                 patient_id=feed.patient_id, details={"feed_id": feed.id, "events": len(appointments)}, at=now)
    return feed, appointments
