"""`carnet push …` (VAPID keys) and `carnet notifications …` (run a job now, list them)."""
from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import with_appcontext


def _print_json(data: dict) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str))


@click.group("push")
def push_group() -> None:
    """Web Push (VAPID)."""


@push_group.command("keys")
@click.option("--show", is_flag=True, help="print the public key of the configured pair, create nothing")
@with_appcontext
def push_keys(show: bool) -> None:
    """Create the VAPID key pair (private key in the instance folder, mode 600) and print the public key."""
    from backend.notifications import push
    from backend.notifications.settings import load_vapid_private_key, vapid_key_path

    app = current_app
    existing = load_vapid_private_key(app.config, app.instance_path)
    if show or existing:
        if not existing:
            raise click.ClickException("no VAPID key: run `carnet push keys` first")
        source = "CARNET_VAPID_PRIVATE_KEY" if app.config.get("VAPID_PRIVATE_KEY") else str(
            vapid_key_path(app.config, app.instance_path))
        if not show:
            click.echo("a VAPID key pair already exists: keeping it (a new one would invalidate every "
                       "device's subscription)", err=True)
        _print_json({"public_key": push.application_server_key(existing), "private_key": source, "created": False})
        return
    path = vapid_key_path(app.config, app.instance_path)
    try:
        push.write_key_file(path, push.generate_vapid_private_pem())
    except FileExistsError:
        raise click.ClickException(f"{path} appeared meanwhile: keeping it") from None
    _print_json({"public_key": push.application_server_key(path.read_text()), "private_key": str(path),
                 "created": True})


@click.group("notifications")
def notifications_group() -> None:
    """Notification jobs (they also run on the schedule of every `carnet worker`)."""


@notifications_group.command("jobs")
def list_jobs() -> None:
    """The periodic jobs and the reminder sources registered by features."""
    from backend.notifications import jobs

    _print_json({"jobs": sorted(jobs.JOBS), "reminder_sources": jobs.source_names()})


@notifications_group.command("run")
@click.argument("job")
@with_appcontext
def run(job: str) -> None:
    """Run JOB once now (deliver, reminders, activation_expiry, retention_purge) and print its report."""
    from backend.db import get_session
    from backend.notifications import jobs

    if job not in jobs.JOBS:
        raise click.ClickException(f"unknown job {job!r}: one of {', '.join(sorted(jobs.JOBS))}")
    session = get_session()
    report = jobs.JOBS[job](session, current_app.extensions["carnet.notifications"], None)
    session.commit()
    _print_json({"job": job, **report})
