"""From published opening hours to bookable slots.

Opening hours are RFC 5545 recurrences expanded by ``recurring-ical-events`` in the schedule's time zone,
so "Mondays 09:00–12:00" stays 09:00 local time on both sides of a daylight-saving change. Each opening
is then cut into slots of fixed *elapsed* length (UTC arithmetic): on the night clocks go forward, an
opening 01:00–04:00 lasts two hours and gives two hours of slots; on the night they go back, four.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import recurring_ical_events

from backend.agenda.models import OpeningRule, Schedule, ScheduleException
from backend.errors import DomainError

UTC = dt.timezone.utc
ALLOWED_FREQ = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
SLOT_ID = re.compile(r"^(\d{1,12})-(\d{8}T\d{4})Z$")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DomainError("agenda_unknown_timezone", tz=name[:64]) from None


def slot_id(schedule_id: int, starts_at: dt.datetime) -> str:
    """A slot is named by its schedule and its start instant (minute precision, UTC)."""
    return f"{schedule_id}-{starts_at.astimezone(UTC):%Y%m%dT%H%M}Z"


def parse_slot_id(raw: str) -> tuple[int, dt.datetime]:
    match = SLOT_ID.match(raw or "")
    if not match:
        raise DomainError("agenda_slot_not_found", 404)
    try:
        start = dt.datetime.strptime(match.group(2), "%Y%m%dT%H%M").replace(tzinfo=UTC)
    except ValueError:
        raise DomainError("agenda_slot_not_found", 404) from None
    return int(match.group(1)), start


def validate_rrule(text: str) -> str:
    """Accept daily to yearly rules (opening hours), refuse anything finer or unreadable."""
    text = (text or "").strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if not text or len(text) > 500:
        raise DomainError("agenda_invalid_rrule", reason="règle vide ou trop longue")
    try:
        recur = icalendar.vRecur.from_ical(text)
    except (ValueError, TypeError) as exc:
        raise DomainError("agenda_invalid_rrule", reason=_short(exc)) from None
    freq = recur.get("FREQ", [None])[0]
    if freq not in ALLOWED_FREQ:
        raise DomainError("agenda_invalid_rrule", reason="FREQ doit être DAILY, WEEKLY, MONTHLY ou YEARLY")
    return text


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:160]


def _calendar(tz: ZoneInfo, openings: Iterable[OpeningRule]) -> icalendar.Calendar:
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Carnet//Opening hours//FR")
    cal.add("version", "2.0")
    for opening in openings:
        event = icalendar.Event()
        event.add("uid", f"opening-{opening.id}")
        # The wall time of the first occurrence, in the schedule's zone: recurrences keep that wall time.
        event.add("dtstart", opening.starts_at.astimezone(tz))
        event.add("dtend", opening.ends_at.astimezone(tz))
        if opening.rrule:
            event.add("rrule", icalendar.vRecur.from_ical(opening.rrule))
        cal.add_component(event)
    return cal


def opening_windows(tz_name: str, openings: Sequence[OpeningRule], start: dt.datetime, end: dt.datetime,
                    ) -> list[tuple[dt.datetime, dt.datetime]]:
    """Occurrences of the opening hours overlapping [start, end), as UTC instants."""
    if not openings:
        return []
    tz = zone(tz_name)
    cal = _calendar(tz, openings)
    try:
        occurrences = recurring_ical_events.of(cal).between(start.astimezone(tz), end.astimezone(tz))
    except Exception as exc:  # the library raises its own types for rules it cannot expand
        raise DomainError("agenda_invalid_rrule", reason=_short(exc)) from None
    windows = []
    for occ in occurrences:
        s, e = occ["DTSTART"].dt, occ["DTEND"].dt
        windows.append((s.astimezone(UTC), e.astimezone(UTC)))
    return sorted(windows)


@dataclass(frozen=True)
class SlotTime:
    schedule_id: int
    starts_at: dt.datetime
    ends_at: dt.datetime

    @property
    def id(self) -> str:
        return slot_id(self.schedule_id, self.starts_at)


def _overlaps(a_start: dt.datetime, a_end: dt.datetime, b_start: dt.datetime, b_end: dt.datetime) -> bool:
    return a_start < b_end and b_start < a_end


def schedule_slots(schedule: Schedule, start: dt.datetime, end: dt.datetime,
                   openings: Sequence[OpeningRule] | None = None,
                   exceptions: Sequence[ScheduleException] | None = None) -> list[SlotTime]:
    """Every slot of ``schedule`` starting in [start, end), exceptions and validity dates applied
    (bookings are not looked at here)."""
    openings = schedule.openings if openings is None else openings
    exceptions = schedule.exceptions if exceptions is None else exceptions
    tz = zone(schedule.tz)
    length = dt.timedelta(minutes=schedule.slot_minutes)
    seen: set[dt.datetime] = set()
    out: list[SlotTime] = []
    for w_start, w_end in opening_windows(schedule.tz, openings, start - length, end):
        t = w_start
        while t + length <= w_end:
            if start <= t < end and t not in seen and _valid_on(schedule, t.astimezone(tz).date()) and not any(
                    _overlaps(t, t + length, x.starts_at, x.ends_at) for x in exceptions):
                seen.add(t)
                out.append(SlotTime(schedule.id, t, t + length))
            t += length
    out.sort(key=lambda s: s.starts_at)
    return out


def _valid_on(schedule: Schedule, day: dt.date) -> bool:
    if schedule.valid_from and day < schedule.valid_from:
        return False
    return not (schedule.valid_until and day > schedule.valid_until)


def check_openings(tz_name: str, openings: Sequence[OpeningRule]) -> None:
    """Expand a year of each rule once, so a rule the library cannot expand is refused at publication."""
    for opening in openings:
        start = opening.starts_at
        opening_windows(tz_name, [opening], start, start + dt.timedelta(days=366))


def local_day_bounds(day: dt.date, tz_name: str) -> tuple[dt.datetime, dt.datetime]:
    """Local midnight to the next local midnight, as UTC instants (23 or 25 hours on DST days)."""
    tz = zone(tz_name)
    start = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)
