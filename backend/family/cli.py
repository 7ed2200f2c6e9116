"""``carnet family majority [--at ISO datetime]``: run the majority job now (as the worker does every hour) and
print the young adults' activation letters, as ``carnet patient create`` prints one."""
from __future__ import annotations

import datetime as dt
import json

import click
from flask.cli import AppGroup

family_group = AppGroup("family", help="The family space: legal representatives and carers.")


@family_group.command("majority")
@click.option("--at", "at", default=None, help="the moment to run it for (ISO 8601 with offset; default: now)")
def majority(at: str | None) -> None:
    """End the legal representation of every child whose 18th birthday has come; print the letters."""
    from flask import current_app

    from backend.accounts.service import AccountSettings
    from backend.db import get_session
    from backend.family.service import FamilySettings, come_of_age

    now = None
    if at:
        try:
            now = dt.datetime.fromisoformat(at)
        except ValueError:
            raise click.UsageError("--at: an ISO 8601 date and time, e.g. 2039-09-03T09:00:00+02:00") from None
        if now.tzinfo is None:
            raise click.UsageError("--at: give the offset (e.g. +02:00)")
    session = get_session()
    letters = come_of_age(session, FamilySettings.from_config(current_app.config),
                          AccountSettings.from_config(current_app.config), now=now)
    session.commit()
    click.echo(json.dumps({"letters": [{"patient_id": letter.patient_id, "activation_code": letter.activation_code}
                                       for letter in letters]}))
