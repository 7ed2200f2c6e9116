"""The secure inbox between professionals and patients: the patient's side under /api/v1/inbox, the
professionals' side as FHIR R4 Communication under /fhir/R4, and the retention of deleted threads."""
from __future__ import annotations

from flask import Flask

from backend.config import add_defaults

DEFAULTS = {
    # attachments per message (each one within UPLOAD_MAX_BYTES, like a document upload)
    "INBOX_MAX_ATTACHMENTS": 5,
    # how long a thread the patient deleted is kept before it is destroyed (None: RETENTION_YEARS)
    "INBOX_RETENTION_DAYS": None,
}


def init_app(app: Flask) -> None:
    from backend.messaging import fhir, messages, tasks  # noqa: F401  (texts, the purge job)
    from backend.messaging.api import blp
    from backend.messaging.cli import inbox_group
    from backend.messaging.fhir_api import bp
    from backend.messaging.service import InboxSettings

    add_defaults(app.config, DEFAULTS)
    app.extensions["carnet.inbox_settings"] = InboxSettings.from_config(app.config)
    app.extensions["carnet.api"].register_blueprint(blp)
    app.register_blueprint(bp)
    app.cli.add_command(inbox_group)
