"""`carnet keys`: master keys and the re-wrapping of patients' data keys."""
from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import with_appcontext


@click.group("keys")
def keys_group() -> None:
    """Encryption keys (health data at rest)."""


@keys_group.command("new")
def keys_new() -> None:
    """Print a new random master key (base64) for CARNET_MASTER_KEY."""
    from backend.records.crypto import new_master_key

    click.echo(new_master_key())


@keys_group.command("rotate")
@with_appcontext
def keys_rotate() -> None:
    """Re-wrap every patient's data key with the current master key (CARNET_MASTER_KEY).

    Put the old key in CARNET_MASTER_KEYS_PREVIOUS first; remove it once this has run.
    """
    from backend.db import get_session
    from backend.records.crypto import rotate

    session = get_session()
    result = rotate(session, current_app.extensions["carnet.keyring"])
    session.commit()
    click.echo(json.dumps({"master_key_id": current_app.extensions["carnet.keyring"].current_id, **result}))
