"""The ``carnet`` command: database, server, worker, accounts, professionals, audit, retention, demo.

Operators' commands print one JSON object on success and exit non-zero with a clear message on error.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from backend.errors import DomainError


def _create_app() -> Flask:
    from backend import create_app
    from backend.config import ConfigError

    try:
        return create_app()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False, add_version_option=False,
             load_dotenv=False, set_debug_flag=False)
def main() -> None:
    """Carnet patient portal: backend administration."""


def _print_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str))


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _domain_message(exc: DomainError) -> str:
    return exc.detail("fr")


def register_commands(app: Flask) -> None:
    """Core commands; features add their own groups in their init_app."""
    from backend.agenda.cli import agenda_group
    from backend.tools.backup import backup_command, restore_command

    for command in (db_group, serve, worker, patient_group, pro_group, audit_group, retention_group, demo_group,
                    backup_command, restore_command, blobs_group):
        app.cli.add_command(command)
    agenda_group.add_command(agenda_demo_schedule)


# --- database ------------------------------------------------------------------------------------------

@click.group("db")
def db_group() -> None:
    """Database schema (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="heads")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: every branch head)."""
    from backend import migrate

    migrate.upgrade(current_app.config["SQLALCHEMY_URL"], revision, blobs=current_app.extensions["carnet.blobs"])
    click.echo(f"database upgraded to {revision}", err=True)


@db_group.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION."""
    from backend import migrate

    migrate.downgrade(current_app.config["SQLALCHEMY_URL"], revision, blobs=current_app.extensions["carnet.blobs"])


@db_group.command("revision")
@click.option("-m", "--message", required=True)
@with_appcontext
def db_revision(message: str) -> None:
    """Autogenerate a migration from the models (developers)."""
    from backend import migrate

    migrate.revision(current_app.config["SQLALCHEMY_URL"], message)


# --- serving -------------------------------------------------------------------------------------------

@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="gunicorn worker processes")
@click.option("--threads", default=8, show_default=True, type=int, help="threads per worker")
@click.option("--no-worker", is_flag=True, help="do not start the embedded task worker")
@click.option("--production", is_flag=True,
              help="PostgreSQL and Redis required, checked before serving; no embedded worker (docs/deploy.md)")
@with_appcontext
def serve(host: str, port: int, workers: int, threads: int, no_worker: bool, production: bool) -> None:
    """Serve the API with gunicorn (and, with the embedded queue, a task worker beside it)."""
    import gunicorn.http.wsgi
    from gunicorn.app.base import BaseApplication

    # gunicorn names itself in every answer's Server header and has no setting for it: the server's software
    # is nobody's business (README "Security choices").
    gunicorn.http.wsgi.SERVER = "Carnet"

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    extra_settings: dict[str, Any] = {}
    if production:
        from backend.config import ConfigError
        from backend.tools.production import prepare_server

        try:
            extra_settings = prepare_server(app, threads=threads)
        except ConfigError as exc:
            _fail(str(exc), code=2)
        no_worker = True  # workers run on their own machines: `carnet worker`
    worker_process = None
    if app.config["TASK_QUEUE"] != "immediate" and not no_worker:
        worker_process = subprocess.Popen([sys.executable, "-m", "backend.tools.cli", "worker"], env=os.environ.copy())

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", None)
            self.cfg.set("graceful_timeout", 5)
            # gunicorn's control socket is one path per user: several servers on a machine would clash.
            self.cfg.set("control_socket_disable", True)
            for key, value in extra_settings.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return app

    click.echo(f"Carnet API on http://{host}:{port}/api/v1 (OpenAPI: http://{host}:{port}/api/openapi.json)",
               err=True)
    try:
        Server().run()
    finally:
        if worker_process is not None:
            worker_process.send_signal(signal.SIGTERM)
            worker_process.wait(timeout=10)


@click.command("worker")
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--periodic/--no-periodic", default=True, show_default=True,
              help="Also schedule the periodic jobs (every minute: delivery, reminders…); --no-periodic only "
                   "consumes what others enqueue.")
@with_appcontext
def worker(workers: int, periodic: bool) -> None:
    """Run the task queue consumer (huey): embedded SQLite queue or Redis, per CARNET_TASK_QUEUE."""
    from backend.tasks import run_worker

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config["TASK_QUEUE"] == "immediate":
        _fail("the queue is in immediate mode: tasks run inline, there is nothing to consume")
    run_worker(app, workers=workers, periodic=periodic)


# --- patients ------------------------------------------------------------------------------------------

@click.group("patient")
def patient_group() -> None:
    """Patient accounts."""


@patient_group.command("create")
@click.option("--nir", required=True)
@click.option("--birth-date", required=True, help="YYYY-MM-DD")
@click.option("--family-name", required=True, help="birth family name")
@click.option("--given-name", required=True, help="first names")
@click.option("--sex", required=True, type=click.Choice(["F", "M"]))
@click.option("--email")
@click.option("--phone")
@click.option("--birth-place", help="COG code of the birth place")
@click.option("--test-ins", is_flag=True, help="the NIR is a test INS (OID …4.10)")
@with_appcontext
def patient_create(nir: str, birth_date: str, family_name: str, given_name: str, sex: str, email: str | None,
                   phone: str | None, birth_place: str | None, test_ins: bool) -> None:
    """Pre-create an account (opt-out) and print its activation code."""
    from backend.accounts import service as accounts
    from backend.db import get_session
    from backend.identity import OID_INS_NIR, OID_INS_NIR_TEST, InsTraits, nir_matches_birth_date
    from backend.web import settings

    session = get_session()
    try:
        valid_nir = accounts.parse_nir(nir)
        date = accounts.parse_date(birth_date)
        if not nir_matches_birth_date(valid_nir, date):
            _fail("the birth date does not match the NIR (year and month of birth)")
        if (valid_nir[0] in "1357") != (sex == "M"):
            _fail("the sex does not match the first digit of the NIR")
        traits = InsTraits(nir=valid_nir, birth_family_name=family_name, given_names=given_name, birth_date=date,
                           sex=sex, birth_place_cog=birth_place, oid=OID_INS_NIR_TEST if test_ins else OID_INS_NIR)
        patient, code = accounts.create_patient(session, settings(), traits, email=email, phone=phone)
        session.commit()
    except DomainError as exc:
        session.rollback()
        _fail(_domain_message(exc))
        return
    _print_json({"patient_id": patient.id, "activation_code": code,
                 "activation_code_expires_at": patient_expiry(session, patient.id), "state": patient.state.value})


def patient_expiry(session: Any, patient_id: int) -> str:
    from sqlalchemy import select

    from backend.accounts.models import ActivationCode

    expires = session.scalar(select(ActivationCode.expires_at).where(ActivationCode.patient_id == patient_id)
                             .order_by(ActivationCode.id.desc()).limit(1))
    return expires.isoformat() if expires else ""


@patient_group.command("new-code")
@click.option("--nir", required=True)
@with_appcontext
def patient_new_code(nir: str) -> None:
    """Issue a new activation code (a new letter) for a pre-created account."""
    from sqlalchemy import select

    from backend.accounts import service as accounts
    from backend.accounts.models import AccountState, Patient
    from backend.db import get_session
    from backend.web import settings

    session = get_session()
    try:
        patient = session.scalar(select(Patient).where(Patient.nir == accounts.parse_nir(nir)))
    except DomainError as exc:
        _fail(_domain_message(exc))
        return
    if patient is None or patient.state != AccountState.PRECREATED:
        _fail("no pre-created account awaits activation for this NIR")
        return
    code = accounts.issue_activation_code(session, settings(), patient)
    session.commit()
    _print_json({"patient_id": patient.id, "activation_code": code})


# --- professionals -------------------------------------------------------------------------------------

@click.group("pro")
def pro_group() -> None:
    """Health professionals."""


@pro_group.command("create")
@click.option("--rpps", required=True)
@click.option("--family-name", required=True)
@click.option("--given-name", required=True)
@click.option("--profession", required=True, help="profession code (TRE_G15), e.g. 10 = médecin")
@click.option("--specialty", help="specialty code (TRE_R38), e.g. SM54")
@click.option("--organisation")
@click.option("--structure", help="national structure identifier (idNat_Struct), e.g. 1 + FINESS, 3 + SIRET")
@click.option("--samu-regulator", is_flag=True)
@with_appcontext
def pro_create(rpps: str, family_name: str, given_name: str, profession: str, specialty: str | None,
               organisation: str | None, structure: str | None, samu_regulator: bool) -> None:
    """Create a professional and print a bearer token for the professional API."""
    from backend.db import get_session
    from backend.professionals import service as pros

    session = get_session()
    try:
        pro, token = pros.create_professional(session, rpps=rpps, family_name=family_name, given_name=given_name,
                                              profession=profession, specialty=specialty, organisation=organisation,
                                              structure_id=structure, samu_regulator=samu_regulator)
        session.commit()
    except DomainError as exc:
        session.rollback()
        _fail(_domain_message(exc))
        return
    _print_json({"professional_id": pro.id, "rpps": pro.rpps, "token": token})


# --- audit and retention -----------------------------------------------------------------------------

@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit trail."""


@audit_group.command("verify")
@with_appcontext
def audit_verify() -> None:
    """Exit 0 when the chain is intact; otherwise name the first altered or missing entry."""
    from backend.audit import service as audit
    from backend.db import get_session

    result = audit.verify(get_session())
    if result.ok:
        click.echo(f"audit trail intact: {result.checked} entries verified")
        return
    _fail(f"audit trail broken at entry {result.first_bad_seq}: {result.reason} "
          f"({result.checked} entries verified before it)", code=3)


@click.group("retention")
def retention_group() -> None:
    """Retention of closed accounts."""


@retention_group.command("purge")
@click.option("--dry-run", is_flag=True, help="report what would be removed, remove nothing")
@with_appcontext
def retention_purge(dry_run: bool) -> None:
    """Remove closed accounts past their retention date and report what was removed."""
    from backend.accounts import service as accounts
    from backend.db import get_session

    session = get_session()
    report = accounts.purge_retention(session)
    if dry_run:
        session.rollback()
    else:
        session.commit()
    _print_json({"dry_run": dry_run, **report.as_dict()})


# --- the blob store ----------------------------------------------------------------------------------

@click.group("blobs")
def blobs_group() -> None:
    """The store of documents' and attachments' bytes (CARNET_BLOB_STORE)."""


@blobs_group.command("sweep")
@click.option("--grace-hours", type=click.FloatRange(min=0), default=None,
              help="leave orphans younger than this alone (default CARNET_BLOB_SWEEP_GRACE_HOURS, 24)")
@click.option("--dry-run", is_flag=True, help="report what would be removed, remove nothing")
@with_appcontext
def blobs_sweep(grace_hours: float | None, dry_run: bool) -> None:
    """Remove the objects no row points to (rolled-back writes, interrupted deletions); prints a report."""
    import datetime as dt

    from backend import blobs
    from backend.db import get_db

    hours = float(grace_hours if grace_hours is not None else current_app.config["BLOB_SWEEP_GRACE_HOURS"])
    try:
        report = blobs.sweep(get_db().engine, blobs.app_store(), grace=dt.timedelta(hours=hours), dry_run=dry_run)
    except blobs.BlobUnavailable as exc:
        _fail(str(exc))
    _print_json({"dry_run": dry_run, "grace_hours": hours, **report.as_dict()})


@blobs_group.command("check")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="ids listed per kind")
@with_appcontext
def blobs_check(limit: int) -> None:
    """Exit 0 when every document and attachment has its object in the store; else list the rows without."""
    from backend import blobs
    from backend.db import get_db

    try:
        missing = blobs.missing_objects(get_db().engine, blobs.app_store(), limit=limit)
    except blobs.BlobUnavailable as exc:
        _fail(str(exc))
    _print_json({"store": blobs.app_store().name, "missing": missing})
    if any(missing.values()):
        sys.exit(3)


# --- demo --------------------------------------------------------------------------------------------

@click.group("demo", invoke_without_command=True)
@click.pass_context
def demo_group(ctx: click.Context) -> None:
    """Seed idempotent demo data and print how to log in (`carnet demo otp` prints a current code)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(demo_seed)


@demo_group.command("seed")
@with_appcontext
def demo_seed() -> None:
    from backend.db import get_session
    from backend.tools.demo import seed

    info = seed(get_session(), current_app.config)
    click.echo(info.instructions())


@demo_group.command("otp")
@with_appcontext
def demo_otp() -> None:
    """Print the demo patient's current one-time code (demo account only)."""
    from backend.db import get_session
    from backend.tools.demo import current_code

    click.echo(current_code(get_session(), current_app.config))


if __name__ == "__main__":
    main()


@click.command("demo-schedule")
@click.option("--rpps", default=None, help="the professional (default: the demo doctor of `carnet demo`)")
@with_appcontext
def agenda_demo_schedule(rpps: str | None) -> None:
    """Publish demonstration opening hours (weekdays 09:00–12:00 and 14:00–17:00, 20 minutes, Lyon) for a
    professional who has none, so the booking screens have slots. Idempotent. A demo tool: it sits here, above
    the agenda, and joins the ``carnet agenda`` group (the agenda knows nothing of the demo)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from flask import current_app
    from sqlalchemy import select

    from backend.agenda import service
    from backend.agenda.models import Schedule
    from backend.db import get_session, utcnow
    from backend.tools.demo import DEMO_RPPS
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
