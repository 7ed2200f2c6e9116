"""Reminders: the periodic job turns due reminders into notification records, right across DST,
idempotently, and never for a cancelled appointment."""
import datetime as dt

import pytest
import time_machine
from sqlalchemy import select

from backend.agenda import service
from backend.agenda.models import Reminder
from backend.agenda.tasks import send_due_reminders
from backend.notifications.models import Notification
from tests.agenda.support import book, make_pro, publish, schedule_body, sign_in, slots, utc


def run_job_at(when):
    with time_machine.travel(when, tick=False):
        send_due_reminders()  # the huey periodic task; the test queue runs it inline


def reminders_sent(db, patient_id):
    db.expire_all()
    return [(n.kind, n.ref_type, n.ref_id) for n in db.scalars(
        select(Notification).where(Notification.patient_id == patient_id).order_by(Notification.id))]


@pytest.mark.parametrize("booked_at, slot_day, start_utc, due_24h, due_2h", [
    # Sunday 29 March 2026, 09:00 CEST (07:00Z): 24 h before is Saturday 08:00 CET (07:00Z)
    (utc(2026, 3, 20, 9), "2026-03-29", utc(2026, 3, 29, 7), utc(2026, 3, 28, 7), utc(2026, 3, 29, 5)),
    # Sunday 25 October 2026, 09:00 CET (08:00Z): 24 h before is Saturday 10:00 CEST (08:00Z)
    (utc(2026, 10, 16, 9), "2026-10-25", utc(2026, 10, 25, 8), utc(2026, 10, 24, 8), utc(2026, 10, 25, 6)),
])
def test_reminders_fire_at_the_right_instant_across_dst(app, client, db, booked_at, slot_day, start_utc, due_24h,
                                                        due_2h):
    with time_machine.travel(booked_at, tick=False):
        pro = make_pro(app)
        publish(client, pro, schedule_body(start="2026-03-01T09:00:00", end="2026-03-01T10:00:00",
                                           rrule="FREQ=WEEKLY;BYDAY=SU"))
        patient = sign_in(app, client)
        slot = slots(client, patient, date=slot_day, days=1)[0]
        assert slot["local_time"] == "09:00"
        appointment = book(client, patient, slot["slot_id"]).get_json()
    assert dt.datetime.fromisoformat(appointment["starts_at"]) == start_utc
    assert [dt.datetime.fromisoformat(r) for r in appointment["reminders"]] == [due_24h, due_2h]

    run_job_at(due_24h - dt.timedelta(minutes=1))
    assert reminders_sent(db, patient.patient_id) == []
    run_job_at(due_24h)
    assert reminders_sent(db, patient.patient_id) == [("appointment", "appointment", str(appointment["id"]))]
    run_job_at(due_24h + dt.timedelta(minutes=1))  # the next minute's run: nothing new
    assert len(reminders_sent(db, patient.patient_id)) == 1
    run_job_at(due_2h + dt.timedelta(seconds=30))
    assert len(reminders_sent(db, patient.patient_id)) == 2
    db.expire_all()
    assert all(r.sent_at is not None for r in db.scalars(select(Reminder)))


def test_cancelling_removes_pending_reminders(app, client, db):
    with time_machine.travel(utc(2026, 3, 2, 7), tick=False):
        pro = make_pro(app)
        publish(client, pro, schedule_body())
        patient = sign_in(app, client)
        appointment = book(client, patient, slots(client, patient, date="2026-03-10", days=1)[0]["slot_id"]).get_json()
        assert len(appointment["reminders"]) == 2
        r = client.post(f"/api/v1/agenda/appointments/{appointment['id']}/cancel", headers=patient.headers)
        assert r.status_code == 200
    assert db.scalar(select(Reminder.id)) is None
    run_job_at(utc(2026, 3, 9, 8))
    run_job_at(utc(2026, 3, 10, 6))
    assert reminders_sent(db, patient.patient_id) == []


def test_a_reminder_due_twice_or_for_a_cancelled_or_begun_appointment_is_not_sent_again(app, client, db):
    """Idempotence at the service level, including a worker that was down when the reminder fell due."""
    with time_machine.travel(utc(2026, 3, 2, 7), tick=False):
        pro = make_pro(app)
        publish(client, pro, schedule_body())
        patient = sign_in(app, client)
        first, second = slots(client, patient, date="2026-03-10", days=1)[:2]
        a1 = book(client, patient, first["slot_id"]).get_json()
        book(client, patient, second["slot_id"])
    with app.app_context():
        from backend.db import get_session

        session = get_session()
        # the worker was down for two days: both appointments have begun, nothing is sent
        assert service.send_due_reminders(session, now=utc(2026, 3, 10, 9)) == 0
        session.commit()
        # reset one reminder as if a second worker had read it before the first committed
        reminder = session.scalar(select(Reminder).where(Reminder.appointment_id == a1["id"]).limit(1))
        reminder.sent_at = None
        session.commit()
        appointment = session.get(service.Appointment, a1["id"])
        service.notify(session, patient.patient_id, "appointment", ref_type="appointment", ref_id=a1["id"],
                       dedupe_key=service.reminder_dedupe_key(appointment, reminder.offset_minutes))
        assert service.send_due_reminders(session, now=utc(2026, 3, 10, 7, 30)) == 1
        session.commit()
    assert len(reminders_sent(db, patient.patient_id)) == 1  # the dedupe key kept it to one


def test_the_reminder_job_is_periodic_every_minute():
    from huey.api import PeriodicTask

    assert isinstance(send_due_reminders.task_class(), PeriodicTask)
    minute = dt.datetime(2026, 10, 25, 2, 17)
    assert send_due_reminders.task_class().validate_datetime(minute)


def test_reminder_offsets_are_read_from_settings():
    assert service.parse_offsets("24h, 2h") == (dt.timedelta(hours=24), dt.timedelta(hours=2))
    assert service.parse_offsets([48, 1]) == (dt.timedelta(hours=48), dt.timedelta(hours=1))
    assert service.parse_offsets("90m,1.5h") == (dt.timedelta(minutes=90),)
    with pytest.raises(ValueError):
        service.parse_offsets("tomorrow")


def test_the_cli_runs_the_job(app, client, runner, db):
    with time_machine.travel(utc(2026, 3, 2, 7), tick=False):
        pro = make_pro(app)
        publish(client, pro, schedule_body())
        patient = sign_in(app, client)
        book(client, patient, slots(client, patient, date="2026-03-04", days=1)[0]["slot_id"])
    with time_machine.travel(utc(2026, 3, 3, 8), tick=False):
        result = runner.invoke(args=["agenda", "send-reminders"])
    assert result.exit_code == 0, result.output
    assert '"sent": 1' in result.output
    assert len(reminders_sent(db, patient.patient_id)) == 1


def test_the_demo_schedule_command_is_idempotent(app, runner, client):
    pro = make_pro(app)
    first = runner.invoke(args=["agenda", "demo-schedule", "--rpps", "10101234567"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(args=["agenda", "demo-schedule", "--rpps", "10101234567"])
    assert again.output == first.output
    week = client.get("/fhir/R4/Slot", headers=pro.headers).get_json()  # the next seven days
    starts = {e["resource"]["start"][11:16] for e in week["entry"]}
    assert week["total"] > 0 and starts <= {f"{h:02d}:{m:02d}" for h in (9, 10, 11, 14, 15, 16) for m in (0, 20, 40)}
    assert runner.invoke(args=["agenda", "demo-schedule", "--rpps", "19999999999"]).exit_code == 1
