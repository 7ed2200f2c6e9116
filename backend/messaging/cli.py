"""``carnet inbox …``: operator commands of the secure inbox."""
from __future__ import annotations

import json

import click
from flask.cli import with_appcontext


@click.group("inbox")
def inbox_group() -> None:
    """Secure inbox (retention)."""


@inbox_group.command("purge")
@click.option("--dry-run", is_flag=True, help="report what would be destroyed, destroy nothing")
@with_appcontext
def purge(dry_run: bool) -> None:
    """Destroy the threads patients deleted whose retention period is over, and report how many."""
    from backend.db import get_session
    from backend.messaging import service

    session = get_session()
    removed = service.purge(session)
    if dry_run:
        session.rollback()
    else:
        session.commit()
    click.echo(json.dumps({"dry_run": dry_run, "threads_removed": removed}))
