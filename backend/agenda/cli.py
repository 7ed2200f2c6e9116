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
