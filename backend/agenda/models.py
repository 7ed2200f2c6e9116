"""The health agenda's tables.

Times are UTC instants (``Mapped[dt.datetime]``) next to the IANA time-zone name they are lived in;
local wall times are always computed with :mod:`zoneinfo`, never stored.

No double booking is a database rule: a booked appointment with a professional owns one
:class:`SlotHold` row, unique per (professional, start instant). Cancelling deletes the hold.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.db import Base, utcnow

DEFAULT_TZ = "Europe/Paris"


class Schedule(Base):
    """A professional's published availability at one place, for one visit type and slot length."""

    __tablename__ = "agenda_schedule"
    __table_args__ = (Index("ix_agenda_schedule_active_specialty", "active", "specialty_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    professional_id: Mapped[int] = mapped_column(ForeignKey("professional.id", ondelete="CASCADE"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    visit_type: Mapped[str] = mapped_column(String(16))  # in_person | teleconsultation
    specialty_code: Mapped[str | None] = mapped_column(String(32))
    specialty_system: Mapped[str | None] = mapped_column(String(128))  # the code system the practice sent
    specialty_label: Mapped[str | None] = mapped_column(String(200))
    place_name: Mapped[str | None] = mapped_column(String(200))
    place_address: Mapped[str | None] = mapped_column(String(300))
    place_postcode: Mapped[str | None] = mapped_column(String(10))
    place_city: Mapped[str | None] = mapped_column(String(120))
    tz: Mapped[str] = mapped_column(String(64), default=DEFAULT_TZ)
    slot_minutes: Mapped[int]
    valid_from: Mapped[dt.date | None]
    valid_until: Mapped[dt.date | None]
    comment: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    openings: Mapped[list[OpeningRule]] = relationship(
        back_populates="schedule", lazy="raise", cascade="all, delete-orphan", passive_deletes=True,
        order_by="OpeningRule.id")
    exceptions: Mapped[list[ScheduleException]] = relationship(
        back_populates="schedule", lazy="raise", cascade="all, delete-orphan", passive_deletes=True,
        order_by="ScheduleException.starts_at")


class OpeningRule(Base):
    """Recurring opening hours: the first occurrence (UTC instants, wall time in the schedule's zone)
    and an RFC 5545 RRULE, expanded by recurring-ical-events."""

    __tablename__ = "agenda_opening"

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("agenda_schedule.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    rrule: Mapped[str | None] = mapped_column(String(500))

    schedule: Mapped[Schedule] = relationship(back_populates="openings", lazy="raise")


class ScheduleException(Base):
    """A period without availability (a closed day, an absence): slots overlapping it are not offered."""

    __tablename__ = "agenda_schedule_exception"

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("agenda_schedule.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]

    schedule: Mapped[Schedule] = relationship(back_populates="exceptions", lazy="raise")


class Appointment(Base):
    """An entry of the patient's agenda: booked online, made by a professional, or the patient's own.

    What the patient reads (professional's name, place, specialty) is copied at booking time, so the
    agenda lists with one query and stays true if a schedule later changes.
    """

    __tablename__ = "agenda_appointment"
    __table_args__ = (
        Index("ix_agenda_appointment_patient_start", "patient_id", "starts_at"),
        Index("ix_agenda_appointment_professional_start", "professional_id", "starts_at"),
        UniqueConstraint("patient_id", "source_uid", name="uq_agenda_appointment_patient_source"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))    # booking | professional | personal | imported
    status: Mapped[str] = mapped_column(String(16), default="booked")  # booked | cancelled
    professional_id: Mapped[int | None] = mapped_column(ForeignKey("professional.id", ondelete="SET NULL"))
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("agenda_schedule.id", ondelete="SET NULL"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    tz: Mapped[str] = mapped_column(String(64), default=DEFAULT_TZ)
    all_day: Mapped[bool] = mapped_column(default=False)
    title: Mapped[str | None] = mapped_column(String(200))  # the patient's own entries
    professional_name: Mapped[str | None] = mapped_column(String(300))
    specialty_label: Mapped[str | None] = mapped_column(String(200))
    visit_type: Mapped[str | None] = mapped_column(String(16))
    place_name: Mapped[str | None] = mapped_column(String(200))
    place_address: Mapped[str | None] = mapped_column(String(300))
    place_postcode: Mapped[str | None] = mapped_column(String(10))
    place_city: Mapped[str | None] = mapped_column(String(120))
    notes: Mapped[str | None] = mapped_column(Text)
    source_uid: Mapped[str | None] = mapped_column(String(300))  # imported: UID + occurrence
    sequence: Mapped[int] = mapped_column(default=0)  # iCalendar SEQUENCE: bumped on each change
    created_by: Mapped[str] = mapped_column(String(16))  # patient | professional | import
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[dt.datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(16))


class SlotHold(Base):
    """The database's promise of no double booking: one row per booked (professional, start)."""

    __tablename__ = "agenda_slot_hold"
    __table_args__ = (UniqueConstraint("professional_id", "starts_at", name="uq_agenda_slot_hold_professional_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    professional_id: Mapped[int] = mapped_column(ForeignKey("professional.id", ondelete="CASCADE"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    appointment_id: Mapped[int] = mapped_column(ForeignKey("agenda_appointment.id", ondelete="CASCADE"),
                                                unique=True)


class Reminder(Base):
    """A pending reminder; the periodic job turns due ones into notification records."""

    __tablename__ = "agenda_reminder"
    __table_args__ = (Index("ix_agenda_reminder_due", "sent_at", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("agenda_appointment.id", ondelete="CASCADE"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    offset_minutes: Mapped[int]
    due_at: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]


class PreventionMark(Base):
    """The patient's status for one recommended exam or vaccination (computed items, see prevention.py)."""

    __tablename__ = "agenda_prevention_mark"
    __table_args__ = (UniqueConstraint("patient_id", "item_code", name="uq_agenda_prevention_mark_patient_item"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    item_code: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # to_plan | done | not_done
    done_on: Mapped[dt.date | None]
    planned_on: Mapped[dt.date | None]
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("agenda_appointment.id", ondelete="SET NULL"))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CalendarFeed(Base):
    """A subscription URL for other calendars. The secret is in the URL; only its SHA-256 is kept."""

    __tablename__ = "agenda_calendar_feed"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    show_details: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]
    last_fetched_at: Mapped[dt.datetime | None]
    fetch_count: Mapped[int] = mapped_column(default=0)
