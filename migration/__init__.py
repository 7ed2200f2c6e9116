"""Legacy DMP migration: readers (XDM, CDA) → mapping (pure functions) → loader (record services).

``init_app`` registers the activation hook (the import runs on the task queue when an account is
activated), the patient's status/report/review API, and the ``carnet migrate`` commands.
Configuration: ``CARNET_LEGACY_DIR`` (one folder per dossier, named after the holder's NIR).
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from migration import hooks, messages  # noqa: F401  (registers the handler and the texts)
    from migration.api import blp
    from migration.cli import migrate_group

    app.config.setdefault("LEGACY_DIR", None)
    app.extensions["carnet.api"].register_blueprint(blp)
    app.cli.add_command(migrate_group)
