"""``carnet agenda …``: operator commands of the health agenda."""
from __future__ import annotations

import json

import click
from flask.cli import with_appcontext


@click.group("agenda")
def agenda_group() -> None:
    """Health agenda (reminders)."""


@agenda_group.command("send-reminders")
@with_appcontext
def send_reminders() -> None:
    """Record the notifications of every due reminder now (what the worker does each minute)."""
    from backend.agenda.tasks import run_reminders

    click.echo(json.dumps({"sent": run_reminders()}))


@agenda_group.command("demo-schedule")
@click.option("--rpps", default=None, help="the professional (default: the demo doctor of `carnet demo`)")
@with_appcontext
def demo_schedule(rpps: str | None) -> None:
    """Publish demonstration opening hours (weekdays 09:00–12:00 and 14:00–17:00, 20 minutes, Lyon) for a
    professional who has none, so the booking screens have slots. Idempotent."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from flask import current_app
    from sqlalchemy import select

    from backend.agenda import service
    from backend.agenda.models import Schedule
    from backend.db import get_session, utcnow
    from backend.demo import DEMO_RPPS
    from backend.professionals.models import Professional

    session = get_session()
    pro = session.scalar(select(Professional).where(Professional.rpps == (rpps or DEMO_RPPS)))
    if pro is None:
        click.echo("error: no such professional (run `carnet demo` first, or give --rpps)", err=True)
        raise SystemExit(1)
    existing = session.scalar(select(Schedule.id).where(Schedule.professional_id == pro.id,
                                                        Schedule.active.is_(True)))
    if existing is None:
        settings = current_app.extensions["carnet.agenda_settings"]
        zone = ZoneInfo(settings.default_tz)
        monday = utcnow().astimezone(zone).date()
        monday -= dt.timedelta(days=monday.weekday())

        def at(hour: int) -> dt.datetime:
            return dt.datetime.combine(monday, dt.time(hour), tzinfo=zone)

        rule = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
        schedule = service.publish_schedule(session, pro, service.ScheduleInput(
            visit_type="in_person", slot_minutes=20, tz=settings.default_tz, specialty_code=pro.specialty_code,
            specialty_label="Médecine générale",
            place=service.Place("Cabinet médical du Parc", "12 rue Garibaldi", "69006", "Lyon"),
            openings=[(at(9), at(12), rule), (at(14), at(17), rule)]))
        session.commit()
        existing = schedule.id
    click.echo(json.dumps({"professional_id": pro.id, "schedule_id": existing}))
