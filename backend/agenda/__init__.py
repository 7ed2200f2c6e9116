"""The health agenda: availability (FHIR, professional API), booking, reminders, prevention, calendar
export and import (patient API)."""
from __future__ import annotations

from flask import Flask

from backend.config import add_defaults


def init_app(app: Flask) -> None:
    from backend.agenda import messages  # noqa: F401  (registers the texts)
    from backend.agenda import tasks  # noqa: F401  (registers the periodic reminder job)
    from backend.agenda.api import blp
    from backend.agenda.cli import agenda_group
    from backend.agenda.fhir_api import bp
    from backend.agenda.service import CONFIG_DEFAULTS, AgendaSettings

    add_defaults(app.config, CONFIG_DEFAULTS)
    app.config.setdefault("AGENDA_UID_DOMAIN", "agenda.carnet.example")
    app.extensions["carnet.agenda_settings"] = AgendaSettings.from_config(app.config)
    app.extensions["carnet.api"].register_blueprint(blp)
    app.register_blueprint(bp)
    app.cli.add_command(agenda_group)
