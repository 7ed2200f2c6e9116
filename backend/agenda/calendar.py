"""iCalendar (RFC 5545) in and out: export of the agenda, and import of another calendar's file.

Export is written with ``icalendar``; times are UTC instants (``…Z``), which every calendar shows in its
own zone, and whole-day entries are dates.
Import is hardened: a size limit, recurrences checked and their occurrences bounded *before* they are
expanded by ``recurring-ical-events`` (a rule that repeats every second cannot exhaust the server), and
every problem becomes one clear French sentence. Parsing happens entirely before anything is written.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.accounts.models import Patient
from backend.agenda.models import Appointment
from backend.agenda.service import AgendaSettings, appointment_title
from backend.audit import service as audit
from backend.db import utcnow
from backend.errors import DomainError
from backend.i18n import message
from backend.text import clean

UTC = dt.timezone.utc
PRODID = "-//Carnet//Agenda santé//FR"
VISIT_LABELS = {"in_person": "agenda_visit_in_person", "teleconsultation": "agenda_visit_teleconsultation"}


# --- export ------------------------------------------------------------------------------------------------

def event_uid(appointment: Appointment, domain: str) -> str:
    return f"carnet-agenda-{appointment.id}@{domain}"


def _location(a: Appointment) -> str | None:
    parts = [p for p in (a.place_name, a.place_address, " ".join(x for x in (a.place_postcode, a.place_city) if x))
             if p]
    return ", ".join(parts) or None


def _description(a: Appointment, lang: str | None, with_notes: bool) -> str | None:
    lines = []
    if a.professional_name:
        lines.append(a.professional_name + (f" — {a.specialty_label}" if a.specialty_label else ""))
    if a.visit_type in VISIT_LABELS:
        lines.append(message(VISIT_LABELS[a.visit_type], lang))
    if with_notes and a.notes:
        lines.append(a.notes)
    return "\n".join(lines) or None


def export_calendar(appointments: Iterable[Appointment], *, domain: str, discreet: bool, with_notes: bool = True,
                    lang: str | None = None, feed: bool = False, now: dt.datetime | None = None) -> bytes:
    """A VCALENDAR of the given appointments. ``discreet`` keeps only "Rendez-vous médical" and the times
    (for a calendar that other people, or a lock screen, may show)."""
    now = now or utcnow()
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", message("agenda_calendar_name", lang))
    cal.add("x-wr-timezone", "Europe/Paris")
    if feed:
        cal.add("refresh-interval", dt.timedelta(hours=1), parameters={"VALUE": "DURATION"})
        cal.add("x-published-ttl", "PT1H")
    for a in appointments:
        tz = ZoneInfo(a.tz)
        event = icalendar.Event()
        event.add("uid", event_uid(a, domain))
        event.add("dtstamp", (a.updated_at or now).astimezone(UTC))
        event.add("sequence", a.sequence)
        if a.all_day:
            event.add("dtstart", a.starts_at.astimezone(tz).date())
            end_day = a.ends_at.astimezone(tz).date()
            event.add("dtend", max(end_day, a.starts_at.astimezone(tz).date() + dt.timedelta(days=1)))
        else:
            # UTC instants: every reader agrees on them. (A TZID needs a VTIMEZONE; the one icalendar
            # generates lists transitions as RDATEs, which vobject, among others, misreads in summer.)
            event.add("dtstart", a.starts_at.astimezone(UTC))
            event.add("dtend", max(a.ends_at, a.starts_at).astimezone(UTC))
        if discreet:
            event.add("summary", message("agenda_discreet_title", lang))
            event.add("class", "PRIVATE")
        else:
            event.add("summary", appointment_title(a, lang))
            location = _location(a)
            if location:
                event.add("location", location)
            description = _description(a, lang, with_notes)
            if description:
                event.add("description", description)
        event.add("status", "CANCELLED" if a.status == "cancelled" else "CONFIRMED")
        event.add("transp", "OPAQUE")
        cal.add_component(event)
    return cal.to_ical()


# --- import ------------------------------------------------------------------------------------------------

@dataclass
class ParsedEvent:
    source_uid: str
    title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    all_day: bool
    place: str | None
    notes: str | None


class ImportRefused(DomainError):
    status = 422


def _refuse(reason: str) -> ImportRefused:
    return ImportRefused("agenda_ics_invalid", reason=reason)


def _text(component: icalendar.Component, name: str, limit: int) -> str | None:
    value = component.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        value = value[0] if value else ""
    text = clean(str(value)).strip()  # a calendar file may carry NULs and control characters: dropped
    return text[:limit] or None


def _instant(value: object, tz: ZoneInfo) -> tuple[dt.datetime, bool]:
    """A DTSTART/DTEND value as a UTC instant; a date is an all-day start at local midnight; a floating
    time is read in the agenda's zone."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=tz)
        return value.astimezone(UTC).replace(microsecond=0), False
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(0), tzinfo=tz).astimezone(UTC), True
    raise _refuse("un rendez-vous a une date de début illisible")


def _source_uid(uid: str, start: dt.datetime) -> str:
    key = f"{uid}|{start:%Y%m%dT%H%M%SZ}"
    if len(key) > 300:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


ALLOWED_FREQ = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
PROPERTY_LABELS = (("DTEND", "la date de fin"), ("DURATION", "la durée"), ("EXDATE", "une date exclue (EXDATE)"),
                   ("RDATE", "une date ajoutée (RDATE)"), ("RECURRENCE-ID", "l'occurrence modifiée (RECURRENCE-ID)"))
OCCURRENCE_BUDGET = 20000  # occurrences the expansion may compute at most, bounded before expanding


def _label(event: icalendar.Component) -> str:
    return _text(event, "SUMMARY", 60) or _text(event, "UID", 60) or "sans titre"


def _check_ends_after_start(event: icalendar.Component, tz: ZoneInfo) -> None:
    """RFC 5545 §3.6.1 and §3.8.2.2: DTEND is not before DTSTART (equal: an instant), a DURATION is not negative. Checked on the event as written: the expansion would quietly swap a backwards end
    and start (recurring-ical-events does), and the patient would get an appointment nobody wrote."""
    start = event["DTSTART"].dt
    if "DTEND" in event:
        end = event["DTEND"].dt
        if _instant(end, tz)[0] < _instant(start, tz)[0]:
            raise _refuse(f"le rendez-vous « {_label(event)} » finit avant de commencer")
    elif "DURATION" in event and isinstance(event["DURATION"].dt, dt.timedelta):
        if event["DURATION"].dt < dt.timedelta(0):
            raise _refuse(f"le rendez-vous « {_label(event)} » a une durée négative")


def _check_events(cal: icalendar.Component, window_days: int, tz: ZoneInfo) -> None:
    """Before expanding anything: every event has a readable start, its recurrences are at most daily,
    and the number of occurrences they can produce in the window is bounded (a rule repeating every
    second would otherwise exhaust the server)."""
    budget = 0
    for event in cal.walk("VEVENT"):
        if "DTSTART" not in event:
            raise _refuse(f"le rendez-vous « {_label(event)} » n'a pas de date de début (DTSTART)")
        try:
            event["DTSTART"].dt  # noqa: B018  (a broken value raises here)
        except Exception:
            raise _refuse(f"la date de début du rendez-vous « {_label(event)} » est illisible") from None
        for name, what in PROPERTY_LABELS:
            values = event.get(name)
            for value in values if isinstance(values, list) else ([values] if values is not None else []):
                try:
                    getattr(value, "dts" if name in ("EXDATE", "RDATE") else "dt")
                except Exception:
                    raise _refuse(f"{what} du rendez-vous « {_label(event)} » est illisible") from None
        _check_ends_after_start(event, tz)
        rules = event.get("RRULE")
        for rule in rules if isinstance(rules, list) else ([rules] if rules is not None else []):
            try:
                freq = str(rule.get("FREQ", [""])[0]).upper()
                per_day = 1
                for key in ("BYHOUR", "BYMINUTE", "BYSECOND"):
                    per_day *= max(1, len(rule.get(key, [])))
            except Exception:
                raise _refuse(f"la récurrence du rendez-vous « {_label(event)} » est illisible") from None
            if freq not in ALLOWED_FREQ:
                raise _refuse(f"la récurrence du rendez-vous « {_label(event)} » est trop fréquente ou inconnue "
                              f"(FREQ={freq[:20] or '?'})")
            budget += window_days * per_day
        rdates = event.get("RDATE")
        budget += 1 + sum(len(getattr(r, "dts", [])) for r in (rdates if isinstance(rdates, list)
                                                                 else [rdates] if rdates is not None else []))
        if budget > OCCURRENCE_BUDGET:
            raise DomainError("agenda_ics_too_many", max_events=OCCURRENCE_BUDGET)


def parse_ics(data: bytes, settings: AgendaSettings, *, now: dt.datetime) -> list[ParsedEvent]:
    """Every event of the file between a year ago and two years ahead, or a clear refusal."""
    if len(data) > settings.import_max_bytes:
        raise DomainError("agenda_ics_too_large", 413, max_kib=settings.import_max_bytes // 1024)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("le fichier n'est pas encodé en UTF-8") from None
    if not text.lstrip().upper().startswith("BEGIN:VCALENDAR"):
        raise _refuse("il ne commence pas par BEGIN:VCALENDAR")
    try:
        calendars = icalendar.Calendar.from_ical(text, multiple=True)
    except Exception as exc:  # icalendar raises ValueError, KeyError, IndexError… on malformed input
        raise _refuse(f"contenu mal formé ({_short(exc)})") from None
    tz = ZoneInfo(settings.default_tz)
    start = now - dt.timedelta(days=365)
    end = now + dt.timedelta(days=730)
    events: list[ParsedEvent] = []
    seen: set[str] = set()
    for cal in calendars:
        if cal.name != "VCALENDAR":
            raise _refuse(f"composant inattendu {cal.name[:40]!r} hors de VCALENDAR")
        if not cal.walk("VEVENT"):
            continue
        _check_events(cal, (end - start).days + 1, tz)
        try:
            occurrences = recurring_ical_events.of(cal).between(start.astimezone(tz), end.astimezone(tz))
            parsed = [_occurrence(occ, tz) for occ in occurrences]
        except DomainError:
            raise
        except Exception as exc:  # a recurrence or time zone the libraries cannot read
            raise _refuse(f"récurrence ou fuseau horaire illisible ({_short(exc)})") from None
        for item in sorted((p for p in parsed if p is not None), key=lambda p: p.starts_at):
            if item.source_uid in seen:
                continue
            seen.add(item.source_uid)
            events.append(item)
            if len(events) > settings.import_max_events:
                raise DomainError("agenda_ics_too_many", max_events=settings.import_max_events)
    if not events:
        raise DomainError("agenda_ics_no_events")
    return events


def _occurrence(occ: icalendar.Component, tz: ZoneInfo) -> ParsedEvent | None:
    if str(occ.get("STATUS", "")).upper() == "CANCELLED":
        return None
    s, all_day = _instant(occ["DTSTART"].dt, tz)
    if "DTEND" in occ:
        e, _ = _instant(occ["DTEND"].dt, tz)
    elif "DURATION" in occ and isinstance(occ["DURATION"].dt, dt.timedelta):
        e = s + occ["DURATION"].dt
    else:
        e = s + (dt.timedelta(days=1) if all_day else dt.timedelta(0))
    if e < s:
        raise _refuse(f"le rendez-vous « {_label(occ)} » finit avant de commencer")
    uid = _text(occ, "UID", 250) or hashlib.sha256(occ.to_ical()).hexdigest()
    return ParsedEvent(_source_uid(uid, s), _text(occ, "SUMMARY", 200) or "(sans titre)", s, e, all_day,
                       _text(occ, "LOCATION", 200), _text(occ, "DESCRIPTION", 2000))


def _short(exc: BaseException) -> str:
    text = (str(exc) or type(exc).__name__).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]


def import_events(session: Session, settings: AgendaSettings, patient: Patient, events: list[ParsedEvent], *,
                  now: dt.datetime | None = None) -> tuple[int, int]:
    """Add the parsed events as the patient's entries; already imported ones (same UID and start) are
    skipped. Returns (imported, skipped). The caller commits once: all or nothing."""
    now = now or utcnow()
    existing: set[str] = set()
    keys = [e.source_uid for e in events]
    for chunk in range(0, len(keys), 500):
        existing.update(session.scalars(select(Appointment.source_uid).where(
            Appointment.patient_id == patient.id, Appointment.source_uid.in_(keys[chunk:chunk + 500]))))
    added = 0
    for e in events:
        if e.source_uid in existing:
            continue
        session.add(Appointment(patient_id=patient.id, kind="imported", status="booked", title=e.title,
                                starts_at=e.starts_at, ends_at=e.ends_at, all_day=e.all_day, place_name=e.place,
                                notes=e.notes, source_uid=e.source_uid, tz=settings.default_tz, created_by="import",
                                created_at=now, updated_at=now))
        added += 1
    session.flush()
    audit.record(session, actor_type="patient", actor_id=patient.id, action="agenda.calendar_imported",
                 patient_id=patient.id, details={"imported": added, "skipped": len(events) - added}, at=now)
    return added, len(events) - added
