"""``carnet catalog``: the operators manage the catalogue from a JSON or YAML file.

Each command prints one JSON object; a refused file prints every fault and writes nothing (exit 1).
"""
from __future__ import annotations

import json
import sys
from typing import Any

import click
from flask.cli import with_appcontext

def _print(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str))


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.group("catalog")
def catalog_group() -> None:
    """The catalogue of referenced services."""


def import_path(path: str) -> dict[str, Any]:
    from backend.catalog import operators as catalog
    from backend.catalog.catalogue_file import CatalogFileError, load_file
    from backend.db import get_session

    session = get_session()
    try:
        report = catalog.import_catalogue(session, load_file(path))
        session.commit()
    except CatalogFileError as exc:
        session.rollback()
        _fail(f"{path} was not imported (nothing was changed):\n" + "\n".join(f"  - {p}" for p in exc.problems))
    return report.as_dict()


@catalog_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@with_appcontext
def import_command(file: str) -> None:
    """Add or update services (by slug) from FILE (.json, .yaml or .yml). All or nothing.

    New confidential clients get a secret, printed once ("client_secrets")."""
    _print(import_path(file))


@catalog_group.command("seed")
@with_appcontext
def seed_command() -> None:
    """Import the demonstration catalogue shipped with Carnet (idempotent)."""
    from backend.catalog.catalogue_file import SEED_FILE

    _print(import_path(str(SEED_FILE)))


def _status(ref: str, status: str) -> None:
    from backend.catalog import operators as catalog
    from backend.catalog.models import ServiceStatus
    from backend.db import get_session
    from backend.errors import DomainError

    session = get_session()
    try:
        result = catalog.change_status(session, ref, ServiceStatus(status))
        session.commit()
    except DomainError as exc:
        session.rollback()
        _fail(f"{exc.detail('fr')} ({ref})")
        return
    _print(result)


@catalog_group.command("suspend")
@click.argument("service")
@with_appcontext
def suspend(service: str) -> None:
    """Suspend SERVICE (slug, client_id or id): out of the catalogue, access cut until reinstated."""
    _status(service, "suspended")


@catalog_group.command("dereference")
@click.argument("service")
@with_appcontext
def dereference(service: str) -> None:
    """De-reference SERVICE: out of the catalogue, every consent revoked, access cut at once."""
    _status(service, "dereferenced")


@catalog_group.command("reinstate")
@click.argument("service")
@with_appcontext
def reinstate(service: str) -> None:
    """Put SERVICE back online (consents revoked by a de-referencing stay revoked)."""
    _status(service, "online")


@catalog_group.command("offline")
@click.argument("service")
@with_appcontext
def offline(service: str) -> None:
    """Mark SERVICE temporarily unavailable (listed, no new connection, access kept)."""
    _status(service, "offline")


@catalog_group.command("list")
@with_appcontext
def list_command() -> None:
    """Every service with its status, active connections and reports."""
    from backend.catalog import operators as catalog
    from backend.db import get_session

    _print({"services": catalog.list_services(get_session())})


@catalog_group.command("reports")
@click.option("--service", "ref", help="only this service (slug, client_id or id)")
@click.option("--limit", default=200, show_default=True, type=int)
@with_appcontext
def reports(ref: str | None, limit: int) -> None:
    """What patients reported, newest first."""
    from backend.catalog import operators as catalog
    from backend.db import get_session
    from backend.errors import DomainError

    try:
        _print({"reports": catalog.list_reports(get_session(), ref, limit=limit)})
    except DomainError as exc:
        _fail(f"{exc.detail('fr')} ({ref})")


@catalog_group.command("rotate-secret")
@click.argument("service")
@with_appcontext
def rotate_secret(service: str) -> None:
    """Give SERVICE (a confidential client) a new client secret, printed once."""
    from backend.catalog import operators as catalog
    from backend.db import get_session
    from backend.errors import DomainError

    session = get_session()
    try:
        result = catalog.rotate_secret(session, service)
        session.commit()
    except DomainError as exc:
        session.rollback()
        _fail(f"{exc.detail('fr')} ({service})")
        return
    _print(result)
