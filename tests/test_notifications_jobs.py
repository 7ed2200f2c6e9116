"""The jobs that deliver notifications: email over a real SMTP server (aiosmtpd on 127.0.0.1), the
reminder registry, activation-code expiry, the retention purge, and once-per-item with two workers
running at the same time on the same due items (SQLite and PostgreSQL)."""
from __future__ import annotations

import datetime as dt
import email
import threading
from collections import Counter
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, select

from backend.accounts.models import AccountState, Patient
from backend.audit.models import AuditEntry
from backend.db import get_session
from backend.notifications import jobs
from backend.notifications import service as notifications
from backend.notifications.jobs import Due, cycle_index, reminder_source
from backend.notifications.models import JobClaim, Notification, OutboxEmail, PushDelivery, PushSubscription
from tests.helpers import STRONG_PASSWORD, bearer, create_patient
from tests.notifications_support import configure, free_port, signed_in, subscribe

NOW = dt.datetime.now(dt.timezone.utc)


def run(app, job, now=None):
    with app.app_context():
        session = get_session()
        report = jobs.JOBS[job](session, app.extensions["carnet.notifications"], now)
        session.commit()
        return report


def run_concurrently(app, job, workers=2):
    """``workers`` threads, each with its own app context and session, start ``job`` at the same time."""
    barrier = threading.Barrier(workers)
    reports: list[Any] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with app.app_context():
                session = get_session()
                barrier.wait(timeout=30)
                reports.append(jobs.JOBS[job](session, app.extensions["carnet.notifications"], None))
                session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(reports) == workers
    return reports


@pytest.fixture
def smtp(app, monkeypatch, smtp_server):
    configure(app, monkeypatch, smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_security="none")
    return smtp_server.handler


def mails(handler, subject_part=""):
    out = []
    for envelope in handler.messages:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        if subject_part in message["Subject"]:
            out.append(message)
    return out


# --- email ------------------------------------------------------------------------------------------

def test_a_notification_is_emailed_over_smtp_generic_and_bilingual(app, client, db, smtp):
    device = signed_in(app, client, email="camille@example.org")
    with app.app_context():
        session = get_session()
        notifications.notify(session, device.patient_id, "document", ref_type="document", ref_id="doc-IRM-genou-77")
        session.commit()
    [message] = mails(smtp, "Nouveau document")
    assert message["To"] == "camille@example.org"
    assert message["Subject"] == "Carnet : Nouveau document / Carnet: New document"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content()
    assert "Un nouveau document a été ajouté à votre dossier médical." in body
    assert "A new document was added to your medical record." in body
    assert "aucune information médicale" in body
    for secret in ("IRM", "genou", "77", device.nir, "Camille"):
        assert secret not in body
    row = db.scalar(select(OutboxEmail).where(OutboxEmail.kind == "notification"))
    assert row.sent_at is not None and row.attempts == 1 and row.claimed_by is None
    assert [m["Subject"] for m in mails(smtp, "Bienvenue")]  # the welcome email went out the same way


def test_a_one_time_code_by_email_leaves_right_after_the_commit(app, client, smtp):
    created = create_patient(app, email="louise@example.org")
    r = client.post("/api/v1/activation", json={"nir": created.nir, "birth_date": created.birth_date,
                                                 "activation_code": created.code, "password": STRONG_PASSWORD})
    r = client.post("/api/v1/mfa/enrol", json={"method": "email"}, headers=bearer(r.get_json()["token"]))
    assert r.status_code == 200
    [message] = mails(smtp, "code de connexion")
    assert message["To"] == "louise@example.org"


def test_email_follows_the_preference_and_mandatory_kinds_always_go(app, client, db, smtp):
    device = signed_in(app, client)
    client.put("/api/v1/notifications/preferences/message", json={"email": False}, headers=device.headers)
    with app.app_context():
        session = get_session()
        notifications.notify(session, device.patient_id, "message")
        notifications.notify(session, device.patient_id, "professional_access")
        session.commit()
    assert mails(smtp, "Nouveau message") == []
    assert len(mails(smtp, "Accès à votre profil")) == 1


def test_a_temporary_refusal_is_retried_with_backoff(app, client, db, smtp):
    smtp.refuse["camille@example.org"] = "451 4.3.0 Try again later"
    device = signed_in(app, client)
    start = dt.datetime.now(dt.timezone.utc)
    with app.app_context():
        session = get_session()
        notifications.notify(session, device.patient_id, "document")
        session.commit()
    rows = db.scalars(select(OutboxEmail).where(OutboxEmail.sent_at.is_(None))).all()
    assert {r.last_error for r in rows} == {"smtp"} and all(r.attempts == 1 for r in rows)
    assert all(r.next_attempt_at - start >= dt.timedelta(seconds=59) for r in rows)
    assert run(app, "deliver")["emails_sent"] == 0              # not due yet
    del smtp.refuse["camille@example.org"]
    with time_machine.travel(start + dt.timedelta(seconds=61)):
        assert run(app, "deliver")["emails_sent"] == len(rows)
    assert len(mails(smtp, "Nouveau document")) == 1


def test_a_permanent_refusal_ends_the_attempts(app, client, db, smtp):
    smtp.refuse["camille@example.org"] = "550 5.1.1 No such user"
    device = signed_in(app, client)
    with app.app_context():
        session = get_session()
        notifications.notify(session, device.patient_id, "document")
        session.commit()
    row = db.scalar(select(OutboxEmail).where(OutboxEmail.kind == "notification"))
    assert row.failed_at is not None and row.last_error == "refused" and row.sent_at is None
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)):
        assert run(app, "deliver")["emails_sent"] == 0


def test_an_unreachable_smtp_server_keeps_emails_waiting(app, client, db, monkeypatch, smtp_server):
    configure(app, monkeypatch, smtp_host="127.0.0.1", smtp_port=free_port(), smtp_security="none")
    device = signed_in(app, client)
    rows = db.scalars(select(OutboxEmail)).all()
    assert rows and all(r.sent_at is None and r.last_error == "smtp_unavailable" and r.failed_at is None
                        for r in rows)
    configure(app, monkeypatch, smtp_port=smtp_server.port)
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2)):
        assert run(app, "deliver")["emails_sent"] == len(rows)
    assert device.patient_id and len(smtp_server.handler.messages) == len(rows)


def test_without_an_smtp_host_emails_wait_in_the_outbox(app, client, db):
    signed_in(app, client)
    assert run(app, "deliver")["emails_sent"] == 0
    assert db.scalar(select(OutboxEmail.sent_at)) is None


def test_two_senders_on_the_same_outbox_send_each_email_once(app, db, monkeypatch, smtp_server):
    created = create_patient(app, email="c@example.org")
    db.add_all([OutboxEmail(recipient=f"p{i}@example.org", subject=f"Carnet {i}", body="Bonjour", kind="test",
                            patient_id=created.patient_id) for i in range(30)])
    db.commit()  # written while no SMTP host is configured: they wait
    configure(app, monkeypatch, smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_security="none",
              batch_size=4)
    reports = run_concurrently(app, "deliver")
    assert sum(r["emails_sent"] for r in reports) == 30
    subjects = Counter(m["Subject"] for m in mails(smtp_server.handler, "Carnet "))
    assert len(subjects) == 30 and set(subjects.values()) == {1}
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(OutboxEmail).where(OutboxEmail.attempts != 1)) == 0


# --- push, two workers ----------------------------------------------------------------------------------

def test_two_workers_push_each_due_notification_once(app, client, db, monkeypatch, push_enabled, push_service):
    configure(app, monkeypatch, batch_size=5)
    device = signed_in(app, client, email=None)
    endpoint, _ = subscribe(client, device, push_service)
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    # written as a feature's transaction would, but not dispatched yet (as after a restart)
    rows = [Notification(patient_id=device.patient_id, kind="document", created_at=past) for _ in range(40)]
    db.add_all(rows)
    db.commit()

    reports = run_concurrently(app, "deliver")

    assert sum(r["dispatched"] for r in reports) == 40
    assert sum(r["push_sent"] for r in reports) == 40
    received = Counter(m.json()["id"] for m in push_service.messages(endpoint))
    assert set(received) == {r.public_id for r in rows}
    assert set(received.values()) == {1}
    assert db.scalar(select(func.count()).select_from(PushDelivery)) == 40
    assert set(db.scalars(select(PushDelivery.attempts))) == {1}


# --- the reminder registry ---------------------------------------------------------------------------------

@pytest.fixture
def review_source():
    """A real source, as the catalogue will plug in: every 90 days after activation, review your services."""

    def connected_services_review(session, now):
        rows = session.execute(select(Patient.id, Patient.activated_at).where(
            Patient.state == AccountState.ACTIVE, Patient.activated_at.is_not(None))).all()
        for patient_id, activated_at in rows:
            cycle = cycle_index(activated_at, now, days=90)
            if cycle >= 1:
                yield Due(patient_id, f"{patient_id}:{cycle}", "service", ref_type="connected_services_review")

    reminder_source("test.connected_services_review")(connected_services_review)
    yield connected_services_review
    jobs.unregister_source("test.connected_services_review")


def test_a_registered_source_notifies_each_due_item_once_per_cycle(app, client, db, review_source):
    device = signed_in(app, client)
    assert run(app, "reminders")["reminders"]["test.connected_services_review"] == 0
    day91 = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=91)
    with time_machine.travel(day91):
        assert run(app, "reminders")["reminders"]["test.connected_services_review"] == 1
        assert run(app, "reminders")["reminders"]["test.connected_services_review"] == 0
    item = notifications.describe(db.scalar(select(Notification).where(Notification.patient_id == device.patient_id)))
    assert item["kind"] == "service" and item["body"] == "Faites le point sur les services connectés à votre profil."
    with time_machine.travel(day91 + dt.timedelta(days=90)):
        assert run(app, "reminders")["reminders"]["test.connected_services_review"] == 1
    assert db.scalar(select(func.count()).select_from(Notification).where(Notification.kind == "service")) == 2


def test_two_workers_running_the_reminders_notify_each_item_once(app, client, db, review_source):
    from tests.helpers import NIR_LOUIS, make_nir

    patients = [signed_in(app, client)]
    patients.append(signed_in(app, client, nir=NIR_LOUIS, birth_date="1990-02-15", email=None, given="Louis",
                              family="Durand", sex="M"))
    patients.append(signed_in(app, client, nir=make_nir("2750575123456"), birth_date="1975-05-01", email=None,
                              given="Anne", family="Petit"))
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=95)):
        reports = run_concurrently(app, "reminders")
    assert sum(r["reminders"]["test.connected_services_review"] for r in reports) == 3
    kinds = db.scalars(select(Notification.patient_id).where(Notification.kind == "service")).all()
    assert sorted(kinds) == sorted(p.patient_id for p in patients)
    assert db.scalar(select(func.count()).select_from(JobClaim)) == 3


def test_a_source_cannot_yield_an_unknown_kind(app):
    reminder_source("test.broken")(lambda session, now: [Due(1, "k", "weather")])
    try:
        with pytest.raises(ValueError, match="weather"):
            run(app, "reminders")
    finally:
        jobs.unregister_source("test.broken")


def test_cycle_index():
    anchor = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert cycle_index(anchor, anchor + dt.timedelta(days=89)) == 0
    assert cycle_index(anchor, anchor + dt.timedelta(days=90)) == 1
    assert cycle_index(anchor, anchor - dt.timedelta(days=1)) == 0


# --- activation codes that expired -------------------------------------------------------------------------

def test_an_expired_activation_code_ends_the_opposition_period_once(app, client, db, smtp):
    created = create_patient(app, email="jeanne@example.org")
    assert run(app, "activation_expiry")["activation_codes_expired"] == 0
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(weeks=6, minutes=1)
    with time_machine.travel(later):
        reports = run_concurrently(app, "activation_expiry")
        assert sum(r["activation_codes_expired"] for r in reports) == 1
        assert run(app, "activation_expiry")["activation_codes_expired"] == 0
        r = client.post("/api/v1/activation/check", json={"nir": created.nir, "birth_date": created.birth_date,
                                                           "activation_code": created.code})
        assert r.get_json()["code"] == "activation_code_expired"
    note = db.scalar(select(Notification).where(Notification.patient_id == created.patient_id))
    assert (note.kind, note.ref_type) == ("account", "activation_code_expired")
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.patient_id == created.patient_id)).all()
    assert actions.count("account.opposition_period_ended") == 1
    [message] = mails(smtp, "Votre compte Carnet")
    assert message["To"] == "jeanne@example.org"
    assert "Le délai pour vous opposer est écoulé" in message.get_content()
    assert db.scalar(select(Patient.state).where(Patient.id == created.patient_id)) == AccountState.PRECREATED


def test_a_new_code_is_a_new_period(app, db):
    from backend.accounts import service as accounts

    created = create_patient(app)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(weeks=6, minutes=1)
    with time_machine.travel(later):
        assert run(app, "activation_expiry")["activation_codes_expired"] == 1
        with app.app_context():
            session = get_session()
            accounts.issue_activation_code(session, app.extensions["carnet.account_settings"],
                                           session.get(Patient, created.patient_id))
            session.commit()
        assert run(app, "activation_expiry")["activation_codes_expired"] == 0
    with time_machine.travel(later + dt.timedelta(weeks=6, minutes=1)):
        assert run(app, "activation_expiry")["activation_codes_expired"] == 1


# --- retention ------------------------------------------------------------------------------------------

def test_the_retention_purge_runs_once_a_day_and_takes_notifications_along(app, client, db, push_enabled,
                                                                          push_service):
    device = signed_in(app, client)
    subscribe(client, device, push_service)
    client.put("/api/v1/notifications/preferences/document", json={"email": False}, headers=device.headers)
    with app.app_context():
        session = get_session()
        notifications.notify(session, device.patient_id, "document")
        session.commit()
    r = client.post("/api/v1/account/close", json={"password": STRONG_PASSWORD, "request_deletion": True},
                    headers=device.headers)
    assert r.status_code == 200
    assert run(app, "retention_purge")["retention_purge"]["patients_removed"] == 0
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3660)
    with time_machine.travel(later):
        reports = run_concurrently(app, "retention_purge")
        removed = [r["retention_purge"] for r in reports]
        assert "already done today" in removed
        assert {"patients_removed": 1} .items() <= next(r for r in removed if isinstance(r, dict)).items()
    for model in (Patient, Notification, PushSubscription, PushDelivery):
        assert db.scalar(select(func.count()).select_from(model)) == 0, model
    with time_machine.travel(later + dt.timedelta(days=1)):
        assert run(app, "retention_purge")["retention_purge"]["patients_removed"] == 0
